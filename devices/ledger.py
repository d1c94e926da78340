"""The attempt ledger's monthly partitions: created ahead, dropped after 12 months."""

from __future__ import annotations

import datetime as dt
import logging

from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

TABLE = "devices_attempt"
RETENTION_MONTHS = 12
MONTHS_AHEAD = 3


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def stamp(instant: dt.datetime) -> int:
    """A ledger row's attempted_at as whole microseconds since 1970, exactly: with the id,
    it names the row and its partition in a URL (a carrier's report)."""
    return (instant - _EPOCH) // dt.timedelta(microseconds=1)


def from_stamp(value: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=value)


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def partition_name(month: dt.date) -> str:
    return f"{TABLE}_p{month:%Y%m}"


def retention_start(now: dt.datetime | None = None) -> dt.datetime:
    """The oldest instant the trace covers: 12 months before now."""
    now = now or timezone.now()
    try:
        return now.replace(year=now.year - 1)
    except ValueError:  # 29 February
        return now.replace(year=now.year - 1, day=28)


def existing_partitions() -> dict[str, dt.date]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT child.relname FROM pg_inherits
            JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
            JOIN pg_class child ON child.oid = pg_inherits.inhrelid
            JOIN pg_namespace ns ON ns.oid = parent.relnamespace
            WHERE parent.relname = %s AND ns.nspname = 'public'
            """,
            [TABLE],
        )
        names = [row[0] for row in cursor.fetchall()]
    found = {}
    for name in names:
        stamp = name.rsplit("_p", 1)[-1]
        if len(stamp) == 6 and stamp.isdigit():
            found[name] = dt.date(int(stamp[:4]), int(stamp[4:]), 1)
    return found


def ensure_partitions(today: dt.date | None = None, *, back: int = RETENTION_MONTHS,
                      ahead: int = MONTHS_AHEAD) -> list[str]:  # fmt: skip
    """Creates the monthly partitions from ``back`` months ago to ``ahead`` months on."""
    today = today or timezone.now().date()
    first = add_months(month_start(today), -back)
    created = []
    present = existing_partitions()
    with connection.cursor() as cursor:
        for offset in range(back + ahead + 1):
            month = add_months(first, offset)
            name = partition_name(month)
            if name in present:
                continue
            cursor.execute(
                f'CREATE TABLE IF NOT EXISTS public."{name}" PARTITION OF public.{TABLE} '
                f"FOR VALUES FROM ('{month:%Y-%m-%d}') TO ('{add_months(month, 1):%Y-%m-%d}')"
            )
            created.append(name)
    return created


def drop_expired_partitions(now: dt.datetime | None = None) -> list[str]:
    """Drops partitions wholly older than 12 months, deleting their recording files first."""
    cutoff = retention_start(now).date()
    dropped = []
    for name, month in sorted(existing_partitions().items(), key=lambda item: item[1]):
        if add_months(month, 1) > cutoff:
            continue
        with connection.cursor() as cursor:
            # The name comes from the catalogue and matches devices_attempt_pYYYYMM.
            query = f'SELECT recording_file FROM public."{name}" WHERE recording_state = %s'  # noqa: S608
            cursor.execute(query, ["stored"])
            files = [row[0] for row in cursor.fetchall()]
        for path in files:
            try:
                default_storage.delete(path)
            except OSError:
                logger.warning("Could not delete expired recording %s", path)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f'ALTER TABLE public.{TABLE} DETACH PARTITION public."{name}"')
            cursor.execute(f'DROP TABLE public."{name}"')
        dropped.append(name)
        logger.info("Dropped ledger partition %s (%d recordings deleted)", name, len(files))
    return dropped
