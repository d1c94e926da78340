"""Shared fixtures: named personas on the real test database, a real Celery worker,
a live server for browser journeys.

Personas are created once per session and committed; each test runs in a
transaction that is rolled back, so tests see the personas and never each other.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_exists

from accounts.actions import (
    do_add_membership,
    do_create_account,
    do_create_enterprise,
    ensure_public_tenant,
)
from accounts.models import Account, Enterprise, Role, User
from accounts.schemas import ensure_template_schema

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "correct-horse-battery-staple"


@dataclass
class Personas:
    ent_a: Enterprise
    ent_b: Enterprise
    acct_a1: Account
    acct_a2: Account
    acct_b1: Account
    acct_b2: Account
    ent_admin: User  # enterprise admin of A
    acct_admin: User  # account admin of A1
    agent: User  # agent of A1
    outsider: User  # no memberships
    other_ent_admin: User  # enterprise admin of B
    operator: User  # platform operator (superuser), no memberships

    def user(self, name: str) -> User | None:
        return None if name == "anonymous" else getattr(self, name)


def _build_personas() -> Personas:
    ensure_public_tenant()
    ensure_template_schema()
    ent_a = do_create_enterprise("Acme Test", time_zone="America/Chicago", default_region="US")
    ent_b = do_create_enterprise(
        "Borealis Test", time_zone="America/Sao_Paulo", default_region="BR", language="pt-br"
    )
    acct_a1 = do_create_account(ent_a, "Acme One", slug="acme-one")
    acct_a2 = do_create_account(ent_a, "Acme Two", slug="acme-two")
    acct_b1 = do_create_account(ent_b, "Borealis One", slug="bor-one")
    acct_b2 = do_create_account(ent_b, "Borealis Two", slug="bor-two")

    def user(email: str, name: str, **extra) -> User:
        return User.objects.create_user(email, PASSWORD, full_name=name, **extra)

    people = {
        "ent_admin": user("ent.admin@acme.test", "Erin Enterprise"),
        "acct_admin": user("acct.admin@acme.test", "Adam Account"),
        "agent": user("agent@acme.test", "Agnes Agent"),
        "outsider": user("outsider@nowhere.test", "Oscar Outsider"),
        "other_ent_admin": user("ent.admin@borealis.test", "Bruno Borealis"),
        "operator": User.objects.create_superuser("operator@platform.test", PASSWORD),
    }
    do_add_membership(people["ent_admin"], ent_a, Role.ENTERPRISE_ADMIN)
    do_add_membership(people["acct_admin"], ent_a, Role.ACCOUNT_ADMIN, account=acct_a1)
    do_add_membership(people["agent"], ent_a, Role.AGENT, account=acct_a1)
    do_add_membership(people["other_ent_admin"], ent_b, Role.ENTERPRISE_ADMIN)
    return Personas(ent_a, ent_b, acct_a1, acct_a2, acct_b1, acct_b2, **people)


@pytest.fixture(scope="session")
def django_db_modify_db_settings():
    """A test database of this run's own, so two runs on one server never collide."""
    test = settings.DATABASES["default"].setdefault("TEST", {})
    test["NAME"] = f"test_{settings.DATABASES['default']['NAME']}_{os.getpid()}"


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment, django_db_blocker, django_db_modify_db_settings):
    """The test database, always, with the personas committed in it.

    pytest-django would skip creating it when no collected test asks for ``db``
    (a browser journey alone uses ``committed``), so this replaces its fixture.
    """
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, aliases={"default"})
        personas = _build_personas()
        connection.set_schema_to_public()
        # Every later test leans on these: fail here, loudly, if the set-up is not right.
        assert settings.DATABASES["default"]["NAME"].startswith("test_")
        assert all(schema_exists(a.schema_name) for a in (personas.acct_a1, personas.acct_b2))
    yield
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        # A stopped worker's backends may still be exiting; DROP DATABASE would refuse.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        teardown_databases(config, verbosity=0)


@pytest.fixture
def personas(db) -> Personas:
    """The committed personas, re-read inside this test's transaction."""
    ent_a = Enterprise.objects.get(name="Acme Test")
    ent_b = Enterprise.objects.get(name="Borealis Test")
    accounts = {a.slug: a for a in Account.objects.exclude(schema_name="public")}
    users = {u.email: u for u in User.objects.all()}
    return Personas(
        ent_a=ent_a,
        ent_b=ent_b,
        acct_a1=accounts["acme-one"],
        acct_a2=accounts["acme-two"],
        acct_b1=accounts["bor-one"],
        acct_b2=accounts["bor-two"],
        ent_admin=users["ent.admin@acme.test"],
        acct_admin=users["acct.admin@acme.test"],
        agent=users["agent@acme.test"],
        outsider=users["outsider@nowhere.test"],
        other_ent_admin=users["ent.admin@borealis.test"],
        operator=users["operator@platform.test"],
    )


@pytest.fixture(autouse=True)
def _public_schema_after_test():
    yield
    connection.set_schema_to_public()


@pytest.fixture
def committed(django_db_setup, django_db_blocker):
    """Database access outside a test transaction: what a worker or a live server can see.

    Tests using it must create their own uniquely named rows and remove what they change.
    """
    with django_db_blocker.unblock():
        yield
        connection.set_schema_to_public()


def _test_database_url() -> str:
    parsed = urlparse(os.environ["DATABASE_URL"])
    return parsed._replace(path="/" + settings.DATABASES["default"]["NAME"]).geturl()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup):
    """A real Celery worker process on the real Redis, working on the test database."""
    from enterprise_portal.celery import app

    queue = f"test-{uuid.uuid4().hex[:10]}"
    app.conf.task_default_queue = queue
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "celery-worker.log", "w")  # noqa: SIM115
    # Webhook receivers in tests listen on 127.0.0.1 (accounts.webhooks refuses that in
    # production unless allowed).
    env = {**os.environ, "DATABASE_URL": _test_database_url(), "CELERY_QUEUE": queue,
           "WEBHOOK_ALLOW_PRIVATE_URLS": "1"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "enterprise_portal", "worker",
         "-Q", queue, "--pool", "prefork", "--concurrency", "2", "--loglevel", "INFO",
         "--without-gossip", "--without-mingle", "-n", f"{queue}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not app.control.ping(destination=[f"{queue}@{socket.gethostname()}"], timeout=0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(
                f"Celery worker did not start; see {ARTIFACTS / 'celery-worker.log'}"
            )
    yield proc
    _stop(proc, log)


def _stop(proc: subprocess.Popen, log) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def tasks_held():
    """Tasks this test enqueues go to a queue no worker reads, so that the test performs
    them itself, in this process and with its settings (the session's worker, if one runs,
    has the default ones). The queue is deleted afterwards."""
    from enterprise_portal.celery import app

    default_queue = app.conf.task_default_queue
    queue = f"held-{uuid.uuid4().hex[:10]}"
    app.conf.task_default_queue = queue
    try:
        yield queue
    finally:
        app.conf.task_default_queue = default_queue
        with app.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)


@pytest.fixture
def celery_beat(celery_worker):
    """Real Celery beat sending the dispatcher's ticks to the test worker's queue.

    Per test, not per session: a beat left running would dispatch every active
    sub-campaign of later tests too (the Redis outage test has its own)."""
    from enterprise_portal.celery import app

    log = open(ARTIFACTS / "celery-beat.log", "w")  # noqa: SIM115
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "CELERY_QUEUE": app.conf.task_default_queue,
        "DISPATCH_INTERVAL_SECONDS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "enterprise_portal", "beat", "--loglevel", "INFO",
         "--schedule", str(ARTIFACTS / "celerybeat-schedule")],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    yield proc
    _stop(proc, log)


@pytest.fixture
def open_all_day_account(committed):
    """A fresh enterprise and account whose calling window never closes: real time never
    defers its attempts. Its sub-campaigns are taken off the dispatcher afterwards."""
    import datetime as dt

    from devices.models import ActiveSubCampaign, CallingWindow

    name = f"Open {uuid.uuid4().hex[:8]}"
    enterprise = do_create_enterprise(name)
    CallingWindow.objects.create(
        enterprise=enterprise, region="", start=dt.time(0), end=dt.time(23, 59, 59, 999999)
    )
    account = do_create_account(enterprise, name)
    yield account
    ActiveSubCampaign.objects.filter(account=account).delete()


@pytest.fixture(scope="session")
def live_server_url(django_db_setup):
    """The real WSGI app (WhiteNoise serves static files) in a threaded server, on the test DB."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadedWSGIServer(("localhost", 0), QuietHandler, allow_reuse_address=False)
    server.set_app(WSGIHandler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
