"""Is a number on a national registry (the gate's rule 3), and which registry is it for."""

from __future__ import annotations

import time
from collections.abc import Iterable

import psycopg
from django.db import connection, transaction

from accounts.actions import audit
from devices.keys import country_of_phone
from devices.models import Registry
from devices.registry.codec import block_contains, split_key

# NANP region of an exchange (+1 NPA NXX), as phonenumbers says: asking it costs ~25 µs a
# number, the gate asks for every telemarketing call. Regions are assigned by area code,
# so one valid number answers for its exchange; an invalid one ("") is not remembered.
_NANP_REGIONS: dict[str, str] = {}
_NANP_REGIONS_MAX = 200_000


def registry_country(e164: str) -> str:
    """The registry country of a phone key: BR for +55, US for NANP numbers in the US."""
    if e164.startswith("+55"):
        return "BR"
    if not e164.startswith("+1"):
        return ""
    exchange = e164[:-4]
    region = _NANP_REGIONS.get(exchange)
    if region is None:
        region = country_of_phone(e164)
        if not region:
            return ""
        if len(_NANP_REGIONS) >= _NANP_REGIONS_MAX:
            _NANP_REGIONS.clear()
        _NANP_REGIONS[exchange] = region
    return "US" if region == "US" else ""


_LOOKUP_SQL = """
SELECT b.registry_id, b.prefix, b.suffixes
FROM public.devices_registryblock AS b
JOIN public.devices_registry AS r ON r.id = b.registry_id AND r.generation = b.generation
WHERE r.id = ANY(%s::bigint[]) AND b.prefix = ANY(%s::bigint[])
"""


def _fetch_blocks(registries: list[int], prefixes: list[int]) -> list[tuple[int, int, bytes]]:
    """The blocks, in one statement, with bytea in binary: half the bytes of hex text and
    no decoding, which halves the cost of a gate batch. Django's cursors bind parameters
    on the client, which rules binary results out, so this takes psycopg's own cursor on
    the same connection (same transaction; no prepared statement, for poolers) and logs
    the query as Django's debug cursor would, so query counts still see it."""
    connection.ensure_connection()
    started = time.monotonic()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_LOOKUP_SQL, [registries, prefixes], binary=True, prepare=False)
        rows = cursor.fetchall()
    if connection.queries_logged:
        connection.queries_log.append(
            {
                "sql": f"{_LOOKUP_SQL.strip()} -- {len(prefixes)} prefixes",
                "time": f"{time.monotonic() - started:.3f}",
            }
        )
    return rows


def listed(pairs: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
    """Which (registry id, E.164 key) pairs are on their registry: one query for them all."""
    wanted: dict[tuple[int, int], list[tuple[str, int]]] = {}
    for registry_id, key in pairs:
        prefix, suffix = split_key(key)
        wanted.setdefault((registry_id, prefix), []).append((key, suffix))
    if not wanted:
        return set()
    registries = sorted({r for r, _ in wanted})
    prefixes = sorted({p for _, p in wanted})
    found = set()
    for registry_id, prefix, data in _fetch_blocks(registries, prefixes):
        for key, suffix in wanted.get((registry_id, prefix), ()):
            if block_contains(data, suffix):
                found.add((registry_id, key))
    return found


def is_listed(registry: Registry, e164: str) -> bool:
    return (registry.pk, e164) in listed([(registry.pk, e164)])


def do_lookup(registry: Registry, e164: str, *, actor, request=None) -> bool:
    """Is this number on the registry? Audited: operators look numbers up, not browse."""
    found = is_listed(registry, e164)
    with transaction.atomic(durable=True):
        audit(
            actor,
            "registry.lookup",
            obj=registry,
            details={"number": e164, "listed": found},
            request=request,
        )
    return found
