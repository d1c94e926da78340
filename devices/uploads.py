"""The one upload pipeline: every file a person sends us (contact lists, campaign
blacklists, device settings, national registries) goes through these steps.

1. **Size, before reading.** A view that takes a file says so with ``accepts_upload``;
   the request-body middleware (enterprise_portal.middleware.RequestBodyLimitMiddleware)
   compares the declared CONTENT_LENGTH with that limit before anything, the CSRF check
   included, reads the body (so a 110 MB post is refused without being spooled to disk),
   and every other view gets the small form limit. ``check_size`` checks the file
   itself, with the same message.
2. **Private storage.** ``store`` saves under ``uploads/<schema>/<kind>-<uuid><ext>``:
   unguessable, per account, never served by any URL; ``discard`` removes it once
   imported (or when the job could not be created).
3. **Text, or a clear refusal.** ``sniff`` refuses workbooks, UTF-16, binary files and
   text that is not UTF-8, from the first bytes, with one set of messages; ``decode``
   does the same for a whole small file; ``decode_line`` for one line of a large one.
   There is no latin-1 fallback anywhere: every byte string "decodes" as latin-1, so a
   wrong guess would garble names and reasons silently instead of telling the person.
4. **The import job.** ``start_import`` stores the upload, creates the job row and its
   audit row in one transaction, then runs small files at once and sends large ones to
   a worker when the transaction commits (``accounts.queueing``); if anything fails
   before that, the stored file is removed.
5. **Run once.** ``run_once`` holds a session advisory lock for the run: a task delivered
   twice finds it taken and does nothing; a worker that dies releases it, so the import
   can start again.
6. **Progress.** ``ProgressClock`` tells a long import when to write its progress row
   (at most every half second), so pages that poll it move without a write per line.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils.translation import gettext as _

from accounts.queueing import send_on_commit

# Room for the form's other fields and the multipart boundaries around the file.
MULTIPART_OVERHEAD = 1024 * 1024
SNIFF_BYTES = 64 * 1024
# Uploads up to this size are imported in the request itself (a few thousand lines, well
# under a second), so the page shows the result; larger ones go to a worker.
SYNC_IMPORT_MAX_BYTES = 256 * 1024
PROGRESS_SECONDS = 0.5
KNOWN_EXTENSIONS = (".csv", ".txt", ".tsv", ".dat", ".zip")

Job = TypeVar("Job")


# --- 1. size -----------------------------------------------------------------------------


def megabytes(limit_mb: int) -> int:
    return limit_mb * 1024 * 1024


def size_message(size_bytes: int, limit_bytes: int, hint: str = "") -> str:
    message = _("The file is %(size).1f MB; the limit is %(limit)s MB.") % {
        "size": size_bytes / 1024 / 1024,
        "limit": limit_bytes // 1024 // 1024,
    }
    return f"{message} {hint or _parts_hint()}"


def _parts_hint() -> str:
    return _("Split it and upload the parts.")


def declared_message(limit_bytes: int, hint: str = "") -> str:
    message = _("The upload is larger than %(limit)s MB.") % {"limit": limit_bytes // 1024 // 1024}
    return f"{message} {hint or _split_hint()}"


def _split_hint() -> str:
    return _("Split the file and upload the parts.")


@dataclass(frozen=True)
class UploadPolicy:
    """What a view that takes a file accepts: a limit in bytes (or a callable giving it,
    for limits that are settings), the hint shown with a refusal, and where a refused
    request goes back to (by default the page it was posted to)."""

    limit: int | Callable[[], int]
    hint: Callable[[], str] | None = None
    back: Callable[..., str] | None = None

    def limit_bytes(self) -> int:
        return self.limit() if callable(self.limit) else self.limit

    def message(self) -> str:
        return declared_message(self.limit_bytes(), self.hint() if self.hint else "")


def accepts_upload(limit, *, hint=None, back=None):
    """Marks a view that takes a file of at most ``limit`` bytes (see UploadPolicy). The
    mark travels up through the access decorators (functools.wraps copies it)."""

    def decorate(view):
        view.upload_policy = UploadPolicy(limit, hint, back)
        return view

    return decorate


def check_size(size_bytes: int, limit_bytes: int, hint: str = "") -> None:
    """ValidationError (code ``too_large``, or ``empty``) for a file we will not read."""
    if size_bytes > limit_bytes:
        raise ValidationError(size_message(size_bytes, limit_bytes, hint), code="too_large")
    if size_bytes == 0:
        raise ValidationError(_("The file is empty."), code="empty")


# --- 2. private storage ---------------------------------------------------------------------


def store(uploaded_file, kind: str) -> str:
    """Saves an upload privately; returns its storage path."""
    ext = os.path.splitext(uploaded_file.name or "")[1].lower()
    ext = ext if ext in KNOWN_EXTENSIONS else ""
    schema = connection.schema_name or "public"
    return default_storage.save(f"uploads/{schema}/{kind}-{uuid.uuid4().hex}{ext}", uploaded_file)


def discard(path: str) -> None:
    if path:
        with contextlib.suppress(OSError):
            default_storage.delete(path)


def file_name(uploaded_file) -> str:
    """The name the person's file had, for pages and audit rows (never a path)."""
    return os.path.basename(uploaded_file.name or "")[:255]


# --- 3. text ---------------------------------------------------------------------------------


class NotText(ValueError):
    """A file (or line) that is not UTF-8 text; the message says what to do."""


def not_utf8_message() -> str:
    return _("The file is not UTF-8 text; save it as CSV UTF-8 and upload again.")


def sniff(head: bytes) -> None:
    """Refuses, from its first bytes, what is clearly not UTF-8 text (NotText)."""
    if head.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")):
        raise NotText(
            _(
                "This is a spreadsheet workbook, not a CSV file. In Excel choose File › Save "
                "As › CSV UTF-8 (Comma delimited) and upload that file."
            )
        )
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise NotText(
            _("The file is UTF-16 text, not UTF-8; save it as CSV UTF-8 and upload again.")
        )
    controls = sum(1 for byte in head if byte < 32 and byte not in (9, 10, 12, 13))
    # A stray NUL or control character is a bad line, reported as such; many are a file
    # that is not text (a PNG, a workbook saved as something else, UTF-16 without a BOM).
    if controls > max(8, len(head) // 100) or head.count(b"\x00") * 20 > len(head):
        raise NotText(
            _(
                "This is not a CSV text file (it looks like a binary file). Export it as CSV "
                "UTF-8 and upload that file."
            )
        )
    # The head may end inside a multi-byte character: decode it incrementally.
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        raise NotText(not_utf8_message()) from None


def decode(data: bytes) -> str:
    """A whole small file as text (a byte-order mark is dropped), or NotText."""
    sniff(data[:SNIFF_BYTES])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NotText(not_utf8_message()) from None


def decode_line(raw: bytes) -> str:
    """One line of a large file, or NotText naming what is wrong with it."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotText(_("This line is not UTF-8 text; save the file as UTF-8.")) from None


# --- 4. the import job --------------------------------------------------------------------


def start_import(
    uploaded_file,
    *,
    kind: str,
    limit_bytes: int,
    create_job: Callable[[str, str, int], Job],
    task,
    run_now: Callable[[int], object] | None = None,
    hint: str = "",
) -> tuple[Job, bool]:
    """Checks the size, stores the file, creates the job (``create_job(path, name, size)``
    must write the job row and its audit row; it runs inside this transaction), then
    sends ``task`` with the job's id on commit, or, for a small file when ``run_now`` is
    given, runs it before returning. Returns (job, ran_now)."""
    size = uploaded_file.size
    check_size(size, limit_bytes, hint)
    path = store(uploaded_file, kind)
    now = run_now is not None and size <= SYNC_IMPORT_MAX_BYTES
    try:
        with transaction.atomic(durable=True):
            job = create_job(path, file_name(uploaded_file), size)
            if not now:
                send_on_commit(task, args=[job.pk])
    except BaseException:
        discard(path)
        raise
    if now:
        run_now(job.pk)
    return job, now


# --- 5. run once ----------------------------------------------------------------------------


@contextlib.contextmanager
def run_once(key: str) -> Iterator[bool]:
    """Yields True if this process may run the job named ``key`` now (and holds it until
    the block ends), False if another process is running it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [key])
        (mine,) = cursor.fetchone()
    try:
        yield mine
    finally:
        if mine:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [key])


def job_key(kind: str, job_id: int) -> str:
    return f"{kind}-import:{connection.schema_name}:{job_id}"


# --- 6. progress ----------------------------------------------------------------------------


class ProgressClock:
    """``due()`` is true at most every ``seconds``: when to write a progress row."""

    def __init__(self, seconds: float = PROGRESS_SECONDS):
        self.seconds = seconds
        self.last = 0.0

    def due(self, force: bool = False) -> bool:
        tick = time.perf_counter()
        if force or tick - self.last >= self.seconds:
            self.last = tick
            return True
        return False
