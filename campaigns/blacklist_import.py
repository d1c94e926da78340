"""Bulk import into a campaign blacklist: CSV or plain text, up to a million lines.

The file is read as a stream; each chunk of lines is parsed, then written in one
transaction (holding the locks of the campaigns using the list) with one set-based
INSERT … ON CONFLICT DO NOTHING and one set-based suppression of matching dial states.
Malformed lines are reported with their line numbers and the good lines are kept;
numbers already on the list, or repeated in the file, are counted as duplicates.
"""

from __future__ import annotations

import csv
import io
import logging
import re

from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.blacklists import _campaign_ids, add_entries, lock_campaigns, parse_entry
from campaigns.models import BlacklistEntry, BlacklistImport
from devices.keys import DeviceKeyError

log = logging.getLogger(__name__)

MAX_LINES = 1_000_000
CHUNK_LINES = 50_000
ISSUES_KEPT = 200
_NUMBER_COLUMNS = {
    "number", "numbers", "phone", "phones", "telephone", "telefone", "numero", "número",
    "device", "extension", "ramal", "msisdn", "e164",
}  # fmt: skip
_REASON_COLUMNS = {"reason", "motivo"}
_HEADER_HINT = re.compile(r"[A-Za-zÀ-ÿ]{3,}")


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class _Reader:
    """Lines of the upload with their numbers; knows the number and reason columns."""

    def __init__(self, fileobj, region: str):
        self.fileobj = fileobj
        self.region = region
        self.delimiter: str | None = None
        self.number_col = 0
        self.reason_col: int | None = None
        self.bytes_read = 0

    def rows(self):
        for line_number, raw in enumerate(self.fileobj, start=1):
            self.bytes_read += len(raw)
            text = _decode(raw).lstrip("\ufeff").rstrip("\r\n")
            if not text.strip():
                continue
            if (line_number == 1 or self.delimiter is None) and self._first_line(text):
                continue
            yield line_number, text

    def _first_line(self, text: str) -> bool:
        """Sets up columns from the first non-empty line; True if it was a header."""
        self.delimiter = next((d for d in (",", ";", "\t") if d in text), "")
        cells = self.split(text)
        names = [cell.strip().lower() for cell in cells]
        if any(name in _NUMBER_COLUMNS for name in names):
            self.number_col = next(i for i, n in enumerate(names) if n in _NUMBER_COLUMNS)
            self.reason_col = next((i for i, n in enumerate(names) if n in _REASON_COLUMNS), None)
            return True
        # No known column name: a first line with words and no digits is a header too.
        return bool(_HEADER_HINT.search(cells[0])) and not any(ch.isdigit() for ch in cells[0])

    def split(self, text: str) -> list[str]:
        if not self.delimiter:
            return [text]
        return next(csv.reader([text], delimiter=self.delimiter))


def run_blacklist_import(import_id: int) -> BlacklistImport | None:
    """Imports one upload in the current account; a finished import is not run again."""
    with transaction.atomic():
        job = (
            BlacklistImport.objects.select_for_update()
            .select_related("blacklist")
            .filter(pk=import_id)
            .first()
        )
        if job is None or job.status in (
            BlacklistImport.Status.DONE,
            BlacklistImport.Status.FAILED,
        ):
            return job
        job.status = BlacklistImport.Status.RUNNING
        job.save(update_fields=["status"])
    region = connection.tenant.enterprise.default_region
    try:
        with default_storage.open(job.upload_path, "rb") as handle:
            _import(job, _Reader(io.BufferedReader(handle), region))
    except Exception as exc:  # the job says what went wrong; the good chunks stay
        log.exception("blacklist import %s failed", import_id)
        job.status = BlacklistImport.Status.FAILED
        job.error = _("The import stopped: %(error)s") % {"error": str(exc)[:300]}
        job.finished_at = timezone.now()
        job.save()
        return job
    job.status = BlacklistImport.Status.DONE
    job.finished_at = timezone.now()
    job.save()
    default_storage.delete(job.upload_path)
    return job


def _import(job: BlacklistImport, reader: _Reader) -> None:
    job.lines_read = job.added = job.duplicates = job.rejected = 0
    job.issues = []
    seen: set[str] = set()
    chunk: list[tuple[str, str, str]] = []
    for line_number, text in reader.rows():
        job.lines_read += 1
        if job.lines_read > MAX_LINES:
            job.lines_read -= 1
            job.error = _(
                "The file has more than %(max)s lines; the first %(max)s were imported."
            ) % {"max": f"{MAX_LINES:,}"}
            break
        cells = reader.split(text)
        value = cells[reader.number_col].strip() if reader.number_col < len(cells) else ""
        reason = ""
        if reader.reason_col is not None and reader.reason_col < len(cells):
            reason = cells[reader.reason_col].strip()
        try:
            if not value:
                raise DeviceKeyError(_("No number on this line."))
            kind, key = parse_entry(value, reader.region)
        except DeviceKeyError as exc:
            job.rejected += 1
            if len(job.issues) < ISSUES_KEPT:
                job.issues.append([line_number, str(exc), text[:120]])
            continue
        if key in seen:
            job.duplicates += 1
            continue
        seen.add(key)
        chunk.append((kind, key, reason or job.reason))
        if len(chunk) >= CHUNK_LINES:
            _write(job, chunk, reader)
            chunk = []
    _write(job, chunk, reader)


def _write(job: BlacklistImport, chunk: list[tuple[str, str, str]], reader: _Reader) -> None:
    """One transaction per chunk: entries, suppressions and the progress row."""
    job.bytes_read = reader.bytes_read
    with transaction.atomic():
        if chunk:
            lock_campaigns(_campaign_ids(job.blacklist), shared=False)
            added, _suppressed = add_entries(
                job.blacklist,
                chunk,
                reason="",
                source=BlacklistEntry.Source.IMPORT,
                expires_at=None,
                added_by=job.created_by_label or "import",
            )
            job.added += added
            job.duplicates += len(chunk) - added
        job.save(
            update_fields=[
                "status", "bytes_read", "lines_read", "added", "duplicates", "rejected",
                "issues", "error",
            ]
        )  # fmt: skip
