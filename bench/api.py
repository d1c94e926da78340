"""The integration API over HTTP: bulk blocks and decisions through gunicorn, beside the web
form and one device at a time.

    python bench/api.py [--quick] [--profile] [--max-wait S]

The API is served by ``gunicorn enterprise_portal.wsgi --workers 2`` (sync workers, as
deployed) on the bench database, with ``API_RATE_LIMIT=0``; the client is this process,
one request at a time on a urllib3 pool of one connection (gunicorn's sync workers close
each connection after the response, so urllib3 reconnects: loopback, ~0.1 ms). One
enterprise (region US, calling window open all day, no holidays, empty ledger), one
account, an enterprise admin and an enterprise key with every enterprise scope. Devices
are valid US numbers in E.164, distinct per request unless said otherwise.

* *Bulk*: ``POST /api/v1/devices/bulk`` with 10,000 blocks, 3 times (``--quick``: once),
  each on new devices; devices/s end to end (JSON encoded, sent, saved, answered, parsed).
  Baselines in the same run: the Device Blocking CSV import page (one multipart POST of a
  10,000-line file with a logged-in session, until its redirect), and single
  ``PUT /api/v1/devices/{device}`` blocks on 500 devices (``--quick``: 200), as a
  per-device rate and the time 10,000 would take.
* *Decision batch*: ``POST /api/v1/decisions`` (collections, voice) with 1,000 devices,
  half of them blocked, 40 requests (``--quick``: 10); p50/p95. Baseline: the devices of
  the first 3 batches (``--quick``: 1) as single-device requests, timed per 1,000.
* *Single decision*: those single-device requests, 3,000 (``--quick``: 1,000); p50/p95/p99.
  Run last (the longest phase), so the batches start on a machine it has not loaded.

In-process figures on the same data, to show where the time goes: the policy gate alone
(``PolicyGate(...).decide``) for one device and for 1,000, ``parse_device`` on 10,000, and
``do_save_device_settings`` on 10,000 normalised blocks. gunicorn workers' CPU per request
comes from ``/proc``. ``--profile`` prints a cProfile of the views (Django test client,
in this process) to stderr.

Before each measured phase the 1-minute load average must fall below 1.0 (polled every
5 s, at most ``--max-wait`` s, 240 in all per run); the load at the start of each phase is
in the JSON. Targets (issue 12), 2 cores: a bulk block of 10,000 devices at 20,000
devices/s or more; single decision p99 at most 10 ms; 1,000-device batch p95 at most
100 ms.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import (
    children,
    cpu_model,
    cpu_seconds,
    django_on_bench_db,
    emit,
    machine,
    percentile,
    phone,
    phones,
    start_gunicorn,
    stop,
    summary_ms,
)

ALL_ENTERPRISE = ["trace:read", "devices:write", "blacklists:write", "decisions:read"]
BULK = 10_000
BATCH = 1_000
LOAD_LIMIT = 1.0
WAIT_BUDGET = 240.0  # seconds of waiting for a quiet machine, in all


# --- the machine --------------------------------------------------------------------------------


class Quiet:
    """Waits, before a phase, for the 1-minute load average to fall below LOAD_LIMIT."""

    def __init__(self, max_wait: float):
        self.max_wait = max_wait
        self.budget = WAIT_BUDGET
        self.loads: dict[str, float] = {}

    def wait(self, phase: str) -> None:
        started = time.monotonic()
        limit = min(self.max_wait, self.budget)
        while os.getloadavg()[0] >= LOAD_LIMIT and time.monotonic() - started < limit:
            time.sleep(5)
        waited = time.monotonic() - started
        self.budget = max(0.0, self.budget - waited)
        self.loads[f"{phase}_load_1m"] = round(os.getloadavg()[0], 2)
        self.loads[f"{phase}_waited_s"] = round(waited)
        print(f"[bench] {phase}: load {os.getloadavg()[0]:.2f} after {waited:.0f} s", flush=True)


# --- gunicorn and the client --------------------------------------------------------------------


def start_api_server(run_dir: Path) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "API_RATE_LIMIT": "0", "ALLOWED_HOSTS": "127.0.0.1", "DEBUG": "0"}
    return start_gunicorn(run_dir, workers=2, env=env, args=["--timeout", "120"])


class Api:
    """One keep-alive connection (when the server keeps it) to the API, timing each call."""

    def __init__(self, port: int, secret: str):
        import urllib3

        self.pool = urllib3.HTTPConnectionPool(
            "127.0.0.1", port, maxsize=1, block=True, retries=False, timeout=120
        )
        self.auth = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        self.closed = 0  # answers with "Connection: close" (gunicorn's sync workers)

    def call(self, method: str, path: str, body: object) -> tuple[float, int, object]:
        started = time.perf_counter()
        response = self.pool.request(
            method, path, body=json.dumps(body).encode(), headers=self.auth
        )
        data = json.loads(response.data)
        self.closed += response.headers.get("Connection", "").lower() == "close"
        return time.perf_counter() - started, response.status, data


def check(status: int, data: object, what: str) -> None:
    if status != 200:
        raise RuntimeError(f"{what}: HTTP {status}: {str(data)[:500]}")


# --- set-up -------------------------------------------------------------------------------------


def set_up():
    from accounts.actions import do_add_membership, do_create_account, do_create_enterprise
    from accounts.api_keys import do_create_api_key
    from accounts.models import Role, User
    from devices.models import CallingWindow

    enterprise = do_create_enterprise("Bench API", default_region="US")
    CallingWindow.objects.create(
        enterprise=enterprise, region="", start=dt.time(0), end=dt.time(23, 59, 59, 999999)
    )
    account = do_create_account(enterprise, "Bench API", slug="bench-api")
    admin = User.objects.create_user(
        "bench.admin@api.test", "bench-only-password", full_name="Bench Admin"
    )
    do_add_membership(admin, enterprise, Role.ENTERPRISE_ADMIN)
    _key, secret = do_create_api_key(
        name="Bench", scopes=ALL_ENTERPRISE, created_by=admin, enterprise=enterprise
    )
    return enterprise, account, admin, secret


def session_cookie(user) -> tuple[str, str]:
    """The Cookie header of a logged-in browser (session and CSRF cookie), and the token."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    csrf = "b" * 32  # a CSRF secret of our own: the form posts it back as X-CSRFToken
    return f"sessionid={client.cookies['sessionid'].value}; csrftoken={csrf}", csrf


# --- phases -------------------------------------------------------------------------------------


def bulk_phase(api: Api, pool_pids, reps: int) -> dict:
    times, cpu = [], 0.0
    warm = {"action": "block", "items": [{"device": d} for d in phones(5_000_000, 200)]}
    api.call("POST", "/api/v1/devices/bulk", warm)
    for rep in range(reps):
        devices = phones(rep * BULK, BULK)
        body = {"action": "block", "items": [{"device": d, "reason": "bench"} for d in devices]}
        before = cpu_seconds(pool_pids)
        elapsed, status, data = api.call("POST", "/api/v1/devices/bulk", body)
        cpu += cpu_seconds(pool_pids) - before
        check(status, data, "bulk")
        if data["saved"] != BULK or data["errors"]:
            raise RuntimeError(f"bulk saved {data['saved']}, errors {data['errors']}")
        times.append(elapsed)
    rates = [BULK / t for t in times]
    return {
        "bulk_requests": reps,
        "bulk_seconds": [round(t, 3) for t in times],
        "bulk_devices_per_s": round(statistics.median(rates)),
        "bulk_devices_per_s_best": round(max(rates)),
        "bulk_gunicorn_cpu_s_per_request": round(cpu / reps, 3),
    }


def put_phase(api: Api, count: int) -> dict:
    api.call("PUT", f"/api/v1/devices/{phone(5_100_000)}", {"action": "block"})
    times = []
    started = time.perf_counter()
    for device in phones(1_000_000, count):
        elapsed, status, data = api.call(
            "PUT", f"/api/v1/devices/{device}", {"action": "block", "reason": "bench"}
        )
        check(status, data, "PUT")
        times.append(elapsed)
    wall = time.perf_counter() - started
    return {
        "put_devices": count,
        "put_devices_per_s": round(count / wall, 1),
        "put_10000_extrapolated_s": round(wall / count * BULK, 1),
        **summary_ms(times, "put"),
    }


def csv_page_phase(api: Api, enterprise, user) -> dict:
    from devices.models import DeviceSetting

    cookie, csrf = session_cookie(user)
    path = f"/enterprises/{enterprise.pk}/devices/blocking/import/"
    devices = phones(2_000_000, BULK)
    data = ("device,action,reason\n" + "".join(f"{d},block,bench\n" for d in devices)).encode()
    started = time.perf_counter()
    response = api.pool.request(
        "POST", path, fields={"file": ("blocks.csv", data, "text/csv")},
        headers={"Cookie": cookie, "X-CSRFToken": csrf}, redirect=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if response.status != 302:
        raise RuntimeError(f"CSV import: HTTP {response.status}: {response.data[:300]!r}")
    saved = DeviceSetting.objects.filter(
        enterprise=enterprise, device_key__in=devices, source=DeviceSetting.Source.IMPORT
    ).count()
    if saved != BULK:
        raise RuntimeError(f"CSV import saved {saved} of {BULK}")
    return {
        "csv_page_devices": BULK,
        "csv_page_bytes": len(data),
        "csv_page_seconds": round(elapsed, 3),
        "csv_page_devices_per_s": round(BULK / elapsed),
    }


def decision_devices(batches: int) -> list[list[str]]:
    """1,000 devices a batch: half blocked by the bulk phase, half never seen."""
    out = []
    for b in range(batches):
        blocked = phones(b * 500, 500)
        unseen = phones(3_000_000 + b * 500, 500)
        out.append([d for pair in zip(blocked, unseen, strict=True) for d in pair])
    return out


def single_phase(api: Api, pool_pids, batches: list[list[str]]) -> dict:
    body = {"channel": "voice", "purpose": "collections", "account": "bench-api"}
    for device in phones(5_200_000, 30):  # warm-up: both workers, connections, caches
        api.call("POST", "/api/v1/decisions", {**body, "devices": [device]})
    times, per_batch, suppressed = [], [], 0
    before = cpu_seconds(pool_pids)
    for devices in batches:
        started = time.perf_counter()
        for device in devices:
            elapsed, status, data = api.call(
                "POST", "/api/v1/decisions", {**body, "devices": [device]}
            )
            check(status, data, "single decision")
            suppressed += data["results"][0]["decision"] == "suppress"
            times.append(elapsed)
        per_batch.append(time.perf_counter() - started)
    cpu = cpu_seconds(pool_pids) - before
    ms = [t * 1000 for t in times]
    return {
        "single_requests": len(times),
        "single_p50_ms": round(statistics.median(ms), 2),
        "single_p95_ms": round(percentile(ms, 95), 2),
        "single_p99_ms": round(percentile(ms, 99), 2),
        "single_max_ms": round(max(ms), 2),
        "single_suppressed": suppressed,
        "single_gunicorn_cpu_ms_per_request": round(1000 * cpu / len(times), 2),
        "baseline_1000_singles_s": [round(t, 2) for t in per_batch],
        "baseline_1000_singles_decisions_per_s": round(len(times) / sum(per_batch), 1),
    }


def batch_phase(api: Api, pool_pids, batches: list[list[str]]) -> dict:
    body = {"channel": "voice", "purpose": "collections", "account": "bench-api"}
    # Warm-up: enough that both workers have served batches (a worker's first costs ~300 ms:
    # a new PostgreSQL backend's catalog caches, the gate's statement prepared).
    for b in range(6):
        api.call("POST", "/api/v1/decisions", {**body, "devices": phones(5_300_000 + b * BATCH,
                                                                           BATCH)})  # fmt: skip
    times, suppressed = [], 0
    before = cpu_seconds(pool_pids)
    for devices in batches:
        elapsed, status, data = api.call("POST", "/api/v1/decisions", {**body, "devices": devices})
        check(status, data, "batch")
        suppressed += sum(r["decision"] == "suppress" for r in data["results"])
        times.append(elapsed)
    cpu = cpu_seconds(pool_pids) - before
    return {
        "batch_requests": len(times),
        **summary_ms(times, "batch"),
        "batch_decisions_per_s": round(BATCH * len(times) / sum(times)),
        "batch_suppressed_share": round(suppressed / (BATCH * len(times)), 3),
        "batch_gunicorn_cpu_ms_per_request": round(1000 * cpu / len(times), 1),
    }


def in_process(enterprise, account, batches: list[list[str]]) -> dict:
    """The layers under HTTP, in this process: the gate, parsing, the bulk write."""
    from django.utils import timezone
    from django_tenants.utils import tenant_context

    from devices.actions import SettingInput, do_save_device_settings
    from devices.keys import parse_device
    from devices.models import DeviceSetting
    from devices.policy import DialRequest, PolicyGate

    def request(key: str) -> DialRequest:
        return DialRequest(account_id=account.pk, campaign_id=0, sub_campaign_id=0,
                           purpose="collections", channel="voice", device_key=key)  # fmt: skip

    out = {}
    with tenant_context(account):
        singles = []
        for device in batches[0][:500]:
            started = time.perf_counter()
            PolicyGate(enterprise, timezone.now()).decide([request(device)])
            singles.append(time.perf_counter() - started)
        ms = [t * 1000 for t in singles]
        out["gate_single_p50_ms"] = round(statistics.median(ms), 2)
        out["gate_single_p99_ms"] = round(percentile(ms, 99), 2)
        whole = []
        for devices in batches[:5]:
            started = time.perf_counter()
            PolicyGate(enterprise, timezone.now()).decide([request(d) for d in devices])
            whole.append(time.perf_counter() - started)
        out["gate_batch_1000_p50_ms"] = round(1000 * statistics.median(whole), 1)
    devices = phones(4_000_000, BULK)
    started = time.perf_counter()
    keys = [parse_device(d, "US").key for d in devices]
    out["parse_10000_ms"] = round(1000 * (time.perf_counter() - started), 1)
    started = time.perf_counter()
    do_save_device_settings(
        enterprise, [SettingInput(k, "block", "bench") for k in keys],
        source=DeviceSetting.Source.API,
    )  # fmt: skip
    out["save_settings_10000_ms"] = round(1000 * (time.perf_counter() - started), 1)
    return out


def statements(secret: str, show: bool) -> dict:
    """SQL statements per request of each kind (Django's test client, in this process)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_HOST="127.0.0.1")
    body = {"channel": "voice", "purpose": "collections", "account": "bench-api"}
    cases = {
        "single_decision": ("/api/v1/decisions", {**body, "devices": [phone(6_300_000)]}),
        "batch_decision": ("/api/v1/decisions", {**body, "devices": phones(6_300_001, BATCH)}),
        "bulk": ("/api/v1/devices/bulk", {"action": "block", "items": [
            {"device": d} for d in phones(6_400_000, BULK)]}),
    }  # fmt: skip
    out = {}
    for name, (path, payload) in cases.items():
        with CaptureQueriesContext(connection) as seen:
            response = client.post(path, json.dumps(payload), content_type="application/json")
        assert response.status_code == 200, response.content[:300]
        out[f"{name}_sql_statements"] = len(seen.captured_queries)
        if show:
            print(f"\n===== SQL: {name} =====", file=sys.stderr)
            for query in seen.captured_queries:
                print(f"{query['time']} {query['sql'][:160]}", file=sys.stderr)
    return out


def profile(enterprise, secret: str) -> None:
    """cProfile of the three views through Django's test client, in this process."""
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_HOST="127.0.0.1")
    body = {"channel": "voice", "purpose": "collections", "account": "bench-api"}

    def post(path, payload):
        response = client.post(path, json.dumps(payload), content_type="application/json")
        assert response.status_code == 200, response.content[:300]

    cases = {
        "single decision x300": lambda: [
            post("/api/v1/decisions", {**body, "devices": [d]}) for d in phones(6_000_000, 300)
        ],
        "batch of 1,000 x5": lambda: [
            post("/api/v1/decisions", {**body, "devices": phones(6_100_000 + b * BATCH, BATCH)})
            for b in range(5)
        ],
        "bulk of 10,000 x1": lambda: post(
            "/api/v1/devices/bulk",
            {"action": "block", "items": [{"device": d} for d in phones(6_200_000, BULK)]},
        ),
    }
    for name, run in cases.items():
        profiler = cProfile.Profile()
        profiler.enable()
        run()
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(35)
        print(f"\n===== profile: {name} =====\n{text.getvalue()}", file=sys.stderr)


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile the views (stderr)")
    parser.add_argument("--max-wait", type=float, default=300.0,
                        help="seconds to wait, per phase, for load below 1.0")  # fmt: skip
    args = parser.parse_args()
    reps = 1 if args.quick else 3
    puts = 200 if args.quick else 500
    single_batches = 1 if args.quick else 3
    batch_count = 10 if args.quick else 40
    quiet = Quiet(args.max_wait)
    started_at = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    run_dir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    result: dict = {"bench": "api", "quick": args.quick,
                    "load_1m_at_start": round(os.getloadavg()[0], 2)}  # fmt: skip
    with django_on_bench_db():
        enterprise, account, admin, secret = set_up()
        proc, port = start_api_server(run_dir)
        try:
            api = Api(port, secret)
            workers = children(proc.pid)
            quiet.wait("bulk")
            result.update(bulk_phase(api, workers, reps))
            result.update(put_phase(api, puts))
            result.update(csv_page_phase(api, enterprise, admin))
            batches = decision_devices(max(single_batches, batch_count))
            quiet.wait("batch")
            result.update(batch_phase(api, workers, batches[:batch_count]))
            quiet.wait("single")
            result.update(single_phase(api, workers, batches[:single_batches]))
            quiet.wait("in_process")
            result.update(in_process(enterprise, account, batches))
            result.update(statements(secret, args.profile))
            result["answers_closing_the_connection"] = api.closed
            if args.profile:
                profile(enterprise, secret)
        finally:
            stop(proc)
    targets = {
        "target_bulk_devices_per_s": 20_000,
        "target_single_p99_ms": 10,
        "target_batch_p95_ms": 100,
    }
    meets = {
        "meets_bulk": result["bulk_devices_per_s"] >= targets["target_bulk_devices_per_s"],
        "meets_single": result["single_p99_ms"] <= targets["target_single_p99_ms"],
        "meets_batch": result["batch_p95_ms"] <= targets["target_batch_p95_ms"],
    }
    emit(
        {
            **result,
            **targets,
            **meets,
            **quiet.loads,
            "load_1m_at_end": round(os.getloadavg()[0], 2),
            "started_at": started_at.isoformat(timespec="seconds"),
            "run_seconds": round(time.monotonic() - clock),
            "cpu_model": cpu_model(),
            **machine(),
        }
    )


if __name__ == "__main__":
    main()
