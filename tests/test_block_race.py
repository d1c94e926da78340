"""No dial is authorised after the block's transaction commits (design.md §3), proved by a
race between real processes and read from the ledger afterwards, not with a sleep.

Dialler processes loop dispatch + perform over two accounts' sub-campaigns on the same
devices while blocker processes save Blocks on those devices. Both sides stamp their time
after taking the device's advisory lock and hold it until commit, so lock order is time
order: an attempt authorised after a block committed would have attempted_at >= the
block's created_at. The ledger must show none.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

import psycopg
import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from accounts.actions import do_create_account, do_create_enterprise
from devices.models import Attempt, CallingWindow, DeviceSetting
from enterprise_portal.celery import app
from tests import factories
from tests.conftest import ARTIFACTS, ROOT, _test_database_url
from tests.helpers import retire_enterprise

# Enough devices that dialling lasts as long as the blocks (the assertions below check the
# run raced): at 500 the dialler, 1.7x faster since dial states are written with one
# VALUES join, settled every device before the blockers were two thirds done.
DEVICES = 800
SUBS_PER_ACCOUNT = 2
DIALLERS = 3
BLOCKERS = 2
BLOCKS_PER_BLOCKER = 150
HOT_SHARE = 0.5  # share of blocks aimed at a device a dialler has claimed at that moment
BLOCK_INTERVAL = 0.06  # mean seconds between one blocker's saves (jittered 0..2x)
# The diallers stop when the blockers are done (or earlier, once every device is
# settled); this is only a hard stop.
DIAL_LIMIT_SECONDS = 120
RETRY_AT_ONCE = {r: 0 for r in ("NO_ANSWER", "BUSY", "VOICEMAIL", "FAILED", "ABANDONED")}

# Authorised = an outbound attempt the gate let through (SUPPRESSED rows are refusals).
AUTHORISED = "a.direction = 'outbound' AND a.disposition <> 'SUPPRESSED'"


def authorised_after_first_block(enterprise_id: int) -> list[tuple]:
    """Authorised attempts stamped at or after the first Block of their device."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH first_block AS (
                SELECT device_key, min(created_at) AS blocked_at
                FROM public.devices_devicesetting
                WHERE enterprise_id = %s AND action = 'block' GROUP BY device_key
            )
            SELECT a.id, a.account_id, a.device_key, a.attempted_at, a.disposition, f.blocked_at
            FROM public.devices_attempt a JOIN first_block f USING (device_key)
            WHERE a.enterprise_id = %s AND {AUTHORISED} AND a.attempted_at >= f.blocked_at
            ORDER BY a.attempted_at
            """,  # noqa: S608 - fixed fragments only
            [enterprise_id, enterprise_id],
        )
        return cursor.fetchall()


def blocks_followed_by_a_dial(enterprise_id: int) -> list[tuple]:
    """Every Block (not only the first of a device) followed by an authorised attempt of
    its device in any account of the enterprise: (setting id, device, saved, attempt ids)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT s.id, s.device_key, s.created_at, array_agg(a.id ORDER BY a.id)
            FROM public.devices_devicesetting s
            JOIN public.devices_attempt a
              ON a.enterprise_id = s.enterprise_id AND a.device_key = s.device_key
             AND a.attempted_at >= s.created_at AND {AUTHORISED}
            WHERE s.enterprise_id = %s AND s.action = 'block'
            GROUP BY s.id, s.device_key, s.created_at ORDER BY s.created_at
            """,  # noqa: S608 - fixed fragments only
            [enterprise_id],
        )
        return cursor.fetchall()


def _one(sql: str, params: list) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def race_figures(enterprise_id: int) -> dict:
    """What the ledger says happened: enough dials and blocks, and blocks that bit."""
    e = [enterprise_id]
    authorised, pending, first_at, last_at = _one(
        f"""SELECT count(*), count(*) FILTER (WHERE disposition = 'PENDING'),
                  min(attempted_at), max(attempted_at)
           FROM public.devices_attempt a WHERE a.enterprise_id = %s AND {AUTHORISED}""",  # noqa: S608
        e,
    )
    blocks, blocked_devices, during = _one(
        "SELECT count(*), count(DISTINCT device_key),"
        " count(*) FILTER (WHERE created_at BETWEEN %s AND %s)"
        " FROM public.devices_devicesetting WHERE enterprise_id = %s AND action = 'block'",
        [first_at, last_at, enterprise_id],
    )
    (suppressed,) = _one(
        "SELECT count(*) FROM public.devices_attempt"
        " WHERE enterprise_id = %s AND suppression_rule = 'device_block'",
        e,
    )
    # Rows written by the block's own transaction (same xmin): queued attempts it cancelled.
    (cancelled,) = _one(
        "SELECT count(*) FROM public.devices_attempt a JOIN public.devices_devicesetting s"
        " ON a.xmin = s.xmin WHERE a.enterprise_id = %s AND a.suppression_rule = 'device_block'",
        e,
    )
    # How close the race ran: blocked devices dialled shortly before their block.
    close, closest_ms = _one(
        f"""
        WITH first_block AS (
            SELECT device_key, min(created_at) AS blocked_at FROM public.devices_devicesetting
            WHERE enterprise_id = %s AND action = 'block' GROUP BY device_key
        )
        SELECT count(*) FILTER (WHERE f.blocked_at - a.attempted_at < interval '200 ms'),
               round(min(extract(epoch FROM f.blocked_at - a.attempted_at) * 1000)::numeric, 3)
        FROM public.devices_attempt a JOIN first_block f USING (device_key)
        WHERE a.enterprise_id = %s AND {AUTHORISED} AND a.attempted_at < f.blocked_at
        """,  # noqa: S608
        [enterprise_id, enterprise_id],
    )
    # Blocks saved while a dial of their device was under way (authorised, not finished).
    (mid_dial,) = _one(
        f"""
        SELECT count(DISTINCT s.id) FROM public.devices_devicesetting s
        JOIN public.devices_attempt a ON a.enterprise_id = s.enterprise_id
         AND a.device_key = s.device_key AND {AUTHORISED}
         AND a.attempted_at < s.created_at AND a.completed_at > s.created_at
        WHERE s.enterprise_id = %s AND s.action = 'block'
        """,  # noqa: S608
        e,
    )
    return {
        "authorised": authorised,
        "still_pending": pending,
        "blocks": blocks,
        "blocked_devices": blocked_devices,
        "blocks_while_dialling": during,
        "suppressed_device_block": suppressed,
        "suppressed_by_cancellation": cancelled,
        "suppressed_by_gate": suppressed - cancelled,
        "blocks_saved_mid_dial": mid_dial,
        "dials_within_200ms_before_block": close,
        "closest_dial_before_block_ms": float(closest_ms) if closest_ms is not None else None,
    }


# --- the negative control: the check can fail -----------------------------------------


def test_ledger_check_reports_a_dial_authorised_after_the_block(personas):
    device = "+13125559990"
    block = DeviceSetting.objects.create(
        enterprise=personas.ent_a, device_key=device, action=DeviceSetting.Action.BLOCK
    )
    ms = dt.timedelta(milliseconds=1)

    def row(account, at, disposition, direction="outbound"):
        return Attempt.objects.create(
            attempted_at=at, enterprise_id=personas.ent_a.pk, account_id=account.pk,
            account_name=account.name, device_key=device, channel="voice",
            direction=direction, disposition=disposition,
        )  # fmt: skip

    row(personas.acct_a1, block.created_at - ms, "ANSWERED")  # before: fine
    row(personas.acct_a2, block.created_at + ms, "SUPPRESSED")  # refused: fine
    row(personas.acct_a1, block.created_at + ms, "RECEIVED", direction="inbound")  # a reply
    late = row(personas.acct_a2, block.created_at + ms, "NO_ANSWER")  # the broken promise
    assert [r[0] for r in authorised_after_first_block(personas.ent_a.pk)] == [late.pk]
    assert blocks_followed_by_a_dial(personas.ent_a.pk) == [
        (block.pk, device, block.created_at, [late.pk])
    ]


# --- the race ---------------------------------------------------------------------------


@pytest.fixture
def race_enterprise(committed):
    """A fresh enterprise with two accounts, committed so other processes see it: calling
    window open all day and no attempt cap, so only a Block stops a dial (the personas'
    enterprise would defer by the clock and cap at 7). Its rows are removed afterwards."""
    name = f"Race {uuid.uuid4().hex[:8]}"
    enterprise = do_create_enterprise(name)
    enterprise.attempt_cap = 0
    enterprise.save(update_fields=["attempt_cap"])
    CallingWindow.objects.create(
        enterprise=enterprise, region="", start=dt.time(0), end=dt.time(23, 59, 59, 999999)
    )
    accounts = [do_create_account(enterprise, f"{name} {n}") for n in (1, 2)]
    yield enterprise, accounts
    retire_enterprise(enterprise, accounts)


class LockWaitSampler(threading.Thread):
    """Samples who is waiting for a device's advisory lock, by role: evidence that the
    lock, not luck, put dials and blocks in order (a short wait can fall between samples).
    """

    def __init__(self):
        super().__init__(name="lock-wait-sampler", daemon=True)
        self.waits: Counter = Counter()
        self.samples = 0
        self.finished = threading.Event()

    def run(self) -> None:
        with psycopg.connect(_test_database_url(), autocommit=True) as conn:
            while not self.finished.is_set():
                rows = conn.execute(
                    "SELECT application_name FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    " AND wait_event = 'advisory' AND application_name LIKE 'race-%'"
                ).fetchall()
                for (name,) in rows:
                    self.waits[name.split("-")[1]] += 1  # race-blocker-0: "blocker"
                self.samples += 1
                time.sleep(0.005)

    def stop(self) -> dict:
        self.finished.set()
        self.join(10)
        return {"samples": self.samples, **{f"{k}_waiting": v for k, v in self.waits.items()}}


def _start(spec: dict, queue: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PGAPPNAME": f"race-{spec['name']}",  # libpq: names the process's connections
        "DATABASE_URL": _test_database_url(),
        # Dispatch also sends the chunks to Celery; nobody consumes this queue (the
        # diallers perform what they claimed themselves) and it is purged afterwards.
        "CELERY_QUEUE": queue,
        "DISPATCH_BATCH_SIZE": "60",
        "ATTEMPT_TASK_CHUNK": "20",
        "SIMULATOR_CALL_DELAY_MS": "0",
    }
    log = open(ARTIFACTS / f"block-race-{spec['name']}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "race_worker.py"), json.dumps(spec)],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    proc.log = log
    return proc


def _run_all(specs: list[dict], sampler: LockWaitSampler) -> list[dict]:
    """Starts every process, releases them together once all are ready, stops the
    diallers once the blockers are done (dialling with no block coming races nothing),
    and collects every process's figures."""
    queue = f"race-{uuid.uuid4().hex[:8]}"
    procs = [_start(spec, queue) for spec in specs]
    try:
        for proc, spec in zip(procs, specs, strict=True):
            line = proc.stdout.readline().strip()
            assert line == "ready", f"{spec['name']} did not start; see its log in {ARTIFACTS}"
        sampler.start()
        for proc in procs:  # the barrier: everyone starts at once
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = {}
        by_role = sorted(zip(procs, specs, strict=True), key=lambda p: p[1]["role"] != "block")
        for proc, spec in by_role:  # blockers first, then "stop" to each dialler
            out, _ = proc.communicate("stop\n" if spec["role"] == "dial" else None,
                                      timeout=DIAL_LIMIT_SECONDS + 60)  # fmt: skip
            assert proc.returncode == 0, f"{spec['name']} failed; see its log in {ARTIFACTS}"
            results[spec["name"]] = json.loads(out.strip().splitlines()[-1])
        return [results[spec["name"]] for spec in specs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            proc.log.close()
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(queue)


@pytest.mark.worker
def test_no_dial_is_authorised_after_its_block_commits(race_enterprise):
    enterprise, accounts = race_enterprise
    ARTIFACTS.mkdir(exist_ok=True)
    devices = [f"+1312555{n:04d}" for n in range(DEVICES)]
    people = [{"client_id": f"R{n}", "name": f"Race {n}", "phones": [key]}
              for n, key in enumerate(devices)]  # fmt: skip
    subs = []
    for account in accounts:  # the same devices in both accounts
        with tenant_context(account):
            listing = factories.contact_list(people)
            for _ in range(SUBS_PER_ACCOUNT):
                sub = factories.sub_campaign(
                    listing, max_attempts=6, pacing_per_minute=600_000, retry_minutes=RETRY_AT_ONCE
                )
                subs.append([account.pk, sub.pk])
    rng = random.Random()
    seed = rng.randrange(10**9)
    rng.seed(seed)
    specs = [
        {"role": "dial", "name": f"dialler-{n}", "subs": subs, "seed": seed + n,
         "seconds": DIAL_LIMIT_SECONDS}
        for n in range(DIALLERS)
    ] + [
        # Each blocker: part of its blocks on devices claimed at that moment, the rest in
        # its own random order. The two overlap, so a device is sometimes blocked twice
        # and the check must hold for the first block.
        {"role": "block", "name": f"blocker-{n}", "enterprise_id": enterprise.pk,
         "devices": rng.sample(devices, len(devices)), "count": BLOCKS_PER_BLOCKER,
         "hot_share": HOT_SHARE, "seed": seed + 100 + n, "interval": BLOCK_INTERVAL}
        for n in range(BLOCKERS)
    ]  # fmt: skip
    started = time.monotonic()
    sampler = LockWaitSampler()
    try:
        results = _run_all(specs, sampler)
    finally:
        lock_waits = sampler.stop()
    elapsed = round(time.monotonic() - started, 1)

    late = authorised_after_first_block(enterprise.pk)
    late_per_block = blocks_followed_by_a_dial(enterprise.pk)
    figures = {"seed": seed, "seconds": elapsed, **race_figures(enterprise.pk),
               "lock_wait_samples": lock_waits, "violations": len(late),
               "blocks_followed_by_a_dial": len(late_per_block), "processes": results}  # fmt: skip
    (ARTIFACTS / "block-race.json").write_text(json.dumps(figures, indent=2, default=str))
    print(json.dumps({k: v for k, v in figures.items() if k != "processes"}))

    assert late == [], f"dials authorised after their device's block: {late[:20]}"
    assert late_per_block == []
    # Every process did its work without a database error (a failed block save is a
    # block the user asked for and did not get).
    for result in results:
        assert result["errors"] == [], result
    assert figures["still_pending"] == 0
    # The test raced: it could have failed.
    assert figures["authorised"] > 1000, figures
    assert figures["blocks"] == BLOCKERS * BLOCKS_PER_BLOCKER, figures
    assert figures["blocks_while_dialling"] >= 200, figures
    assert figures["suppressed_device_block"] > 0, figures
    assert figures["blocks_saved_mid_dial"] > 0, figures
    assert figures["dials_within_200ms_before_block"] > 0, figures
