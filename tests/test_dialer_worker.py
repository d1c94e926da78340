"""The dialer on real workers: beat's tick to recorded attempts, and a worker killed mid-batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from django.db.models import Count
from django_tenants.utils import tenant_context

from campaigns.gateways import physical_delivery_count
from campaigns.models import DialState
from campaigns.tasks import dispatch_tick, requeue_stale_claims
from devices.models import Attempt
from enterprise_portal.celery import app
from tests import factories
from tests.conftest import ARTIFACTS, ROOT, _test_database_url

pytestmark = pytest.mark.worker


def _phones(count: int, start: int) -> list[dict]:
    return [
        {"client_id": f"W{n}", "name": f"Worker {n}", "phones": [f"+1713555{start + n:04d}"]}
        for n in range(count)
    ]


def _wait(predicate, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.2)


def _settled(sub) -> bool:
    return not DialState.objects.filter(
        sub_campaign=sub, status__in=["pending", "dialing"]
    ).exists()


def test_beat_tick_to_recorded_attempts_on_a_real_worker(celery_worker, open_all_day_account):
    account = open_all_day_account
    with tenant_context(account):
        sub = factories.sub_campaign(factories.contact_list(_phones(40, 5000)), max_attempts=1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        dispatch_tick.delay()  # what beat sends every DISPATCH_INTERVAL_SECONDS
        time.sleep(0.5)
        with tenant_context(account):
            if _settled(sub):
                break
    with tenant_context(account):
        assert _settled(sub), "every device was attempted"
        states = list(DialState.objects.filter(sub_campaign=sub))
    rows = Attempt.objects.filter(account_id=account.pk, sub_campaign_id=sub.pk)
    assert rows.count() == 40
    assert not rows.filter(disposition="PENDING").exists()
    assert {s.status for s in states} == {"done"}
    assert all(physical_delivery_count(row.pk) == 1 for row in rows)


def _start_worker(queue: str, log_name: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "CELERY_QUEUE": queue,
        "SIMULATOR_CALL_DELAY_MS": "40",
    }
    log = open(ARTIFACTS / log_name, "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "enterprise_portal", "worker", "-Q", queue,
         "--concurrency", "2", "--prefetch-multiplier", "4", "--without-gossip",
         "--without-mingle", "--loglevel", "INFO", "-n", f"{queue}-{log_name}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def test_worker_killed_mid_batch_loses_nothing_and_dials_nothing_twice(
    celery_worker, open_all_day_account, settings
):
    account = open_all_day_account
    queue = f"fault-{uuid.uuid4().hex[:8]}"
    default_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    settings.DIALING_STALE_SECONDS = 10
    first = _start_worker(queue, "fault-worker-1.log")
    second = None
    try:
        with tenant_context(account):
            sub = factories.sub_campaign(factories.contact_list(_phones(120, 6000)), max_attempts=1)
            from campaigns import dialer

            report = dialer.dispatch_sub_campaign(sub.pk)  # claims all 120 and enqueues them
            assert report.queued == 120
        rows = Attempt.objects.filter(account_id=account.pk, sub_campaign_id=sub.pk)
        _wait(lambda: rows.exclude(disposition="PENDING").count() >= 10, 60, "worker started")
        os.killpg(first.pid, signal.SIGKILL)  # the whole worker, children included
        first.wait(10)
        done_at_kill = rows.exclude(disposition="PENDING").count()
        assert done_at_kill < 120, "the kill landed mid-batch"

        second = _start_worker(queue, "fault-worker-2.log")
        # Messages the dead worker held are gone with it; the stale-claim sweep re-sends them.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(1)
            with tenant_context(account):
                if _settled(sub):
                    break
            requeue_stale_claims()
        with tenant_context(account):
            assert _settled(sub), "every claimed attempt was finished after the crash"
            assert set(
                DialState.objects.filter(sub_campaign=sub).values_list("status", flat=True)
            ) == {"done"}
        per_state = rows.values("dial_state_id").annotate(n=Count("id"))
        assert len(per_state) == 120
        assert {row["n"] for row in per_state} == {1}, "one ledger row per device"
        assert not rows.filter(disposition="PENDING").exists()
        dials = [physical_delivery_count(pk) for pk in rows.values_list("pk", flat=True)]
        assert dials.count(1) == 120, "each attempt dialled exactly once"
    finally:
        app.conf.task_default_queue = default_queue
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(20)
