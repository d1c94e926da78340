"""The policy gate: decisions per second in batches, and single-decision latency.

    python bench/policy.py [--quick] [--settings N] [--ledger N] [--batch N] [--batches N]
                           [--singles N] [--processes N] [--profile] [--registry-numbers N]

Loads one enterprise's device settings (100,000 rows; ``--quick``: 10,000) with COPY: about
75% of the rows on devices with one row, the rest on devices with two or three (so "latest
wins" decides), Block, Allow and Clear, 10% with an expiry (half of them passed). The
shared ledger (``public.devices_attempt``) gets three attempts per setting row over the
last 28 days (300,000; ``--quick``: 30,000) on 40% of the devices, 3% of those devices
"hot" with 7-12 attempts in the last 7 days (over the default cap of 7 in 7 days), 8% of
rows suppressed and some inbound SMS (neither counts), plus 10% more rows from a second
enterprise on the same devices (they must not count). Devices are US numbers over several
time zones (including Hawaii and Alaska, closed at the benchmark's instant, and toll-free
numbers that span every US zone), Brazilian mobiles and a few email addresses; every phone
number is valid for ``phonenumbers``. Calling windows for US, BR and the rest, holidays on
the next days. The instant is fixed: the last Wednesday at 17:00 UTC.

Measured, one process, requests drawn over every kind of device (with a setting or not,
blocked or allowed, in the ledger or not; distinct devices within a batch):

* batches: ``PolicyGate(enterprise, now).decide(batch)`` for batches of 500 (what the
  dispatcher does per tick), construction included; decisions/s over all batches, and
  the share of wall time spent executing SQL (``connection.execute_wrapper``);
* single decisions: ``PolicyGate(enterprise, now).decide_one(request)``, construction
  included (the attempt task builds one gate per chunk; a chunk of one is the worst
  case), and ``gate.decide_one(request)`` on one gate built beforehand; p50/p95/p99;
* baseline, same run, same requests: each device checked with its own queries (the ORM's
  latest DeviceSetting for the device, then the device's recent outbound attempts from the
  ledger) and the gate's own window, holiday and cap evaluation (``PolicyGate._window``,
  ``PolicyGate._cap``), so the two differ only in how they read the database; the answers
  must agree, decision for decision;
* with ``--processes 2`` (the default), the batch loop again in two processes at once (as
  two Celery worker processes would), decisions/s summed over the wall time.

Targets (issue: device settings and the gate): at least 20,000 decisions/s in batches on
2 cores; single decision p99 under 2 ms (with construction). When a target is missed, or
with ``--profile``, cProfile runs over batches and single decisions and the top functions
are printed to stderr and included in the JSON.

``--registry-numbers N`` loads N national registry numbers (US National DNC and Não Me
Perturbe, synthetic) and makes the requests telemarketing, so rule 3 runs for every phone;
the baseline then also asks the registry per device (``is_listed``).

Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import multiprocessing
import os
import pstats
import random
import statistics
import subprocess
import sys
import time

from _harness import ROOT, django_on_bench_db, emit, machine, percentile

TARGET_BATCH_PER_S = 20_000
TARGET_SINGLE_P99_MS = 2.0
SETTINGS_FULL = 100_000
SETTINGS_QUICK = 10_000
LEDGER_PER_SETTING = 3
LEDGER_DAYS = 28
LEDGER_DEVICE_SHARE = 0.4
HOT_SHARE = 0.03
OTHER_ENTERPRISE_SHARE = 0.1
# Devices: those with settings are 3/4 of the setting rows; as many again have none.
DEVICES_PER_SETTING = 0.75
# (area code, weight): Texas and the big cities; Hawaii (07:00 at 17:00 UTC) and Alaska
# (907 spans Anchorage, Adak and Honolulu) defer; toll-free spans every US zone.
US_AREAS = [(713, 14), (832, 10), (281, 8), (214, 8), (469, 5), (212, 8), (718, 6),
            (305, 6), (404, 5), (312, 6), (415, 5), (213, 5), (206, 4), (602, 3),
            (303, 3), (808, 2), (907, 1), (800, 1)]  # fmt: skip
BR_DDDS = [(11, 30), (21, 15), (31, 10), (41, 8), (51, 8), (61, 6), (71, 6), (81, 5),
           (85, 5), (91, 3)]  # fmt: skip
EMAIL_SHARE = 0.05
BR_SHARE = 0.3

STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"[policy {time.monotonic() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


# --- Devices -------------------------------------------------------------------------------


def _weighted(pairs: list[tuple[int, int]]) -> list[int]:
    return [value for value, weight in pairs for _ in range(weight)]


def device_keys(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct device keys: US and BR E.164 numbers and a few emails."""
    us, br = _weighted(US_AREAS), _weighted(BR_DDDS)
    keys: set[str] = set()
    out: list[str] = []
    n = 0
    while len(out) < count:
        n += 1
        draw = rng.random()
        if draw < EMAIL_SHARE:
            key = f"person.{n}@example.com"
        elif draw < EMAIL_SHARE + BR_SHARE:
            key = f"+55{rng.choice(br)}9{rng.randrange(10**8):08d}"
        else:  # NXX 200-999: every line is a valid number in these area codes
            key = f"+1{rng.choice(us)}{rng.randrange(200, 1000)}{rng.randrange(10_000):04d}"
        if key not in keys:
            keys.add(key)
            out.append(key)
    return out


def channel_for(key: str, rng: random.Random) -> str:
    if not key.startswith("+"):
        return "email"
    return "voice" if rng.random() < 0.7 else "sms"


def check_numbers(keys: list[str]) -> None:
    import phonenumbers

    bad = [k for k in keys if k.startswith("+")
           and not phonenumbers.is_valid_number(phonenumbers.parse(k, None))]  # fmt: skip
    if bad:
        raise RuntimeError(f"{len(bad)} invalid phone numbers, e.g. {bad[:3]}")


# --- Loading -------------------------------------------------------------------------------


def copy_rows(table: str, columns: list[str], rows) -> int:
    from django.db import connection

    count = 0
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def fetch(sql: str, params=None) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def load_settings(enterprise, devices: list[str], rows: int, now: dt.datetime,
                  rng: random.Random) -> dict:  # fmt: skip
    """``rows`` DeviceSetting rows on ``devices``; returns the setting in force per device."""
    from devices.models import DeviceSetting

    action, source = DeviceSetting.Action, DeviceSetting.Source
    sources = {
        action.BLOCK: [source.MANUAL, source.IMPORT, source.SMS_OPT_OUT, source.AGENT_DNC],
        action.ALLOW: [source.MANUAL, source.IMPORT, source.SMS_OPT_IN],
        action.CLEAR: [source.MANUAL],
    }
    reasons = {action.BLOCK: ["", "customer asked", "dispute", "wrong number", "STOP"],
               action.ALLOW: ["", "consent on file", "customer asked"],
               action.CLEAR: [""]}  # fmt: skip
    out, in_force, remaining = [], {}, rows
    for key in devices:
        if remaining <= 0:
            break
        draw = rng.random()
        history = 1 if draw < 0.55 / 0.75 else 2 if draw < 0.70 / 0.75 else 3
        history = min(history, remaining)
        remaining -= history
        at = now - dt.timedelta(days=rng.uniform(30, 730))
        for position in range(history):
            last = position == history - 1
            if history == 1 or not last:
                act = action.BLOCK if rng.random() < 0.65 else action.ALLOW
            else:  # the latest of a history: a change of mind, or cleared
                act = rng.choice([action.BLOCK, action.ALLOW, action.CLEAR])
            expires = None
            if act != action.CLEAR and rng.random() < 0.10:
                expires = now + dt.timedelta(days=rng.choice([-1, 1]) * rng.uniform(1, 90))
            out.append((enterprise.pk, key, act.value, rng.choice(reasons[act]), expires,
                        rng.choice(sources[act]).value, at, "bench"))  # fmt: skip
            if last:
                applies = act != action.CLEAR and (expires is None or expires > now)
                if applies:
                    in_force[key] = act.value
            at += dt.timedelta(days=rng.uniform(0.01, 25))
    rng.shuffle(out)  # rows of one device are not adjacent on disk
    copy_rows(
        "public.devices_devicesetting",
        ["enterprise_id", "device_key", "action", "reason", "expires_at", "source",
         "created_at", "created_by_label"],
        out,
    )  # fmt: skip
    return in_force


def ledger_rows(enterprises: list[tuple[int, list]], devices: list[str], rows: int,
                now: dt.datetime, rng: random.Random):  # fmt: skip
    """Attempts over the last 28 days on 40% of ``devices``; 3% of those over the cap."""
    (enterprise_id, accounts), (other_id, other_accounts) = enterprises
    on_ledger = rng.sample(devices, round(len(devices) * LEDGER_DEVICE_SHARE))
    hot = on_ledger[: round(len(on_ledger) * HOT_SHARE)]
    voice = ["ANSWERED", "ANSWERED", "NO_ANSWER", "NO_ANSWER", "BUSY", "VOICEMAIL", "FAILED"]
    text = ["DELIVERED", "DELIVERED", "DELIVERED", "SENT", "UNDELIVERED"]

    def row(ent: int, account, key: str, at: dt.datetime):
        channel = channel_for(key, rng)
        direction, rule = "outbound", ""
        if channel == "sms" and rng.random() < 0.1:
            direction, disposition = "inbound", "RECEIVED"
        elif rng.random() < 0.08:
            disposition, rule = "SUPPRESSED", "attempt_cap"
        else:
            disposition = rng.choice(voice if channel == "voice" else text)
        seconds = rng.randrange(10, 300) if disposition == "ANSWERED" else 0
        done = None if disposition == "SUPPRESSED" else at + dt.timedelta(seconds=seconds + 5)
        camp = rng.randrange(5)
        return (at, ent, account.pk, account.name, account.pk * 10 + camp, f"Campaign {camp}",
                account.pk * 100 + camp, f"Wave {camp}", f"C{abs(hash(key)) % 10**8}", key,
                channel, direction, disposition, done, seconds,
                "node-1" if channel == "voice" else "", rule)  # fmt: skip

    written = 0
    for key in hot:  # over the cap: 7-12 attempts in the last 7 days
        for _ in range(rng.randrange(7, 13)):
            yield row(enterprise_id, rng.choice(accounts), key,
                      now - dt.timedelta(seconds=rng.uniform(60, 7 * 86400 - 60)))  # fmt: skip
            written += 1
    while written < rows:
        key = rng.choice(on_ledger)
        at = now - dt.timedelta(seconds=rng.uniform(60, LEDGER_DAYS * 86400))
        yield row(enterprise_id, rng.choice(accounts), key, at)
        written += 1
    for _ in range(round(rows * OTHER_ENTERPRISE_SHARE)):
        key = rng.choice(on_ledger)
        at = now - dt.timedelta(seconds=rng.uniform(60, 7 * 86400))
        yield row(other_id, rng.choice(other_accounts), key, at)


LEDGER_COLUMNS = [
    "attempted_at", "enterprise_id", "account_id", "account_name", "campaign_id",
    "campaign_name", "sub_campaign_id", "sub_campaign_name", "client_id", "device_key",
    "channel", "direction", "disposition", "completed_at", "call_seconds", "node",
    "suppression_rule",
]  # fmt: skip


PURPOSE = "collections"  # telemarketing once registries are loaded: rule 3 then runs


def load_registry_numbers(count: int) -> dict:
    """The national registries at size: ``count`` synthetic numbers split between the US
    National DNC (two thirds) and Não Me Perturbe, loaded as full snapshots through
    ``bench/_registry_synthetic.load_synthetic``. With any loaded, requests are telemarketing, so
    every phone request also asks rule 3 (an Allow on file exempts)."""
    global PURPOSE
    if not count:
        log("registry numbers: 0 (rule 3 not exercised: requests are collections)")
        return {"registry_numbers": 0}
    from _registry_synthetic import load_synthetic, table_bytes

    us = load_synthetic("US", count * 2 // 3)
    log(f"registry: US {us['numbers']:,} numbers in {us['seconds']:.1f}s")
    br = load_synthetic("BR", count - count * 2 // 3)
    log(f"registry: BR {br['numbers']:,} numbers in {br['seconds']:.1f}s")
    PURPOSE = "telemarketing"
    return {
        "registry_numbers": int(us["numbers"] + br["numbers"]),
        "registry_load_s": round(us["seconds"] + br["seconds"], 1),
        "registry_table_mb": round(table_bytes()["total"] / 1e6, 1),
    }


def set_up(settings_rows: int, ledger_total: int, now: dt.datetime, rng: random.Random) -> dict:
    from accounts.actions import do_create_enterprise
    from accounts.models import Account
    from devices.ledger import ensure_partitions
    from devices.models import CallingWindow, Holiday

    enterprise = do_create_enterprise("Bench Policy Enterprise")
    other = do_create_enterprise("Bench Other Enterprise")
    accounts = Account.objects.bulk_create(
        [
            Account(enterprise=ent, name=f"Bench {label} {n}", slug=f"bench-{label}-{n}",
                    schema_name=f"acct_bench_{label}_{n}")
            for ent, label in ((enterprise, "a"), (other, "b"))
            for n in range(4)
        ]
    )  # fmt: skip
    CallingWindow.objects.bulk_create(
        [
            CallingWindow(enterprise=enterprise, region="US", start=dt.time(8), end=dt.time(21)),
            CallingWindow(enterprise=enterprise, region="BR", start=dt.time(8), end=dt.time(20)),
            CallingWindow(enterprise=enterprise, region="", start=dt.time(9), end=dt.time(20)),
        ]
    )
    today = now.date()
    Holiday.objects.bulk_create(
        [
            Holiday(enterprise=enterprise, region="US", date=today + dt.timedelta(days=1)),
            Holiday(enterprise=enterprise, region="BR", date=today + dt.timedelta(days=2)),
            Holiday(enterprise=enterprise, region="", date=today + dt.timedelta(days=9)),
            Holiday(enterprise=enterprise, region="US", date=today - dt.timedelta(days=20)),
        ]
    )
    ensure_partitions()

    with_settings = round(settings_rows * DEVICES_PER_SETTING)
    devices = device_keys(2 * with_settings, rng)
    check_numbers(devices)
    started = time.perf_counter()
    in_force = load_settings(enterprise, devices[:with_settings], settings_rows, now, rng)
    setting_rows = fetch("SELECT count(*) FROM public.devices_devicesetting")[0][0]
    settings_s = time.perf_counter() - started
    log(f"{setting_rows:,} device settings on {with_settings:,} devices in {settings_s:.1f} s")

    started = time.perf_counter()
    mine = [a for a in accounts if a.enterprise_id == enterprise.pk]
    theirs = [a for a in accounts if a.enterprise_id == other.pk]
    copy_rows(
        "public.devices_attempt",
        LEDGER_COLUMNS,
        ledger_rows([(enterprise.pk, mine), (other.pk, theirs)], devices, ledger_total, now, rng),
    )
    ledger_s = time.perf_counter() - started
    started = time.perf_counter()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) public.devices_devicesetting")
        cursor.execute("VACUUM (ANALYZE) public.devices_attempt")
    vacuum_s = time.perf_counter() - started
    ledger_count = fetch("SELECT count(*) FROM public.devices_attempt")[0][0]
    log(f"{ledger_count:,} ledger rows in {ledger_s:.1f} s; vacuum analyse {vacuum_s:.1f} s")
    return {
        "enterprise": enterprise,
        "accounts": mine,
        "devices": devices,
        "with_settings": devices[:with_settings],
        "in_force": in_force,
        "sizes": {
            "device_settings": setting_rows,
            "devices_with_settings": with_settings,
            "settings_in_force": len(in_force),
            "blocks_in_force": sum(1 for a in in_force.values() if a == "block"),
            "devices": len(devices),
            "ledger_rows": ledger_count,
            "load_settings_s": round(settings_s, 1),
            "load_ledger_s": round(ledger_s, 1),
        },
    }


# --- Requests ------------------------------------------------------------------------------


def make_batches(env: dict, count: int, size: int, rng: random.Random) -> list[list]:
    """Batches of distinct devices: 40% with a setting (of them, blocks as they come), 60%
    without; the ledger's devices fall in both."""
    from devices.policy import DialRequest

    with_settings = env["with_settings"]
    without = env["devices"][len(with_settings) :]
    accounts = env["accounts"]
    batches = []
    for _ in range(count):
        keys = set(rng.sample(with_settings, round(size * 0.4)))
        keys.update(rng.sample(without, size - len(keys)))
        batch = []
        for key in sorted(keys, key=lambda _k: rng.random()):
            channel = channel_for(key, rng)
            account = rng.choice(accounts)
            campaign = rng.randrange(3)
            zone = ""
            if rng.random() < 0.1:  # the list gave the contact's own zone
                zone = rng.choice(["America/Chicago", "America/New_York", "America/Sao_Paulo"])
            batch.append(DialRequest(account.pk, account.pk * 10 + campaign,
                                     account.pk * 100 + campaign, PURPOSE, channel, key,
                                     zone))  # fmt: skip
        batches.append(batch)
    return batches


# --- The baseline: one device at a time, its own queries ----------------------------------


def per_device_decide(gate, request):
    """The obvious code: the device's latest setting, then its recent attempts, each queried
    on its own; windows, holidays and caps evaluated by the gate's own rules."""
    from devices.keys import PHONE, kind_of_key
    from devices.models import Attempt, DeviceSetting
    from devices.policy import RULE_DEVICE_BLOCK, SUPPRESS, WINDOWED_CHANNELS, Decision

    enterprise, now = gate.enterprise, gate.now
    setting = (
        DeviceSetting.objects.filter(enterprise=enterprise, device_key=request.device_key)
        .order_by("-created_at", "-id")
        .first()
    )
    if setting is not None and setting.applies_at(now) and setting.action == "block":
        detail = f"{setting.get_source_display()}: {setting.reason}".rstrip(": ")
        return Decision(SUPPRESS, RULE_DEVICE_BLOCK, detail[:255], source=setting.source)
    if request.purpose == "telemarketing" and kind_of_key(request.device_key) == PHONE:
        from devices.models import Registry
        from devices.registry.lookup import is_listed, registry_country

        country = registry_country(request.device_key)
        registry = Registry.objects.filter(country=country).first() if country else None
        allowed = setting is not None and setting.applies_at(now) and setting.action == "allow"
        if registry is not None and not allowed and is_listed(registry, request.device_key):
            return Decision(SUPPRESS, "national_registry", registry.name, source=registry.code)
    if request.channel in WINDOWED_CHANNELS and kind_of_key(request.device_key) == PHONE:
        decision = gate._window(request.device_key, request.time_zone)
        if decision is not None:
            return decision
    recent = []
    if enterprise.attempt_cap:
        recent = list(
            Attempt.objects.filter(
                enterprise_id=enterprise.pk,
                device_key=request.device_key,
                attempted_at__gt=now - dt.timedelta(days=enterprise.attempt_cap_days),
                attempted_at__lte=now,
                direction="outbound",
            )
            .exclude(disposition="SUPPRESSED")
            .values_list("attempted_at", flat=True)
        )
    return gate._cap(request.device_key, recent)


# --- Measuring -----------------------------------------------------------------------------


class SqlTimer:
    """Wall time spent executing SQL (sent, run, rows received), via execute_wrapper."""

    def __init__(self):
        self.seconds = 0.0
        self.queries = 0
        self.search_path_sets = 0  # django-tenants' SET before each cursor's first query
        self.cpu: CpuMeter | None = None

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started
            self.queries += 1
            self.search_path_sets += sql.startswith("SET search_path")


class CpuMeter:
    """CPU seconds used by this process and by its PostgreSQL backend (read from /proc when
    the server runs on this machine): figures that other load on the machine moves less
    than it moves wall time."""

    def __init__(self):
        self.pid = fetch("SELECT pg_backend_pid()")[0][0]
        self.client, self.server = 0.0, None

    def _server(self) -> float | None:
        try:
            with open(f"/proc/{self.pid}/comm") as comm:
                if not comm.read().startswith("postgres"):
                    return None  # a remote server: its pid means nothing here
            with open(f"/proc/{self.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __enter__(self):
        self._client0, self._server0 = time.process_time(), self._server()
        return self

    def __exit__(self, *exc):
        self.client = time.process_time() - self._client0
        end = self._server()
        self.server = None if end is None or self._server0 is None else end - self._server0


def time_batches(enterprise, now, batches) -> tuple[list[float], list, SqlTimer]:
    from django.db import connection

    from devices.policy import PolicyGate

    times, decisions, timer = [], [], SqlTimer()
    with CpuMeter() as cpu, connection.execute_wrapper(timer):
        for batch in batches:
            started = time.perf_counter()
            decided = PolicyGate(enterprise, now).decide(batch)
            times.append(time.perf_counter() - started)
            decisions.append(decided)
    timer.cpu = cpu
    return times, decisions, timer


def time_singles(enterprise, now, requests, build_each: bool) -> list[float]:
    from devices.policy import PolicyGate

    times = []
    gate = PolicyGate(enterprise, now)
    for request in requests:
        started = time.perf_counter()
        if build_each:
            PolicyGate(enterprise, now).decide_one(request)
        else:
            gate.decide_one(request)
        times.append(time.perf_counter() - started)
    return times


def time_baseline(enterprise, now, batches) -> tuple[list[float], list[float], list, SqlTimer]:
    from django.db import connection

    from devices.policy import PolicyGate

    batch_times, per_device, decisions = [], [], []
    timer = SqlTimer()
    with CpuMeter() as cpu, connection.execute_wrapper(timer):
        for batch in batches:
            started = time.perf_counter()
            gate = PolicyGate(enterprise, now)  # windows and holidays: once per batch
            decided = []
            for request in batch:
                one = time.perf_counter()
                decided.append(per_device_decide(gate, request))
                per_device.append(time.perf_counter() - one)
            batch_times.append(time.perf_counter() - started)
            decisions.append(decided)
    timer.cpu = cpu
    return batch_times, per_device, decisions, timer


def _child(enterprise, now, batches, queue) -> None:
    from django.db import connections

    connections.close_all()  # never share the parent's socket
    started = time.time()
    _times, decisions, _sql = time_batches(enterprise, now, batches)
    queue.put((started, time.time(), sum(len(d) for d in decisions)))
    connections.close_all()


def time_parallel(enterprise, now, batches, processes: int) -> dict:
    """The batch loop in ``processes`` processes at once; decisions/s over the wall time."""
    from django.db import connections

    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    share = len(batches) // processes
    procs = [
        ctx.Process(target=_child, args=(enterprise, now, batches[n * share : (n + 1) * share],
                                         queue))
        for n in range(processes)
    ]  # fmt: skip
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=900) for _ in procs]
    for proc in procs:
        proc.join(60)
        if proc.exitcode != 0:
            raise RuntimeError(f"a batch process failed (exit code {proc.exitcode})")
    first = min(r[0] for r in results)
    last = max(r[1] for r in results)
    decided = sum(r[2] for r in results)
    return {
        "parallel_processes": processes,
        "parallel_decisions": decided,
        "parallel_decisions_per_s": round(decided / (last - first)),
    }


def profile(label: str, run, top: int = 12) -> list[dict]:
    """cProfile over ``run()``; the functions with the most own time, to stderr and back."""
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    log(f"cProfile, {label}, by own time:\n{out.getvalue()}")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(25)
    log(f"cProfile, {label}, cumulative:\n{out.getvalue()}")
    total = stats.total_tt
    rows = []
    for (path, line, name), (_cc, calls, tottime, cumtime, _callers) in sorted(
        stats.stats.items(), key=lambda item: item[1][2], reverse=True
    )[:top]:
        short = path.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        rows.append({
            "function": f"{short}:{line}({name})",
            "calls": calls,
            "own_share": round(tottime / total, 3),
            "cumulative_share": round(cumtime / total, 3),
        })  # fmt: skip
    return rows


def cpu_figures(prefix: str, cpu: CpuMeter, decisions: int) -> dict:
    """CPU per decision, client and server, and the rate two cores would sustain on it."""
    client = cpu.client / decisions * 1e6
    out = {f"{prefix}_client_cpu_us_per_decision": round(client, 1)}
    if cpu.server is not None:
        server = cpu.server / decisions * 1e6
        out[f"{prefix}_server_cpu_us_per_decision"] = round(server, 1)
        out[f"{prefix}_cpu_bound_2_cores_per_s"] = round(2e6 / (client + server))
    return out


def mix(decisions: list) -> dict[str, float]:
    counts: dict[str, int] = {}
    for batch in decisions:
        for decision in batch:
            label = decision.action + (f"_{decision.rule}" if decision.rule else "")
            counts[label] = counts.get(label, 0) + 1
    total = sum(counts.values())
    return {label: round(n / total, 3) for label, n in sorted(counts.items())}


def last_wednesday_17_utc() -> dt.datetime:
    today = dt.datetime.now(dt.UTC).replace(hour=17, minute=0, second=0, microsecond=0)
    back = (today.weekday() - 2) % 7 or 7
    return today - dt.timedelta(days=back)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10,000 settings, fewer requests")
    parser.add_argument("--settings", type=int, default=None, help="device setting rows")
    parser.add_argument("--ledger", type=int, default=None, help="ledger rows (this enterprise)")
    parser.add_argument("--batch", type=int, default=500, help="requests per decide()")
    parser.add_argument("--batches", type=int, default=None, help="timed batches")
    parser.add_argument("--singles", type=int, default=None, help="timed single decisions")
    parser.add_argument("--baseline-batches", type=int, default=None)
    parser.add_argument("--processes", type=int, default=2, help="parallel phase; 1 skips it")
    parser.add_argument("--profile", action="store_true", help="profile even if targets are met")
    parser.add_argument(
        "--registry-numbers", type=int, default=0,
        help="national registry numbers to load (e.g. 15,000,000)",
    )  # fmt: skip
    args = parser.parse_args()
    settings_rows = args.settings or (SETTINGS_QUICK if args.quick else SETTINGS_FULL)
    ledger_total = args.ledger or settings_rows * LEDGER_PER_SETTING
    batches_n = args.batches or (20 if args.quick else 100)
    singles_n = args.singles or (1_000 if args.quick else 2_000)
    baseline_n = args.baseline_batches or (2 if args.quick else 6)
    rng = random.Random(20261121)
    now = last_wednesday_17_utc()

    with django_on_bench_db():
        from django.db import connection

        env = set_up(settings_rows, ledger_total, now, rng)
        registry = load_registry_numbers(args.registry_numbers)
        enterprise = env["enterprise"]
        warm = make_batches(env, 5, args.batch, rng)
        batches = make_batches(env, batches_n, args.batch, rng)
        baseline_batches = batches[:baseline_n]
        singles = [r for batch in make_batches(env, -(-singles_n // args.batch), args.batch, rng)
                   for r in batch][:singles_n]  # fmt: skip

        time_batches(enterprise, now, warm)  # connection, imports, phonenumbers metadata
        load_before = os.getloadavg()[0]
        times, decisions, sql = time_batches(enterprise, now, batches)
        decided = sum(len(b) for b in decisions)
        batch_per_s = decided / sum(times)
        log(f"gate, batches of {args.batch}: {batch_per_s:,.0f} decisions/s ({len(batches)} "
            f"batches, SQL {sql.seconds / sum(times):.0%} of the time)")  # fmt: skip

        time_singles(enterprise, now, singles[:100], build_each=True)
        single_sql = SqlTimer()
        with connection.execute_wrapper(single_sql):
            with_build = time_singles(enterprise, now, singles, build_each=True)
        without_build = time_singles(enterprise, now, singles, build_each=False)
        single_ms = {
            "p50": round(statistics.median(with_build) * 1000, 3),
            "p95": round(percentile(with_build, 95) * 1000, 3),
            "p99": round(percentile(with_build, 99) * 1000, 3),
        }
        log(f"gate, single decisions with construction: p50 {single_ms['p50']} ms, "
            f"p99 {single_ms['p99']} ms")  # fmt: skip

        base_times, base_each, base_decisions, base_sql = time_baseline(
            enterprise, now, baseline_batches
        )
        base_decided = sum(len(b) for b in base_decisions)
        base_per_s = base_decided / sum(base_times)
        disagree = [
            (request.device_key, ours, theirs)
            for batch, gate_batch, base_batch in zip(
                baseline_batches, decisions, base_decisions, strict=False
            )
            for request, ours, theirs in zip(batch, gate_batch, base_batch, strict=True)
            if ours != theirs
        ]
        if disagree:
            raise RuntimeError(f"{len(disagree)} decisions differ, e.g. {disagree[:3]}")
        log(f"baseline, per-device queries: {base_per_s:,.0f} decisions/s, "
            f"p99 {percentile(base_each, 99) * 1000:.2f} ms; same answers")  # fmt: skip

        parallel = {}
        if args.processes > 1:
            parallel = time_parallel(enterprise, now, batches, args.processes)
            log(f"gate, {args.processes} processes: "
                f"{parallel['parallel_decisions_per_s']:,} decisions/s")  # fmt: skip

        best_batch_per_s = max(batch_per_s, parallel.get("parallel_decisions_per_s", 0))
        meets_batch = best_batch_per_s >= TARGET_BATCH_PER_S
        meets_single = single_ms["p99"] < TARGET_SINGLE_P99_MS
        profiles = {}
        if args.profile or not (meets_batch and meets_single):
            from devices.policy import PolicyGate

            profiles["profile_batch"] = profile(
                f"{min(20, len(batches))} batches of {args.batch}",
                lambda: [PolicyGate(enterprise, now).decide(b) for b in batches[:20]],
            )
            profiles["profile_single"] = profile(
                f"{min(500, len(singles))} single decisions with construction",
                lambda: [PolicyGate(enterprise, now).decide_one(r) for r in singles[:500]],
            )

    result = {
        "bench": "policy",
        **env["sizes"],
        **registry,
        "now": now.isoformat(),
        "batch_size": args.batch,
        "batches": len(batches),
        "batch_decisions": decided,
        "batch_decisions_per_s": round(batch_per_s),
        "batch_p50_ms": round(statistics.median(times) * 1000, 2),
        "batch_p95_ms": round(percentile(times, 95) * 1000, 2),
        "batch_sql_share": round(sql.seconds / sum(times), 3),
        "batch_queries_per_batch": round(sql.queries / len(batches), 1),
        "batch_search_path_sets_per_batch": round(sql.search_path_sets / len(batches), 1),
        **cpu_figures("batch", sql.cpu, decided),
        **parallel,
        "single_decisions": len(with_build),
        "single_p50_ms": single_ms["p50"],
        "single_p95_ms": single_ms["p95"],
        "single_p99_ms": single_ms["p99"],
        "single_queries_per_decision": round(single_sql.queries / len(with_build), 1),
        "single_search_path_sets_per_decision": round(
            single_sql.search_path_sets / len(with_build), 1
        ),
        "single_no_construction_p50_ms": round(statistics.median(without_build) * 1000, 3),
        "single_no_construction_p99_ms": round(percentile(without_build, 99) * 1000, 3),
        "baseline_decisions": base_decided,
        "baseline_decisions_per_s": round(base_per_s),
        "baseline_single_p50_ms": round(statistics.median(base_each) * 1000, 3),
        "baseline_single_p99_ms": round(percentile(base_each, 99) * 1000, 3),
        "baseline_sql_share": round(base_sql.seconds / sum(base_times), 3),
        "baseline_queries_per_decision": round(base_sql.queries / base_decided, 2),
        "baseline_search_path_sets_per_decision": round(
            base_sql.search_path_sets / base_decided, 2
        ),
        **cpu_figures("baseline", base_sql.cpu, base_decided),
        "baseline_agrees": True,
        "speedup_batch": round(batch_per_s / base_per_s, 1),
        "decision_mix": mix(decisions),
        "target_batch_decisions_per_s": TARGET_BATCH_PER_S,
        "target_single_p99_ms": TARGET_SINGLE_P99_MS,
        "meets_batch_target": meets_batch,
        "meets_single_target": meets_single,
        "meets_target": meets_batch and meets_single,
        "at_target_size": env["sizes"]["device_settings"] >= SETTINGS_FULL,
        "code": subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),  # fmt: skip
        **profiles,
        "loadavg_1m_before": round(load_before, 2),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
        **machine(),
    }
    emit(result)


if __name__ == "__main__":
    main()
