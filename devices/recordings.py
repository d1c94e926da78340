"""Recordings: served only through views that check who asks, with HTTP Range for seeking;
deleted with an audit row and a visible trace ("deleted by X at T")."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.utils import timezone

from accounts import webhooks
from accounts.actions import audit, audit_once
from accounts.models import Account, Enterprise
from devices.models import Attempt, RecordingState

logger = logging.getLogger(__name__)

# ASCII digits only ("\d" takes "²", which int() refuses); their length is capped below.
_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
_MAX_DIGITS = 18  # beyond any file: int() of 5,000 digits would raise
CHUNK = 64 * 1024


def _iterate(handle, start: int, length: int):
    try:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


# A player asks for a recording in several range requests while one person listens:
# one audit row per user per recording within this window, never none.
LISTEN_AUDIT_WINDOW = timedelta(minutes=5)


def recording_response(request, attempt: Attempt) -> HttpResponse:
    """The recording's WAV, whole (200) or one byte range (206) so the player can seek.
    Listening is audited: who, which attempt, when."""
    response = wav_response(request, attempt.recording_file, f"recording-{attempt.pk}.wav")
    if response.status_code in (200, 206):
        audit_listen(request, attempt)
    return response


def audit_listen(request, attempt: Attempt) -> None:
    with transaction.atomic():
        audit_once(
            request.user,
            "recording.listen",
            enterprise=Enterprise.objects.filter(pk=attempt.enterprise_id).first(),
            since=timezone.now() - LISTEN_AUDIT_WINDOW,
            account=Account.objects.filter(pk=attempt.account_id).first(),
            obj=attempt,
            details={"attempt": attempt.pk, "device": attempt.device_key,
                     "client_id": attempt.client_id},
            request=request,
        )  # fmt: skip


def wav_response(request, path: str, filename: str) -> HttpResponse:
    """A private WAV from storage (the caller has checked who asks), whole (200) or one
    byte range (206) so the browser's player can seek; never cached by a browser or proxy."""
    try:
        size = default_storage.size(path)
        handle = default_storage.open(path, "rb")
    except (OSError, FileNotFoundError):
        raise Http404 from None
    start, end, status = 0, size - 1, 200
    header = request.headers.get("Range", "").strip()
    # Several ranges, or a unit other than bytes: send it all (RFC 9110 allows that).
    if header.startswith("bytes=") and "," not in header:
        match = _RANGE.match(header)
        first, last = (match.group(1), match.group(2)) if match else ("", "")
        if not match or (not first and not last):
            handle.close()
            return _unsatisfiable(size)
        if len(first) > _MAX_DIGITS:  # starts past any file's end
            handle.close()
            return _unsatisfiable(size)
        last = last if len(last) <= _MAX_DIGITS else str(10**_MAX_DIGITS)  # "to the end"
        if first:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
        else:  # the last N bytes
            start = max(0, size - int(last))
        if start >= size or start > end:
            handle.close()
            return _unsatisfiable(size)
        status = 206
    length = end - start + 1
    response = StreamingHttpResponse(
        _iterate(handle, start, length), status=status, content_type="audio/wav"
    )
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, no-store"
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    return response


def _unsatisfiable(size: int) -> HttpResponse:
    response = HttpResponse(status=416)
    response["Content-Range"] = f"bytes */{size}"
    return response


def do_delete_recording(attempt: Attempt, *, actor, request=None) -> Attempt:
    """Removes the file, keeps the trace: N/A (deleted by X at T), audited."""
    with transaction.atomic(durable=True):
        row = (
            Attempt.objects.select_for_update()
            .filter(pk=attempt.pk, attempted_at=attempt.attempted_at)
            .first()
        )
        if row is None or row.recording_state != RecordingState.STORED:
            raise Http404
        path = row.recording_file
        row.recording_state = RecordingState.DELETED
        row.recording_file = ""
        row.recording_deleted_by = actor.email
        row.recording_deleted_at = timezone.now()
        Attempt.objects.filter(pk=row.pk, attempted_at=row.attempted_at).update(
            recording_state=row.recording_state,
            recording_file="",
            recording_deleted_by=row.recording_deleted_by,
            recording_deleted_at=row.recording_deleted_at,
        )
        account = Account.objects.filter(pk=row.account_id).first()
        audit(
            actor,
            "recording.delete",
            enterprise=Enterprise.objects.filter(pk=row.enterprise_id).first(),
            account=account,
            obj=row,
            details={"attempt": row.pk, "device": row.device_key, "client_id": row.client_id,
                     "from": connection.schema_name},
            request=request,
        )  # fmt: skip
        deleted = {"attempt_id": row.pk, "account_id": row.account_id, "device": row.device_key,
                   "client_id": row.client_id, "deleted_by": actor.email,
                   "deleted_at": row.recording_deleted_at.isoformat()}  # fmt: skip
        webhooks.emit(row.enterprise_id, "recording.deleted", [deleted])
        # After commit: a rolled-back delete must not have lost the file.
        transaction.on_commit(lambda: _remove_file(path))
    return row


def _remove_file(path: str) -> None:
    try:
        default_storage.delete(path)
    except OSError:
        logger.exception("Could not delete recording file %s", path)
