"""Shared set-up for benchmarks: a scratch database on the configured or embedded servers.

Each benchmark runs on a fresh database named ``portal_bench`` (dropped and re-created), so
figures never depend on what `make run` left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "portal_bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _recreate(url: str, name: str = BENCH_DB) -> str:
    import psycopg

    parsed = urlparse(url)
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return parsed._replace(path="/" + name).geturl()


@contextlib.contextmanager
def django_on_bench_db(name: str = BENCH_DB) -> Iterator[None]:
    """Services up, a fresh bench database migrated, Django set up. A bench that runs for
    long may pass a name of its own, so that another bench started meanwhile on the same
    server does not drop its database."""
    from enterprise_portal.launcher import services

    if len(os.environ.get("SECRET_KEY", "")) < 50:  # DEBUG off (as deployed) wants 50 or more
        os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)  # a scratch database's sessions
    with services(purpose="test", database=name):
        os.environ["DATABASE_URL"] = _recreate(os.environ["DATABASE_URL"], name)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "enterprise_portal.settings")
        import django

        django.setup()
        from django.core.management import call_command

        call_command("setup_portal", verbosity=0)
        yield


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(values_s: list[float], prefix: str) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {
        f"{prefix}_p50_ms": round(statistics.median(ms), 2),
        f"{prefix}_p95_ms": round(percentile(ms, 95), 2),
        f"{prefix}_max_ms": round(max(ms), 2),
    }


def machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def emit(result: dict) -> None:
    print(json.dumps(result, sort_keys=False))


AREAS = ["713", "212", "415", "312", "617", "305", "206", "404"]
EXCHANGES = [e for e in range(201, 1000) if e % 100 != 11 and e != 555]


def phone(n: int) -> str:
    """The n-th bench device: a valid US number in E.164, distinct for each n < 6.3 M."""
    area = AREAS[n % len(AREAS)]
    rest = n // len(AREAS)
    exchange = EXCHANGES[(rest // 10_000) % len(EXCHANGES)]
    return f"+1{area}{exchange}{rest % 10_000:04d}"


def phones(start: int, count: int) -> list[str]:
    return [phone(n) for n in range(start, start + count)]


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return ""


# --- processes: their CPU, gunicorn, Celery -----------------------------------------------------


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (of any of its threads)."""
    found = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def cpu_by_pid(pids: Sequence[int]) -> dict[int, float]:
    """utime + stime of each of these processes, in seconds."""
    found = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            found[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    return sum(cpu_by_pid(pids).values())


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / CLK_TCK, sum(fields) / CLK_TCK


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def start_gunicorn(
    run_dir: Path, *, workers: int, env: dict | None = None, args: Sequence[str] = ()
) -> tuple[subprocess.Popen, int]:
    """``gunicorn enterprise_portal.wsgi`` (sync workers) on a free port of 127.0.0.1, its
    output in ``run_dir/gunicorn.log``; returns once every worker is up and it listens."""
    port = free_tcp_port()
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    log = open(run_dir / "gunicorn.log", "ab")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(
        [gunicorn, "enterprise_portal.wsgi", "--workers", str(workers),
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning", *args],
        cwd=ROOT, env=env if env is not None else os.environ, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(children(proc.pid)) < workers or not listening(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn did not start; see {run_dir / 'gunicorn.log'}")
        time.sleep(0.2)
    return proc, port


def start_celery(kind: str, env: dict, log_dir: Path | str, *, concurrency: int = 2):
    """A real Celery ``worker`` (prefork) or ``beat`` for the app, its output in
    ``log_dir/<kind>.log``."""
    args = {
        "worker": ["worker", "--concurrency", str(concurrency), "--without-gossip",
                   "--without-mingle", "--loglevel", "WARNING", "-n", f"bench-{os.getpid()}@%h"],
        "beat": ["beat", "--loglevel", "WARNING",
                 "--schedule", os.path.join(log_dir, "beat-schedule")],
    }[kind]  # fmt: skip
    log = open(os.path.join(log_dir, f"{kind}.log"), "a")  # noqa: SIM115 - the child keeps it
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "enterprise_portal", *args],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def stop(*procs: subprocess.Popen, wait: float = 30.0) -> None:
    """SIGTERM to each process group in turn, SIGKILL if still there after ``wait``."""
    from tests.carriers.sipp import stop_process

    for proc in procs:
        stop_process(proc, wait=wait)
