"""Writing a registry's blocks: a full snapshot as a new generation (switched in one
transaction), or add/remove files merged into the current generation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from devices.models import Registry
from devices.registry.codec import merge_block
from devices.registry.parsing import FileProblem

MERGE_BATCH = 5000

_COPY_BLOCKS = (
    "COPY public.devices_registryblock (generation, prefix, registry_id, count, suffixes) "
    "FROM STDIN (FORMAT BINARY)"
)


def _copy_blocks(
    registry_id: int, generation: int, rows: Iterable[tuple[int, int, bytes]]
) -> tuple[int, int]:
    """COPY blocks into a generation; returns (blocks, numbers)."""
    blocks = numbers = 0
    with connection.cursor() as cursor, cursor.cursor.copy(_COPY_BLOCKS) as copy:
        copy.set_types(["int8", "int8", "int2", "int2", "bytea"])
        for prefix, count, payload in rows:
            copy.write_row((generation, prefix, registry_id, count, payload))
            blocks += 1
            numbers += count
    return blocks, numbers


def replace_numbers(
    registry: Registry,
    generation: int,
    rows: Iterable[tuple[int, int, bytes]],
    *,
    now: dt.datetime | None = None,
) -> tuple[int, int]:
    """A full snapshot: the new generation's blocks, the switch and the old generation's
    removal, in one transaction. Returns (size before, size after)."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Registry.objects.select_for_update().get(pk=registry.pk)
        before = locked.size
        # Left over by an import that died before committing? Never: one transaction.
        _, size = _copy_blocks(registry.pk, generation, rows)
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM public.devices_registryblock WHERE registry_id = %s "
                "AND generation <> %s",
                [registry.pk, generation],
            )
        locked.generation = generation
        locked.size = size
        locked.last_imported_at = now
        locked.last_full_import_at = now
        locked.save(update_fields=["generation", "size", "last_imported_at", "last_full_import_at"])
        for name in ("generation", "size", "last_imported_at", "last_full_import_at"):
            setattr(registry, name, getattr(locked, name))
    if not connection.in_atomic_block:
        # Millions of new rows: fresh statistics, or the gate's lookup is planned as a scan.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE public.devices_registryblock")
    return before, size


def merge_numbers(
    registry: Registry,
    changes: dict[int, list[int]],
    *,
    remove: bool,
    now: dt.datetime | None = None,
) -> tuple[int, int]:
    """Adds (or removes) numbers in the current generation's blocks, in one transaction.
    ``changes`` maps prefix → sorted distinct suffixes. Returns (added, removed)."""
    now = now or timezone.now()
    added = removed = 0
    with transaction.atomic():
        locked = Registry.objects.select_for_update().get(pk=registry.pk)
        if not locked.generation:
            raise FileProblem(
                _("%(registry)s has no numbers yet: import a full snapshot first.")
                % {"registry": locked.name}
            )
        prefixes = sorted(changes)
        upserts: list[tuple[int, int, bytes]] = []
        empties: list[int] = []
        with connection.cursor() as cursor:
            for start in range(0, len(prefixes), MERGE_BATCH):
                batch = prefixes[start : start + MERGE_BATCH]
                cursor.execute(
                    "SELECT prefix, count, suffixes FROM public.devices_registryblock "
                    "WHERE registry_id = %s AND generation = %s AND prefix = ANY(%s::bigint[])",
                    [locked.pk, locked.generation, batch],
                )
                existing = {p: (n, bytes(data)) for p, n, data in cursor.fetchall()}
                for prefix in batch:
                    before, had = existing.get(prefix, (0, None))
                    payload, after = merge_block(had, changes[prefix], remove=remove)
                    if after == before:
                        continue
                    if remove:
                        removed += before - after
                    else:
                        added += after - before
                    if after:
                        upserts.append((prefix, after, payload))
                    else:
                        empties.append(prefix)
            cursor.execute(
                "CREATE TEMP TABLE registry_merge (prefix int8, count int2, suffixes bytea) "
                "ON COMMIT DROP"
            )
            with cursor.cursor.copy(
                "COPY registry_merge (prefix, count, suffixes) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "int2", "bytea"])
                for row in upserts:
                    copy.write_row(row)
            cursor.execute(
                "INSERT INTO public.devices_registryblock "
                "(generation, prefix, registry_id, count, suffixes) "
                "SELECT %s, prefix, %s, count, suffixes FROM registry_merge "
                "ON CONFLICT (registry_id, generation, prefix) DO UPDATE "
                "SET count = EXCLUDED.count, suffixes = EXCLUDED.suffixes",
                [locked.generation, locked.pk],
            )
            if empties:
                cursor.execute(
                    "DELETE FROM public.devices_registryblock WHERE registry_id = %s "
                    "AND generation = %s AND prefix = ANY(%s::bigint[])",
                    [locked.pk, locked.generation, empties],
                )
            cursor.execute("DROP TABLE registry_merge")
        locked.size = locked.size + added - removed
        locked.last_imported_at = now
        locked.save(update_fields=["size", "last_imported_at"])
        registry.size, registry.last_imported_at = locked.size, now
    return added, removed
