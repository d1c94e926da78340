"""Advisory locks on devices: what makes a block and a dial race-free.

The lock order, everywhere (docs/architecture.md): campaign locks (campaigns.locks), then
device locks (here), then dial-state rows. The dialler takes the device locks while it
decides and writes an authorised attempt; saving a block takes the same locks, so a dial
is either authorised before the block commits or decided after it, never in between.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection


def lock_devices(keys: Sequence[str]) -> None:
    """Transaction-scoped advisory locks on devices, taken in key order (no deadlocks)."""
    unique = sorted(set(keys))
    if not unique:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) "
            "FROM (SELECT unnest(%s::text[]) AS k ORDER BY 1) AS keys",
            [unique],
        )
