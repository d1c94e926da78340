"""Bulk import into a campaign blacklist: CSV or plain text, up to a million lines.

The file is read as a stream; each chunk of lines is parsed, then written in one
transaction (holding the locks of the campaigns using the list) with one set-based
INSERT … ON CONFLICT DO NOTHING and one set-based suppression of matching dial states.
Malformed lines are reported with their line numbers and the good lines are kept;
numbers already on the list, or repeated in the file, are counted as duplicates. A line
that is not UTF-8 text is rejected with that reason (there is no latin-1 guess).

Uploads go through the one upload pipeline (``devices.uploads``): size checked before the
body is read, private storage, the job row with its audit row, a worker for large files,
and one run at a time per job.
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

from accounts.actions import audit
from campaigns.blacklists import add_entries, campaign_ids_of
from campaigns.locks import lock_campaigns
from campaigns.models import Blacklist, BlacklistEntry, BlacklistImport
from contacts.importer import upload_limit_bytes
from devices import uploads
from devices.keys import DeviceKeyError, parse_phone_or_extension

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
        """(line number, text or NotText) for each non-blank line."""
        for line_number, raw in enumerate(self.fileobj, start=1):
            self.bytes_read += len(raw)
            if line_number == 1:
                uploads.sniff(raw[: uploads.SNIFF_BYTES])
            try:
                text = uploads.decode_line(raw).lstrip("\ufeff").rstrip("\r\n")
            except uploads.NotText as exc:
                yield line_number, exc
                continue
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


def do_upload_blacklist(
    blacklist: Blacklist, uploaded_file, *, reason: str = "", actor=None, request=None
) -> BlacklistImport:
    """Stores an upload and imports it: small files at once, large ones in a worker."""

    def create_job(path: str, name: str, size: int) -> BlacklistImport:
        job = BlacklistImport.objects.create(
            blacklist=blacklist,
            file_name=name,
            upload_path=path,
            reason=reason[:255],
            bytes_total=size,
            created_by_label=getattr(actor, "email", "")[:254],
        )
        now = size <= uploads.SYNC_IMPORT_MAX_BYTES
        audit(actor, "blacklist.import", account=connection.tenant, obj=blacklist,
              details={"file": name, "bytes": size, "import": "now" if now else "queued"},
              request=request)  # fmt: skip
        return job

    job, ran_now = uploads.start_import(
        uploaded_file,
        kind="blacklist",
        limit_bytes=upload_limit_bytes(),
        create_job=create_job,
        task="campaigns.tasks.import_blacklist",
        run_now=run_blacklist_import,
    )
    if ran_now:
        job.refresh_from_db()
    return job


def run_blacklist_import(import_id: int) -> BlacklistImport | None:
    """Imports one upload in the current account; a finished import is not run again, and
    one left running by a worker that died starts again (chunks already written are
    skipped as duplicates)."""
    with uploads.run_once(uploads.job_key("blacklist", import_id)) as mine:
        if not mine:
            log.info("Blacklist import %s is running in another worker", import_id)
            return None
        job = BlacklistImport.objects.select_related("blacklist").filter(pk=import_id).first()
        if job is None or job.status in (
            BlacklistImport.Status.DONE,
            BlacklistImport.Status.FAILED,
        ):
            return job
        job.status = BlacklistImport.Status.RUNNING
        job.save(update_fields=["status"])
        return _run(job)


def _run(job: BlacklistImport) -> BlacklistImport:
    region = connection.tenant.enterprise.default_region
    try:
        if not job.upload_path or not default_storage.exists(job.upload_path):
            raise uploads.NotText(_("The uploaded file is no longer available; upload it again."))
        with default_storage.open(job.upload_path, "rb") as handle:
            _import(job, _Reader(io.BufferedReader(handle), region))
    except uploads.NotText as exc:  # the whole file: the good chunks before it stay
        job.status = BlacklistImport.Status.FAILED
        job.error = str(exc)
    except Exception as exc:  # the job says what went wrong; the good chunks stay
        log.exception("blacklist import %s failed", job.pk)
        job.status = BlacklistImport.Status.FAILED
        job.error = _("The import stopped: %(error)s") % {"error": str(exc)[:300]}
    else:
        job.status = BlacklistImport.Status.DONE
    job.finished_at = timezone.now()
    job.save()
    uploads.discard(job.upload_path)
    return job


def _import(job: BlacklistImport, reader: _Reader) -> None:
    job.lines_read = job.added = job.duplicates = job.rejected = 0
    job.issues = []
    seen: set[str] = set()
    chunk: list[tuple[str, str, str]] = []
    for line_number, text in reader.rows():
        job.lines_read += 1
        if isinstance(text, uploads.NotText):
            job.rejected += 1
            if len(job.issues) < ISSUES_KEPT:
                job.issues.append([line_number, str(text), ""])
            continue
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
            device = parse_phone_or_extension(value, reader.region)
            kind, key = device.kind, device.key
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
            lock_campaigns(campaign_ids_of(job.blacklist), shared=False)
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
