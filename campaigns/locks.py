"""Advisory locks on campaigns: what makes blacklist changes race-free against the dialler.

Every change to a campaign blacklist (an entry, an attached list, an import chunk) takes
the exclusive lock of each campaign using the list; the dialler takes them shared around
the decision that authorises a dial. So a change either commits before a dial is decided,
and the gate sees it, or waits until that dial's authorisation has committed.

Lock order, everywhere (docs/architecture.md): campaign locks (here), then device locks
(devices.locks), then dial-state rows.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection


def lock_campaigns(campaign_ids: Iterable[int], *, shared: bool) -> None:
    """Transaction-scoped advisory locks on campaigns of the current account, in id order."""
    ids = sorted(set(campaign_ids))
    if not ids:
        return
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    keys = [f"campaign:{connection.schema_name}:{i}" for i in ids]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count({function}(hashtextextended(k, 1))) "  # noqa: S608 - fixed name
            "FROM (SELECT unnest(%s::text[]) AS k ORDER BY 1) AS keys",
            [keys],
        )
