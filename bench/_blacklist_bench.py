"""Blacklist bulk import, measured for bench/import.py (call inside django_on_bench_db).

The import under test is the real one (campaigns.blacklist_import.run_blacklist_import):
parse each line, one set-based insert and one set-based suppression per 50,000-line
chunk, progress saved per chunk. The baseline in the same run saves the same kind of
lines one by one through the ORM (get_or_create per entry), on a sample.
"""

from __future__ import annotations

import io
import random
import sys
import time


def _lines(n: int, seed: int = 7) -> tuple[bytes, int, int]:
    """n lines of US numbers (80 % bare digits, the rest formatted), ~0.5 % malformed,
    ~1 % repeated."""
    rng = random.Random(seed)
    out = io.StringIO()
    bad = dup = 0
    previous = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.005:
            out.write("not-a-number\n")
            bad += 1
            continue
        if roll < 0.015 and previous:
            out.write(rng.choice(previous) + "\n")
            dup += 1
            continue
        area = rng.choice((212, 305, 312, 415, 512, 617, 713, 832, 917))
        exchange = rng.randint(200, 999)
        if roll < 0.8:  # most lines of exported lists are bare digits
            line = f"{area}{exchange}{i % 10000:04d}"
        else:
            line = rng.choice(
                (f"({area}) {exchange}-{i % 10000:04d}", f"+1 {area} {exchange} {i % 10000:04d}")
            )
        if len(previous) < 1000:
            previous.append(line)
        out.write(line + "\n")
    return out.getvalue().encode(), bad, dup


def blacklist_import(n: int, baseline_n: int) -> dict:
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.db import connection, transaction
    from django_tenants.utils import tenant_context

    from accounts.actions import do_create_account, do_create_enterprise
    from campaigns.blacklist_import import run_blacklist_import
    from campaigns.blacklists import do_create_blacklist, do_set_blacklist_campaigns
    from campaigns.models import BlacklistEntry, BlacklistImport, DialState
    from devices.keys import DeviceKeyError, parse_phone_or_extension
    from tests import factories

    enterprise = do_create_enterprise(f"Bench blacklist {time.time_ns()}")
    account = do_create_account(enterprise, f"Bench blacklist {time.time_ns() % 100000}")
    data, bad, dup = _lines(n)
    print(f"blacklist: {n:,} lines ({len(data) / 1e6:.1f} MB)", file=sys.stderr)
    with tenant_context(account):
        # A running campaign whose list shares 5,000 numbers with the file: the import
        # must suppress them as it goes.
        shared = []
        for line in data.splitlines()[:20000]:
            try:
                shared.append(parse_phone_or_extension(line.decode(), "US").key)
            except DeviceKeyError:
                continue
        shared = sorted(set(shared))[:5000]
        people = [{"client_id": f"B{i}", "phones": [key]} for i, key in enumerate(shared)]
        sub = factories.sub_campaign(factories.contact_list(people))
        blacklist = do_create_blacklist(name="Bench import")
        do_set_blacklist_campaigns(blacklist, [sub.campaign])
        path = default_storage.save("bench/blacklist.txt", ContentFile(data))
        job = BlacklistImport.objects.create(
            blacklist=blacklist, file_name="bench.txt", upload_path=path, bytes_total=len(data)
        )
        started = time.perf_counter()
        job = run_blacklist_import(job.pk)
        seconds = time.perf_counter() - started
        suppressed = DialState.objects.filter(sub_campaign=sub, status="suppressed").count()
        entries = BlacklistEntry.objects.filter(blacklist=blacklist).count()
        print(
            f"blacklist: {job.added:,} added in {seconds:.1f}s "
            f"({job.lines_read / seconds:,.0f} lines/s); {suppressed:,} contacts suppressed",
            file=sys.stderr,
        )

        # Baseline: the ORM, one entry at a time, on a sample of the same lines.
        sample = data.splitlines()[:baseline_n]
        other = do_create_blacklist(name="Bench baseline")
        started = time.perf_counter()
        with transaction.atomic():
            for raw in sample:
                try:
                    device = parse_phone_or_extension(raw.decode(), "US")
                    kind, key = device.kind, device.key
                except DeviceKeyError:
                    continue
                BlacklistEntry.objects.get_or_create(
                    blacklist=other, device_key=key,
                    defaults={"kind": kind, "source": "import", "reason": ""},
                )  # fmt: skip
        baseline_seconds = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_total_relation_size('campaigns_blacklistentry')")
            table_bytes = cursor.fetchone()[0]
    rate = job.lines_read / seconds
    baseline_rate = len(sample) / baseline_seconds
    return {
        "blacklist_lines": job.lines_read,
        "blacklist_added": job.added,
        "blacklist_duplicates": job.duplicates,
        "blacklist_rejected": job.rejected,
        "blacklist_expected_rejected": bad,
        "blacklist_entries": entries,
        "blacklist_contacts_suppressed": suppressed,
        "blacklist_seconds": round(seconds, 2),
        "blacklist_entries_per_s": round(rate),
        "blacklist_table_mb": round(table_bytes / 1e6, 1),
        "blacklist_baseline": "ORM get_or_create per line, one transaction",
        "blacklist_baseline_lines": len(sample),
        "blacklist_baseline_entries_per_s": round(baseline_rate),
        "blacklist_speedup": round(rate / baseline_rate, 1),
        "blacklist_target_entries_per_s": 50_000,
        "blacklist_target_met": rate >= 50_000,
    }


if __name__ == "__main__":  # python bench/_blacklist_bench.py [N]: this part alone
    import json

    from _harness import django_on_bench_db

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with django_on_bench_db():
        print(json.dumps(blacklist_import(size, min(size, 20_000))))
