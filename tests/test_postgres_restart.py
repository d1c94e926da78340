"""PostgreSQL stopped for 30 s in the middle of a 2,000-device sub-campaign (issue 13).

The test runs a PostgreSQL of its own (the shared server is never stopped), and a real
Celery worker, beat and gunicorn on it, with the simulator gateway. Once half the devices
have an outcome, PostgreSQL stops (fast shutdown: open transactions are rolled back and
clients cut off), stays down 30 s, and starts again on the same data directory and port.

- While it is down, pages answer 503 with a page that says to come back (the API: a 503
  problem), with Retry-After; never a 500.
- Afterwards every device has exactly one recorded attempt or a recorded reason, none was
  dialled twice (the gateway's physical-dial counter), and dispatch resumed by itself:
  nothing in the test dispatches, re-queues or restarts a process.

The timeline is printed and written to test-artifacts/pg-restart/timeline.json
(bench/README.md keeps one). PG_RESTART_DOWN_SECONDS shortens the outage while developing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import time
import uuid
from contextlib import ExitStack

import psycopg
import pytest
import redis
import urllib3
from django.db import connection
from django.test import Client
from psycopg import sql

from enterprise_portal.launcher import embedded_redis, free_port
from tests.conftest import ARTIFACTS
from tests.helpers import wait_for
from tests.own_stack import PASSWORD, OwnPostgres, run_seed, start_process, stop_processes

DEVICES = 2000
PACING_PER_MINUTE = 2400  # about 50 s of dispatch: the stop lands in the middle of it
DOWN_SECONDS = float(os.environ.get("PG_RESTART_DOWN_SECONDS", "30"))
FINISH_WITHIN_SECONDS = 180  # after the restart, with no help
FRIENDLY = "The portal is temporarily unavailable."
FRIENDLY_PT = "O portal está temporariamente indisponível."


class Visitor:
    """A browser's part of HTTP: cookies kept, redirects not followed."""

    def __init__(self, base: str):
        self.base, self.cookies = base, {}
        self.http = urllib3.PoolManager(retries=False, timeout=15)

    def request(self, method: str, path: str, **kwargs) -> urllib3.BaseHTTPResponse:
        headers = kwargs.pop("headers", {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = self.http.request(
            method, self.base + path, headers=headers, redirect=False, **kwargs
        )
        for cookie in response.headers.getlist("Set-Cookie"):
            name, _, value = cookie.split(";", 1)[0].partition("=")
            self.cookies[name.strip()] = value
        return response

    def sign_in(self, email: str) -> None:
        form = self.request("GET", "/login/").data.decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
        done = self.request(
            "POST", "/login/", encode_multipart=False,
            fields={"username": email, "password": PASSWORD, "csrfmiddlewaretoken": token},
        )  # fmt: skip
        assert done.status == 302, done.data.decode()[:2000]


class Timeline:
    def __init__(self):
        self.t0 = time.time()
        self.events: list[tuple[float, str]] = []

    def at(self, when: float, text: str) -> float:
        self.events.append((round(when - self.t0, 1), text))
        print(f"[pg-restart] t={when - self.t0:6.1f} s  {text}", flush=True)
        return when

    def now(self, text: str) -> float:
        return self.at(time.time(), text)


def _progress(url: str, seed: dict) -> dict[str, int] | None:
    """Dial states by status and recorded attempts; None while the database is down."""
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            states = conn.execute(
                sql.SQL(
                    "SELECT status, count(*) FROM {}.campaigns_dialstate"
                    " WHERE sub_campaign_id = %s GROUP BY status"
                ).format(sql.Identifier(seed["schema"])),
                [seed["sub_campaign_id"]],
            ).fetchall()
            (recorded,) = conn.execute(
                "SELECT count(*) FROM devices_attempt WHERE account_id = %s"
                " AND sub_campaign_id = %s AND disposition NOT IN ('PENDING', 'SUPPRESSED')",
                [seed["account_id"], seed["sub_campaign_id"]],
            ).fetchone()
    except psycopg.OperationalError:
        return None
    return {**dict(states), "recorded": recorded}


def _settled(progress: dict | None) -> bool:
    return progress is not None and not progress.get("pending") and not progress.get("dialing")


def _worker_database_errors(log_text: str) -> list[float]:
    """When the worker logged a database error (its log's timestamps, as epoch seconds)."""
    times = []
    for line in log_text.splitlines():
        stamp = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): ", line)
        if stamp and re.search(r"OperationalError|InterfaceError", line):
            times.append(dt.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return times


def _assert_unavailable_page(status: int, headers, content: bytes, friendly=FRIENDLY) -> None:
    body = content.decode()
    assert status == 503, (status, body[:2000])
    assert headers["Retry-After"] == "30"
    assert headers["Content-Type"].startswith("text/html")
    assert friendly in body and 'data-testid="unavailable"' in body
    assert "Traceback" not in body and "Something went wrong" not in body
    assert "<script" not in body and "style=" not in body  # a strict CSP allows neither


@pytest.fixture
def database_unreachable(django_db_blocker):
    """Requests in this process meet what they meet while PostgreSQL restarts: the
    connection points at a port nothing listens on (connection refused)."""
    with django_db_blocker.unblock():
        connection.close()
        saved = {name: connection.settings_dict[name] for name in ("HOST", "PORT")}
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(free_port()))
        try:
            yield
        finally:
            connection.close()
            connection.settings_dict.update(saved)


@pytest.mark.parametrize("path", ["/login/", "/a/acme-one/", "/enterprises/1/devices/"])
def test_pages_answer_503_while_the_database_is_unreachable(database_unreachable, path):
    response = Client(raise_request_exception=False).get(path, HTTP_ACCEPT_LANGUAGE="pt-br")
    _assert_unavailable_page(
        response.status_code, response.headers, response.content, friendly=FRIENDLY_PT
    )
    assert '<html lang="pt-br">' in response.content.decode()


def test_api_answers_a_503_problem_while_the_database_is_unreachable(database_unreachable):
    response = Client(raise_request_exception=False).get(
        "/api/v1/devices", HTTP_AUTHORIZATION="Bearer cpk_0123456789ab_secret"
    )
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["Retry-After"] == "30"
    assert response.json()["type"].endswith("/problems/unavailable")


@pytest.mark.worker
def test_postgres_restart_mid_dispatch_loses_nothing_dials_nothing_twice_and_resumes(tmp_path):
    set_up_from = time.time()
    logs = ARTIFACTS / "pg-restart"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    with ExitStack() as stack:
        pg = OwnPostgres(free_port())
        stack.callback(pg.close)
        pg.create_database("portal")
        redis_url = stack.enter_context(embedded_redis(tmp_path / "redis", persistent=False))
        env = {
            **os.environ,
            "DATABASE_URL": pg.url("portal"),
            "REDIS_URL": redis_url,
            "CELERY_QUEUE": f"pg-restart-{uuid.uuid4().hex[:6]}",
            "DISPATCH_INTERVAL_SECONDS": "1",
            # Each call takes 20 ms: chunks are mid-delivery when PostgreSQL stops.
            "SIMULATOR_CALL_DELAY_MS": "20",
            "PORTAL_VAR_DIR": str(tmp_path / "var"),
        }
        seed = run_seed(env, {"devices": DEVICES, "pacing": PACING_PER_MINUTE})
        url = pg.url("portal")
        procs: list = []
        stack.callback(stop_processes, procs)
        web_port = free_port()
        procs.append(start_process("web", env, logs, port=web_port))
        visitor = Visitor(f"http://127.0.0.1:{web_port}")
        assert wait_for(lambda: _get_status(visitor, "/healthz") == 200, 60), "gunicorn is up"
        visitor.sign_in(seed["admin"])
        page = f"/a/{seed['slug']}/sub-campaigns/{seed['sub_campaign_id']}/"
        api = {"headers": {"Authorization": f"Bearer {seed['api_key']}"}}
        assert visitor.request("GET", page).status == 200
        assert visitor.request("GET", "/api/v1/devices", **api).status == 200

        timeline = Timeline()
        timeline.now(f"worker and beat started; {DEVICES} devices, {PACING_PER_MINUTE}/min")
        procs += [start_process("worker", env, logs), start_process("beat", env, logs)]
        assert wait_for(lambda: (_progress(url, seed) or {}).get("recorded"), 60), "dialling"
        timeline.now("first attempt recorded")
        before = wait_for(
            lambda: (p := _progress(url, seed)) and p["recorded"] >= DEVICES // 2 and p, 120
        )
        assert before, f"half the devices were dialled: {_progress(url, seed)}"
        stopped = timeline.now(f"PostgreSQL stopping (fast); {before['recorded']} recorded")
        pg.stop()
        timeline.now("PostgreSQL stopped")
        assert before["recorded"] < DEVICES, "the stop landed in the middle of dispatch"

        # Pages while it is down: what a signed-in user and a visitor get.
        time.sleep(2)
        for path in ("/login/", page):
            response = visitor.request("GET", path)
            _assert_unavailable_page(response.status, response.headers, response.data)
        problem = visitor.request("GET", "/api/v1/devices", **api)
        assert problem.status == 503
        assert problem.headers["Content-Type"] == "application/problem+json"
        assert problem.headers["Retry-After"] == "30"
        assert json.loads(problem.data)["type"].endswith("/problems/unavailable")
        timeline.now("pages answered 503 (friendly page; the API a problem)")

        time.sleep(max(0.0, stopped + DOWN_SECONDS - time.time()))
        pg.start()
        restarted = timeline.now(f"PostgreSQL started again after {time.time() - stopped:.0f} s")
        first = wait_for(lambda: _progress(url, seed), 30)
        assert first, "the database answers again"
        timeline.now(f"first read after the restart: {first['recorded']} recorded")
        resumed = wait_for(
            lambda: (p := _progress(url, seed)) and p["recorded"] > first["recorded"] and p, 60
        )
        assert resumed, "dispatch resumed by itself"
        resumed_at = timeline.now(f"dispatch resumed: {resumed['recorded']} recorded")
        final = wait_for(lambda: _settled(p := _progress(url, seed)) and p, FINISH_WITHIN_SECONDS)
        assert final, (
            f"every device settled within {FINISH_WITHIN_SECONDS} s: {_progress(url, seed)}"
        )
        finished = timeline.now(f"every device settled: {final}")
        assert visitor.request("GET", page).status == 200, "the session outlived the outage"

        worker_log = (logs / "worker.log").read_text()
        errors = _worker_database_errors(worker_log)
        in_outage = [t for t in errors if stopped - 1 <= t <= restarted + 5]
        if errors:
            timeline.at(errors[0], f"worker: first database error ({len(errors)} in all)")
            timeline.at(errors[-1], "worker: last database error")
        assert in_outage, "the worker met the outage"
        report = _check_every_device(url, seed, redis_url)
        summary = {
            "devices": DEVICES,
            "down_seconds": round(restarted - stopped, 1),
            "recorded_at_stop": before["recorded"],
            "resumed_after_restart_s": round(resumed_at - restarted, 1),
            "finished_after_restart_s": round(finished - restarted, 1),
            "total_s": round(finished - timeline.t0, 1),
            "set_up_s": round(timeline.t0 - set_up_from, 1),
            "worker_database_errors": len(errors),
            "attempt_chunks_retried": len(
                re.findall(r"perform_attempts\[[^]]+\] retry:", worker_log)
            ),
            **report,
        }
        timeline.events.sort()
        (logs / "timeline.json").write_text(
            json.dumps({"events": timeline.events, "summary": summary}, indent=1)
        )
        print(json.dumps(summary), flush=True)


def _get_status(visitor: Visitor, path: str) -> int | None:
    try:
        return visitor.request("GET", path).status
    except urllib3.exceptions.HTTPError:
        return None


def _check_every_device(url: str, seed: dict, redis_url: str) -> dict:
    """Each dial state: exactly one attempt with its outcome in the ledger, or (none
    dialled) a recorded reason: a suppression row naming its rule, or the rule or reason
    on the state. And each attempt dialled once, by the gateway's own count."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            sql.SQL(
                """
                SELECT d.id, d.status, d.last_rule, d.last_reason,
                       count(a.id) FILTER (WHERE a.disposition NOT IN ('PENDING', 'SUPPRESSED')),
                       count(a.id) FILTER (WHERE a.disposition = 'PENDING'),
                       count(a.id) FILTER (WHERE a.disposition = 'SUPPRESSED'),
                       array_remove(array_agg(a.id) FILTER (WHERE a.disposition <> 'SUPPRESSED'),
                                    NULL)
                FROM {}.campaigns_dialstate d
                LEFT JOIN devices_attempt a ON a.dial_state_id = d.id AND a.account_id = %s
                     AND a.sub_campaign_id = d.sub_campaign_id AND a.direction = 'outbound'
                WHERE d.sub_campaign_id = %s
                GROUP BY d.id
                """
            ).format(sql.Identifier(seed["schema"])),
            [seed["account_id"], seed["sub_campaign_id"]],
        ).fetchall()
        (installation,) = conn.execute("SELECT key FROM devices_installation").fetchone()
    assert len(rows) == DEVICES
    wrong = []
    attempt_ids = []
    for state_id, status, rule, reason, dialled, pending, suppressed, ids in rows:
        attempt_ids += ids
        one_outcome = status == "done" and dialled == 1 and not pending and not suppressed
        reason_only = not dialled and not pending and (suppressed == 1 or rule or reason)
        if not (one_outcome or reason_only):
            wrong.append((state_id, status, dialled, pending, suppressed, rule, reason))
    assert not wrong, f"{len(wrong)} devices without one outcome or a reason, e.g. {wrong[:5]}"
    client = redis.Redis.from_url(redis_url)
    keys = [f"dialer:{installation.hex[:12]}:physical:{pk}" for pk in attempt_ids]
    dials = [int(v or 0) for v in client.mget(keys)] if keys else []
    twice = [pk for pk, n in zip(attempt_ids, dials, strict=True) if n != 1]
    assert not twice, f"attempts not dialled exactly once: {twice[:10]}"
    return {
        "dialled_once": dials.count(1),
        "with_reason_only": len(rows) - len(attempt_ids),
        "by_status": {s: sum(1 for r in rows if r[1] == s) for s in {r[1] for r in rows}},
    }
