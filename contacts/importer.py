"""Contact-list import: a CSV file streamed in, normalised, merged and written in batches.

What the engine accepts, and what it decides for the people who upload:

* **Encoding.** UTF-8, with or without a byte-order mark (Excel's "CSV UTF-8" writes one).
  Bytes that are not UTF-8 stop the import with "The file is not UTF-8 text; save it as CSV
  UTF-8 and upload again." We deliberately do not fall back to cp1252/latin-1: every byte
  string decodes "successfully" as latin-1, so a wrong guess would silently garble names,
  emails and extra columns instead of telling the user. Workbooks (xlsx/xls), UTF-16 text and
  other binary files are recognised and refused with their own message.
* **Delimiter.** Comma, semicolon or tab, whichever the header row uses most (Excel in Brazil
  saves "CSV" with semicolons). Values containing the delimiter must be in double quotes.
* **Columns.** A header row is required; names are matched ignoring case, spaces, ``_`` and
  ``-``: ``client_id`` (also "client id", "clientid"), ``phone`` / ``phone1`` … ``phoneN``,
  ``phones`` (several numbers separated by ``;`` or ``|``), ``email``, ``name``,
  ``time_zone``. Every other column is kept in ``Contact.extra`` under its header text (empty
  values are not stored). A file with neither a phone nor an email column is refused.
* **Rows.** Phones become E.164 in the enterprise's default region and emails are normalised
  (``devices.keys``). A row with no usable phone and no usable email, a client ID over 100
  characters, an unknown time zone, or more values than the header has columns is rejected
  and reported as a ``ContactImportIssue`` (``line_number`` is the physical line where the
  row starts, the header being line 1). A bad phone or email on a row that has another usable
  device is dropped and reported, and the row is kept. Blank lines are skipped silently;
  names longer than 200 characters are cut. A value over ``csv.field_size_limit()`` (128 KiB,
  in practice an unclosed quote) stops the import naming the line where that row starts.
* **Duplicates.** Rows with the same merge key (client ID, else first phone, else email) are
  merged into the first one: phones are unioned in order, empty email/name/time zone filled,
  extra columns updated (later values win).
* **Counters.** ``rows_read`` = ``rows_imported`` (rows that became a new contact, i.e. the
  number of contacts in the list) + ``rows_merged`` (kept rows merged into an earlier
  contact) + ``rows_rejected``. They and ``bytes_read`` are committed after every batch, so a
  page polling the list shows progress.
* **Failure.** A file-level problem (encoding, missing columns, no rows, broken CSV) marks the
  list ``failed`` with the message in ``error``, and removes whatever part of it had already
  been written: a failed list never has contacts that could be dialled.

Writing: each batch of rows is merged in memory, copied (PostgreSQL ``COPY``) into a
temporary table and moved with one ``INSERT … ON CONFLICT (contact_list_id, merge_key) DO
UPDATE``, so duplicates across batches merge in the database without keeping every key of a
large file in memory. One transaction per batch, including the progress update.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import IO
from zoneinfo import available_timezones

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from contacts.models import Contact, ContactImportIssue, ContactList
from contacts.signals import contact_list_ready
from devices import uploads
from devices.keys import DeviceKeyError, normalize_email, normalize_phone

logger = logging.getLogger(__name__)

BATCH_ROWS = 2000
SNIFF_BYTES = uploads.SNIFF_BYTES
READ_CHUNK = 256 * 1024
MAX_RAW = 300
MAX_REASON = 300
MAX_CLIENT_ID = Contact._meta.get_field("client_id").max_length
MAX_NAME = Contact._meta.get_field("name").max_length
# Normalisation results remembered during one import (numbers repeat across rows).
CACHE_LIMIT = 200_000

CLIENT_ID, PHONE, PHONES, EMAIL, NAME, TIME_ZONE = (
    "client_id",
    "phone",
    "phones",
    "email",
    "name",
    "time_zone",
)
_COLUMN_ALIASES = {
    "clientid": CLIENT_ID,
    "phone": PHONE,
    "phones": PHONES,
    "email": EMAIL,
    "name": NAME,
    "timezone": TIME_ZONE,
}
_NUMBERED_PHONE = re.compile(r"^phone\d{1,2}$")
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
_PHONES_SEPARATOR = re.compile(r"[;|]")


def _messages() -> dict[str, str]:
    # Built per call so each message is translated in the active language.
    return {
        "empty": _("The file is empty."),
        "not_utf8": uploads.not_utf8_message(),
        "no_rows": _("The file has a header row but no contacts below it."),
        "expected_columns": _(
            "The first row must name the columns: client_id, phone (or phone1, phone2, …, "
            "or phones), email, name, time_zone; at least a phone or an email column."
        ),
    }


class ImportFileError(Exception):
    """The whole file is refused; the message says why, for the person who uploaded it."""


@dataclass
class ImportSummary:
    status: str
    error: str = ""
    bytes_read: int = 0
    rows_read: int = 0
    rows_imported: int = 0
    rows_merged: int = 0
    rows_rejected: int = 0
    issues: int = 0
    seconds: float = 0.0
    write_seconds: float = 0.0  # of which in the database (COPY, merge, progress)
    columns: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def upload_limit_bytes() -> int:
    return uploads.megabytes(settings.MAX_UPLOAD_MB)


@cache
def _time_zones() -> dict[str, str]:
    """IANA zone names by their lower-case form, so "america/chicago" is accepted."""
    return {name.lower(): name for name in available_timezones()}


# --- Reading bytes ---------------------------------------------------------------------------


class _ByteSource(io.RawIOBase):
    """The uploaded bytes (after the sniffed head), counting what has been read."""

    def __init__(self, fileobj: IO[bytes], head: bytes):
        self._file = fileobj
        self._head = head
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            data, self._head = self._head[: len(buffer)], self._head[len(buffer) :]
        else:
            data = self._file.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n


def _sniff(head: bytes) -> None:
    """Refuses what is clearly not CSV text, from the first bytes (devices.uploads)."""
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        raise ImportFileError(_messages()["empty"])
    try:
        uploads.sniff(head)
    except uploads.NotText as exc:
        raise ImportFileError(str(exc)) from None


def _stream_size(fileobj: IO[bytes]) -> int:
    try:
        here = fileobj.tell()
        end = fileobj.seek(0, io.SEEK_END)
        fileobj.seek(here)
        return max(0, end - here)
    except (AttributeError, OSError, ValueError):
        return 0


# --- Columns ---------------------------------------------------------------------------------


@dataclass
class _Columns:
    width: int
    client_id: int | None = None
    email: int | None = None
    name: int | None = None
    time_zone: int | None = None
    phones: list[int] = field(default_factory=list)  # one number per cell
    multi_phones: list[int] = field(default_factory=list)  # "phones": several per cell
    extra: list[tuple[int, str]] = field(default_factory=list)

    def describe(self, header: list[str]) -> dict[str, list[str]]:
        def names(indexes):
            return [header[i].strip() for i in indexes]

        single = {
            CLIENT_ID: self.client_id,
            EMAIL: self.email,
            NAME: self.name,
            TIME_ZONE: self.time_zone,
        }
        found = {key: names([i]) for key, i in single.items() if i is not None}
        found[PHONE] = names(self.phones + self.multi_phones)
        found["extra"] = [key for _i, key in self.extra]
        return found


def _canonical(header: str) -> str:
    return _NOT_ALNUM.sub("", header.casefold())


def _read_columns(header: list[str]) -> _Columns:
    columns = _Columns(width=len(header))
    seen_extra: set[str] = set()
    for index, text in enumerate(header):
        label = text.strip()
        canonical = _canonical(label)
        role = _COLUMN_ALIASES.get(canonical)
        if role is None and _NUMBERED_PHONE.match(canonical):
            role = PHONE
        if role == PHONE:
            columns.phones.append(index)
        elif role == PHONES:
            columns.multi_phones.append(index)
        elif role is not None:
            if getattr(columns, role) is not None:
                raise ImportFileError(
                    _("The column “%(column)s” appears more than once; keep one and upload again.")
                    % {"column": label}
                )
            setattr(columns, role, index)
        else:
            key = label or _("column %(number)s") % {"number": index + 1}
            n = 2
            while key in seen_extra:
                key = f"{label or index + 1} ({n})"
                n += 1
            seen_extra.add(key)
            columns.extra.append((index, key))
    if not columns.phones and not columns.multi_phones and columns.email is None:
        found = ", ".join(f"“{h.strip()[:40]}”" for h in header[:8] if h.strip())
        message = (
            _("The file has no phone or email column.") + " " + _messages()["expected_columns"]
        )
        if found:
            message += " " + _("Columns found: %(columns)s.") % {"columns": found}
        raise ImportFileError(message)
    return columns


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


# --- The engine ------------------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Import:
    def __init__(self, contact_list: ContactList, region: str):
        self.contact_list = contact_list
        self.list_id = contact_list.pk
        self.region = region
        self.summary = ImportSummary(status=ContactList.Status.IMPORTING)
        self.batch: dict[str, list] = {}
        self.batch_rows = 0  # rows kept in the current batch
        self.issues: list[tuple[int, str, str]] = []
        self.phone_cache: dict[str, tuple[bool, str]] = {}
        self.email_cache: dict[str, tuple[bool, str]] = {}
        self.source: _ByteSource | None = None
        self.zones = _time_zones()

    # Normalisation, remembered per import.

    def _phone(self, value: str) -> tuple[bool, str]:
        found = self.phone_cache.get(value)
        if found is None:
            try:
                found = (True, normalize_phone(value, self.region))
            except DeviceKeyError as exc:
                found = (False, str(exc))
            if len(self.phone_cache) >= CACHE_LIMIT:
                self.phone_cache.clear()
            self.phone_cache[value] = found
        return found

    def _email(self, value: str) -> tuple[bool, str]:
        found = self.email_cache.get(value)
        if found is None:
            try:
                found = (True, normalize_email(value))
            except DeviceKeyError as exc:
                found = (False, str(exc))
            if len(self.email_cache) >= CACHE_LIMIT:
                self.email_cache.clear()
            self.email_cache[value] = found
        return found

    # Reading.

    def run(self, fileobj: IO[bytes]) -> None:
        head = fileobj.read(SNIFF_BYTES)
        _sniff(head)
        self.source = _ByteSource(fileobj, head)
        text = io.TextIOWrapper(
            io.BufferedReader(self.source, READ_CHUNK),
            encoding="utf-8-sig",
            errors="strict",
            newline="",
        )
        pending: list[str] = []  # physical lines of the row being read, for Issue.raw

        def lines() -> Iterator[str]:
            for line in text:
                if "\x00" in line:  # PostgreSQL text cannot hold NUL
                    line = line.replace("\x00", "")
                pending.append(line)
                yield line

        source_lines = lines()
        reader = None
        try:
            first = next(source_lines, "")
            reader = csv.reader(itertools.chain([first], source_lines), delimiter=_delimiter(first))
            self._read(reader, pending)
        except UnicodeDecodeError:
            raise ImportFileError(_messages()["not_utf8"]) from None
        except csv.Error as exc:
            raise ImportFileError(
                _(
                    "The row starting on line %(line)s cannot be read as CSV (%(reason)s). Check "
                    "the quotes on that line, or export the file again as CSV UTF-8."
                )
                % {"line": reader.line_num - len(pending) + 1 if reader else 1, "reason": exc}
            ) from None

    def _read(self, reader, pending: list[str]) -> None:
        header: list[str] | None = None
        for row in reader:
            if not any(row):
                pending.clear()
                continue
            if header is None:
                header = row
                columns = _read_columns(header)
                self.summary.columns = columns.describe(header)
                pending.clear()
                continue
            line = reader.line_num - len(pending) + 1
            self._row(row, line, columns, pending)
            pending.clear()
            if self.batch_rows + len(self.issues) >= BATCH_ROWS:
                self._flush()
        if header is None:
            raise ImportFileError(_messages()["empty"])
        self._flush()
        if not self.summary.rows_read:
            raise ImportFileError(_messages()["no_rows"])

    def _reject(self, line: int, pending: list[str], reason: str) -> None:
        self.summary.rows_rejected += 1
        self.issues.append((line, _clip(reason, MAX_REASON), _clip("".join(pending), MAX_RAW)))

    def _row(self, row: list[str], line: int, columns: _Columns, pending: list[str]) -> None:
        self.summary.rows_read += 1
        width = len(row)
        if width > columns.width and any(cell.strip() for cell in row[columns.width :]):
            self._reject(
                line,
                pending,
                _(
                    "Not imported: this line has %(values)s values but the header has "
                    "%(columns)s columns. Put values that contain the delimiter in double quotes."
                )
                % {"values": width, "columns": columns.width},
            )
            return

        def cell(index: int | None) -> str:
            return row[index].strip() if index is not None and index < width else ""

        client_id = cell(columns.client_id)
        if len(client_id) > MAX_CLIENT_ID:
            self._reject(
                line,
                pending,
                _("Not imported: the client ID is longer than %(max)s characters.")
                % {"max": MAX_CLIENT_ID},
            )
            return
        zone = cell(columns.time_zone)
        if zone:
            canonical_zone = self.zones.get(zone.lower())
            if canonical_zone is None:
                self._reject(
                    line,
                    pending,
                    _(
                        "Not imported: “%(zone)s” is not a known time zone; use a name such as "
                        "America/Chicago or America/Sao_Paulo, or leave it empty."
                    )
                    % {"zone": zone[:64]},
                )
                return
            zone = canonical_zone

        raw_phones = [value for value in (cell(i) for i in columns.phones) if value]
        for index in columns.multi_phones:
            value = cell(index)
            if value:
                raw_phones.extend(p.strip() for p in _PHONES_SEPARATOR.split(value) if p.strip())
        phones: list[str] = []
        problems: list[str] = []
        for value in raw_phones:
            ok, result = self._phone(value)
            if not ok:
                problems.append(result)
            elif result not in phones:
                phones.append(result)
        email = cell(columns.email)
        if email:
            ok, result = self._email(email)
            if ok:
                email = result
            else:
                problems.append(result)
                email = ""

        if not phones and not email:
            if problems:
                reason = _("Not imported: no usable phone number or email address. %(problems)s")
                reason %= {"problems": " ".join(problems)}
            else:
                reason = _("Not imported: this line has no phone number or email address.")
            self._reject(line, pending, reason)
            return
        for problem in problems:
            self.issues.append(
                (
                    line,
                    _clip(
                        _("Row kept without this phone number or email address: %(problem)s")
                        % {"problem": problem},
                        MAX_REASON,
                    ),
                    _clip("".join(pending), MAX_RAW),
                )
            )

        name = cell(columns.name)[:MAX_NAME]
        extra = {}
        for index, key in columns.extra:
            if index < width:
                value = row[index].strip()
                if value:
                    extra[key] = value
        merge_key = client_id or (phones[0] if phones else email)
        self.batch_rows += 1
        known = self.batch.get(merge_key)
        if known is None:
            self.batch[merge_key] = [client_id, name, phones, email, zone, extra, line]
            return
        for phone in phones:
            if phone not in known[2]:
                known[2].append(phone)
        if not known[1]:
            known[1] = name
        if not known[3]:
            known[3] = email
        if not known[4]:
            known[4] = zone
        known[5].update(extra)

    # Writing.

    def _flush(self) -> None:
        summary = self.summary
        if self.source is not None:
            summary.bytes_read = self.source.count
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            raw = cursor.cursor  # psycopg's own cursor, for COPY
            if self.batch:
                inserted = self._write_contacts(cursor, raw)
                summary.rows_imported += inserted
                summary.rows_merged += self.batch_rows - inserted
            if self.issues:
                with raw.copy(
                    "COPY contacts_contactimportissue (contact_list_id, line_number, reason, raw) "
                    "FROM STDIN"
                ) as copy:
                    for line, reason, text in self.issues:
                        copy.write_row((self.list_id, line, reason, text))
                summary.issues += len(self.issues)
            ContactList.objects.filter(pk=self.list_id).update(
                bytes_read=summary.bytes_read,
                rows_read=summary.rows_read,
                rows_imported=summary.rows_imported,
                rows_merged=summary.rows_merged,
                rows_rejected=summary.rows_rejected,
            )
        summary.write_seconds += time.perf_counter() - started
        self.batch = {}
        self.batch_rows = 0
        self.issues = []

    def _write_contacts(self, cursor, raw) -> int:
        cursor.execute(
            "CREATE TEMP TABLE contact_import_rows (merge_key text, client_id text, name text, "
            "phones text[], email text, time_zone text, extra jsonb, line_number integer) "
            "ON COMMIT DROP"
        )
        with raw.copy(
            "COPY contact_import_rows (merge_key, client_id, name, phones, email, time_zone, "
            "extra, line_number) FROM STDIN"
        ) as copy:
            for key, (client_id, name, phones, email, zone, extra, line) in self.batch.items():
                copy.write_row((key, client_id, name, phones, email, zone, json.dumps(extra), line))
        # A later row with a key already in the list merges into that contact; xmax = 0 tells
        # the rows this statement inserted from those it updated.
        cursor.execute(
            """
            WITH written AS (
                INSERT INTO contacts_contact AS c
                    (contact_list_id, merge_key, client_id, name, phones, email, time_zone,
                     extra, line_number)
                SELECT %s, merge_key, client_id, name, phones, email, time_zone, extra,
                       line_number
                FROM contact_import_rows
                ORDER BY line_number
                ON CONFLICT (contact_list_id, merge_key) DO UPDATE SET
                    phones = c.phones || ARRAY(
                        SELECT p FROM unnest(EXCLUDED.phones) WITH ORDINALITY AS n(p, i)
                        WHERE NOT p = ANY(c.phones) ORDER BY i
                    ),
                    client_id = CASE WHEN c.client_id = '' THEN EXCLUDED.client_id
                                     ELSE c.client_id END,
                    name = CASE WHEN c.name = '' THEN EXCLUDED.name ELSE c.name END,
                    email = CASE WHEN c.email = '' THEN EXCLUDED.email ELSE c.email END,
                    time_zone = CASE WHEN c.time_zone = '' THEN EXCLUDED.time_zone
                                     ELSE c.time_zone END,
                    extra = c.extra || EXCLUDED.extra
                RETURNING xmax = 0 AS inserted
            )
            SELECT count(*) FILTER (WHERE inserted) FROM written
            """,
            [self.list_id],
        )
        (inserted,) = cursor.fetchone()
        cursor.execute("DROP TABLE contact_import_rows")
        return inserted


def _discard_partial_import(contact_list: ContactList) -> None:
    Contact.objects.filter(contact_list_id=contact_list.pk).delete()
    ContactImportIssue.objects.filter(contact_list_id=contact_list.pk).delete()


def _finish(contact_list: ContactList, summary: ImportSummary, **changes) -> None:
    changes["finished_at"] = timezone.now()
    ContactList.objects.filter(pk=contact_list.pk).update(**changes)
    for name, value in changes.items():
        setattr(contact_list, name, value)
    for name in ("bytes_read", "rows_read", "rows_imported", "rows_merged", "rows_rejected"):
        setattr(contact_list, name, getattr(summary, name))


def import_csv(contact_list: ContactList, fileobj_binary: IO[bytes], region: str) -> ImportSummary:
    """Imports a CSV (binary file object, read once, streamed) into ``contact_list``.

    Runs in the current account schema, in the caller's transaction if there is one (then
    progress is only visible once it commits). Ends with the list ``ready`` (and dial states
    created for sub-campaigns already using it) or ``failed`` with a message for the user in
    ``error``; unexpected errors are re-raised after marking the list failed.
    """
    started = time.perf_counter()
    bytes_total = contact_list.bytes_total or _stream_size(fileobj_binary)
    ContactList.objects.filter(pk=contact_list.pk).update(
        status=ContactList.Status.IMPORTING,
        bytes_total=bytes_total,
        bytes_read=0,
        rows_read=0,
        rows_imported=0,
        rows_merged=0,
        rows_rejected=0,
        error="",
        finished_at=None,
    )
    contact_list.bytes_total = bytes_total
    engine = _Import(contact_list, region)
    summary = engine.summary
    try:
        engine.run(fileobj_binary)
    except ImportFileError as exc:
        summary.status, summary.error = ContactList.Status.FAILED, str(exc)
    except Exception:
        logger.exception("Import of contact list %s failed", contact_list.pk)
        summary.status = ContactList.Status.FAILED
        summary.error = _("The import stopped because of an internal error. Upload the file again.")
        with transaction.atomic():
            _discard_partial_import(contact_list)
            summary.rows_imported = summary.rows_merged = summary.rows_rejected = 0
            _finish(contact_list, summary, status=summary.status, error=summary.error)
        raise
    summary.seconds = round(time.perf_counter() - started, 3)
    if summary.status == ContactList.Status.FAILED:
        with transaction.atomic():
            _discard_partial_import(contact_list)
            summary.rows_imported = summary.rows_merged = summary.rows_rejected = 0
            summary.issues = 0
            _finish(
                contact_list,
                summary,
                status=summary.status,
                error=summary.error,
                bytes_read=summary.bytes_read,
                rows_read=summary.rows_read,
                rows_imported=0,
                rows_merged=0,
                rows_rejected=0,
            )
        return summary
    summary.status = ContactList.Status.READY
    summary.bytes_read = engine.source.count if engine.source else summary.bytes_read
    with transaction.atomic():
        # Sub-campaigns already using the list get its contacts in the same commit as "ready".
        contact_list_ready.send(sender=ContactList, list_ids=[contact_list.pk])
        _finish(contact_list, summary, status=summary.status, bytes_read=summary.bytes_read)
    summary.seconds = round(time.perf_counter() - started, 3)
    summary.write_seconds = round(summary.write_seconds, 3)
    return summary


def run_import(contact_list_id: int) -> ImportSummary | None:
    """Imports an uploaded list from storage, then deletes the upload. Safe to run twice.

    A list already ``ready`` or ``failed`` is left alone (a task delivered twice). A list
    found ``importing`` was left half-done by a worker that died: its partial contacts are
    removed and the import starts again from the stored file. Issues and errors are stored
    as text, so they are written in the enterprise's language, like its pages.
    """
    with uploads.run_once(uploads.job_key("contact-list", contact_list_id)) as mine:
        if not mine:
            logger.info("Contact list %s is being imported by another worker", contact_list_id)
            return None
        return _run_import_locked(contact_list_id)


def _run_import_locked(contact_list_id: int) -> ImportSummary | None:
    contact_list = ContactList.objects.filter(pk=contact_list_id).first()
    if contact_list is None or contact_list.status not in (
        ContactList.Status.QUEUED,
        ContactList.Status.IMPORTING,
    ):
        return None
    if contact_list.status == ContactList.Status.IMPORTING:
        logger.warning("Contact list %s: restarting an interrupted import", contact_list.pk)
        with transaction.atomic():
            _discard_partial_import(contact_list)
    enterprise = connection.tenant.enterprise
    with translation.override(enterprise.language):
        summary = _import_stored_file(contact_list, enterprise.default_region)
    logger.info(
        "Contact list %s %s: %s rows read, %s kept, %s merged, %s rejected in %.1f s",
        contact_list.pk,
        summary.status,
        summary.rows_read,
        summary.rows_imported,
        summary.rows_merged,
        summary.rows_rejected,
        summary.seconds,
    )
    return summary


def _import_stored_file(contact_list: ContactList, region: str) -> ImportSummary:
    path = contact_list.upload_path
    try:
        fileobj = default_storage.open(path, "rb") if path else None
    except OSError:
        fileobj = None
    if fileobj is None:
        summary = ImportSummary(
            status=ContactList.Status.FAILED,
            error=_("The uploaded file is no longer available; upload it again."),
        )
        _finish(contact_list, summary, status=summary.status, error=summary.error)
        return summary
    try:
        with fileobj:
            return import_csv(contact_list, fileobj, region)
    finally:
        uploads.discard(path)
        ContactList.objects.filter(pk=contact_list.pk).update(upload_path="")
