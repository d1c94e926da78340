"""Reading registry files into blocks of numbers.

A line holds a number of the registry's country, read by the one normaliser
(``devices.keys``) as a person in that country would write it: US lines are 10 digits (or
11 with a leading 1, or ``+1``); Brazilian lines are DDD + number, 10 or 11 digits,
optionally after ``55`` or ``+55``; punctuation is ignored; the US "area code,number"
form of the FTC's files is accepted. A number is kept only if ``phonenumbers`` calls it a
valid number of that country, exactly; clean lines get that answer once per block of
10,000 numbers, which keeps a 15 M-line file to about 2 µs a line (bench/README.md).
Simple CSV is accepted: the first column, or the column whose header is
phone/number/telefone. Zip archives are read file by file. Malformed lines are counted,
the first ``REJECTED_KEPT`` kept with their line numbers, and the good lines imported.
"""

from __future__ import annotations

import contextlib
import os
import re
import zipfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from devices import uploads
from devices.keys import DeviceKeyError, national_block_valid, normalize_phone, region_of_national
from devices.registry.codec import encode_block

MAX_UNZIPPED_BYTES = 8 * 1024**3  # a zip expanding past this is refused, not read
REJECTED_KEPT = 1000
CHUNK_BYTES = 1 << 20
MAX_LINE_SHOWN = 80
TEXT_MEMBERS = (".txt", ".csv", ".dat", ".tsv")
HEADER_NAMES = {"phone", "number", "telefone", "phonenumber", "phone_number", "numero", "número"}

# Why a line was rejected: a code stored with the line, words shown on the page.
REASONS = {
    "characters": gettext_lazy("not a phone number (letters or symbols)"),
    "length": gettext_lazy("wrong number of digits"),
    "range": gettext_lazy("not a valid number of the registry's country (area code or range)"),
    "country": gettext_lazy("a number of another country"),
    "column": gettext_lazy("no value in the phone column"),
    # Codes of imports made before the normaliser decided (kept in their history).
    "area_code": gettext_lazy("not a valid area code or exchange"),
    "subscriber": gettext_lazy("not a valid subscriber number"),
}


def reason_text(code: str) -> str:
    return str(REASONS.get(code, code))


@dataclass(frozen=True)
class Scheme:
    """How one country's registry lines look.

    ``shape`` matches a whole clean line (a bare number, optionally after the country
    code, optionally followed by more CSV columns) and captures (national digits but the
    last four, the last four). It only finds where the number is: whether it is a number
    at all is the normaliser's answer (``devices.keys``), asked once per block of 10,000
    numbers (``national_block_valid``, exact: see there). A line the shape does not match
    goes whole through ``normalize_phone``, with the message it gives when it refuses."""

    country: str
    country_code: str
    shape: re.Pattern


_TAIL = rb"(?:[,;\t][^\r\n]*)?\r?$"
SCHEMES: dict[str, Scheme] = {
    # 10 digits (or 11 with a leading 1, or +1); "201,5550123" is the FTC's area code and
    # number in two columns. An optional "1" is tried first and given back if the rest is
    # not 10 digits, as phonenumbers strips the national prefix 1.
    "US": Scheme("US", "1", re.compile(rb"^(?:\+?1)?(\d{3},?\d{3})(\d{4})" + _TAIL, re.M)),
    # DDD + number, 10 or 11 digits, optionally after 55 or +55 (given back when the rest
    # would be too short, as phonenumbers keeps a leading 55 that is a DDD). A national
    # part starting 0 or 90 (trunk, carrier or collect-call prefixes, which phonenumbers
    # strips) is read line by line by the normaliser.
    "BR": Scheme("BR", "55", re.compile(rb"^(?:\+?55)?((?!90)[1-9]\d{5,6})(\d{4})" + _TAIL, re.M)),
}


@dataclass
class ParseResult:
    """Numbers read from a file, grouped by prefix key (national digits but the last 4)."""

    blocks: dict[bytes, array] = field(default_factory=dict)
    lines_read: int = 0
    accepted: int = 0
    rejected_count: int = 0
    rejected: list[list] = field(default_factory=list)
    bytes_read: int = 0

    def reject(self, name: str, line: int, text: str, code: str) -> None:
        self.rejected_count += 1
        if len(self.rejected) < REJECTED_KEPT:
            self.rejected.append([name, line, text[:MAX_LINE_SHOWN], code])


class FileProblem(ValueError):
    """A file that cannot be imported at all; the message says why, for the operator."""


@dataclass(frozen=True)
class Layout:
    """Where the number is on a line: the whole line, or one column of simple CSV."""

    delimiter: str = ""
    column: int = 0
    header: bool = False


def _layout(first_line: str) -> Layout:
    delimiter = next((d for d in (",", ";", "\t") if d in first_line), "")
    cells = [c.strip().strip("\"'").lower() for c in first_line.split(delimiter or None)]
    for index, cell in enumerate(cells):
        if cell in HEADER_NAMES:
            return Layout(delimiter, index, header=True)
    return Layout(delimiter, 0, header=False)


def _value(line: str, layout: Layout, scheme: Scheme) -> str:
    if not layout.delimiter:
        return line
    cells = [cell.strip().strip("\"'") for cell in line.split(layout.delimiter)]
    if layout.column == 0 and scheme.country == "US" and len(cells) >= 2:
        # The FTC's flat files may read "area code,number": 201,5550123.
        first, second = cells[0].strip(), cells[1].strip()
        if (
            len(first) == 3
            and len(second) == 7
            and (first + second).isascii()
            and (first + second).isdigit()
        ):
            return first + second
    return cells[layout.column] if layout.column < len(cells) else ""


# The normaliser's kinds of refusal (DeviceKeyError.code) as the short reasons kept here.
_REFUSALS = {"empty": "column", "characters": "characters", "too_short": "length",
             "too_long": "length", "invalid": "range"}  # fmt: skip


def line_key(value: str, scheme: Scheme) -> tuple[bytes, int] | str:
    """(prefix key, suffix) of one value, read by the normaliser; or the code of REASONS
    it is refused with."""
    try:
        key = normalize_phone(value, scheme.country)
    except DeviceKeyError as exc:
        return _REFUSALS.get(exc.code, "range")
    code = scheme.country_code
    national = key[1 + len(code) :]
    if not key.startswith("+" + code) or region_of_national(code, national) != scheme.country:
        return "country"
    return national[:-4].encode(), int(national[-4:])


def parse_lines(
    source: IO[bytes],
    scheme: Scheme,
    result: ParseResult,
    *,
    name: str = "",
    progress=None,
) -> ParseResult:
    """Reads one text file into ``result``. Lines that are a bare number in the first
    column go through one regular expression (a clean chunk in one ``findall``) and their
    blocks through the normaliser once per prefix; any other line is checked on its own.
    Rejected lines keep their line numbers."""
    blocks = result.blocks
    us = scheme.country == "US"
    # Blocks by the key the shape captured ("201,555" of the FTC's "201,5550123" form
    # included), opened once the normaliser said the block is valid; invalid keys apart.
    open_blocks: dict[bytes, array] = {}
    invalid_keys: set[bytes] = set()
    line_no = 0
    layout: Layout | None = None

    def open_block(key: bytes) -> array | None:
        """The block for a captured key, if its numbers are valid (asked once per key)."""
        if key in invalid_keys:
            return None
        canonical = key.replace(b",", b"") if us else key
        if not national_block_valid(scheme.country, canonical.decode()):
            invalid_keys.add(key)
            return None
        block = blocks.get(canonical)
        if block is None:
            block = blocks[canonical] = array("H")
        open_blocks[key] = block
        return block

    def add(key: bytes, suffix: int) -> None:
        block = blocks.get(key)
        if block is None:
            block = blocks[key] = array("H")
        block.append(suffix)

    def check(segment: bytes) -> None:
        """Whole lines, each with its line break (the last one may lack it)."""
        nonlocal line_no, layout
        lines = segment.split(b"\n")
        if segment.endswith(b"\n"):
            lines.pop()
        for raw in lines:
            line_no += 1
            text = raw.decode("utf-8", "replace").strip()
            if not text:
                continue
            if layout.header:  # the first non-blank line names the columns
                layout = Layout(layout.delimiter, layout.column, header=False)
                continue
            checked(line_no, text)

    def checked(line: int, text: str) -> None:
        """One line read whole by the normaliser: kept, or rejected with its reason."""
        result.lines_read += 1
        value = _value(text, layout, scheme).strip()
        found = line_key(value, scheme) if value else "column"
        if isinstance(found, str):
            result.reject(name, line, text, found)
        else:
            add(*found)
            result.accepted += 1

    first = True
    while True:
        chunk = source.read(CHUNK_BYTES)
        if not chunk:
            break
        if not chunk.endswith(b"\n"):
            chunk += source.readline()
        result.bytes_read += len(chunk)
        if first:
            first = False
            try:
                uploads.sniff(chunk[: uploads.SNIFF_BYTES])
            except uploads.NotText as exc:
                raise FileProblem(f"{name}: {exc}" if name else str(exc)) from None
            if chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
        if layout is None:
            head = chunk.lstrip(b"\r\n").split(b"\n", 1)[0].decode("utf-8", "replace")
            layout = _layout(head)
        if layout.column != 0:  # a named column further right: line by line
            check(chunk)
        else:
            # The hot loops of a 15 M-line file: a dict lookup and an append per line; a
            # block's first line opens it, and a line of an invalid block (rare) is read
            # whole by the normaliser, which may still find a number in it (a Brazilian
            # 555… premium number) or says why not.
            kept = 0
            lines_in_chunk = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
            matches = scheme.shape.findall(chunk)
            if len(matches) == lines_in_chunk:  # every line clean: the common case
                refused = False
                for key, suffix in matches:
                    block = open_blocks.get(key)
                    if block is None:
                        block = open_block(key)
                        if block is None:
                            refused = True
                            continue
                    block.append(int(suffix))
                    kept += 1
                if refused:  # their line numbers and text, found again
                    texts = chunk.split(b"\n")
                    for index, (key, _suffix) in enumerate(matches):
                        if key in invalid_keys:
                            text = texts[index].strip().decode("utf-8", "replace")
                            checked(line_no + index + 1, text)
                line_no += lines_in_chunk
            else:  # clean lines by the expression, the lines between them one by one
                pos = 0
                for match in scheme.shape.finditer(chunk):
                    if match.start() != pos:
                        check(chunk[pos : match.start()])
                    line_no += 1
                    pos = match.end() + 1  # past the line break
                    key, suffix = match.groups()
                    block = open_blocks.get(key)
                    if block is None:
                        block = open_block(key)
                        if block is None:
                            checked(line_no, match.group(0).strip().decode("utf-8", "replace"))
                            continue
                    block.append(int(suffix))
                    kept += 1
                if pos < len(chunk):
                    check(chunk[pos:])
            result.lines_read += kept
            result.accepted += kept
        if progress is not None:
            progress(result)
    return result


def encoded_blocks(scheme: Scheme, blocks: dict[bytes, array]) -> Iterator[tuple[int, int, bytes]]:
    """(prefix, count, payload) per block, duplicates removed, in prefix order."""
    code = scheme.country_code.encode()
    for key in sorted(blocks, key=lambda k: int(code + k)):
        suffixes = sorted(set(blocks[key]))
        yield int(code + key), len(suffixes), encode_block(suffixes)


# --- sources -----------------------------------------------------------------------------


@dataclass
class Source:
    name: str
    open: object  # () -> a binary file, closed by its user
    size: int


def sources_for(opener, name: str, size: int, stack: contextlib.ExitStack) -> list[Source]:
    """One file as import sources: itself, or the text files inside it if it is a zip
    archive (the FTC ships its downloads zipped, one file per area code)."""
    with opener() as probe:
        magic = probe.read(4)
    if not magic.startswith(b"PK\x03\x04"):
        return [Source(name, opener, size)]
    archive = stack.enter_context(zipfile.ZipFile(stack.enter_context(opener())))
    members = [
        info
        for info in archive.infolist()
        if not info.is_dir()
        and not info.filename.startswith("__MACOSX/")
        and os.path.splitext(info.filename)[1].lower() in (*TEXT_MEMBERS, "")
    ]
    if not members:
        raise FileProblem(_("%(name)s has no .txt or .csv files inside.") % {"name": name})
    if sum(info.file_size for info in members) > MAX_UNZIPPED_BYTES:
        raise FileProblem(
            _("%(name)s expands to more than %(limit)s GB; import its files one by one.")
            % {"name": name, "limit": MAX_UNZIPPED_BYTES // 1024**3}
        )
    return [
        Source(f"{name}:{info.filename}", lambda info=info: archive.open(info), info.file_size)
        for info in sorted(members, key=lambda i: i.filename)
    ]
