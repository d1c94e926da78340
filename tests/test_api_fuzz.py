"""Schema-driven fuzzing of the integration API (/api/v1/) with schemathesis.

Every operation of ``/api/v1/openapi.json`` (as the app serves it) is fuzzed in-process,
through Django's real WSGI handler (every middleware: tenants, CSRF, locale) on the real
test database, with data both valid (positive) and invalid (negative) for the schema:

* with a valid key holding every scope the operation needs (an enterprise key, or an
  operator's key for /registries), half the time aimed at real rows (a blacklist with
  entries, an account's slug) so the requests reach past the 404s;
* with no key, a malformed one and an unknown one: each must be a 401 problem.

Checks on every response: ``not_a_server_error``, ``status_code_conformance`` (every
status is one the schema documents: each operation lists its problems, api.v1.ERRORS),
``response_schema_conformance`` (the body, problems included, matches its schema),
``content_type_conformance`` and ``response_headers_conformance`` (schemathesis's), and
ours: every 4xx is an RFC 9457 problem (application/problem+json, ``status`` = the HTTP
status, ``type``, ``title``, ``detail``).

At least 5,000 requests are sent (counted at the WSGI app, not estimated); derandomized
so CI sees the same requests every run. Each request runs in a savepoint, as a request in
autocommit would: one that broke the transaction does not break the ones after it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import traceback
from collections import Counter
from contextlib import contextmanager

import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import got_request_exception, request_finished, request_started
from django.db import close_old_connections, connection, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.api_keys import do_create_api_key
from campaigns.blacklists import do_add_entry, do_create_blacklist
from devices.actions import do_save_device_setting
from devices.models import Attempt

ENTERPRISE_SCOPES = ["trace:read", "devices:write", "blacklists:write", "decisions:read"]
HOUSTON = "+17135554101"
MIN_REQUESTS = 5_000
# Per operation, with a valid key: schema-valid requests, schema-invalid ones (where the
# schema has something to violate); then without a usable key. Positive cases cost about
# half as much to make as negative ones: the mix keeps the test near 3 minutes.
EXAMPLES = {GenerationMode.POSITIVE: 285, GenerationMode.NEGATIVE: 60}
UNAUTHENTICATED_EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
]
PROBLEM = "application/problem+json"


class Wsgi:
    """Django's WSGI handler, counting requests, each in a savepoint of the test's
    transaction; a server error's traceback is kept for the report."""

    def __init__(self):
        self.handler = WSGIHandler()
        self.requests = 0
        self.tracebacks: dict[str, str] = {}  # the first of each distinct error

    def __call__(self, environ, start_response):
        self.requests += 1
        status = []

        def start(code, headers, exc_info=None):
            status.append(int(code.split()[0]))
            return start_response(code, headers, exc_info)

        savepoint = transaction.savepoint()
        try:
            result = self.handler(environ, start)
            try:  # a streamed body reads the database now: inside the savepoint
                body = b"".join(result)
            finally:
                result.close()
        except BaseException:
            self._keep(f"(streaming) {environ.get('PATH_INFO')}", traceback.format_exc())
            self._rollback(savepoint)
            raise
        if status[0] >= 500 or connection.needs_rollback or _aborted():
            self._rollback(savepoint)
        else:
            transaction.savepoint_commit(savepoint)
        return [body]

    @staticmethod
    def _rollback(savepoint):
        transaction.savepoint_rollback(savepoint)
        transaction.set_rollback(False)

    def record(self, sender, request=None, **kwargs):
        where = f"{getattr(request, 'method', '?')} {getattr(request, 'get_full_path', str)()}"
        self._keep(where, traceback.format_exc())

    def _keep(self, where: str, text: str) -> None:
        """One traceback per error and place in the project's code where it surfaced."""
        ours = [line for line in text.splitlines() if "/.venv/" not in line and "File" in line]
        error = (text.strip().splitlines()[-1], ours[-1] if ours else "")
        self.tracebacks.setdefault(str(error), f"{where}\n{text}")


def _aborted() -> bool:
    from psycopg import pq

    raw = connection.connection
    return raw is not None and raw.info.transaction_status == pq.TransactionStatus.INERROR


@contextmanager
def _in_test_transaction(app: Wsgi):
    """What django.test.Client does around a request: no closing of the connection at a
    request's start or end (it would end the test's transaction)."""
    quiet = logging.getLogger("django.request")  # a warning per 4xx: thousands
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    got_request_exception.connect(app.record)
    try:
        yield
    finally:
        got_request_exception.disconnect(app.record)
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
        quiet.setLevel(level)


def _seed(personas) -> dict:
    """Rows for the fuzz to find: a blacklist with entries, settings, attempts."""
    with tenant_context(personas.acct_a1):
        blacklist = do_create_blacklist(name="Fuzzed", description="Target of the fuzz")
        for n in range(5):
            do_add_entry(blacklist, "phone", f"+1713555430{n}")
        do_add_entry(blacklist, "extension", "4242")
    connection.set_schema_to_public()
    do_save_device_setting(personas.ent_a, HOUSTON, "block", reason="Seeded")
    do_save_device_setting(personas.ent_a, "someone@example.com", "allow")
    now = timezone.now()
    Attempt.objects.bulk_create(
        Attempt(attempted_at=now - dt.timedelta(minutes=i), enterprise_id=personas.ent_a.pk,
                account_id=personas.acct_a1.pk, account_name="Acme One", client_id="C-9",
                device_key=HOUSTON, channel="voice", direction="outbound",
                disposition="ANSWERED", call_seconds=30 + i, node="engine-1")
        for i in range(3)
    )  # fmt: skip
    return {"blacklist_id": blacklist.pk, "account": personas.acct_a1.slug}


def _aimed(operation, mode, seeded: dict):
    """The operation's cases, half of them at real rows: its path and query parameters
    that name a blacklist or an account get the seeded ones."""
    names = {
        location: {p.name for p in getattr(operation, location, ())}
        for location in ("path_parameters", "query")
    }
    path = {k: v for k, v in seeded.items() if k in names["path_parameters"]}
    query = {k: v for k, v in seeded.items() if k in names["query"]}
    plain = operation.as_strategy(generation_mode=mode)
    if not path and not query:
        return plain
    aimed = operation.as_strategy(
        generation_mode=mode, path_parameters=path or None, query=query or None
    )
    return st.one_of(plain, aimed)


def _modes(operation) -> list[GenerationMode]:
    """Negative cases only where the schema has something to violate: a body, a query,
    a path parameter that is not any string (GET /registries has nothing at all)."""
    typed_path = any(
        p.definition.get("schema", {}).get("type") != "string" for p in operation.path_parameters
    )
    if len(operation.body) or len(operation.query) or typed_path:
        return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    return [GenerationMode.POSITIVE]


def _idempotency_key():
    """Sometimes an Idempotency-Key: a few reused (replays, and reuse for another
    request), or any short text (too long, not ASCII: a 400 problem)."""
    return st.one_of(
        st.none(),
        st.sampled_from(["fuzz-1", "fuzz-2"]),
        # What HTTP can carry: no line breaks, no leading white space.
        st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=300).map(
            str.lstrip
        ),
    )


def _is_problem(response) -> str | None:
    """Why a 4xx response is not an RFC 9457 problem, or None."""
    if not 400 <= response.status_code < 500:
        return None
    content_type = next(
        (v[0] for k, v in response.headers.items() if k.lower() == "content-type"), ""
    )
    if content_type.split(";")[0].strip() != PROBLEM:
        return f"content type {content_type!r}"
    try:
        body = json.loads(response.content)
    except ValueError:
        return "not JSON"
    missing = [k for k in ("type", "title", "status", "detail") if k not in body]
    if missing:
        return f"missing {missing}"
    if body["status"] != response.status_code:
        return f"status {body['status']} in a {response.status_code}"
    return None


FUZZ_SETTINGS = hypothesis_settings(
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
    report_multiple_bugs=True,
)


def _fuzz(operation, mode, seeded: dict, secret: str, counted: Counter) -> str | None:
    """Fuzzes one operation in one generation mode with a valid key; why it failed, or
    None. Every check runs on every response; Hypothesis shrinks what fails."""
    writes = operation.method.upper() in ("POST", "PUT")

    @hypothesis_settings(FUZZ_SETTINGS, max_examples=EXAMPLES[mode])
    @given(case=_aimed(operation, mode, seeded), idempotency=_idempotency_key())
    def authorized(case, idempotency):
        headers = {"Authorization": f"Bearer {secret}"}
        if writes and idempotency is not None:
            headers["Idempotency-Key"] = idempotency
        response = case.call(headers=headers)
        counted[operation.label] += 1
        case.validate_response(response, checks=CHECKS, headers=headers)
        why = _is_problem(response)
        assert why is None, f"{response.status_code} is not a problem: {why}\n" + (
            case.as_curl_command(headers=headers)
        )

    return _failure(authorized)


def _fuzz_unauthenticated(operation, secret: str, counted: Counter) -> str | None:
    """No key, or no usable one: always a 401 problem, whatever else the request holds."""

    @hypothesis_settings(FUZZ_SETTINGS, max_examples=UNAUTHENTICATED_EXAMPLES)
    @given(
        case=operation.as_strategy(),
        authorization=st.sampled_from(
            [None, "Bearer", "Bearer cpk_nope", f"Bearer {secret[:-4]}AAAA", "Basic x"]
        ),
    )
    def unauthenticated(case, authorization):
        headers = {"Authorization": authorization} if authorization else {}
        response = case.call(headers=headers)
        counted[operation.label] += 1
        assert response.status_code == 401, case.as_curl_command(headers=headers)
        assert _is_problem(response) is None, response.content

    return _failure(unauthenticated)


def _failure(test) -> str | None:
    try:
        test()
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis's FailureGroup is the latter
        return str(exc)
    return None


def test_every_endpoint_survives_schema_driven_fuzzing(personas, settings):
    settings.API_RATE_LIMIT = 0
    seeded = _seed(personas)
    _k1, enterprise_secret = do_create_api_key(
        name="Fuzz", scopes=ENTERPRISE_SCOPES, created_by=personas.ent_admin,
        enterprise=personas.ent_a,
    )  # fmt: skip
    operator_key, operator_secret = do_create_api_key(
        name="Fuzz ops", scopes=["registries:read"], created_by=personas.operator
    )
    assert operator_key.is_operator
    app = Wsgi()
    failures: list[str] = []
    counted: Counter[str] = Counter()

    with _in_test_transaction(app):
        # Authorization is ours to send: a valid key on every fuzzed request, never one
        # schemathesis made up (or dropped, in a negative case).
        config = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})
        schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 15, [op.label for op in operations]
        app.requests = 0

        for operation in operations:
            registries = operation.path.startswith("/api/v1/registries")
            secret = operator_secret if registries else enterprise_secret
            for mode in _modes(operation):
                why = _fuzz(operation, mode, seeded, secret, counted)
                if why:
                    failures.append(f"{operation.label} [{mode.value}]: {why}")
            why = _fuzz_unauthenticated(operation, secret, counted)
            if why:
                failures.append(f"{operation.label} [no key]: {why}")

    server_errors = "\n\n".join(app.tracebacks.values())
    summary = f"{app.requests} requests, {len(failures)} failing (operation, mode):\n\n"
    assert not failures, summary + "\n\n".join(failures) + "\n\nServer errors:\n" + server_errors
    assert app.requests >= MIN_REQUESTS, (app.requests, counted)
    assert set(counted) == {op.label for op in operations}, "every operation was fuzzed"
