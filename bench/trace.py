"""Contact Trace at scale: the shared ledger's indexed lookup vs a UNION ALL over account schemas.

    python bench/trace.py [--quick] [--rows N] [--accounts N] [--lookups N] [--union-lookups N]

Builds the attempt ledger (``public.devices_attempt``, the real partitioned table and
indexes of migration devices 0001) in stages: 1 M rows, measure, grow to 10 M rows,
measure again (``--quick``: 100 k then 1 M rows), across 1,000 accounts (``--quick``: 200)
of two enterprises (90% of the accounts and rows in the first). Rows spread over the 12
months of retention plus the days before it in the oldest partition; about 4 attempts
per device (a hot 1% of devices gets 10% of the rows, ~40 each); voice, SMS and email;
client IDs shared by two devices. Every stage adds new devices, so rows per device stay
the same and the growth factors measure the table growing, not the answers.

Per stage, for hits (keys sampled from the ledger) and misses (well-formed keys never
written), by phone and by client ID, in the first enterprise:

* query: ``devices.trace.trace_attempts(...)``, the first page (50) evaluated plus
  ``.count()``, as the page shows them;
* page: the search POSTed to ``/enterprises/<id>/devices/`` and its results opened at the
  opaque URL it redirects to, through Django's test client as an enterprise admin
  (middleware, session, view, template), server-side: both requests timed;
* baseline, same data, same run: what per-account storage would need, one SQL statement
  with a UNION ALL over every account schema of the enterprise (each schema holds its
  account's rows in ``<schema>.attempt_copy`` indexed on (device_key, attempted_at DESC)
  and (client_id, attempted_at DESC)), page plus count, through the same connection.

Loading drops the ledger's indexes, inserts with ``INSERT ... SELECT generate_series`` and
re-creates the indexes from the definitions read from the catalogue before the drop (the
script checks they come back identical), then VACUUM ANALYZE, as autovacuum would on an
insert-mostly table. Freshly built indexes are denser than ones grown by inserts.

Targets (issue: contact trace) at 10 M rows: query p95 under 10 ms, page p95 under 50 ms
server-side, less than 2x growth of the query p95 from 1 M to 10 M rows. Prints one JSON
line last: the largest stage at the top level, every stage under ``stages``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import time

from _harness import ROOT, django_on_bench_db, emit, machine, summary_ms

PAGE = 50
ROWS_PER_DEVICE = 4
HOT_SHARE = 0.1  # of rows, on ...
HOT_DEVICES = 0.01  # ... of devices
FIRST_ENTERPRISE_SHARE = 0.9
CHUNK_ROWS = 1_000_000
# Houston area codes; 8,000,000 valid lines each (NXX 200-999), 4 keys per device slot.
AREA_CODES = [713, 832, 281, 346, 214, 469, 972, 682]
TARGET_QUERY_P95_MS = 10.0
TARGET_PAGE_P95_MS = 50.0
TARGET_GROWTH = 2.0
KINDS = [  # (label, TraceQuery kind, hit?)
    ("hit_phone", "device", True),
    ("miss_phone", "device", False),
    ("hit_client", "client_id", True),
    ("miss_client", "client_id", False),
]

STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"[trace {time.monotonic() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def phone_key(slot: int) -> str:
    """The E.164 key of device slot ``slot``; the SQL below writes the same for 4 * device."""
    area, line = divmod(slot, 8_000_000)
    return f"+1{AREA_CODES[area]}{2_000_000 + line}"


PHONE_SQL = (
    "'+1' || (ARRAY{areas})[1 + ({slot}) / 8000000] || (2000000 + ({slot}) %% 8000000)"
).format(areas=AREA_CODES, slot="t.dev * 4")

LOAD_SQL = f"""
INSERT INTO public.devices_attempt (attempted_at, enterprise_id, account_id, account_name,
    campaign_id, campaign_name, sub_campaign_id, sub_campaign_name, contact_id, dial_state_id,
    attempt_number, client_id, device_key, channel, direction, disposition, completed_at,
    call_seconds, node, recording_state, recording_file, message, carrier_code,
    source_address, source_type, suppression_rule, suppression_detail)
SELECT t.at, a.enterprise_id, a.account_id, a.name,
    a.account_id * 10 + t.camp, 'Campaign ' || t.camp,
    a.account_id * 100 + t.camp * 10 + t.sub, 'Wave ' || t.sub,
    t.dev, t.g, 1 + t.g %% 7,
    CASE WHEN t.r_client < 0.05 THEN '' ELSE 'C' || (t.dev / 2) END,
    CASE WHEN t.channel = 'email' THEN 'p' || t.dev || '@example.com' ELSE {PHONE_SQL} END,
    t.channel, t.direction, t.disposition,
    CASE WHEN t.disposition NOT IN ('PENDING', 'SUPPRESSED')
         THEN t.at + make_interval(secs => t.secs + 5) END,
    CASE WHEN t.disposition = 'ANSWERED' THEN t.secs ELSE 0 END,
    CASE WHEN t.channel = 'voice' AND t.disposition <> 'SUPPRESSED'
         THEN 'node-' || (t.g %% 4) ELSE '' END,
    CASE WHEN t.disposition = 'ANSWERED' AND t.channel = 'voice' THEN 'stored' ELSE 'none' END,
    CASE WHEN t.disposition = 'ANSWERED' AND t.channel = 'voice'
         THEN 'recordings/' || a.account_id || '/' || t.g || '.wav' ELSE '' END,
    CASE WHEN t.channel = 'sms' AND t.direction = 'inbound' THEN 'STOP'
         WHEN t.channel = 'sms' THEN 'Hi, a reminder about your account. Reply STOP to opt out.'
         ELSE '' END,
    CASE WHEN t.channel = 'sms' THEN '00' || (t.g %% 8) ELSE '' END,
    CASE WHEN t.channel = 'sms' THEN '55123' ELSE '' END,
    CASE WHEN t.channel = 'sms' THEN 'short_code' ELSE '' END,
    CASE WHEN t.disposition = 'SUPPRESSED' THEN (ARRAY['enterprise_block', 'campaign_blacklist',
         'national_registry', 'attempt_cap'])[1 + t.g %% 4] ELSE '' END,
    ''
FROM (
    SELECT s.*,
        CASE WHEN s.channel = 'sms' AND s.r_dir < 0.1 THEN 'inbound' ELSE 'outbound' END
            AS direction,
        CASE WHEN s.channel = 'sms' AND s.r_dir < 0.1 THEN 'RECEIVED'
             WHEN s.r_disp < 0.08 THEN 'SUPPRESSED'
             WHEN s.channel = 'voice' THEN (ARRAY['ANSWERED', 'ANSWERED', 'NO_ANSWER',
                 'NO_ANSWER', 'BUSY', 'VOICEMAIL', 'VOICEMAIL', 'FAILED', 'ABANDONED',
                 'PENDING'])[1 + floor(s.r_disp * 1000)::int %% 10]
             ELSE (ARRAY['DELIVERED', 'DELIVERED', 'DELIVERED', 'DELIVERED', 'DELIVERED',
                 'DELIVERED', 'SENT', 'UNDELIVERED', 'UNDELIVERED', 'FAILED'])
                 [1 + floor(s.r_disp * 1000)::int %% 10] END AS disposition
    FROM (
        SELECT r.g, r.r_client, r.r_dir, r.r_disp,
            floor(r.r_account * %(accounts)s)::int AS account_idx,
            floor(random() * 5)::int AS camp, floor(random() * 3)::int AS sub,
            (10 + floor(random() * 290))::int AS secs,
            %(dev_lo)s::bigint + CASE WHEN r.r_hot < %(hot_share)s
                THEN floor(r.r_dev * %(hot)s)::bigint
                ELSE floor(r.r_dev * %(span)s)::bigint END AS dev,
            CASE WHEN r.r_channel < 0.6 THEN 'voice' WHEN r.r_channel < 0.9 THEN 'sms'
                 ELSE 'email' END AS channel,
            %(ts_lo)s::timestamptz + (%(ts_hi)s::timestamptz - %(ts_lo)s::timestamptz) * r.r_at
                AS at
        FROM (
            SELECT g, random() AS r_account, random() AS r_hot, random() AS r_dev,
                random() AS r_channel, random() AS r_dir, random() AS r_disp,
                random() AS r_client, random() AS r_at
            FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS g
        ) r
    ) s
) t
JOIN bench.account_map a ON a.idx = t.account_idx
"""

COPY_COLUMNS = (
    "id, attempted_at, account_id, account_name, campaign_name, sub_campaign_name, client_id, "
    "device_key, channel, direction, disposition, completed_at, call_seconds, recording_state, "
    "carrier_code, source_address, suppression_rule"
)
COPY_INDEXES = [
    "CREATE INDEX bench_copy_device ON bench.attempt_copy (device_key, attempted_at DESC)",
    "CREATE INDEX bench_copy_client ON bench.attempt_copy (client_id, attempted_at DESC)",
]


def execute(sql: str, params=None) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def fetch(sql: str, params=None) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# --- Set-up ----------------------------------------------------------------------------


def create_accounts(count: int) -> dict:
    """Two enterprises, ``count`` accounts (rows only: no schema cloned), an admin user."""
    from accounts.actions import do_add_membership, do_create_enterprise
    from accounts.models import Account, Domain, Role, User

    first = do_create_enterprise("Bench Trace Enterprise")
    second = do_create_enterprise("Bench Other Enterprise")
    in_first = round(count * FIRST_ENTERPRISE_SHARE)
    accounts = Account.objects.bulk_create(
        [
            Account(
                enterprise=first if n < in_first else second,
                name=f"Bench account {n:04d}",
                slug=f"bench-{n:04d}",
                schema_name=f"acct_bench_{n:04d}",
            )
            for n in range(count)
        ],
        batch_size=1000,
    )
    Domain.objects.bulk_create(
        [Domain(domain=a.slug, tenant=a, is_primary=True) for a in accounts], batch_size=1000
    )
    user = User.objects.create_user("trace-admin@bench.example", full_name="Trace Admin")
    do_add_membership(user, first, Role.ENTERPRISE_ADMIN)

    execute("CREATE SCHEMA bench")
    execute(
        "CREATE TABLE bench.account_map (idx int PRIMARY KEY, account_id bigint NOT NULL,"
        " enterprise_id bigint NOT NULL, name text NOT NULL)"
    )
    execute(
        "INSERT INTO bench.account_map SELECT * FROM unnest(%s::int[], %s::bigint[],"
        " %s::bigint[], %s::text[])",
        [
            list(range(count)),
            [a.pk for a in accounts],
            [a.enterprise_id for a in accounts],
            [a.name for a in accounts],
        ],
    )
    execute("ANALYZE bench.account_map")
    # Per-account storage for the baseline: one table per account schema. They are
    # partitions of bench.attempt_copy only so that one INSERT fills them all; the
    # baseline names each schema's table directly, as per-schema code would.
    columns = fetch(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'public.devices_attempt'::regclass AND attnum > 0"
        " AND NOT attisdropped ORDER BY attnum"
    )
    types = dict(columns)
    definitions = [
        f"{name} {types[name]}" + ("" if name == "completed_at" else " NOT NULL")
        for name in (column.strip() for column in COPY_COLUMNS.split(","))
    ]
    execute(f"CREATE TABLE bench.attempt_copy ({', '.join(definitions)})"
            " PARTITION BY LIST (account_id)")  # fmt: skip
    for account in accounts:
        execute(f'CREATE SCHEMA "{account.schema_name}"')
        execute(
            f'CREATE TABLE "{account.schema_name}".attempt_copy PARTITION OF bench.attempt_copy'
            f" FOR VALUES IN ({int(account.pk)})"
        )
    return {"first": first, "second": second, "accounts": accounts, "user": user}


def ledger_indexes() -> list[tuple[str, str, bool]]:
    """(name, definition, is primary key) of the ledger's own indexes, from the catalogue."""
    rows = fetch(
        """
        SELECT c.relname,
               coalesce(pg_get_constraintdef(con.oid), pg_get_indexdef(i.indexrelid)),
               con.oid IS NOT NULL
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype = 'p'
        WHERE i.indrelid = 'public.devices_attempt'::regclass
        ORDER BY c.relname
        """
    )
    return [(name, definition, bool(primary)) for name, definition, primary in rows]


def drop_ledger_indexes(indexes) -> None:
    for name, _definition, primary in indexes:
        if primary:
            execute(f'ALTER TABLE public.devices_attempt DROP CONSTRAINT "{name}"')
        else:
            execute(f'DROP INDEX public."{name}"')


def create_ledger_indexes(indexes) -> None:
    execute("SET maintenance_work_mem = '1GB'")
    for name, definition, primary in indexes:
        if primary:
            execute(f'ALTER TABLE public.devices_attempt ADD CONSTRAINT "{name}" {definition}')
        else:
            # The catalogue says ON ONLY for a partitioned index; built that way it would
            # stay invalid with no index on any partition.
            execute(definition.replace(" ON ONLY ", " ON ", 1))
    execute("RESET maintenance_work_mem")
    if ledger_indexes() != indexes:
        raise RuntimeError(f"ledger indexes differ after the rebuild: {ledger_indexes()}")
    (bad,) = fetch(
        """
        SELECT count(*) FROM pg_inherits p
        JOIN pg_index i ON i.indrelid IN (p.inhrelid, p.inhparent)
        WHERE p.inhparent = 'public.devices_attempt'::regclass AND NOT i.indisvalid
        """
    )[0]
    per_partition = fetch(
        """
        SELECT count(i.indexrelid) FROM pg_inherits p
        LEFT JOIN pg_index i ON i.indrelid = p.inhrelid
        WHERE p.inhparent = 'public.devices_attempt'::regclass GROUP BY p.inhrelid
        """
    )
    if bad or {count for (count,) in per_partition} != {len(indexes)}:
        raise RuntimeError(f"ledger indexes incomplete: {bad} invalid, {per_partition}")


def load_stage(first_row: int, last_row: int, dev_lo: int, dev_hi: int, accounts: int,
               ts_lo: dt.datetime, ts_hi: dt.datetime, indexes) -> dict:  # fmt: skip
    """Rows [first_row, last_row) onto devices [dev_lo, dev_hi); then indexes, vacuum, copies."""
    timings = {}
    started = time.perf_counter()
    drop_ledger_indexes(indexes)
    for lo in range(first_row, last_row, CHUNK_ROWS):
        hi = min(last_row, lo + CHUNK_ROWS)
        execute("SELECT setseed(%s)", [((lo // CHUNK_ROWS) % 1000) / 1000])
        execute(
            LOAD_SQL,
            {
                "lo": lo, "hi": hi, "accounts": accounts, "dev_lo": dev_lo,
                "span": dev_hi - dev_lo, "hot": max(1, round((dev_hi - dev_lo) * HOT_DEVICES)),
                "hot_share": HOT_SHARE, "ts_lo": ts_lo, "ts_hi": ts_hi,
            },
        )  # fmt: skip
        log(f"ledger rows {hi:,} inserted")
    timings["insert_s"] = time.perf_counter() - started
    started = time.perf_counter()
    create_ledger_indexes(indexes)
    timings["index_s"] = time.perf_counter() - started
    log(f"ledger indexes rebuilt in {timings['index_s']:.1f} s")
    started = time.perf_counter()
    execute("VACUUM (ANALYZE) public.devices_attempt")
    timings["vacuum_s"] = time.perf_counter() - started
    log(f"ledger vacuumed and analysed in {timings['vacuum_s']:.1f} s")

    # The same rows into each account's own table, for the baseline.
    started = time.perf_counter()
    for index in ("bench_copy_device", "bench_copy_client"):
        execute(f"DROP INDEX IF EXISTS bench.{index}")
    execute(
        f"INSERT INTO bench.attempt_copy ({COPY_COLUMNS}) SELECT {COPY_COLUMNS}"
        " FROM public.devices_attempt WHERE id > coalesce((SELECT max(id) FROM bench.attempt_copy),"
        " 0)"
    )
    execute("SET maintenance_work_mem = '256MB'")
    for statement in COPY_INDEXES:
        execute(statement)
    execute("RESET maintenance_work_mem")
    execute("VACUUM (ANALYZE) bench.attempt_copy")
    timings["copies_s"] = time.perf_counter() - started
    log(f"per-schema copies loaded, indexed and vacuumed in {timings['copies_s']:.1f} s")
    return {key: round(value, 1) for key, value in timings.items()}


# --- Measuring -----------------------------------------------------------------------------


def sample_keys(enterprise_id: int, rows: int, count: int, dev_final: int,
                rng: random.Random) -> dict[str, list[str]]:  # fmt: skip
    """Hits sampled from the ledger (weighted by attempts); misses never written."""
    from devices.ledger import retention_start

    pct = min(100.0, max(0.01, 40_000 / rows * 100))
    found = fetch(
        "SELECT device_key, client_id FROM public.devices_attempt TABLESAMPLE SYSTEM (%s)"
        " REPEATABLE (7) WHERE enterprise_id = %s AND attempted_at >= %s",
        [pct, enterprise_id, retention_start()],
    )
    phones = sorted({key for key, _ in found if key.startswith("+")})
    clients = sorted({client for _, client in found if client})
    return {
        "hit_phone": rng.sample(phones, min(count, len(phones))),
        "hit_client": rng.sample(clients, min(count, len(clients))),
        # Device slots 4n + 2 sit between written keys (4n) in the index.
        "miss_phone": [phone_key(4 * rng.randrange(dev_final) + 2) for _ in range(count)],
        "miss_client": [f"C{dev_final + rng.randrange(dev_final)}" for _ in range(count)],
    }


def time_query(enterprise_id: int, kind: str, keys: list[str]) -> tuple[list[float], list[int]]:
    from devices.trace import TraceQuery, trace_attempts

    times, totals = [], []
    for key in keys:
        started = time.perf_counter()
        attempts = trace_attempts(enterprise_id, TraceQuery(kind, key))
        page = list(attempts[:PAGE])
        total = attempts.count()
        times.append(time.perf_counter() - started)
        totals.append(total)
        assert len(page) == min(PAGE, total)
    return times, totals


def page_client(enterprise, user):
    """A logged-in test client, or the reason the trace page cannot be measured."""
    from django.conf import settings
    from django.test import Client
    from django.urls import Resolver404, resolve

    path = f"/enterprises/{enterprise.pk}/devices/"
    try:
        resolve(path, urlconf=settings.PUBLIC_SCHEMA_URLCONF)
    except Resolver404:
        return None, path, "page_not_available"
    client = Client()
    client.force_login(user)
    return client, path, None


def time_page(client, path: str, kind: str, keys: list[str]) -> tuple[list[float], list[int]]:
    times, sizes = [], []
    for key in keys:
        started = time.perf_counter()
        posted = client.post(path, {"criteria": kind, "value": key})
        if posted.status_code != 303:
            raise RuntimeError(f"POST {path} {kind}={key}: HTTP {posted.status_code}")
        response = client.get(posted["Location"])
        times.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"GET {posted['Location']}: HTTP {response.status_code}")
        sizes.append(len(response.content))
    return times, sizes


def union_sql(schemas: list[str], column: str) -> tuple[str, str]:
    """Page and count for one key over every account schema: the per-schema alternative."""
    branches = " UNION ALL ".join(
        f'SELECT {COPY_COLUMNS} FROM "{schema}".attempt_copy'
        f" WHERE {column} = %(key)s AND attempted_at >= %(since)s"
        for schema in schemas
    )
    page = f"SELECT * FROM ({branches}) u ORDER BY attempted_at DESC, id DESC LIMIT {PAGE}"
    count = f"SELECT count(*) FROM ({branches}) u"
    return page, count


def time_union(sql: tuple[str, str], keys: list[str]) -> tuple[list[float], list[int]]:
    from django.db import connection

    from devices.ledger import retention_start

    page_sql, count_sql = sql
    times, totals = [], []
    with connection.cursor() as cursor:
        for key in keys:
            started = time.perf_counter()
            params = {"key": key, "since": retention_start()}
            cursor.execute(page_sql, params)
            page = cursor.fetchall()
            cursor.execute(count_sql, params)
            (total,) = cursor.fetchone()
            times.append(time.perf_counter() - started)
            totals.append(total)
            assert len(page) == min(PAGE, total)
    return times, totals


def explain(enterprise_id: int, kind: str, key: str, label: str) -> dict[str, float]:
    """The real query's plans (page and count) for one key on stderr; their server times."""
    from django.db import connection

    from devices.trace import TraceQuery, trace_attempts

    attempts = trace_attempts(enterprise_id, TraceQuery(kind, key))
    page_plan = attempts[:PAGE].explain(analyze=True, buffers=True)
    log(f"EXPLAIN page, {kind}={key}:\n{page_plan}")
    sql, params = attempts.order_by().query.get_compiler(connection=connection).as_sql()
    count_sql = "SELECT count(*) FROM (" + sql + ") q"
    count_plan = "\n".join(
        row[0] for row in fetch("EXPLAIN (ANALYZE, BUFFERS) " + count_sql, params)
    )
    log(f"EXPLAIN count, {kind}={key}:\n{count_plan}")
    times = {}
    for part, plan in (("page", page_plan), ("count", count_plan)):
        for line in plan.splitlines():
            for phase in ("Planning", "Execution"):
                if line.startswith(f"{phase} Time:"):
                    value = float(line.split(":")[1].split()[0])
                    times[f"explain_{label}_{part}_{phase.lower()}_ms"] = round(value, 2)
    return times


def measure_stage(env: dict, rows: int, dev_final: int, lookups: int, union_lookups: int,
                  seed: int) -> dict:  # fmt: skip
    first = env["first"]
    rng = random.Random(seed)
    keys = sample_keys(first.pk, rows, lookups, dev_final, rng)
    schemas = [a.schema_name for a in env["accounts"] if a.enterprise_id == first.pk]
    result: dict[str, object] = {
        "rows": fetch("SELECT count(*) FROM public.devices_attempt")[0][0],
        "accounts": len(env["accounts"]),
        "first_enterprise_rows": fetch(
            "SELECT count(*) FROM public.devices_attempt WHERE enterprise_id = %s", [first.pk]
        )[0][0],
        "union_all_schemas": len(schemas),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }

    # Warm-up, untimed: connection, imports, plan shapes.
    for label, kind, _hit in KINDS:
        time_query(first.pk, kind, keys[label][:10])
    found = {}
    for label, kind, hit in KINDS:
        times, totals = time_query(first.pk, kind, keys[label])
        found[label] = dict(zip(keys[label], totals, strict=True))
        result.update(summary_ms(times, f"query_{label}"))
        if hit:
            result[f"{label}_attempts_p50"] = statistics.median(totals)
            result[f"{label}_attempts_max"] = max(totals)
            result[f"{label}_over_one_page"] = sum(t > PAGE for t in totals)
        else:
            assert not any(totals), f"{label}: a miss found attempts"
    log(
        "query p95 ms: "
        + ", ".join(f"{label} {result[f'query_{label}_p95_ms']}" for label, _k, _h in KINDS)
    )

    client, path, missing = page_client(first, env["user"])
    if missing:
        result["page_not_available"] = True
        log(f"{path} does not resolve: page not measured")
    else:
        for label, kind, _hit in KINDS:
            time_page(client, path, kind, keys[label][:5])
        for label, kind, _hit in KINDS:
            times, sizes = time_page(client, path, kind, keys[label])
            result.update(summary_ms(times, f"page_{label}"))
            result[f"page_{label}_bytes_p50"] = int(statistics.median(sizes))
        log(
            "page p95 ms: "
            + ", ".join(f"{label} {result[f'page_{label}_p95_ms']}" for label, _k, _h in KINDS)
        )

    statements = {"device": union_sql(schemas, "device_key"), "client_id": union_sql(
        schemas, "client_id")}  # fmt: skip
    for label, kind, _hit in KINDS:
        time_union(statements[kind], keys[label][:2])  # warm-up
    for label, kind, _hit in KINDS:
        sample = keys[label][:union_lookups]
        times, totals = time_union(statements[kind], sample)
        expected = [found[label][key] for key in sample]
        if totals != expected:
            raise RuntimeError(f"baseline and trace disagree for {label}: {totals} {expected}")
        result.update(summary_ms(times, f"union_all_{label}"))
    result["union_all_lookups_per_kind"] = union_lookups
    from devices.ledger import retention_start

    params = {"key": keys["hit_phone"][0], "since": retention_start()}
    for part, sql in zip(("page", "count"), statements["device"], strict=True):
        plan = [row[0] for row in fetch("EXPLAIN (ANALYZE) " + sql, params)]
        for line in plan[-2:]:
            phase, value = line.split(" Time: ")
            key = f"explain_union_all_hit_phone_{part}_{phase.lower()}_ms"
            result[key] = round(float(value.split()[0]), 2)
    log(
        "UNION ALL p95 ms: "
        + ", ".join(f"{label} {result[f'union_all_{label}_p95_ms']}" for label, _k, _h in KINDS)
    )

    # Plans for the hit with the most attempts, by phone and by client ID.
    for label, kind in (("hit_phone", "device"), ("hit_client", "client_id")):
        heaviest = max(found[label], key=found[label].get)
        result.update(explain(first.pk, kind, heaviest, label))
    result["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    result["ledger_size_mb"] = round(
        fetch(
            "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits"
            " WHERE inhparent = 'public.devices_attempt'::regclass"
        )[0][0]
        / 2**20
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="100 k then 1 M rows, 200 accounts")
    parser.add_argument("--rows", type=int, default=None, help="rows of the last stage")
    parser.add_argument("--accounts", type=int, default=None)
    parser.add_argument("--lookups", type=int, default=200, help="per kind, query and page")
    parser.add_argument("--union-lookups", type=int, default=30, help="per kind, baseline")
    args = parser.parse_args()
    final_rows = args.rows or (1_000_000 if args.quick else 10_000_000)
    stages = [final_rows // 10, final_rows]
    accounts = args.accounts or (200 if args.quick else 1000)
    dev_final = final_rows // ROWS_PER_DEVICE
    if dev_final * 4 > len(AREA_CODES) * 8_000_000:
        parser.error("too many rows for the phone numbering")

    # The test client's requests come from "testserver".
    hosts = os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1")
    if "testserver" not in hosts.split(","):
        os.environ["ALLOWED_HOSTS"] = hosts + ",testserver"

    with django_on_bench_db():
        from django.utils import timezone

        from devices.ledger import add_months, ensure_partitions, month_start

        now = timezone.now()
        # The oldest partition kept: its first days are older than retention, as in real life.
        ts_lo = dt.datetime.combine(
            add_months(month_start(now.date()), -12), dt.time(), tzinfo=dt.UTC
        )
        ensure_partitions()
        env = create_accounts(accounts)
        log(f"{accounts} accounts (no schema clone) and their copy tables created")
        indexes = ledger_indexes()
        results, loaded, dev_lo = [], 0, 0
        for n, rows in enumerate(stages):
            dev_hi = rows // ROWS_PER_DEVICE
            build = load_stage(loaded, rows, dev_lo, dev_hi, accounts, ts_lo, now, indexes)
            loaded, dev_lo = rows, dev_hi
            stage = measure_stage(env, rows, dev_final, args.lookups, args.union_lookups, n)
            stage.update({f"build_{key}": value for key, value in build.items()})
            results.append(stage)
            log(f"stage {rows:,} rows measured")

    last, first = results[-1], results[0]
    growth = {
        f"growth_query_{label}_p95": round(
            last[f"query_{label}_p95_ms"] / first[f"query_{label}_p95_ms"], 2
        )
        for label, _k, _h in KINDS
    }
    if "page_not_available" not in last:
        growth.update(
            {
                f"growth_page_{label}_p95": round(
                    last[f"page_{label}_p95_ms"] / first[f"page_{label}_p95_ms"], 2
                )
                for label, _k, _h in KINDS
            }
        )
    query_p95 = max(last[f"query_{label}_p95_ms"] for label, _k, _h in KINDS)
    result = {
        "bench": "trace",
        **last,
        "lookups_per_kind": args.lookups,
        "page_size": PAGE,
        "growth_from_rows": first["rows"],
        "growth_to_rows": last["rows"],
        **growth,
        "target_query_p95_ms": TARGET_QUERY_P95_MS,
        "target_page_p95_ms": TARGET_PAGE_P95_MS,
        "target_growth": TARGET_GROWTH,
        "meets_query_target": query_p95 < TARGET_QUERY_P95_MS,
        "meets_growth_target": all(
            v < TARGET_GROWTH for k, v in growth.items() if k.startswith("growth_query")
        ),
    }
    if "page_not_available" in last:
        result["meets_page_target"] = None
    else:
        result["meets_page_target"] = (
            max(last[f"page_{label}_p95_ms"] for label, _k, _h in KINDS) < TARGET_PAGE_P95_MS
        )
    result["meets_target"] = bool(
        result["meets_query_target"]
        and result["meets_growth_target"]
        and result["meets_page_target"] is not False
    )
    result["at_target_size"] = last["rows"] >= 10_000_000 and last["accounts"] >= 1000
    result["code"] = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    result["stages"] = results
    result.update(machine())
    emit(result)


if __name__ == "__main__":
    main()
