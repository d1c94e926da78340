"""With Redis down nothing is dialled and pages still work; dispatch resumes when it returns."""

from __future__ import annotations

import os
import signal
import time
import uuid
from contextlib import ExitStack

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from accounts.actions import do_add_membership
from accounts.models import Role, User
from devices.models import Attempt
from enterprise_portal.launcher import embedded_redis, free_port
from tests import factories
from tests.conftest import ARTIFACTS, PASSWORD, _test_database_url
from tests.own_stack import start_process, stop_processes

pytestmark = pytest.mark.worker


def _wait_for(predicate, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(message)


def test_redis_outage_stops_dialling_keeps_pages_and_resumes(
    open_all_day_account, settings, tmp_path
):
    account = open_all_day_account
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": redis_url,
        "CELERY_QUEUE": f"outage-{uuid.uuid4().hex[:6]}",
        "DISPATCH_INTERVAL_SECONDS": "1",
    }
    admin = User.objects.create_user(f"outage@{account.slug}.test", PASSWORD)
    do_add_membership(admin, account.enterprise, Role.ACCOUNT_ADMIN, account=account)
    with tenant_context(account):
        people = [{"client_id": f"R{n}", "phones": [f"+1713555{7000 + n:04d}"]} for n in range(300)]
        sub = factories.sub_campaign(
            factories.contact_list(people), max_attempts=1, pacing_per_minute=120
        )
    rows = Attempt.objects.filter(account_id=account.pk, sub_campaign_id=sub.pk)
    procs = []
    with ExitStack() as stack:
        stack.enter_context(embedded_redis(tmp_path / "r1", persistent=False, port=port))
        logs = ARTIFACTS / "redis-outage"
        logs.mkdir(parents=True, exist_ok=True)
        procs += [start_process("worker", env, logs, concurrency=1),
                  start_process("beat", env, logs)]  # fmt: skip
        try:
            _wait_for(lambda: rows.count() >= 5, 60, "dialling started")
        except AssertionError:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGKILL)
            raise
        stack.close()  # Redis stops

    try:
        # Tasks the worker had already received before the outage finish; wait until the
        # count is still for 3 s, then nothing more may happen while Redis stays down.
        before, still_since, deadline = rows.count(), time.monotonic(), time.monotonic() + 60
        while time.monotonic() - still_since < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
            now_count = rows.count()
            if now_count != before:
                before, still_since = now_count, time.monotonic()
        time.sleep(6)
        assert rows.count() == before, "nothing is dialled while Redis is down"

        # Pages still work, sign-in included (the throttle's cache is that same Redis).
        settings.CACHES = {
            "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                        "LOCATION": f"redis://127.0.0.1:{port}/1"}
        }  # fmt: skip
        client = Client()
        response = client.post("/login/", {"username": admin.email, "password": PASSWORD})
        assert response.status_code == 302
        page = client.get(f"/a/{account.slug}/sub-campaigns/{sub.pk}/")
        assert page.status_code == 200
        assert f'data-count="done">{before}<' in page.content.decode().replace(" ", "")

        with embedded_redis(tmp_path / "r2", persistent=False, port=port):
            _wait_for(
                lambda: rows.count() > before + 3, 90, "dispatch resumed after Redis returned"
            )
    finally:
        stop_processes(procs)
