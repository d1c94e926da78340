"""Shared set-up for benchmarks: a scratch database on the configured or embedded servers.

Each benchmark runs on a fresh database named ``portal_bench`` (dropped and re-created), so
figures never depend on what `make run` left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "portal_bench"


def _recreate(url: str) -> str:
    import psycopg

    parsed = urlparse(url)
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [BENCH_DB]
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    return parsed._replace(path="/" + BENCH_DB).geturl()


@contextlib.contextmanager
def django_on_bench_db() -> Iterator[None]:
    """Services up, a fresh bench database migrated, Django set up."""
    from enterprise_portal.launcher import services

    os.environ.setdefault("SECRET_KEY", "bench-only")
    with services(purpose="test", database=BENCH_DB):
        os.environ["DATABASE_URL"] = _recreate(os.environ["DATABASE_URL"])
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
