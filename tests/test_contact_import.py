"""Contact-list import: normalised rows kept, bad rows reported by line, duplicates merged,
whole-file problems refused with a message, progress counters, dial states, the real worker."""

from __future__ import annotations

import csv
import io
import os
import threading
import time
import uuid

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, connections
from django_tenants.utils import tenant_context

from accounts.models import Account, AuditEvent, User
from campaigns.models import Campaign, DialState, SubCampaign
from contacts import importer
from contacts.actions import do_upload_contact_list
from contacts.importer import import_csv, run_import, upload_limit_bytes
from contacts.models import Contact, ContactImportIssue, ContactList
from devices.uploads import SYNC_IMPORT_MAX_BYTES, check_size

NOT_UTF8 = "The file is not UTF-8 text; save it as CSV UTF-8 and upload again."


@pytest.fixture
def acme(personas):
    """Inside Acme One's schema (a US enterprise)."""
    with tenant_context(personas.acct_a1):
        yield personas.acct_a1


@pytest.fixture
def borealis(personas):
    """Inside Borealis One's schema (a BR enterprise)."""
    with tenant_context(personas.acct_b1):
        yield personas.acct_b1


def run(account: Account, data: str | bytes, name: str = "Test list"):
    """Imports ``data`` into a new list of the current account; returns the list, re-read."""
    raw = data.encode() if isinstance(data, str) else data
    contact_list = ContactList.objects.create(name=name)
    summary = import_csv(contact_list, io.BytesIO(raw), account.enterprise.default_region)
    contact_list.refresh_from_db()
    assert summary.status == contact_list.status
    return contact_list


def contacts_of(contact_list: ContactList) -> list[Contact]:
    return list(contact_list.contacts.order_by("id"))


def issues_of(contact_list: ContactList) -> list[tuple[int, str]]:
    return [(i.line_number, i.reason) for i in contact_list.issues.all()]


# --- Good rows -----------------------------------------------------------------------------


def test_us_rows_are_normalised_and_kept_with_extra_columns(acme):
    contact_list = run(
        acme,
        "client_id,name,phone,email,time_zone,balance,Agency Branch\n"
        "A430,Ann Example,(713) 555-4101,Ann@Example.COM,America/Chicago,120.50,North\n"
        "A431,Bob Example,+1 212 555 0147,,,0,\n",
    )
    assert contact_list.status == ContactList.Status.READY
    assert contact_list.error == ""
    assert contact_list.finished_at is not None
    assert contact_list.progress_percent == 100
    ann, bob = contacts_of(contact_list)
    assert ann.client_id == "A430"
    assert ann.name == "Ann Example"
    assert ann.phones == ["+17135554101"]
    assert ann.email == "ann@example.com"
    assert ann.time_zone == "America/Chicago"
    assert ann.extra == {"balance": "120.50", "Agency Branch": "North"}
    assert ann.merge_key == "A430"
    assert ann.line_number == 2
    assert bob.phones == ["+12125550147"]
    assert bob.extra == {"balance": "0"}  # empty values are not stored
    assert (contact_list.rows_read, contact_list.rows_imported) == (2, 2)
    assert (contact_list.rows_rejected, contact_list.rows_merged) == (0, 0)
    assert contact_list.bytes_read == contact_list.bytes_total > 0
    assert issues_of(contact_list) == []


def test_br_numbers_use_the_enterprise_region_and_excel_semicolons(borealis):
    # Excel in Brazil saves "CSV UTF-8" with a byte-order mark and semicolons.
    text = (
        "\ufeffname;Telefone Extra;phone;E-mail\n"
        "Maria Silva;x;(11) 91234-5678;maria@exemplo.com.br\n"
    )
    contact_list = run(borealis, text.encode())
    assert contact_list.status == ContactList.Status.READY
    (maria,) = contacts_of(contact_list)
    assert maria.name == "Maria Silva"
    assert maria.phones == ["+5511912345678"]
    assert maria.email == "maria@exemplo.com.br"
    assert maria.extra == {"Telefone Extra": "x"}
    assert maria.merge_key == "+5511912345678"  # no client ID: the first phone


def test_header_names_ignore_case_spaces_and_aliases(acme):
    contact_list = run(
        acme,
        " Client ID ,PHONE1, phone 2 ,Phones,EMAIL, Time Zone ,Name\n"
        "C-1,713 555 4101,713 555 4102,713 555 4103; 713-555-4104 | 7135554101,,"
        "america/new_york,Carla\n"
        "C-2,,,,c2@example.com,,\n",
    )
    carla, c2 = contacts_of(contact_list)
    assert carla.client_id == "C-1"
    # phone1, phone2, then the "phones" cell split on ; and |, duplicates dropped, order kept.
    assert carla.phones == ["+17135554101", "+17135554102", "+17135554103", "+17135554104"]
    assert carla.time_zone == "America/New_York"
    assert carla.extra == {}
    assert c2.email == "c2@example.com"
    assert c2.phones == []


# --- Bad rows ------------------------------------------------------------------------------


def test_malformed_numbers_are_reported_by_line_and_good_rows_kept(acme):
    contact_list = run(
        acme,
        "client_id,name,phone,phone2,email\n"  # line 1
        "G1,Good,713 555 4101,,\n"  # 2
        "B1,Bad phone only,555-01,,\n"  # 3: rejected
        "\n"  # 4: blank, skipped
        'P1,"Partly\nbad",12,713 555 4102,\n'  # 5-6: kept without "12"
        "B2,Nothing,,,\n"  # 7: rejected
        "B3,Bad email,,,not-an-email\n"  # 8: rejected
        "G2,Good email,abc,,g2@example.com\n",  # 9: kept without "abc"
    )
    assert contact_list.status == ContactList.Status.READY
    kept = {c.client_id: c for c in contacts_of(contact_list)}
    assert set(kept) == {"G1", "P1", "G2"}
    assert kept["P1"].phones == ["+17135554102"]
    assert kept["P1"].name == "Partly\nbad"
    assert kept["P1"].line_number == 5
    assert kept["G2"].phones == [] and kept["G2"].email == "g2@example.com"
    assert contact_list.rows_read == 6
    assert contact_list.rows_imported == 3
    assert contact_list.rows_rejected == 3

    issues = list(contact_list.issues.all())
    assert [i.line_number for i in issues] == [3, 5, 7, 8, 9]
    by_line = {i.line_number: i for i in issues}
    assert by_line[3].reason.startswith("Not imported: no usable phone number or email address.")
    assert "“555-01” is too short to be a complete phone number" in by_line[3].reason
    assert by_line[3].raw == "B1,Bad phone only,555-01,,\n"
    assert by_line[5].reason.startswith("Row kept without this phone number or email address:")
    assert "“12”" in by_line[5].reason
    assert by_line[5].raw == 'P1,"Partly\nbad",12,713 555 4102,\n'
    assert by_line[7].reason == "Not imported: this line has no phone number or email address."
    assert "“not-an-email” is not a complete email address" in by_line[8].reason
    assert "“abc” is not a phone number" in by_line[9].reason


def test_unknown_time_zone_long_client_id_and_shifted_columns_reject_the_row(acme):
    contact_list = run(
        acme,
        "client_id,phone,time_zone,name\n"
        "T1,713 555 4101,Mars/Olympus,Tom\n"
        f"{'X' * 101},713 555 4102,,\n"
        "T3,713 555 4103,,Smith, John\n"  # an unquoted comma: one value too many
        "T4,713 555 4104,,Quoted,,,\n",  # trailing empty values are fine
    )
    assert [c.client_id for c in contacts_of(contact_list)] == ["T4"]
    reasons = dict(issues_of(contact_list))
    assert "“Mars/Olympus” is not a known time zone" in reasons[2]
    assert "longer than 100 characters" in reasons[3]
    assert "this line has 5 values but the header has 4 columns" in reasons[4]
    assert contact_list.rows_rejected == 3


def test_issue_content_and_reason_are_clipped_to_300_characters(acme):
    contact_list = run(acme, "phone,notes\n" + "12," + "n" * 1000 + "\n")
    (issue,) = contact_list.issues.all()
    assert len(issue.raw) == 300
    assert issue.raw.startswith("12,nnn")
    assert len(issue.reason) <= 300


# --- Duplicates ----------------------------------------------------------------------------


def test_duplicates_merge_into_the_first_contact(acme):
    contact_list = run(
        acme,
        "client_id,name,phone,email,time_zone,plan\n"
        "K1,,713 555 4101,,,gold\n"  # 2
        ",Pat,713 555 4109,pat@example.com,,\n"  # 3: key = first phone
        "K1,Kim,713 555 4102,kim@example.com,America/Chicago,platinum\n"  # 4: merges into 2
        ",,(713) 555-4109,,,vip\n"  # 5: merges into 3
        ",Eve,,eve@example.com,,\n"  # 6: key = email
        ",,,EVE@example.com,,x\n"  # 7: merges into 6
        "K1,Kimberly,713 555 4101,other@example.com,,\n",  # 8: merges into 2 again
    )
    kim, pat, eve = contacts_of(contact_list)
    assert kim.merge_key == "K1"
    assert kim.name == "Kim"  # filled because it was empty; not replaced later
    assert kim.phones == ["+17135554101", "+17135554102"]
    assert kim.email == "kim@example.com"
    assert kim.time_zone == "America/Chicago"
    assert kim.extra == {"plan": "platinum"}
    assert kim.line_number == 2
    assert pat.merge_key == "+17135554109"
    assert pat.extra == {"plan": "vip"}
    assert eve.merge_key == "eve@example.com"
    assert eve.extra == {"plan": "x"}
    assert contact_list.rows_read == 7
    assert contact_list.rows_imported == 3
    assert contact_list.rows_merged == 4
    assert contact_list.rows_rejected == 0


def test_duplicates_merge_across_batches(acme):
    rows = ["client_id,phone,email,seen"]
    batch = importer.BATCH_ROWS
    count = batch * 2 + 100
    rows += [f"ID{n},+1713555{n:04d},,first" for n in range(count)]
    # The same clients again, far apart in the file: different batches, merged in the database.
    rows += [f"ID{n},+1281555{n:04d},id{n}@example.com,second" for n in range(0, count, 7)]
    contact_list = run(acme, "\n".join(rows) + "\n")
    merged = count // 7 + 1
    assert contact_list.rows_read == count + merged
    assert contact_list.rows_imported == count == contact_list.contacts.count()
    assert contact_list.rows_merged == merged
    seven = contact_list.contacts.get(client_id="ID7")
    assert seven.phones == ["+17135550007", "+12815550007"]
    assert seven.email == "id7@example.com"
    assert seven.extra == {"seen": "second"}
    assert contact_list.contacts.get(client_id="ID8").phones == ["+17135550008"]


# --- Whole-file problems -------------------------------------------------------------------


def test_file_without_phone_or_email_column_fails_naming_the_columns(acme):
    contact_list = run(acme, "client_id,name,mobile number\nA1,Ann,713 555 4101\n")
    assert contact_list.status == ContactList.Status.FAILED
    assert contact_list.error.startswith("The file has no phone or email column.")
    for expected in ("client_id", "phone", "phone1", "phones", "email", "name", "time_zone"):
        assert expected in contact_list.error
    assert "“mobile number”" in contact_list.error  # what was found, to spot a typo
    assert contact_list.contacts.count() == 0
    assert contact_list.finished_at is not None


def test_repeated_column_fails_the_file(acme):
    contact_list = run(acme, "phone,email,Email\n7135554101,a@example.com,b@example.com\n")
    assert contact_list.status == ContactList.Status.FAILED
    assert "“Email” appears more than once" in contact_list.error


def test_non_utf8_bytes_fail_with_a_clear_message(acme):
    latin1 = "name,phone\nJosé Ñandú,713 555 4101\n".encode("cp1252")
    contact_list = run(acme, latin1)
    assert contact_list.status == ContactList.Status.FAILED
    assert contact_list.error == NOT_UTF8
    assert contact_list.contacts.count() == 0


def test_non_utf8_bytes_late_in_the_file_fail_it_and_keep_nothing(acme):
    # Several batches are written before the bad byte is reached: a failed list keeps nothing.
    good = "".join(f"Name {n},+1713555{n % 10000:04d}\n" for n in range(5000))
    contact_list = run(acme, b"name,phone\n" + good.encode() + b"Jos\xe9,7135554101\n")
    assert contact_list.status == ContactList.Status.FAILED
    assert contact_list.error == NOT_UTF8
    assert contact_list.contacts.count() == 0
    assert contact_list.issues.count() == 0
    assert contact_list.rows_imported == 0
    assert contact_list.rows_read >= importer.BATCH_ROWS  # how far it got


def test_utf8_with_and_without_bom_is_accepted(acme):
    for data in ("\ufeffname,phone\nJosé,7135554101\n", "name,phone\r\nJosé,7135554101\r\n"):
        contact_list = run(acme, data.encode())
        assert contact_list.status == ContactList.Status.READY
        assert [c.name for c in contacts_of(contact_list)] == ["José"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty."),
        (b"\n\r\n  \n", "The file is empty."),
        (b"\xef\xbb\xbf", "The file is empty."),
        (b"client_id,phone,email\n", "The file has a header row but no contacts below it."),
        (b"client_id,phone,email\n,,\n\n", "The file has a header row but no contacts below it."),
        (b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 4, "This is a spreadsheet workbook"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512), "This is a spreadsheet workbook"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "This is not a CSV text"),
        ("name,phone\n".encode("utf-16"), "The file is UTF-16 text, not UTF-8"),
        (bytes(range(1, 32)) * 20, "This is not a CSV text"),
    ],
    ids=[
        "empty",
        "blank",
        "bom-only",
        "header-only",
        "blank-rows",
        "xlsx",
        "xls",
        "png",
        "utf16",
        "control-chars",
    ],  # fmt: skip
)
def test_empty_binary_and_headless_files_fail_with_a_message(acme, data, message):
    contact_list = run(acme, data)
    assert contact_list.status == ContactList.Status.FAILED
    assert contact_list.error.startswith(message)
    assert contact_list.contacts.count() == 0


def test_broken_quoting_fails_with_the_line(acme):
    # An unclosed quote on line 3 swallows the rest of the file into one value.
    rest = "".join(f"Name {n},713555{n % 10000:04d}\n" for n in range(10_000))
    contact_list = run(acme, 'name,phone\nAnn,7135554101\n"Bob,7135554102\n' + rest)
    assert contact_list.status == ContactList.Status.FAILED
    assert contact_list.error.startswith("The row starting on line 3 cannot be read as CSV")
    assert contact_list.contacts.count() == 0


def test_oversized_upload_is_refused_stating_the_limit():
    limit = settings.MAX_UPLOAD_MB * 1024 * 1024
    assert upload_limit_bytes() == limit
    check_size(limit, limit)  # at the limit: fine
    with pytest.raises(ValidationError) as refused:
        check_size(limit + 1, limit)
    assert f"the limit is {settings.MAX_UPLOAD_MB} MB" in refused.value.messages[0]


def test_oversized_upload_is_refused_before_storing(acme, personas, settings, tmp_path):
    settings.MAX_UPLOAD_MB = 1
    settings.MEDIA_ROOT = str(tmp_path)
    upload = SimpleUploadedFile("big.csv", b"phone\n" + b"7135554101\n" * 100_000)
    with pytest.raises(ValidationError, match="the limit is 1 MB"):
        do_upload_contact_list(name="Too big", uploaded_file=upload, actor=personas.acct_admin)
    assert not ContactList.objects.filter(name="Too big").exists()
    assert not (tmp_path / "uploads").exists() or not any((tmp_path / "uploads").rglob("*"))


# --- Upload action, dial states ------------------------------------------------------------


def _stored_uploads(schema: str) -> set[str]:
    folder = f"uploads/{schema}"
    return set(default_storage.listdir(folder)[1]) if default_storage.exists(folder) else set()


def test_small_upload_is_audited_imported_at_once_and_its_file_removed(acme, personas):
    before = _stored_uploads(acme.schema_name)
    upload = SimpleUploadedFile("debtors.csv", b"client_id,phone\nD1,713 555 4101\n")
    contact_list = do_upload_contact_list(
        name="Debtors", uploaded_file=upload, actor=personas.acct_admin
    )
    assert contact_list.status == ContactList.Status.READY
    assert contact_list.source_file == "debtors.csv"
    assert contact_list.created_by_id == personas.acct_admin.pk
    assert contact_list.created_by_label == "acct.admin@acme.test"
    assert contact_list.upload_path == ""
    assert [c.phones for c in contacts_of(contact_list)] == [["+17135554101"]]
    event = AuditEvent.objects.get(action="contact_list.upload", object_id=str(contact_list.pk))
    assert event.account == personas.acct_a1
    assert event.actor == personas.acct_admin
    assert event.details == {"file": "debtors.csv", "bytes": 32, "import": "now"}
    assert _stored_uploads(acme.schema_name) == before


def test_large_upload_is_stored_privately_and_queued_on_commit(
    acme, personas, django_capture_on_commit_callbacks
):
    data = b"phone\n" + b"".join(
        f"+1713555{n % 10000:04d}\n".encode() for n in range(SYNC_IMPORT_MAX_BYTES // 12 + 1)
    )
    upload = SimpleUploadedFile("many.csv", data)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        contact_list = do_upload_contact_list(
            name="Many", uploaded_file=upload, actor=personas.acct_admin
        )
    try:
        assert len(callbacks) == 1  # the import task, sent when the transaction commits
        assert contact_list.status == ContactList.Status.QUEUED
        assert contact_list.bytes_total == len(data)
        assert contact_list.upload_path.startswith(f"uploads/{acme.schema_name}/")
        assert contact_list.upload_path.endswith(".csv")
        assert default_storage.size(contact_list.upload_path) == len(data)
        event = AuditEvent.objects.get(action="contact_list.upload", object_id=str(contact_list.pk))
        assert event.details["import"] == "queued"
        # What the worker does, here in the test's transaction: import, then drop the upload.
        summary = run_import(contact_list.pk)
        assert summary.status == ContactList.Status.READY
        assert not default_storage.exists(contact_list.upload_path)
        assert run_import(contact_list.pk) is None  # delivered twice: nothing more happens
    finally:
        if default_storage.exists(contact_list.upload_path):
            default_storage.delete(contact_list.upload_path)


def test_interrupted_import_starts_again_from_the_stored_file(acme):
    path = default_storage.save(
        f"uploads/{acme.schema_name}/{uuid.uuid4().hex}.csv",
        io.BytesIO(b"client_id,phone\nR1,7135554101\nR2,7135554102\n"),
    )
    # A worker died after writing part of the list.
    contact_list = ContactList.objects.create(
        name="Interrupted", upload_path=path, status=ContactList.Status.IMPORTING
    )
    Contact.objects.create(
        contact_list=contact_list, client_id="R1", phones=["+17135554101"], merge_key="R1"
    )
    ContactImportIssue.objects.create(contact_list=contact_list, line_number=9, reason="stale")
    summary = run_import(contact_list.pk)
    contact_list.refresh_from_db()
    assert summary.status == contact_list.status == ContactList.Status.READY
    assert [c.client_id for c in contacts_of(contact_list)] == ["R1", "R2"]
    assert (contact_list.rows_imported, contact_list.rows_merged) == (2, 0)
    assert contact_list.issues.count() == 0
    assert not default_storage.exists(path)


def test_missing_upload_file_fails_the_list(acme):
    contact_list = ContactList.objects.create(name="Lost", upload_path="uploads/nowhere/x.csv")
    summary = run_import(contact_list.pk)
    contact_list.refresh_from_db()
    assert summary.status == contact_list.status == ContactList.Status.FAILED
    assert contact_list.error == "The uploaded file is no longer available; upload it again."


def test_import_creates_dial_states_for_sub_campaigns_already_using_the_list(acme):
    contact_list = ContactList.objects.create(name="Attached early")
    campaign = Campaign.objects.create(name="Collections Q1")
    voice = SubCampaign.objects.create(
        campaign=campaign, name="Voice", channel="voice", purpose="collections"
    )
    voice.contact_lists.add(contact_list)
    other = SubCampaign.objects.create(
        campaign=campaign, name="Unattached", channel="voice", purpose="collections"
    )
    data = (
        "client_id,phone,phone2,email\n"
        "S1,713 555 4101,713 555 4102,s1@example.com\n"
        "S2,,,s2@example.com\n"  # no phone: nothing for a voice sub-campaign
        "S3,713 555 4103,,\n"
    )
    summary = import_csv(contact_list, io.BytesIO(data.encode()), "US")
    assert summary.status == ContactList.Status.READY
    states = DialState.objects.filter(sub_campaign=voice).order_by("device_key")
    assert [(s.contact.client_id, s.device_key, s.status) for s in states] == [
        ("S1", "+17135554101", "pending"),
        ("S1", "+17135554102", "pending"),
        ("S3", "+17135554103", "pending"),
    ]
    assert not DialState.objects.filter(sub_campaign=other).exists()


# --- Size and speed ------------------------------------------------------------------------


def test_a_50_mb_file_streams_through_with_bad_rows_counted(acme, tmp_path):
    """~50 MB, written and read in a stream: every 10th row has only a bad phone."""
    path = tmp_path / "big.csv"
    area_codes = [212, 213, 281, 305, 312, 415, 512, 617, 713, 832]
    notes = "Lorem ipsum dolor sit amet, consectetur adipiscing elit; " * 7  # ~400 chars
    rows = bad = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("client_id,name,phone,phone2,email,time_zone,notes\n")
        while out.tell() < 50 * 1024 * 1024:
            n = rows
            if n % 10 == 9:
                out.write(f'B{n},Bad Row {n},555-{n % 100:02d},,,,"{notes}"\n')
                bad += 1
            else:
                out.write(
                    f"C{n},Person {n},({area_codes[n % 10]}) 555-{n % 10000:04d},,"
                    f'p{n}@example.com,America/Chicago,"{notes}"\n'
                )
            rows += 1
    size = path.stat().st_size
    contact_list = ContactList.objects.create(name="Fifty MB")
    started = time.perf_counter()
    with path.open("rb") as stream:
        summary = import_csv(contact_list, stream, "US")
    assert summary.status == ContactList.Status.READY
    elapsed = time.perf_counter() - started
    contact_list.refresh_from_db()
    print(f"\n50 MB import: {rows} rows in {elapsed:.1f} s ({rows / elapsed:,.0f} rows/s)")
    assert contact_list.status == ContactList.Status.READY
    assert contact_list.bytes_read == contact_list.bytes_total == size
    assert contact_list.rows_read == rows
    assert contact_list.rows_rejected == bad == contact_list.issues.count()
    assert contact_list.rows_imported == rows - bad == contact_list.contacts.count()
    assert contact_list.rows_merged == 0
    sample = contact_list.contacts.get(client_id="C12345")
    assert sample.phones == ["+14155552345"]
    assert sample.email == "p12345@example.com"
    assert sample.extra == {"notes": notes.strip()}


def test_progress_is_committed_batch_by_batch(committed):
    """A page polling the list sees rows and bytes grow while the file is still arriving."""
    account = Account.objects.get(slug="acme-one")
    name = f"Progress list {uuid.uuid4().hex[:8]}"
    with tenant_context(account):
        contact_list = ContactList.objects.create(name=name, bytes_total=10**6)
    read_end, write_end = os.pipe()
    outcome = {}

    def importing():
        try:
            with tenant_context(account), open(read_end, "rb", buffering=0) as stream:
                outcome["summary"] = import_csv(contact_list, stream, "US")
        finally:
            connections.close_all()

    worker = threading.Thread(target=importing)
    worker.start()
    batch = importer.BATCH_ROWS
    try:
        with open(write_end, "wb") as pipe:
            pipe.write(b"client_id,phone\n")
            pipe.write(b"".join(f"P{n},+1713555{n:04d}\n".encode() for n in range(batch * 2 + 5)))
            pipe.flush()
            # The import now waits for more bytes, with two batches committed.
            deadline = time.monotonic() + 30
            while True:
                with tenant_context(account):
                    seen = ContactList.objects.get(pk=contact_list.pk)
                    contacts = seen.contacts.count()
                if seen.rows_read >= batch * 2:
                    break
                assert time.monotonic() < deadline, "no progress committed"
                time.sleep(0.05)
            assert seen.status == ContactList.Status.IMPORTING
            assert seen.rows_read == seen.rows_imported == contacts == batch * 2
            assert 0 < seen.bytes_read < seen.bytes_total
            assert 0 < seen.progress_percent < 100
            pipe.write(b"P9999,+17135559999\n")
        worker.join(30)
        assert not worker.is_alive()
        assert outcome["summary"].status == ContactList.Status.READY
        with tenant_context(account):
            contact_list.refresh_from_db()
        assert contact_list.rows_imported == batch * 2 + 6
        assert contact_list.progress_percent == 100
    finally:
        with tenant_context(account):
            ContactList.objects.filter(name=name).delete()


# --- The real worker -----------------------------------------------------------------------


@pytest.mark.worker
def test_worker_imports_an_uploaded_list(celery_worker, committed):
    account = Account.objects.get(slug="acme-one")
    admin = User.objects.get(email="acct.admin@acme.test")
    name = f"Worker list {uuid.uuid4().hex[:8]}"
    rows = SYNC_IMPORT_MAX_BYTES // 30 + 100  # over the size imported in the request
    lines = ["client_id,phone,email"]
    lines += [f"W{n},(713) 555-{n % 10000:04d},w{n}@example.com" for n in range(rows)]
    lines += ["W1,(281) 555-0001,", "X1,bad,", "X2,,"]  # one merge, two rejected
    data = ("\n".join(lines) + "\n").encode()
    assert len(data) > SYNC_IMPORT_MAX_BYTES
    with tenant_context(account):
        contact_list = do_upload_contact_list(
            name=name, uploaded_file=SimpleUploadedFile("w.csv", data), actor=admin
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            with tenant_context(account):
                contact_list.refresh_from_db()
            # The worker removes the upload just after it writes the final status.
            finished = contact_list.status in (ContactList.Status.READY, ContactList.Status.FAILED)
            if finished and not contact_list.upload_path:
                break
            assert time.monotonic() < deadline, f"import still {contact_list.status}"
            time.sleep(0.2)
        assert contact_list.status == ContactList.Status.READY, contact_list.error
        assert contact_list.rows_read == rows + 3
        assert contact_list.rows_imported == rows
        assert contact_list.rows_merged == 1
        assert contact_list.rows_rejected == 2
        assert contact_list.bytes_read == contact_list.bytes_total == len(data)
        with tenant_context(account):
            assert contact_list.contacts.count() == rows
            assert contact_list.contacts.get(client_id="W1").phones == [
                "+17135550001",
                "+12815550001",
            ]
            assert [i.line_number for i in contact_list.issues.all()] == [rows + 3, rows + 4]
            stored = contact_list.upload_path
        assert stored == ""  # the worker deleted the upload
    finally:
        with tenant_context(account):
            ContactList.objects.filter(name=name).delete()
        AuditEvent.objects.filter(
            action="contact_list.upload", account=account, object_repr=name
        ).delete()
        connection.set_schema_to_public()


# --- the list's page (issue 14, item 6) -------------------------------------------------------


def test_the_list_page_groups_the_reasons_and_offers_the_rejected_rows(personas):
    from tests.helpers import client_for

    with tenant_context(personas.acct_a1):
        lines = ["client_id,phone"] + [f"C{n},555-01{n:02d}" for n in range(60)]
        lines += ["G1,713 555 4101", "G2,not a number"]
        contact_list = run(personas.acct_a1, "\n".join(lines) + "\n", name="Grouped")
    client = client_for(personas, "acct_admin")
    page = client.get(f"/a/acme-one/lists/{contact_list.pk}/").content.decode()
    reasons = page.split('data-testid="reasons-table"')[1].split("</table>")[0]
    assert reasons.count('data-testid="reason-row"') == 2, "one row per reason, not per line"
    first = reasons.split('data-testid="reason-row"')[1]
    assert ">60<" in first and ">2<" in first  # 60 rows share it; the first is line 2
    assert 'data-testid="rejects-csv"' in page
    export = client.get(f"/a/acme-one/lists/{contact_list.pk}/rejects.csv")
    assert export["Content-Type"].startswith("text/csv")
    text = b"".join(export.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["Line", "Reason", "Content"] and len(rows) == 62
    assert rows[-1][0] == "63" and "not a number" in rows[-1][2]
    other = client_for(personas, "other_ent_admin")
    assert other.get(f"/a/acme-one/lists/{contact_list.pk}/rejects.csv").status_code == 404


def test_a_list_being_imported_shows_live_counts_not_no_contacts(personas):
    from tests.helpers import client_for

    with tenant_context(personas.acct_a1):
        contact_list = ContactList.objects.create(
            name="Big", status=ContactList.Status.IMPORTING, rows_read=230, rows_imported=220,
            rows_rejected=10,
        )  # fmt: skip
    page = client_for(personas, "acct_admin").get(f"/a/acme-one/lists/{contact_list.pk}/")
    body = page.content.decode()
    assert 'data-field="status_label">Importing<' in body  # the badge follows the import
    assert 'data-field="rows_imported">220<' in body and "data-poll-url" in body
    assert 'data-testid="contacts-pending"' in body and "No contacts in this list." not in body


def test_a_failed_or_unused_list_can_be_deleted_a_dialled_one_cannot(personas):
    from campaigns.models import SubCampaign as Sub
    from tests import factories
    from tests.helpers import client_for

    with tenant_context(personas.acct_a1):
        failed = ContactList.objects.create(name="Broken", status=ContactList.Status.FAILED,
                                            error="The file is not UTF-8 text")  # fmt: skip
        used = factories.contact_list([{"client_id": "U1", "phones": ["+17135554101"]}])
        factories.sub_campaign(used)
    admin, agent = client_for(personas, "acct_admin"), client_for(personas, "agent")
    page = admin.get(f"/a/acme-one/lists/{failed.pk}/").content.decode()
    assert 'data-testid="delete-list"' in page and "data-confirm" in page
    assert agent.post(f"/a/acme-one/lists/{failed.pk}/delete/").status_code == 403
    assert admin.get(f"/a/acme-one/lists/{failed.pk}/delete/").status_code == 405
    done = admin.post(f"/a/acme-one/lists/{failed.pk}/delete/", follow=True)
    assert "List “Broken” deleted with its 0 contacts." in done.content.decode()
    refused = admin.post(f"/a/acme-one/lists/{used.pk}/delete/", follow=True)
    assert "Sub-campaigns use this list" in refused.content.decode()
    with tenant_context(personas.acct_a1):
        assert not ContactList.objects.filter(pk=failed.pk).exists()
        assert ContactList.objects.filter(pk=used.pk).exists()
        assert Sub.objects.filter(contact_lists=used).exists()
    assert AuditEvent.objects.filter(action="contact_list.delete", account=personas.acct_a1,
                                     details__name="Broken").exists()  # fmt: skip


@pytest.mark.parametrize(("language", "shown"), [("en", "12,345"), ("pt-br", "12.345")])
def test_counts_carry_the_readers_thousands_separator(personas, language, shown):
    # Issue 14, item 8: numbers without thousands separators.
    from tests.helpers import client_for

    with tenant_context(personas.acct_a1):
        contact_list = ContactList.objects.create(
            name="Large", status=ContactList.Status.READY, rows_read=12345, rows_imported=12345,
        )  # fmt: skip
    client = client_for(personas, "acct_admin")
    client.cookies["django_language"] = language
    body = client.get(f"/a/acme-one/lists/{contact_list.pk}/").content.decode()
    assert f'data-field="rows_read">{shown}<' in body


def test_deleting_a_list_of_one_contact_says_so_in_the_singular(personas):
    from tests import factories
    from tests.helpers import client_for

    with tenant_context(personas.acct_a1):
        single = factories.contact_list([{"client_id": "S1", "phones": ["+17135554101"]}])
    done = client_for(personas, "acct_admin").post(f"/a/acme-one/lists/{single.pk}/delete/",
                                                   follow=True)  # fmt: skip
    assert f"List “{single.name}” deleted with its 1 contact." in done.content.decode()
