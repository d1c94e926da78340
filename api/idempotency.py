"""``Idempotency-Key`` on writes: the first request with a key runs; a retry, or a copy
sent at the same moment by another process, gets the first answer and changes nothing.

The key is claimed by inserting its row (a unique constraint decides who runs) before the
write; a copy waits for the answer. A write that failed with an unexpected error gives
its key back, so it can be retried; a refused one (4xx) keeps its answer like a success.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable

from django.db import IntegrityError, transaction
from django.http import JsonResponse
from django.utils import timezone

from accounts.models import ApiKey
from api.models import IdempotentRequest
from api.problems import Problem, problem_response

WAIT_SECONDS = 30  # a copy waits this long for the first request's answer
STALE_AFTER = dt.timedelta(minutes=15)  # a claim this old was left by a dead process
KEEP = dt.timedelta(days=1)  # answers are kept this long (docs/api.md)


def _fingerprint(request) -> str:
    digest = hashlib.sha256()
    for part in (request.method, request.path, request.body):
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def once(request, key: ApiKey, write: Callable[[], tuple[int, dict]]):
    """Runs ``write`` (which returns a status and a JSON body) once per Idempotency-Key."""
    name = request.headers.get("Idempotency-Key", "")
    if not name:
        status, body = write()
        return JsonResponse(body, status=status)
    if len(name) > 255 or not name.isascii() or not name.isprintable():
        raise Problem(
            400,
            "bad-idempotency-key",
            "Idempotency-Key must be printable ASCII, 255 characters at most.",
        )
    fingerprint = _fingerprint(request)
    row = _claim(key, name, fingerprint)
    if row is not None:
        return _replay(request, row, fingerprint)
    try:
        status, body = write()
    except Problem as problem:
        response = problem_response(request, problem.status, problem.kind, problem.detail,
                                    title=problem.title, headers=problem.headers,
                                    **problem.extra)  # fmt: skip
        if problem.status < 500:
            _finish(key, name, problem.status, {"problem": response.content.decode()})
        else:
            _release(key, name)
        return response
    except BaseException:
        _release(key, name)
        raise
    _finish(key, name, status, body)
    return JsonResponse(body, status=status)


def _claim(key: ApiKey, name: str, fingerprint: str) -> IdempotentRequest | None:
    """None when this request claimed the key; else the row of the one that did."""
    now = timezone.now()
    IdempotentRequest.objects.filter(created_at__lt=now - KEEP).delete()
    try:
        with transaction.atomic(durable=True):
            IdempotentRequest.objects.create(api_key=key, key=name, fingerprint=fingerprint)
        return None
    except IntegrityError:
        pass
    with transaction.atomic(durable=True):
        row = IdempotentRequest.objects.select_for_update().get(api_key=key, key=name)
        if row.status is None and now - row.created_at > STALE_AFTER:
            row.created_at, row.fingerprint = now, fingerprint  # ours now
            row.save(update_fields=["created_at", "fingerprint"])
            return None
    return row


def _replay(request, row: IdempotentRequest, fingerprint: str):
    if row.fingerprint != fingerprint:
        raise Problem(422, "idempotency-key-reused",
                      "This Idempotency-Key was used for a different request.")  # fmt: skip
    deadline = time.monotonic() + WAIT_SECONDS
    while row.status is None and time.monotonic() < deadline:
        time.sleep(0.05)
        row.refresh_from_db()
    if row.status is None:
        raise Problem(409, "in-progress",
                      "The first request with this Idempotency-Key is still running; retry.",
                      headers={"Retry-After": "5"})  # fmt: skip
    if "problem" in (row.body or {}):
        response = JsonResponse({}, status=row.status, content_type="application/problem+json")
        response.content = row.body["problem"].encode()
    else:
        response = JsonResponse(row.body, status=row.status)
    response["Idempotent-Replayed"] = "true"
    return response


def _finish(key: ApiKey, name: str, status: int, body: dict) -> None:
    IdempotentRequest.objects.filter(api_key=key, key=name).update(
        status=status, body=body, finished_at=timezone.now()
    )


def _release(key: ApiKey, name: str) -> None:
    IdempotentRequest.objects.filter(api_key=key, key=name, status=None).delete()
