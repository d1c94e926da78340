"""Device settings as CSV: many blocks imported at once (bad lines reported by number, good
lines kept), and the current settings exported, streamed, formula-safe."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.utils import timezone
from django.utils.translation import gettext as _

from devices import uploads
from devices.actions import SettingInput
from devices.blocking import ExpiryError, parse_expiry, saved_by
from devices.keys import DeviceKeyError, parse_device
from devices.models import DeviceSetting
from devices.trace_csv import stream_csv

MAX_IMPORT_BYTES = 5 * 1024 * 1024
MAX_IMPORT_LINES = 50_000
MAX_REPORTED_ERRORS = 200
MAX_REASON = 255

# Header names we recognise (English, Portuguese; our own export's columns too).
COLUMNS = {
    "device": {"device", "dispositivo", "phone", "telefone", "email", "e-mail", "phone/email"},
    "action": {"action", "setting", "ação", "acao", "configuração", "configuracao"},
    "reason": {"reason", "motivo"},
    "expires": {"expires", "expiry", "expira", "expiração", "expiracao", "validade"},
}
POSITIONAL = ("device", "action", "reason", "expires")
ACTIONS = {
    "": DeviceSetting.Action.BLOCK,
    "block": DeviceSetting.Action.BLOCK,
    "bloquear": DeviceSetting.Action.BLOCK,
    "bloqueio": DeviceSetting.Action.BLOCK,
    "allow": DeviceSetting.Action.ALLOW,
    "permitir": DeviceSetting.Action.ALLOW,
}


class ImportFileError(ValueError):
    """The file as a whole cannot be read (size, encoding, shape); nothing is saved."""


@dataclass(frozen=True)
class LineError:
    line: int
    message: str


@dataclass
class ParsedImport:
    inputs: list[SettingInput] = field(default_factory=list)  # one per device
    lines: int = 0  # data lines read (not the header, not blank lines)
    duplicates: int = 0  # lines for a device already in the file (the last one wins)
    error_count: int = 0
    errors: list[LineError] = field(default_factory=list)  # the first MAX_REPORTED_ERRORS

    def add_error(self, line: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(LineError(line, message))


def size_error(size: int) -> str:
    return uploads.size_message(size, MAX_IMPORT_BYTES)


def _decode(data: bytes) -> str:
    try:
        return uploads.decode(data)
    except uploads.NotText as exc:
        raise ImportFileError(str(exc)) from None


def _delimiter(text: str) -> str:
    """Comma, or the semicolon a spreadsheet set to Portuguese writes, or a tab."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    counts = {d: first.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _header(cells: list[str]) -> dict[str, int] | None:
    """Column positions when the first row is a header, else None."""
    names = [c.strip().lower() for c in cells]
    found = {}
    for column, known in COLUMNS.items():
        for index, name in enumerate(names):
            if name in known and column not in found:
                found[column] = index
    if not found:
        first = names[0] if names else ""
        if first and not any(ch.isdigit() for ch in first) and "@" not in first:
            # A word where a device should be: a header, in words we do not know.
            raise ImportFileError(
                _("The first line looks like a header but has no “device” column.")
            )
        return None
    if "device" not in found:
        raise ImportFileError(_("The header has no “device” column."))
    return found


def parse_settings_csv(
    data: bytes, *, region: str, time_zone: str, now: dt.datetime | None = None
) -> ParsedImport:
    """Reads the file: ``device, action, reason, expires`` (header optional; action block
    or allow, block when empty; expires YYYY-MM-DD, optional). Raises ImportFileError
    for a file that cannot be read at all."""
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportFileError(size_error(len(data)))
    text = _decode(data)
    if text.count("\n") > MAX_IMPORT_LINES + 1:
        raise ImportFileError(_lines_error())
    now = now or timezone.now()
    result = ParsedImport()
    by_key: dict[str, SettingInput] = {}
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    columns: dict[str, int] | None = None
    first = True
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ImportFileError(
                _("Line %(line)s cannot be read as CSV (%(reason)s).")
                % {"line": line, "reason": exc}
            ) from None
        if not any(c.strip() for c in cells):
            continue
        if first:
            first = False
            columns = _header(cells)
            if columns is not None:
                continue
            columns = {name: i for i, name in enumerate(POSITIONAL)}
        result.lines += 1
        if result.lines > MAX_IMPORT_LINES:
            raise ImportFileError(_lines_error())
        item = _line(cells, columns, region=region, time_zone=time_zone, now=now)
        if isinstance(item, str):
            result.add_error(line, item)
            continue
        if item.device_key in by_key:
            result.duplicates += 1
            del by_key[item.device_key]  # re-inserted below: file order, last line wins
        by_key[item.device_key] = item
    if not result.lines:
        raise ImportFileError(_("The file has no devices in it."))
    result.inputs = list(by_key.values())
    return result


def _lines_error() -> str:
    return _("The file has more than %(max)s lines; split it and upload the parts.") % {
        "max": f"{MAX_IMPORT_LINES:,}"
    }


def _line(
    cells: list[str], columns: dict[str, int], *, region: str, time_zone: str, now
) -> SettingInput | str:
    """One line as a setting, or what is wrong with it."""

    def cell(name: str) -> str:
        index = columns.get(name)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    if any("\x00" in c for c in cells):
        return _("The line contains characters that cannot be saved.")
    device = cell("device").removeprefix("'")  # our export's formula guard
    if not device:
        return _("No device: enter a phone number or an email address.")
    try:
        key = parse_device(device, region).key
    except DeviceKeyError as exc:
        return str(exc)
    action_text = cell("action").lower()
    action = ACTIONS.get(action_text)
    if action is None:
        return _("“%(value)s” is not a setting: use block or allow.") % {
            "value": cell("action")[:40]
        }
    reason = cell("reason")
    if len(reason) > MAX_REASON:
        return _("The reason is longer than %(max)s characters.") % {"max": MAX_REASON}
    try:
        expires_at = parse_expiry(cell("expires"), time_zone, now)
    except ExpiryError as exc:
        return str(exc)
    return SettingInput(key, action, reason, expires_at)


# --- export --------------------------------------------------------------------------------


def settings_csv_rows(
    settings: Iterable[DeviceSetting], *, time_zone: str, language: str | None
) -> Iterator[str]:
    return stream_csv(_rows(settings), time_zone=time_zone, language=language)


def _rows(settings: Iterable[DeviceSetting]) -> Iterator[list]:
    yield [
        _("Device"), _("Setting"), _("Reason"), _("Source"), _("Saved by"), _("Saved at"),
        _("Expires"),
    ]  # fmt: skip
    labels = {DeviceSetting.Action.BLOCK: _("Block"), DeviceSetting.Action.ALLOW: _("Allow")}
    rows = settings.iterator(chunk_size=2000) if hasattr(settings, "iterator") else settings
    for s in rows:
        expires = (
            timezone.localtime(s.expires_at).strftime("%Y-%m-%d %H:%M") if s.expires_at else ""
        )
        yield [
            s.device_key, labels.get(s.action, s.action), s.reason, s.get_source_display(),
            saved_by(s), timezone.localtime(s.created_at).strftime("%Y-%m-%d %H:%M:%S"),
            expires,
        ]  # fmt: skip
