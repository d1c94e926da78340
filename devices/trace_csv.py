"""Contact Trace results as CSV, streamed; cells a spreadsheet would run as formulas are
neutralised."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator

from django.http import StreamingHttpResponse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from devices.models import Attempt, Channel, RecordingState
from devices.policy import rule_label

NOT_APPLICABLE = "—"  # a field of another channel: no call seconds or recording for a text
_FORMULA = re.compile(r"^[=@\t\r]|^[+\-](?![\d\s().-]*$)")


def safe_cell(value) -> str:
    text = "" if value is None else str(value)
    # "+17135554101" stays a number; "=HYPERLINK(...)" or "+cmd" becomes plain text.
    return "'" + text if _FORMULA.match(text) else text


def _recording(attempt: Attempt) -> str:
    if attempt.recording_state == RecordingState.STORED:
        return _("Stored")
    if attempt.recording_state == RecordingState.DELETED:
        return _("N/A (deleted by %(who)s at %(when)s)") % {
            "who": attempt.recording_deleted_by,
            "when": timezone.localtime(attempt.recording_deleted_at).strftime("%Y-%m-%d %H:%M"),
        }
    return _("N/A")


def stream_csv(rows: Iterable[Iterable], *, time_zone: str, language: str | None) -> Iterator[str]:
    """CSV text for a streaming response: ``rows`` (a generator whose first row is the
    header) runs while the response streams, after the request's own time zone and language
    are gone, so both are set here again. Every cell is neutralised for spreadsheets; a BOM
    first lets Excel open UTF-8 (Portuguese names) correctly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        value = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return value

    with timezone.override(time_zone), translation.override(language):
        yield "\ufeff"
        for row in rows:
            writer.writerow([safe_cell(value) for value in row])
            yield flush()


def csv_download(rows: Iterable[Iterable], filename: str, *, time_zone: str,
                 language: str | None) -> StreamingHttpResponse:  # fmt: skip
    """``rows`` (header first) as a CSV file the browser saves as ``filename``."""
    response = StreamingHttpResponse(
        stream_csv(rows, time_zone=time_zone, language=language),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def trace_csv_rows(
    attempts: Iterable[Attempt], *, time_zone: str, language: str | None
) -> Iterator[str]:
    return stream_csv(_rows(attempts), time_zone=time_zone, language=language)


def _rows(attempts: Iterable[Attempt]) -> Iterator[list]:
    yield [
        _("Date"), _("Account"), _("Client ID"), _("Campaign"), _("Sub-campaign"), _("Channel"),
        _("Direction"), _("Device"), _("Result"), _("Call Seconds"), _("Node"), _("Recording"),
        _("Message"), _("Carrier"), _("Source address"), _("Source type"), _("Stopped by"),
        _("Carrier's answer"),
    ]  # fmt: skip
    for a in attempts.iterator(chunk_size=2000) if hasattr(attempts, "iterator") else attempts:
        if not a.was_sent:
            direction = _("Not sent")  # never TEXT_SENT: a regulator would read it as sent
        elif a.channel == Channel.SMS:
            direction = a.sms_direction
        else:
            direction = a.get_direction_display()
        call = a.was_a_call
        yield [
            timezone.localtime(a.attempted_at).strftime("%Y-%m-%d %H:%M:%S"), a.account_name,
            a.client_id, a.campaign_name, a.sub_campaign_name, a.get_channel_display(), direction,
            a.device_key, a.get_disposition_display(), a.call_seconds if call else NOT_APPLICABLE,
            a.node, _recording(a) if call else NOT_APPLICABLE, a.message, a.carrier_code,
            a.source_address, a.get_source_type_display(),
            rule_label(a.suppression_rule) if a.suppression_rule else "", a.carrier_answer,
        ]  # fmt: skip
