"""Load: the web tier under 50 browser-like users while the dialler runs, and with it stopped.

    python bench/load.py [--quick] [--seconds S] [--users N] [--think MIN,MAX]
                         [--pacing PER_MINUTE]

``gunicorn enterprise_portal.wsgi --workers 3`` (sync workers) on a free port of 127.0.0.1
serves the bench database. Locust (as a library, in its own process: bench/_load_users.py)
runs 50 users, started 2 a second, each signing in through the login form; once all have
signed in, the load is measured for 5 minutes (``--quick``: 1 minute). Users think 2 to 8 s
(``--think``) between steps: reading a page, typing a number. Locust only ever talks to
localhost: the users refuse any other host, for the first request and for every redirect.

* 30 enterprise admins: Contact Trace (open the page, search by phone or client ID: half
  phone hits, a fifth client-ID hits, the rest misses; then a third of the time the trace's
  CSV export from the results page, or sometimes the sub-campaign of a result, through the
  account sign-in), weight 5; Device Blocking (open the page, View Setting for a device:
  the preview, nothing saved), weight 3.
* 10 account admins and 10 agents: the live sub-campaign page of the running sub-campaign
  (open it, then 3 polls of its counts every ``data-poll-seconds`` and the page again when
  a new attempt shows, as its script does), weight 4; a campaign blacklist of 2,000 numbers
  and its CSV export, weight 1.

Data: one enterprise (US, calling window all day, no attempt cap), one account; the ledger
holds 100,000 attempts of the last 12 months on 25,000 devices (4 each) for a second
sub-campaign of the account; the dialled sub-campaign (voice, simulator gateway, pacing
``--pacing`` attempts a minute, default 6,000) has enough contacts for the whole phase, the
first 25,000 of them the devices of that history.

Phases, same run: *dialler*, with a real Celery worker (2 processes) and beat dialling the
sub-campaign; then *baseline*, the same users with the worker and beat stopped (the
sub-campaign stays active, so the pages show and compute the same things). The baseline
runs second, on the ledger the dialler grew, so it is never the one with less data.

Per phase: requests/s, p50/p95/p99 per endpoint (each HTTP request, redirect hops under the
path they reached) and per user action (a click and its redirects), errors (failed actions:
an HTTP error or timeout on the way, or a page without what it must show; exceptions in a
user), 5xx and worker timeouts in gunicorn's log, the dialler's attempts/s, and the CPU over
the window of gunicorn, Celery, the users (locust) and the rest of the machine (PostgreSQL,
Redis and any work that is not this bench's). Target: 0 errors.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import (
    ROOT,
    children,
    cpu_by_pid,
    cpu_model,
    django_on_bench_db,
    emit,
    machine,
    machine_busy,
    phone,
    start_celery,
    start_gunicorn,
    stop,
)

BENCH_DB = "portal_bench_load"
PASSWORD = "load-bench-password-7"  # noqa: S105 - throwaway users on a scratch database
HISTORY_DEVICES = 25_000
HISTORY_PER_DEVICE = 4
BLACKLIST_ENTRIES = 2_000
KEYS_PER_KIND = 2_000
MISSES_FROM = 5_000_000  # device numbers never written anywhere


def log(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- data ---------------------------------------------------------------------------------------

HISTORY_SQL = """
INSERT INTO public.devices_attempt (attempted_at, enterprise_id, account_id, account_name,
    campaign_id, campaign_name, sub_campaign_id, sub_campaign_name, attempt_number, client_id,
    device_key, channel, direction, disposition, completed_at, call_seconds, node)
SELECT at, %(enterprise)s, %(account)s, %(account_name)s, %(campaign)s, %(campaign_name)s,
    %(sub)s, %(sub_name)s, 1 + g %% %(per_device)s, 'C' || (g / %(per_device)s), key, 'voice',
    'outbound', disposition, at + make_interval(secs => secs + 5),
    CASE WHEN disposition = 'ANSWERED' THEN secs ELSE 0 END, 'dialer-node-0' || (1 + g %% 3)
FROM (
    SELECT g, keys.key, now() - interval '360 days' * random() AS at,
        (10 + floor(random() * 290))::int AS secs,
        (ARRAY['ANSWERED', 'ANSWERED', 'NO_ANSWER', 'NO_ANSWER', 'BUSY', 'VOICEMAIL',
               'VOICEMAIL', 'FAILED'])[1 + floor(random() * 8)::int] AS disposition
    FROM generate_series(0, %(rows)s - 1) AS g
    JOIN unnest(%(keys)s::text[]) WITH ORDINALITY AS keys(key, n) ON keys.n = 1 + g / %(per_device)s
) t
"""


def set_up(contacts: int, pacing: int, users: int, enterprise_admins: int) -> dict:
    """The enterprise, its account, users, ledger history, the dialled sub-campaign (not
    started) and a blacklist; returns what the users need to know."""
    from django.db import connection
    from django_tenants.utils import tenant_context

    from accounts.actions import do_add_membership, do_create_account, do_create_enterprise
    from accounts.models import Role, User
    from campaigns.actions import do_create_campaign, do_save_sub_campaign
    from campaigns.blacklists import do_add_entries, do_create_blacklist
    from campaigns.models import SubCampaign
    from contacts.models import Contact, ContactList
    from devices.ledger import ensure_partitions
    from devices.models import CallingWindow

    enterprise = do_create_enterprise("Bench Load", default_region="US")
    enterprise.attempt_cap = 0  # every contact once; caps are the policy bench's
    enterprise.save()
    CallingWindow.objects.create(
        enterprise=enterprise, region="", start=dt.time(0), end=dt.time(23, 59, 59, 999999)
    )
    account = do_create_account(enterprise, "Bench Load", slug="bench-load")
    emails: dict[str, list[str]] = {"EnterpriseAdmin": [], "AccountUser": []}
    for n in range(users):
        if n < enterprise_admins:
            email = f"enterprise.admin{n}@load.test"
            user = User.objects.create_user(email, PASSWORD, full_name=f"Enterprise Admin {n}")
            do_add_membership(user, enterprise, Role.ENTERPRISE_ADMIN)
            emails["EnterpriseAdmin"].append(email)
        else:
            role = Role.ACCOUNT_ADMIN if n % 2 else Role.AGENT
            email = f"{role.replace('_', '.')}{n}@load.test"
            user = User.objects.create_user(email, PASSWORD, full_name=f"Account user {n}")
            do_add_membership(user, enterprise, role, account=account)
            emails["AccountUser"].append(email)

    with tenant_context(account):
        listing = ContactList.objects.create(name="Collections", status="ready")
        Contact.objects.bulk_create(
            [Contact(contact_list=listing, client_id=f"C{n}", merge_key=f"C{n}",
                     name=f"Person {n}", phones=[phone(n)]) for n in range(contacts)],
            batch_size=5000,
        )  # fmt: skip
        campaign = do_create_campaign(name="Collections")
        fields = {"campaign": campaign, "channel": "voice", "purpose": "collections",
                  "caller_id": "+17135550000", "max_attempts": 1}  # fmt: skip
        dialled = do_save_sub_campaign(
            SubCampaign(name="Voice", pacing_per_minute=pacing, **fields), lists=[listing]
        )
        history = do_save_sub_campaign(SubCampaign(name="Voice, last year", **fields))
        blacklist = do_create_blacklist(name="Do not call")
        do_add_entries(
            blacklist,
            [("phone", phone(MISSES_FROM * 2 + n), "") for n in range(BLACKLIST_ENTRIES)],
            source="import",
        )

    ensure_partitions()
    rows = HISTORY_DEVICES * HISTORY_PER_DEVICE
    with connection.cursor() as cursor:
        cursor.execute(
            HISTORY_SQL,
            {"enterprise": enterprise.pk, "account": account.pk, "account_name": account.name,
             "campaign": campaign.pk, "campaign_name": campaign.name, "sub": history.pk,
             "sub_name": history.name, "per_device": HISTORY_PER_DEVICE, "rows": rows,
             "keys": [phone(n) for n in range(HISTORY_DEVICES)]},
        )  # fmt: skip
        cursor.execute("VACUUM ANALYZE public.devices_attempt")

    hits = range(0, HISTORY_DEVICES, max(1, HISTORY_DEVICES // KEYS_PER_KIND))
    misses = range(MISSES_FROM, MISSES_FROM + KEYS_PER_KIND)
    prefix = account.url_prefix
    return {
        "account": account,
        "sub": dialled,
        "plan": {
            "enterprise_id": enterprise.pk,
            "emails": emails,
            "password": PASSWORD,
            "sub_campaign_path": f"{prefix}sub-campaigns/{dialled.pk}/",
            "blacklist_path": f"{prefix}blacklists/{blacklist.pk}/",
            "keys": {
                "phone_hit": [phone(n) for n in hits],
                "client_hit": [f"C{n}" for n in hits],
                "phone_miss": [phone(n) for n in misses],
                "client_miss": [f"Z{n}" for n in misses],
                # Devices the dialler is working through, and some it never will.
                "preview": [phone(n) for n in range(0, contacts, max(1, contacts // 1500))]
                + [phone(n) for n in misses[:500]],
            },
            "history_rows": rows,
        },
    }


# --- a phase ------------------------------------------------------------------------------------


def gunicorn_problems(run_dir: Path, offset: int) -> dict:
    text = (run_dir / "gunicorn.log").read_bytes()[offset:].decode(errors="replace")
    return {
        "worker_timeouts": text.count("WORKER TIMEOUT"),
        "server_errors_logged": text.count("Internal Server Error"),
        "tracebacks": text.count("Traceback"),
    }


def run_users(plan: dict, run_dir: Path, label: str, pids) -> dict:
    """The users, in their own process, for the plan's seconds; CPU measured over the
    measured window (the users print when it starts and ends)."""
    plan_file = run_dir / f"plan-{label}.json"
    out_file = run_dir / f"users-{label}.json"
    plan_file.write_text(json.dumps({**plan, "out": str(out_file)}))
    log_offset = (run_dir / "gunicorn.log").stat().st_size
    with open(run_dir / f"locust-{label}.log", "ab") as errors:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "_load_users.py"), str(plan_file)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=errors, text=True,
        )  # fmt: skip
    pids = {**pids, "users": lambda: [proc.pid]}
    marks: dict[str, dict] = {}
    limit = time.monotonic() + plan["seconds"] + plan["ramp_limit_s"] + plan["timeout_s"] + 60
    for line in proc.stdout:
        print(line.rstrip(), file=sys.stderr, flush=True)
        mark = {"[load] measuring": "start", "[load] window over": "end"}.get(line.strip())
        if mark:
            marks[mark] = {
                "cpu": {name: cpu_by_pid(find()) for name, find in pids.items()},
                "machine": machine_busy(),
                "load_1m": os.getloadavg()[0],
            }
        if time.monotonic() > limit:
            proc.kill()
            raise RuntimeError(f"{label}: the users did not finish; see {run_dir}")
    if proc.wait() != 0 or not out_file.exists():
        raise RuntimeError(f"{label}: the users failed; see {run_dir / f'locust-{label}.log'}")
    result = json.loads(out_file.read_text())
    if "start" in marks and "end" in marks:
        result.update(cpu_shares(marks["start"], marks["end"], result["window_s"]))
    result.update(gunicorn_problems(run_dir, log_offset))
    return result


def cpu_shares(start: dict, end: dict, window: float) -> dict:
    """Each component's CPU over the window, in % of one core (a process there at the end
    but not at the start counts whole: it started within the window), the machine's busy
    cores, and what the rest of the machine took: PostgreSQL (whose backends for Celery's
    tasks last one task each, too short to sample) and any work that is not this bench's."""
    out, ours = {}, 0.0
    for name, now in end["cpu"].items():
        used = sum(t - start["cpu"][name].get(pid, 0.0) for pid, t in now.items())
        out[f"{name}_cpu_pct_of_a_core"] = round(100 * used / window, 1)
        ours += used
    busy = end["machine"][0] - start["machine"][0]
    total = end["machine"][1] - start["machine"][1]
    cores = os.cpu_count() or 1
    out["machine_busy_cores"] = round(cores * busy / total, 2) if total else None
    out["rest_of_machine_cores"] = (
        round(max(0.0, cores * busy / total - ours / window), 2) if total else None
    )
    out["load_1m_at_start"] = round(start["load_1m"], 2)
    out["load_1m_at_end"] = round(end["load_1m"], 2)
    return out


def dialler_figures(account, sub, started_at: float, ended_at: float) -> dict:
    from django_tenants.utils import tenant_context

    from campaigns.models import DialState
    from devices.models import Attempt

    start = dt.datetime.fromtimestamp(started_at, dt.UTC)
    end = dt.datetime.fromtimestamp(ended_at, dt.UTC)
    in_window = Attempt.objects.filter(
        account_id=account.pk, sub_campaign_id=sub.pk, attempted_at__range=(start, end)
    ).count()
    with tenant_context(account):
        pending = DialState.objects.filter(sub_campaign=sub, status="pending").count()
    return {
        "dialler_attempts_in_window": in_window,
        "dialler_attempts_per_s": round(in_window / (ended_at - started_at), 1),
        "dialler_pending_at_end": pending,
        "dialler_kept_dialling": pending > 0,
    }


def dialler_phase(ctx: dict, plan: dict, run_dir: Path, env: dict, pids: dict) -> dict:
    from django_tenants.utils import tenant_context

    from campaigns.actions import do_activate_sub_campaign
    from devices.models import Attempt
    from enterprise_portal.celery import app

    app.control.purge()  # tasks another run left in this Redis database
    celery = [start_celery("worker", env, run_dir), start_celery("beat", env, run_dir)]
    pids = {**pids, "celery": lambda: [p for c in celery for p in [c.pid, *tree(c.pid)]]}
    try:
        time.sleep(4)  # worker and beat up
        with tenant_context(ctx["account"]):
            do_activate_sub_campaign(ctx["sub"])
        deadline = time.monotonic() + 60
        account, sub = ctx["account"], ctx["sub"]
        dialled = Attempt.objects.filter(account_id=account.pk, sub_campaign_id=sub.pk)
        while not dialled.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the dialler made no attempt in 60 s; logs in {run_dir}")
            time.sleep(0.5)
        log("dialler running; users start")
        result = run_users(plan, run_dir, "dialler", pids)
        # Before stopping: the stop itself makes the pool log its children's SIGTERM.
        worker_log = (run_dir / "worker.log").read_text(errors="replace")
        result["celery_errors_logged"] = worker_log.count("ERROR")
    finally:
        stop(*celery)
    result.update(dialler_figures(ctx["account"], ctx["sub"], result["started_at"],
                                  result["ended_at"]))  # fmt: skip
    return result


def tree(pid: int) -> list[int]:
    """Every descendant of the process."""
    found = children(pid)
    for child in list(found):
        found += tree(child)
    return found


def summary(phase: dict) -> dict:
    """The figures a reader compares: requests/s, errors, p50/p95/p99 per endpoint."""
    return {
        "requests_per_s": phase["requests_per_s"],
        "errors": phase["errors"],
        "http_failures": phase["http_failures"],
        "worker_timeouts": phase["worker_timeouts"],
        **{k: v for k, v in phase.items() if k.endswith(("_cpu_pct_of_a_core", "_cores"))},
        **{k: v for k, v in phase.items() if k.startswith("dialler_")},
        "p50_p95_p99_ms": {
            name: [e["p50_ms"], e["p95_ms"], e["p99_ms"]] for name, e in phase["endpoints"].items()
        },
    }


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1 minute a phase instead of 5")
    parser.add_argument("--seconds", type=int, default=None, help="measured seconds a phase")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--pacing", type=int, default=6_000, help="dialler attempts a minute")
    parser.add_argument("--think", default="2,8", help="seconds between a user's steps: MIN,MAX")
    args = parser.parse_args()
    seconds = args.seconds or (60 if args.quick else 300)
    think = [float(v) for v in args.think.split(",")]
    if len(think) != 2 or not 0 <= think[0] <= think[1]:
        parser.error("--think takes MIN,MAX seconds, MIN <= MAX")
    enterprise_admins = round(args.users * 0.6)
    # Contacts for the whole dialler phase (ramp and drain included) and a third more.
    contacts = max(HISTORY_DEVICES, round(args.pacing / 60 * (seconds + 90) * 4 / 3))
    run_dir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    os.environ.setdefault("MEDIA_ROOT", str(run_dir / "media"))
    began = time.monotonic()
    started_at = dt.datetime.now(dt.UTC)
    result: dict = {"bench": "load", "quick": args.quick, "seconds_a_phase": seconds,
                    "users": args.users, "think_s": think, "pacing_per_minute": args.pacing,
                    "contacts": contacts}  # fmt: skip
    with django_on_bench_db(BENCH_DB):
        log(f"setting up {contacts:,} contacts and the ledger's history")
        ctx = set_up(contacts, args.pacing, args.users, enterprise_admins)
        log("set up")
        result["history_attempts"] = ctx["plan"].pop("history_rows")
        # As deployed (DEBUG off), but plain http on loopback: cookies without Secure.
        env = {**os.environ, "ALLOWED_HOSTS": "127.0.0.1,localhost", "DEBUG": "0",
               "SECURE_COOKIES": "0", "LOG_LEVEL": "WARNING"}  # fmt: skip
        portal, port = start_gunicorn(run_dir, workers=3, env=env, args=["--timeout", "30"])
        pids = {"gunicorn": lambda: [portal.pid, *children(portal.pid)]}
        plan = {
            **ctx["plan"],
            "host": f"http://127.0.0.1:{port}",
            "users": args.users,
            "enterprise_admins": enterprise_admins,
            "spawn_rate": 2,
            "seconds": seconds,
            "ramp_limit_s": 120,
            "timeout_s": 30,
            "wait_s": think,
            "polls": 3,
            "export_share": 0.35,
            "sub_campaign_share": 0.15,
            "trace_mix": {
                "phone_hit": 50,
                "client_hit": 20,
                "phone_miss": 20,
                "client_miss": 10,
            },  # fmt: skip
        }
        try:
            log(f"gunicorn (3 workers) on 127.0.0.1:{port}; phase 1: dialler running")
            dialler = dialler_phase(ctx, plan, run_dir, env, pids)
            time.sleep(5)
            log("phase 2: baseline, dialler stopped")
            baseline = run_users(plan, run_dir, "baseline", pids)
        finally:
            stop(portal)
            from devices.models import ActiveSubCampaign
            from enterprise_portal.celery import app

            ActiveSubCampaign.objects.filter(account=ctx["account"]).delete()
            app.control.purge()  # attempts the stopped worker left queued
    emit(
        {
            **result,
            "dialler": summary(dialler),
            "baseline": summary(baseline),
            "meets_zero_errors": all(
                p["errors"] == 0 and p["http_failures"] == 0 and p["users_not_signed_in"] == 0
                and p["worker_timeouts"] == 0 and p["server_errors_logged"] == 0
                for p in (dialler, baseline)
            ),
            "dialler_phase": dialler,
            "baseline_phase": baseline,
            "started_at": started_at.isoformat(timespec="seconds"),
            "run_seconds": round(time.monotonic() - began),
            "run_dir": str(run_dir),
            "cpu_model": cpu_model(),
            **machine(),
        }
    )  # fmt: skip


if __name__ == "__main__":
    main()
