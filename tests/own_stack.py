"""A whole portal of a test's own, for tests that stop what others share: a PostgreSQL
server the test may stop and start (its own data directory and port, from the binaries of
the ``pgserver`` wheel), and the portal's processes (Celery worker and beat, gunicorn)
started against it. Used by tests/test_postgres_restart.py.

    python tests/own_stack.py seed '{"devices": 2000, "pacing": 2400}'

builds the schema on the database DATABASE_URL names (setup_portal) and an enterprise open
all day with one account, its admin, an enterprise API key and an active voice
sub-campaign of that many devices, and prints their ids as one JSON object on its last line.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery-staple"


class OwnPostgres:
    """A PostgreSQL cluster of its own (a temporary directory) on 127.0.0.1:``port`` only, stopped
    and started with pg_ctl. As root its processes run as the pgserver wheel's own user
    (PostgreSQL refuses root), like the embedded server of `make test`."""

    def __init__(self, port: int):
        # pgserver keeps its lock in the runtime directory (as enterprise_portal.launcher).
        default_runtime = Path(tempfile.gettempdir()) / f"portal-runtime-{os.getuid()}"
        runtime = Path(os.environ.setdefault("XDG_RUNTIME_DIR", str(default_runtime)))
        runtime.mkdir(mode=0o700, exist_ok=True)
        import pgserver

        # Not under pytest's tmp_path: pytest makes its root private to root again whenever
        # a run starts, and PostgreSQL's own user must reach the data directory.
        self.directory = Path(tempfile.mkdtemp(prefix="own-postgres-"))
        pgdata = self.pgdata = self.directory / "pgdata"
        self.port = port
        self.log = pgdata / "server.log"
        self._pg_ctl = pgserver.pg_ctl
        # pgserver runs initdb (as its user when we are root) and starts a socket-only
        # server; it is stopped at once and started here on a TCP port, as a service is.
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        self.system_user = server.system_user
        server.cleanup()
        atexit.unregister(server._cleanup)
        self.start()

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        # fsync off: the server is only ever stopped cleanly (a fast shutdown writes every
        # change out), so what fsync buys, surviving a crash of the machine, is not needed,
        # and the set-up (migrations, a commit per statement) is much quicker without it.
        options = f"-h 127.0.0.1 -p {self.port} -c unix_socket_directories='' -c fsync=off"
        self._pg_ctl(["-w", "-o", options, "-l", str(self.log), "start"], pgdata=self.pgdata,
                     user=self.system_user, timeout=60)  # fmt: skip

    def stop(self) -> None:
        """Fast shutdown: open transactions are rolled back, clients disconnected."""
        self._pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.system_user,
                     timeout=60)  # fmt: skip

    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def close(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_process(
    kind: str, env: dict, log_dir: Path, *, port: int = 0, concurrency: int = 2
) -> subprocess.Popen:
    """A worker (``concurrency`` prefork processes), beat, or gunicorn on ``port`` (one
    process, four threads), logging to ``log_dir``/<kind>.log, in a session of its own so
    that stop_processes ends it with its children."""
    args = {
        "worker": ["-m", "celery", "-A", "enterprise_portal", "worker", "--loglevel", "INFO",
                   "--concurrency", str(concurrency), "--without-gossip", "--without-mingle",
                   "-n", f"own-{uuid.uuid4().hex[:6]}@%h"],
        "beat": ["-m", "celery", "-A", "enterprise_portal", "beat", "--loglevel", "INFO",
                 "--schedule", str(log_dir / "beat-schedule")],
        "web": ["-m", "gunicorn", "enterprise_portal.wsgi", "--bind", f"127.0.0.1:{port}",
                "--workers", "1", "--threads", "4", "--access-logfile", "-"],
    }[kind]  # fmt: skip
    log = open(log_dir / f"{kind}.log", "a")  # noqa: SIM115 - the child keeps it open
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def stop_processes(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def seed(spec: dict) -> dict:
    import datetime as dt

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "enterprise_portal.settings")
    django.setup()
    from django.core.management import call_command
    from django_tenants.utils import tenant_context

    from accounts.actions import do_add_membership, do_create_account, do_create_enterprise
    from accounts.api_keys import do_create_api_key
    from accounts.models import ApiKey, Role, User
    from contacts.models import Contact, ContactList
    from devices.models import CallingWindow
    from tests import factories

    call_command("setup_portal", verbosity=0)
    enterprise = do_create_enterprise("Own Stack")
    # Open all day: real time never defers an attempt.
    CallingWindow.objects.create(
        enterprise=enterprise, region="", start=dt.time(0), end=dt.time(23, 59, 59, 999999)
    )
    account = do_create_account(enterprise, "Own Stack One")
    admin = User.objects.create_user("admin@own-stack.test", PASSWORD)
    do_add_membership(admin, enterprise, Role.ACCOUNT_ADMIN, account=account)
    _key, key_text = do_create_api_key(
        name="Own stack", scopes=[ApiKey.Scope.DEVICES_WRITE], created_by=admin,
        enterprise=enterprise,
    )  # fmt: skip
    devices = spec["devices"]
    with tenant_context(account):
        listing = ContactList.objects.create(
            name="Own stack", status=ContactList.Status.READY, rows_imported=devices
        )
        Contact.objects.bulk_create(
            Contact(contact_list=listing, client_id=f"S{n}", name=f"Person {n}",
                    phones=[f"+1713{n:07d}"], merge_key=f"S{n}", line_number=n + 2)
            for n in range(devices)
        )  # fmt: skip
        sub = factories.sub_campaign(listing, max_attempts=1, pacing_per_minute=spec["pacing"])
    return {
        "account_id": account.pk,
        "schema": account.schema_name,
        "slug": account.slug,
        "sub_campaign_id": sub.pk,
        "admin": admin.email,
        "api_key": key_text,
    }


def run_seed(env: dict, spec: dict) -> dict:
    """``seed`` in a process of its own, on the database ``env`` names."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__)), "seed", json.dumps(spec)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if sys.argv[1:2] != ["seed"]:
        sys.exit(__doc__)
    print(json.dumps(seed(json.loads(sys.argv[2]))))
