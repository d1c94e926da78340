"""How long creating an account takes: cloning the template schema vs replaying migrations.

    python bench/accounts.py [--quick] [--count N]

Target (issue: foundation): under 2 s per account. Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import time

from _harness import django_on_bench_db, emit, machine, summary_ms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a handful of accounts")
    parser.add_argument("--count", type=int, default=None)
    args = parser.parse_args()
    count = args.count or (5 if args.quick else 25)

    with django_on_bench_db():
        from django.db import connection
        from django.test.utils import override_settings

        from accounts.actions import do_create_account, do_create_enterprise

        enterprise = do_create_enterprise("Bench Enterprise")
        cloned, replayed = [], []
        for n in range(count):
            account = do_create_account(enterprise, f"Clone {n}")
            cloned.append(account.creation_seconds)
        # Baseline in the same run: the schema built by running every tenant migration.
        with override_settings(TENANT_CREATION_FAKES_MIGRATIONS=False):
            for n in range(count):
                started = time.perf_counter()
                do_create_account(enterprise, f"Replay {n}")
                replayed.append(time.perf_counter() - started)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = %s", ["tenant_template"]
            )
            (tables,) = cursor.fetchone()

    result = {
        "bench": "accounts",
        "accounts": count,
        "tenant_tables": tables,
        **summary_ms(cloned, "clone"),
        **summary_ms(replayed, "migrate_baseline"),
        "target_ms": 2000,
        "meets_target": max(cloned) < 2.0,
        **machine(),
    }
    emit(result)


if __name__ == "__main__":
    main()
