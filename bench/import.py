"""Bulk imports of number lists: one function per target, one JSON line for them all.

    python bench/import.py [--quick] [--only registry] [--numbers N] [--big N]

Targets (add one: a ``bench_<name>(args) -> dict`` function and a line in ``TARGETS``):

**registry** (issue 6, national registries). A US National DNC file of ``--numbers``
(default 1,000,000; ``--quick`` 100,000) 10-digit lines, shuffled, spread like the real
registry (each exchange NPA-NXX holds 1 to 800 of its 10,000 numbers, ~400 on average),
0.1% malformed lines, goes through the real import (``devices.registry.imports.run_import``:
parse, COPY into a new generation, switch, drop the old one). Measured: entries/s, parse
and write time, a second full snapshot over the first, add/remove files of 10,000 numbers,
the block table's size on disk, and lookups: one number (``is_listed``), 500 numbers in
one query (``listed``), and the policy gate's batch of 500 telemarketing requests against
the same batch as collections (which skips the registry rule).

Baselines in the same run: the obvious ORM code, row by row (``normalize_phone`` with
``phonenumbers``, then ``get_or_create`` into a row-per-number table with a unique index),
timed on a sample and extrapolated; the same row-per-number table filled by COPY, for its
size on disk; ``phonenumbers`` parsing alone, per line. Storage variants, same run, dense
data (50 to 4,950 numbers an exchange): blocks as plain uint16 arrays (up to 10 kB, so
TOASTed) with the default ``EXTENDED`` storage (compressed) and with ``EXTERNAL``
(uncompressed), against ours (array or bitmap, at most 1,250 bytes, inline).

Unless ``--quick``, ``--big`` numbers (default 15,000,000) are then loaded with
``bench/_registry_synthetic.load_synthetic`` (the bulk loader a policy benchmark can call), and the
load time, table size and lookup latency at that size recorded.

**blacklist** (issue 6, campaign blacklists): ``--numbers`` lines (default 1,000,000) of
US numbers, mostly bare digits, some formatted, malformed and repeated, through the real
blacklist import (parse, COPY per 50,000-line chunk, INSERT … ON CONFLICT, suppression of
a running campaign's matching contacts); baseline: ``get_or_create`` per line.

Targets: 15 M registry numbers load in minutes and answer the gate in microseconds a
number; a blacklist takes at least 50,000 entries/s.
Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import tempfile
import time

from _harness import django_on_bench_db, emit, machine, summary_ms

STARTED = time.monotonic()
BASELINE_ROWS = 5_000
PHONENUMBERS_SAMPLE = 20_000
LOOKUPS = 1_000
BATCH = 500


def log(message: str) -> None:
    print(f"[import {time.monotonic() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


# --- registry ---------------------------------------------------------------------------------


def us_numbers(count: int, rng: random.Random, seed: int = 6) -> list[int]:
    """``count`` distinct valid 10-digit US numbers, exchange by exchange (1 to 800 of each
    exchange's 10,000, ~400 on average, as the registry is where people live), in random
    order, as a merged download would be."""
    from _registry_synthetic import synthetic_prefixes

    numbers: list[int] = []
    for prefix in synthetic_prefixes("US", seed):
        if len(numbers) >= count:
            break
        take = min(rng.randint(1, 800), count - len(numbers))
        base = (prefix - 1_000_000) * 10_000
        numbers.extend(base + s for s in rng.sample(range(10_000), take))
    rng.shuffle(numbers)
    return numbers


def write_file(path: str, numbers: list[int]) -> int:
    """One number a line; every 1,000th line is malformed. Returns the malformed count."""
    bad = 0
    with open(path, "w", encoding="ascii") as out:
        for n, number in enumerate(numbers):
            if n % 1000 == 999:
                out.write(f"{number // 10}\n")  # nine digits
                bad += 1
            out.write(f"{number}\n")
    return bad


def _naive_model():
    """The row-per-number table the obvious design would use (scratch, bench only)."""
    from django.db import models

    class NaiveRegistryNumber(models.Model):
        registry_id = models.SmallIntegerField()
        device_key = models.CharField(max_length=16)

        class Meta:
            app_label = "devices"
            db_table = "bench_registry_number"
            constraints = [
                models.UniqueConstraint(
                    fields=["registry_id", "device_key"], name="bench_registry_number_unique"
                )
            ]

        def __str__(self) -> str:
            return self.device_key

    return NaiveRegistryNumber


def baseline_orm(model, registry_id: int, lines: list[str]) -> float:
    """The obvious import: normalise with phonenumbers, then get_or_create, line by line."""
    from devices.keys import DeviceKeyError, normalize_phone

    started = time.perf_counter()
    for line in lines:
        try:
            key = normalize_phone(line, "US")
        except DeviceKeyError:
            continue
        model.objects.get_or_create(registry_id=registry_id, device_key=key)
    return time.perf_counter() - started


def relation_bytes(table: str) -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE " + table)
        cursor.execute(
            "SELECT pg_relation_size(c.oid), pg_indexes_size(c.oid), "
            "COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) "
            "FROM pg_class c WHERE c.oid = %s::regclass",
            [table],
        )
        heap, indexes, toast = cursor.fetchone()
    return {"heap": heap, "indexes": indexes, "toast": toast, "total": heap + indexes + toast}


def free_keys(listed: set[str], count: int, rng: random.Random) -> list[str]:
    """Numbers not on the registry, in exchanges that are (the harder miss: a block is read)."""
    keys = sorted(listed)
    found: list[str] = []
    while len(found) < count:
        key = f"{rng.choice(keys)[:-4]}{rng.randrange(10_000):04d}"
        if key not in listed:
            found.append(key)
    return found


def measure_lookups(registry, listed: set[str], rng: random.Random) -> dict:
    from devices.registry.lookup import is_listed
    from devices.registry.lookup import listed as listed_pairs

    on = rng.sample(sorted(listed), LOOKUPS // 2)
    sample = [
        k for pair in zip(on, free_keys(listed, LOOKUPS // 2, rng), strict=True) for k in pair
    ]
    single = []
    for key in sample:
        started = time.perf_counter()
        found = is_listed(registry, key)
        single.append(time.perf_counter() - started)
        assert found == (key in listed), key
    batches = []
    for start in range(0, LOOKUPS, BATCH):
        pairs = [(registry.pk, k) for k in sample[start : start + BATCH]]
        for _ in range(5):
            began = time.perf_counter()
            hits = listed_pairs(pairs)
            batches.append(time.perf_counter() - began)
        assert len(hits) == BATCH // 2
    batch_ms = summary_ms(batches, f"batch{BATCH}")
    return {
        **summary_ms(single, "single_lookup"),
        **batch_ms,
        f"batch{BATCH}_us_per_number": round(batch_ms[f"batch{BATCH}_p50_ms"] * 1000 / BATCH, 1),
    }


def measure_gate(enterprise, listed: set[str], rng: random.Random) -> dict:
    """The whole gate for a batch of telemarketing requests (a quarter of them listed), and
    the part of it the registry rule costs (its one query and the block checks)."""
    from devices.policy import DialRequest, PolicyGate
    from devices.registry import lookup as module
    from devices.registry.lookup import registry_country

    on = rng.sample(sorted(listed), BATCH // 4)
    devices = on + free_keys(listed, BATCH - len(on), rng)
    requests = [DialRequest(1, 1, 1, "telemarketing", "voice", d) for d in devices]

    module._NANP_REGIONS.clear()  # the first batch pays for the region of each exchange
    whole, rule = [], []
    for _ in range(7):
        gate = PolicyGate(enterprise)
        began = time.perf_counter()
        decisions = gate.decide(requests)
        whole.append(time.perf_counter() - began)
        began = time.perf_counter()
        hits = gate._registry_hits(requests, {})
        rule.append(time.perf_counter() - began)
    # Only numbers whose region is the US are screened (not Canada's or the Caribbean's).
    screened = [d for d in on if registry_country(d) == "US"]
    assert sum(1 for d in decisions if d.rule == "national_registry") == len(screened)
    assert len(hits) == len(screened)
    rule_ms = summary_ms(rule, f"gate_registry_rule_batch{BATCH}")
    rule_ms[f"gate_registry_rule_batch{BATCH}_first_ms"] = round(rule[0] * 1000, 2)
    return {
        **summary_ms(whole, f"gate_batch{BATCH}"),
        **rule_ms,
        "gate_registry_rule_us_per_request": round(
            rule_ms[f"gate_registry_rule_batch{BATCH}_p50_ms"] * 1000 / BATCH, 1
        ),
    }


def storage_variants(rng: random.Random, numbers: int) -> dict:
    """Dense blocks three ways: ours (inline), uint16 arrays EXTENDED and EXTERNAL."""
    from django.db import connection

    from devices.registry.codec import block_contains, decode_block, encode_block

    blocks = {}
    slot = 0
    made = 0
    while made < numbers:
        take = min(rng.randint(50, 4950), numbers - made)
        blocks[1_200_200 + slot] = sorted(rng.sample(range(10_000), take))
        slot += 1
        made += take
    variants = {
        "hybrid_inline": ("PLAIN", lambda s: encode_block(s)),
        "array_extended": ("EXTENDED", lambda s: array_bytes(s)),
        "array_external": ("EXTERNAL", lambda s: array_bytes(s)),
    }
    prefixes = sorted(blocks)
    probes = [(p, rng.randrange(10_000)) for p in (rng.choice(prefixes) for _ in range(LOOKUPS))]
    out = {"variants_numbers": made, "variants_blocks": len(blocks)}
    for name, (storage, encode) in variants.items():
        table = f"bench_blocks_{name}"
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
            cursor.execute(
                f"CREATE TABLE {table} (prefix bigint PRIMARY KEY, suffixes bytea NOT NULL)"
            )
            cursor.execute(f"ALTER TABLE {table} ALTER COLUMN suffixes SET STORAGE {storage}")
            with cursor.cursor.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "bytea"])
                for prefix in prefixes:
                    copy.write_row((prefix, encode(blocks[prefix])))
        size = relation_bytes(table)
        contains = block_contains if name == "hybrid_inline" else array_contains
        single = []
        with connection.cursor() as cursor:
            for prefix, suffix in probes:
                began = time.perf_counter()
                cursor.execute(f"SELECT suffixes FROM {table} WHERE prefix = %s", [prefix])
                data = bytes(cursor.fetchone()[0])
                contains(data, suffix)
                single.append(time.perf_counter() - began)
            batch = []
            for start in range(0, LOOKUPS, BATCH):
                chunk = probes[start : start + BATCH]
                for _ in range(5):
                    began = time.perf_counter()
                    cursor.execute(
                        f"SELECT prefix, suffixes FROM {table} WHERE prefix = ANY(%s::bigint[])",
                        [sorted({p for p, _ in chunk})],
                    )
                    rows = {p: bytes(d) for p, d in cursor.fetchall()}
                    for p, s in chunk:
                        contains(rows[p], s)
                    batch.append(time.perf_counter() - began)
        out[name] = {
            "bytes_total": size["total"],
            "bytes_toast": size["toast"],
            **summary_ms(single, "single"),
            **summary_ms(batch, f"batch{BATCH}"),
        }
        assert decode_block(encode_block(blocks[prefixes[0]])) == blocks[prefixes[0]]
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {table}")
    return out


def array_bytes(suffixes: list[int]) -> bytes:
    from array import array

    return array("H", suffixes).tobytes()


def array_contains(data: bytes, suffix: int) -> bool:
    import bisect

    values = memoryview(data).cast("H")
    i = bisect.bisect_left(values, suffix)
    return i < len(values) and values[i] == suffix


def bench_registry(args) -> dict:
    from _registry_synthetic import load_synthetic, table_bytes
    from django.db import connection

    from accounts.actions import do_create_enterprise
    from devices.keys import DeviceKeyError, normalize_phone
    from devices.models import Registry, RegistryImport
    from devices.registry.imports import do_create_path_import, run_import
    from devices.registry.parsing import SCHEMES, ParseResult, parse_lines

    rng = random.Random(6)
    count = args.numbers or (100_000 if args.quick else 1_000_000)
    registry = Registry.objects.get(country="US")
    enterprise = do_create_enterprise("Bench Registry", default_region="US")
    out: dict = {"numbers": count}
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as folder:
        numbers = us_numbers(count, rng)
        path = os.path.join(folder, "dnc-full.txt")
        bad = write_file(path, numbers)
        out["file_mb"] = round(os.path.getsize(path) / 1024 / 1024, 1)
        log(f"{count:,} numbers written ({out['file_mb']} MB)")

        # The real import, as the Celery task runs it.
        job = do_create_path_import(registry, RegistryImport.Kind.FULL, [path])
        outcome = run_import(job.pk)
        assert outcome.status == "ready", outcome.error
        assert (outcome.accepted, outcome.rejected) == (count, bad), outcome
        registry.refresh_from_db()
        assert registry.size == count
        out.update(
            import_seconds=round(outcome.seconds, 2),
            import_parse_seconds=round(outcome.parse_seconds, 2),
            import_write_seconds=round(outcome.write_seconds, 2),
            entries_per_s=round(count / outcome.seconds),
            rejected_lines=outcome.rejected,
        )
        log(f"imported in {outcome.seconds:.1f} s ({out['entries_per_s']:,}/s)")
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE devices_registryblock")
        fresh = table_bytes()
        out.update(
            fresh_table_bytes=fresh["total"],
            fresh_table_bytes_per_number=round(fresh["total"] / count, 2),
        )

        # A second snapshot over the first: the old generation is deleted in the switch.
        again = do_create_path_import(registry, RegistryImport.Kind.FULL, [path])
        outcome = run_import(again.pk)
        out["replace_seconds"] = round(outcome.seconds, 2)
        out["replace_write_seconds"] = round(outcome.write_seconds, 2)

        # Incremental files of 10,000 numbers.
        extra = sorted(set(us_numbers(count + 20_000, random.Random(6))) - set(numbers))[:10_000]
        for kind, chosen in (("add", extra), ("remove", numbers[:10_000])):
            change = os.path.join(folder, f"dnc-{kind}.txt")
            with open(change, "w") as fh:
                fh.writelines(f"{n}\n" for n in chosen)
            job = do_create_path_import(registry, kind, [change])
            outcome = run_import(job.pk)
            assert outcome.status == "ready", outcome.error
            out[f"{kind}_10k_seconds"] = round(outcome.seconds, 2)
        registry.refresh_from_db()
        out["size_after_changes"] = registry.size

        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE devices_registryblock")
            cursor.execute(
                "SELECT count(*), sum(count), sum(length(suffixes)), "
                "count(*) FILTER (WHERE length(suffixes) = 1250) FROM devices_registryblock"
            )
            blocks, stored, payload, bitmaps = cursor.fetchone()
        size = table_bytes()
        out.update(
            blocks=blocks,
            bitmap_blocks=bitmaps,
            payload_bytes=int(payload),
            table_bytes=size["total"],
            table_heap_bytes=size["heap"],
            table_index_bytes=size["indexes"],
            table_toast_bytes=size["toast"],
            table_bytes_per_number=round(size["total"] / int(stored), 2),
        )
        log(f"table {size['total'] / 1e6:.1f} MB for {stored:,} numbers")

        current = {f"+1{n}" for n in [*numbers[10_000:], *extra]}
        out.update(measure_lookups(registry, current, rng))
        out.update(measure_gate(enterprise, current, rng))
        log("lookups and gate measured")

        # Baselines: the obvious ORM import, row by row; a row-per-number table's size.
        model = _naive_model()
        with connection.schema_editor() as editor:
            editor.create_model(model)
        sample = [str(n) for n in numbers[: min(BASELINE_ROWS, count)]]
        seconds = baseline_orm(model, registry.pk, sample)
        rate = len(sample) / seconds
        out.update(
            baseline="ORM row by row: normalize_phone (phonenumbers) + get_or_create",
            baseline_sample=len(sample),
            baseline_entries_per_s=round(rate),
            baseline_seconds_extrapolated=round(count / rate),
            speedup=round(out["entries_per_s"] / rate, 1),
        )
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE bench_registry_number")
            with cursor.cursor.copy(
                "COPY bench_registry_number (registry_id, device_key) FROM STDIN"
            ) as copy:
                for key in [f"+1{n}" for n in numbers]:
                    copy.write_row((registry.pk, key))
        naive = relation_bytes("bench_registry_number")
        out.update(
            baseline_table_bytes=naive["total"],
            baseline_table_bytes_per_number=round(naive["total"] / count, 2),
        )
        with connection.schema_editor() as editor:
            editor.delete_model(model)
        log(f"baseline {rate:,.0f}/s; row-per-number table {naive['total'] / 1e6:.0f} MB")

        # Parsing alone: our structural check against phonenumbers, per line.
        lines = [str(n) for n in numbers[:PHONENUMBERS_SAMPLE]]
        began = time.perf_counter()
        for line in lines:
            with contextlib.suppress(DeviceKeyError):
                normalize_phone(line, "US")
        out["phonenumbers_us_per_line"] = round((time.perf_counter() - began) * 1e6 / len(lines), 2)
        with open(path, "rb") as fh:
            began = time.perf_counter()
            parse_lines(fh, SCHEMES["US"], ParseResult())
        out["structural_parse_us_per_line"] = round(
            (time.perf_counter() - began) * 1e6 / (count + bad), 2
        )

    out["storage_variants"] = storage_variants(rng, count)
    log("storage variants measured")

    if not args.quick and args.big:
        with connection.cursor() as cursor:  # sizes of the big load alone
            cursor.execute("VACUUM FULL devices_registryblock")
        loaded = load_synthetic("US", args.big, seed=15)
        registry.refresh_from_db()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE devices_registryblock")
        size = table_bytes()
        out["big"] = {
            "numbers": registry.size,
            "load_seconds": round(loaded["seconds"], 1),
            "load_numbers_per_s": round(registry.size / loaded["seconds"]),
            "table_bytes": size["total"],
            "table_heap_bytes": size["heap"],
            "table_index_bytes": size["indexes"],
            "table_toast_bytes": size["toast"],
            "table_bytes_per_number": round(size["total"] / registry.size, 2),
        }
        log(f"{registry.size:,} synthetic numbers loaded in {loaded['seconds']:.0f} s")
        big_keys = sample_synthetic_keys(registry)
        out["big"].update(measure_lookups(registry, big_keys, rng))
        out["big"].update(measure_gate(enterprise, big_keys, rng))
    return out


def sample_synthetic_keys(registry, count: int = 2_000) -> set[str]:
    """Every number of ``count`` random blocks: enough to sample hits and known misses."""
    from django.db import connection

    from devices.registry.codec import decode_block

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT prefix, suffixes FROM devices_registryblock WHERE registry_id = %s "
            "AND generation = %s ORDER BY random() LIMIT %s",
            [registry.pk, registry.generation, count],
        )
        rows = cursor.fetchall()
    return {f"+{prefix}{s:04d}" for prefix, data in rows for s in decode_block(bytes(data))}


def bench_blacklist(args) -> dict:
    """Campaign blacklist import (see _blacklist_bench.py): --numbers lines (default
    1,000,000; --quick 100,000) through the real Celery-task code, in process, against the
    ORM row by row on a 20,000-line sample."""
    from _blacklist_bench import blacklist_import

    size = args.numbers or (100_000 if args.quick else 1_000_000)
    return blacklist_import(size, min(size, 5_000 if args.quick else 20_000))


TARGETS = {
    "registry": bench_registry,
    "blacklist": bench_blacklist,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="100,000 numbers, no big load")
    parser.add_argument("--only", choices=sorted(TARGETS), action="append")
    parser.add_argument("--numbers", type=int, default=None, help="registry file size")
    parser.add_argument("--big", type=int, default=15_000_000, help="synthetic load (0: skip)")
    args = parser.parse_args()
    results: dict = {"bench": "import", "quick": args.quick}
    # Other work on the same cores moves every figure: say how busy the machine was.
    results["load_average_before"] = round(os.getloadavg()[0], 2)
    with django_on_bench_db():
        for name in args.only or list(TARGETS):
            log(f"target {name}")
            results[name] = TARGETS[name](args)
    results["load_average_after"] = round(os.getloadavg()[0], 2)
    results.update(machine())
    emit(results)


if __name__ == "__main__":
    main()
