"""The attempt ledger's monthly partitions: roll-over ahead, retention of 12 months."""

import datetime as dt

import time_machine
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection

from devices import ledger
from devices.models import Attempt


def _row(personas, when, **extra):
    return Attempt.objects.create(
        attempted_at=when, enterprise_id=personas.ent_a.pk, account_id=personas.acct_a1.pk,
        account_name="Acme One", device_key="+17135554101", channel="voice",
        direction="outbound", disposition="ANSWERED", **extra,
    )  # fmt: skip


def _where(attempt_id) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM devices_attempt WHERE id = %s", [attempt_id]
        )
        return cursor.fetchone()[0]


def test_rows_land_in_their_month_partition(personas):
    row = _row(personas, dt.datetime(2026, 2, 14, 12, tzinfo=dt.UTC))
    assert _where(row.pk) == "devices_attempt_p202602"


def test_partitions_are_created_ahead_of_time(personas):
    future = dt.date(2027, 9, 15)
    created = ledger.ensure_partitions(future, back=0, ahead=2)
    assert created == [
        "devices_attempt_p202709",
        "devices_attempt_p202710",
        "devices_attempt_p202711",
    ]
    assert ledger.ensure_partitions(future, back=0, ahead=2) == []  # idempotent
    row = _row(personas, dt.datetime(2027, 11, 30, 23, 59, tzinfo=dt.UTC))
    assert _where(row.pk) == "devices_attempt_p202711"


def test_retention_drops_months_older_than_twelve_and_their_recordings(
    personas, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    ledger.ensure_partitions(dt.date(2024, 6, 1), back=0, ahead=14)  # 2024-06 .. 2025-08
    old_path = default_storage.save("recordings/test/old.wav", ContentFile(b"RIFF"))
    kept_path = default_storage.save("recordings/test/kept.wav", ContentFile(b"RIFF"))
    old = _row(personas, dt.datetime(2024, 6, 20, tzinfo=dt.UTC),
               recording_state="stored", recording_file=old_path)  # fmt: skip
    kept = _row(personas, dt.datetime(2024, 8, 5, tzinfo=dt.UTC),
                recording_state="stored", recording_file=kept_path)  # fmt: skip

    # On 2025-08-10 the trace covers 2024-08-10 onwards: June and July 2024 go, August stays.
    with time_machine.travel(dt.datetime(2025, 8, 10, 3, tzinfo=dt.UTC), tick=False):
        dropped = ledger.drop_expired_partitions()
    assert "devices_attempt_p202406" in dropped and "devices_attempt_p202407" in dropped
    assert "devices_attempt_p202408" not in dropped
    assert not Attempt.objects.filter(pk=old.pk).exists()
    assert Attempt.objects.filter(pk=kept.pk).exists()
    assert not default_storage.exists(old_path)
    assert default_storage.exists(kept_path)


def test_the_beat_task_keeps_partitions_ahead(personas):
    from devices.tasks import maintain_ledger_partitions

    result = maintain_ledger_partitions()
    assert set(result) == {"created", "dropped"}
    month = ledger.add_months(ledger.month_start(dt.date.today()), ledger.MONTHS_AHEAD)
    assert ledger.partition_name(month) in ledger.existing_partitions()
