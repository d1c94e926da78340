"""Backups: `manage.py backup` then `manage.py restore` into a fresh database on the same
server gives back the same ledger, enterprise settings and device blocks, campaign
blacklists of every account, recordings index and recording files; restore refuses a
database that is not empty unless --force."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context
from psycopg import sql

from accounts.actions import do_create_account, do_create_enterprise
from accounts.backups import BackupError, pg_tool
from accounts.models import User
from campaigns.blacklists import (
    do_add_entries,
    do_add_entry,
    do_create_blacklist,
    do_set_blacklist_campaigns,
)
from devices.actions import do_save_device_setting
from devices.calling_rules import do_add_holiday, do_save_calling_window, do_set_attempt_cap
from devices.models import Attempt
from devices.recordings import do_delete_recording
from tests import factories
from tests.conftest import _test_database_url
from tests.helpers import retire_enterprise, run_dialer

PHONES = [f"+1713555{n:04d}" for n in range(6100, 6124)]
BLOCKED, BLACKLISTED = PHONES[0], PHONES[1]


def _url(database: str) -> str:
    return urlparse(_test_database_url())._replace(path=f"/{database}").geturl()


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _all_settled(rows: dict[str, Attempt]) -> bool:
    return len(rows) == len(PHONES) and all(r.disposition != "PENDING" for r in rows.values())


@pytest.fixture
def enterprise_with_history(committed, media, tasks_held):
    """A fresh enterprise, committed (pg_dump reads what is committed), built through the
    project's actions: calling rules, a block and an allow, two accounts with blacklists,
    and a recorded voice campaign dialled in the first (one recording deleted since).
    Its rows are taken off every sweep and the ledger afterwards."""
    name = f"Backup {uuid.uuid4().hex[:8]}"
    enterprise = do_create_enterprise(name)
    do_set_attempt_cap(enterprise, attempt_cap=0, attempt_cap_days=7)
    do_save_calling_window(enterprise, region="", start=dt.time(0), end=dt.time(23, 59, 59))
    do_add_holiday(enterprise, date=dt.date(2099, 12, 25), name="Backup day")
    first, second = (do_create_account(enterprise, f"{name} {n}") for n in (1, 2))
    do_save_device_setting(enterprise, BLOCKED, "block", reason="Cease and desist")
    do_save_device_setting(enterprise, "+17135559999", "allow", reason="Consent on file")
    try:
        with tenant_context(first):
            people = [{"client_id": f"B{n}", "phones": [p]} for n, p in enumerate(PHONES)]
            sub = factories.sub_campaign(
                factories.contact_list(people), record_calls=True, max_attempts=1
            )
            blacklist = do_create_blacklist(name="Do not call")
            do_add_entry(blacklist, "phone", BLACKLISTED, reason="Asked us")
            do_set_blacklist_campaigns(blacklist, [sub.campaign])
            # Every contact has its ledger row with an outcome (two of them suppressed).
            rows = run_dialer(first, sub, until=_all_settled)
            assert len(rows) == len(PHONES)
        with tenant_context(second):
            other = do_create_blacklist(name="Internal lines")
            do_add_entries(
                other, [("extension", "4321", ""), ("phone", "+17135550142", "")], source="manual"
            )
        recorded = Attempt.objects.filter(enterprise_id=enterprise.pk, recording_state="stored")
        admin = User.objects.get(email="ent.admin@acme.test")
        do_delete_recording(recorded.order_by("id").first(), actor=admin)
        yield {"enterprise": enterprise, "accounts": [first, second], "rows": rows}
    finally:
        retire_enterprise(enterprise, [first, second])


@pytest.fixture
def restored_database():
    """The name of a database that does not exist yet; dropped afterwards."""
    name = f"{django_settings.DATABASES['default']['NAME']}_restored"
    with psycopg.connect(_url("postgres"), autocommit=True) as admin:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        admin.execute(drop)
        yield name
        admin.execute(drop)


def _snapshot(url: str, enterprise_id: int, schemas: list[str]) -> dict[str, list]:
    """What a user would find, read straight from one database."""
    queries = {
        "ledger": "SELECT * FROM public.devices_attempt WHERE enterprise_id = %(e)s ORDER BY id",
        "recordings index": "SELECT id, recording_state, recording_file, recording_deleted_by,"
        " recording_deleted_at FROM public.devices_attempt"
        " WHERE enterprise_id = %(e)s AND recording_state <> 'none' ORDER BY id",
        "enterprise": "SELECT * FROM public.accounts_enterprise WHERE id = %(e)s",
        "device settings": "SELECT * FROM public.devices_devicesetting"
        " WHERE enterprise_id = %(e)s ORDER BY id",
        "calling windows": "SELECT * FROM public.devices_callingwindow"
        " WHERE enterprise_id = %(e)s ORDER BY id",
        "holidays": "SELECT * FROM public.devices_holiday WHERE enterprise_id = %(e)s ORDER BY id",
        "audit": "SELECT * FROM public.accounts_auditevent WHERE enterprise_id = %(e)s ORDER BY id",
        "tables of every schema": "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
    }
    for schema in schemas:
        for table in ("campaigns_blacklist", "campaigns_blacklistentry", "campaigns_dialstate",
                      "contacts_contact"):  # fmt: skip
            queries[f"{schema}.{table}"] = f'SELECT * FROM "{schema}".{table} ORDER BY id'  # noqa: S608
    with psycopg.connect(url) as conn:
        return {
            name: conn.execute(query, {"e": enterprise_id}).fetchall()
            for name, query in queries.items()
        }


def _backup(tmp_path: Path, **options) -> Path:
    out = io.StringIO()
    call_command("backup", output=tmp_path / "backups", stdout=out, **options)
    return Path(out.getvalue().strip().splitlines()[-1])


def _restore(folder: Path, **options) -> str:
    out = io.StringIO()
    call_command("restore", str(folder), stdout=out, **options)
    return out.getvalue()


def test_a_backup_restored_into_a_fresh_database_has_the_same_data_and_files(
    enterprise_with_history, restored_database, media, settings, tmp_path
):
    enterprise = enterprise_with_history["enterprise"]
    schemas = [a.schema_name for a in enterprise_with_history["accounts"]]
    older = tmp_path / "backups" / "portal-20000101T000000Z"
    older.mkdir(parents=True)
    (older / "manifest.json").write_text("{}")

    folder = _backup(tmp_path, keep=1)

    assert not older.exists()  # --keep 1: only the new backup stays
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {"public", django_settings.TENANT_BASE_SCHEMA, *schemas} <= set(manifest["schemas"])
    assert manifest["media"]["included"] and manifest["media"]["files"] >= 1

    before = _snapshot(_test_database_url(), enterprise.pk, schemas)
    ledger = {row.device_key: row for row in Attempt.objects.filter(enterprise_id=enterprise.pk)}
    assert len(before["ledger"]) == len(PHONES)
    assert ledger[BLOCKED].suppression_rule == "device_block"
    assert ledger[BLACKLISTED].suppression_rule == "campaign_blacklist"
    states = {row[1] for row in before["recordings index"]}
    assert states == {"stored", "deleted"}, "the dialler recorded no answered call"
    assert len(before["device settings"]) == 2 and len(before["holidays"]) == 1
    assert [len(before[f"{s}.campaigns_blacklistentry"]) for s in schemas] == [1, 2]

    settings.MEDIA_ROOT = tmp_path / "restored-media"
    output = _restore(folder, dbname=restored_database, create=True)

    assert f"Created database {restored_database}" in output
    after = _snapshot(_url(restored_database), enterprise.pk, schemas)
    for name, rows in before.items():
        assert after[name] == rows, f"{name} differs after the restore"
    stored = [row[2] for row in before["recordings index"] if row[1] == "stored"]
    for path in stored:
        assert (settings.MEDIA_ROOT / path).read_bytes() == (media / path).read_bytes()

    # A second restore into what is now a full database is refused, naming --force ...
    with pytest.raises(CommandError, match="is not empty.*--force"):
        _restore(folder, dbname=restored_database)
    # ... and --force replaces whatever the database and the files became meanwhile.
    with psycopg.connect(_url(restored_database), autocommit=True) as conn:
        conn.execute(f'DELETE FROM "{schemas[1]}".campaigns_blacklistentry')  # noqa: S608
        conn.execute("CREATE SCHEMA stray")
    (settings.MEDIA_ROOT / stored[0]).write_bytes(b"changed")
    output = _restore(folder, dbname=restored_database, force=True)

    assert "Dropped" in output
    again = _snapshot(_url(restored_database), enterprise.pk, schemas)
    assert (
        again[f"{schemas[1]}.campaigns_blacklistentry"]
        == before[f"{schemas[1]}.campaigns_blacklistentry"]
    )
    with psycopg.connect(_url(restored_database)) as conn:
        assert not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'stray'").fetchone()
    assert (settings.MEDIA_ROOT / stored[0]).read_bytes() == (media / stored[0]).read_bytes()


def test_restore_into_a_missing_database_asks_for_create(committed, tmp_path):
    folder = _backup(tmp_path, no_media=True)
    missing = f"{django_settings.DATABASES['default']['NAME']}_never_created"

    with pytest.raises(CommandError, match="pass --create"):
        _restore(folder, dbname=missing)

    with psycopg.connect(_url("postgres")) as conn:
        assert not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [missing]
        ).fetchone()


def test_restore_refuses_a_folder_that_is_not_a_backup(tmp_path):
    with pytest.raises(CommandError, match="not a backup made by `manage.py backup`"):
        _restore(tmp_path)


def test_no_tool_of_the_servers_version_is_a_clear_error():
    with pytest.raises(BackupError, match="No pg_dump of PostgreSQL 99.*postgresql-client-99"):
        pg_tool("pg_dump", 99)
