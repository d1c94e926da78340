"""`make run` (enterprise_portal.launcher run): the banner comes last, once the pages answer
and the worker and beat are up, and the terminal is not buried under Celery's INFO lines,
which go to var/log/ instead."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest

from enterprise_portal.launcher import ROOT, LogTee


def test_log_tee_keeps_everything_and_shows_warnings_with_their_traceback(tmp_path):
    lines = (
        "[2026-12-03 17:00:00,000: INFO/MainProcess] dispatch {'claimed': 0}\n"
        "[2026-12-03 17:00:01,000: WARNING/MainProcess] Redis is slow\n"
        "[2026-12-03 17:00:02,000: ERROR/ForkPoolWorker-1] Task failed\n"
        "Traceback (most recent call last):\n"
        "ValueError: boom\n"
        "[2026-12-03 17:00:03,000: INFO/MainProcess] celery@host ready.\n"
        "a line of its own\n"
    )
    terminal = io.StringIO()
    tee = LogTee("worker", io.StringIO(lines), tmp_path, ready_text=" ready.", out=terminal)
    tee.run()
    assert (tmp_path / "worker.log").read_text() == lines
    assert terminal.getvalue().splitlines() == [
        "[worker] [2026-12-03 17:00:01,000: WARNING/MainProcess] Redis is slow",
        "[worker] [2026-12-03 17:00:02,000: ERROR/ForkPoolWorker-1] Task failed",
        "[worker] Traceback (most recent call last):",
        "[worker] ValueError: boom",
    ]
    assert tee.seen.is_set()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def run_database():
    """A database of its own on the test server (make run migrates and loads the demo)."""
    server = urlparse(os.environ["DATABASE_URL"])
    name = f"portal_run_{uuid.uuid4().hex[:8]}"
    admin = server._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield server._replace(path=f"/{name}").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_make_run_prints_its_banner_last_and_keeps_celery_info_in_var_log(tmp_path, run_database):
    port = _free_port()
    redis = urlparse(os.environ["REDIS_URL"])._replace(path="/13").geturl()  # its own queue
    env = {**os.environ, "DATABASE_URL": run_database, "REDIS_URL": redis, "PORT": str(port),
           "PORTAL_VAR_DIR": str(tmp_path / "var"), "VOICE_GATEWAY": "simulator"}  # fmt: skip
    env.pop("DEBUG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "enterprise_portal.launcher", "run"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    printed: list[str] = []
    reader = threading.Thread(target=lambda: printed.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while not any("Portal running at" in line for line in printed):
            assert proc.poll() is None, "".join(printed)
            assert time.monotonic() < deadline, "".join(printed)
            time.sleep(0.5)
        # The pages answer by the time the banner says so.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=10) as page:
            assert page.status == 200
        time.sleep(6)  # three dispatcher ticks, each an INFO line in the worker's log
        terminal = "".join(printed)
        banner = terminal.index("Demo logins")
        assert "Portal running at" in terminal[banner:]
        for role in ("Platform operator", "Enterprise admin", "Account admin", "Agent"):
            assert role in terminal[banner:], role
        assert terminal.rindex("[portal] Portal running at") > terminal.rindex("Agent")
        assert not re.search(r"INFO/(MainProcess|ForkPoolWorker)", terminal), terminal
        log_dir = tmp_path / "var" / "log"
        worker_log = (log_dir / "worker.log").read_text()
        assert " ready." in worker_log and "INFO/" in worker_log
        assert "beat: Starting" in (log_dir / "beat.log").read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert Path(tmp_path / "var" / "log").is_dir()
