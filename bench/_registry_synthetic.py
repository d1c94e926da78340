"""Synthetic national registries for benchmarks: real-looking numbers (phonenumbers calls
them valid in the country), loaded the way a full snapshot is (devices.registry.store)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import phonenumbers
from django.db import connection

from devices.models import Registry
from devices.registry.codec import encode_block
from devices.registry.store import replace_numbers


def synthetic_prefixes(country: str, seed: int = 1) -> Iterator[int]:
    """Block prefixes of real-looking numbers, in a scattered order: US exchanges (NPA-NXX)
    and Brazilian mobile ranges (DDD 9xxxx) that phonenumbers calls valid in the country,
    so the numbers are ones a contact list could hold."""

    if country == "US":
        space, step, code = 800 * 800, 7919, 1_000_000

        def national(slot: int) -> int:
            npa, nxx = divmod(slot, 800)
            return (200 + npa) * 1000 + 200 + nxx
    else:
        space, step, code = 89 * 10_000, 7919, 550_000_000

        def national(slot: int) -> int:
            ddd, rest = divmod(slot, 10_000)
            return (11 + ddd) * 100_000 + 90_000 + rest

    start = seed * 104_729 % space
    for n in range(space):
        prefix = national((start + n * step) % space)
        number = phonenumbers.parse(f"+{code + prefix}1234", None)
        if (
            phonenumbers.is_valid_number(number)
            and phonenumbers.region_code_for_number(number) == country
        ):
            yield code + prefix


def synthetic_blocks(
    country: str, numbers: int, *, seed: int = 1, density: tuple[int, int] = (1, 800)
) -> Iterator[tuple[int, int, bytes]]:
    """About ``numbers`` distinct valid numbers as blocks ready to COPY, each prefix holding
    between ``density`` numbers (the default, ~400 an exchange on average, is about what
    the real registries hold where people live)."""

    rng = random.Random(seed)
    made = 0
    for prefix in synthetic_prefixes(country, seed):
        if made >= numbers:
            return
        count = min(rng.randint(*density), numbers - made)
        made += count
        yield prefix, count, encode_block(sorted(rng.sample(range(10_000), count)))
    raise ValueError(f"{numbers} numbers do not fit in {country}'s valid ranges")


def load_synthetic(country: str, numbers: int, *, seed: int = 1) -> dict[str, float]:
    """Replaces a registry's numbers with ``numbers`` synthetic ones, as a full snapshot
    would (COPY into a new generation, switch, drop the old), and marks it imported now.
    For benchmarks of the policy gate: 15 M numbers load in a few minutes."""
    registry = Registry.objects.get(country=country)
    started = time.perf_counter()
    generation = int(time.time() * 1000)
    before, after = replace_numbers(
        registry, generation, synthetic_blocks(country, numbers, seed=seed)
    )
    return {"numbers": after, "seconds": time.perf_counter() - started}


def table_bytes() -> dict[str, int]:
    """Disk used by the block table: heap, its indexes and TOAST (expected to be empty)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_relation_size(c.oid), pg_indexes_size(c.oid), "
            "COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) "
            "FROM pg_class c WHERE c.oid = 'public.devices_registryblock'::regclass"
        )
        heap, indexes, toast = cursor.fetchone()
    return {"heap": heap, "indexes": indexes, "toast": toast, "total": heap + indexes + toast}
