"""National do-not-call registries: storage, import, lookup and staleness.

**Storage.** A registry holds its numbers in ``RegistryBlock`` rows: one row per
(registry, generation, prefix), where the prefix is an E.164 number without its ``+`` and
last four digits (``+1 713 555 4101`` → prefix 1713555, suffix 4101). A block stores its
suffixes as sorted little-endian uint16 values while it has fewer than 625 of them, and as
a 10,000-bit bitmap (1,250 bytes) from 625 on, whichever is smaller. So a number costs at
most 2 bytes, a dense exchange 1.25 bits a number, and no block is larger than 1,250
bytes: every block stays inline in its heap page (PostgreSQL only compresses or moves a
value out of line when a row passes ~2 kB), and a lookup is one index probe and one page.

**Generations.** A full snapshot is parsed, then written under a new generation (the
import's id) with ``COPY``, and in the same transaction the registry switches to it and
the old generation's rows are deleted. Incremental add/remove files merge into the current
generation's blocks in one transaction. Readers join the registry row to its blocks in one
statement, so they see the old numbers or the new ones, never a mix.

**Parsing.** US lines are 10 digits (or 11 with a leading 1, or ``+1``), NANP-shaped: area
code and exchange start with 2–9. Brazilian lines are DDD + number: 10 digits (a landline,
starting 2–5, or 7 for trunked radio, after the DDD) or 11 (a mobile, 9 after the DDD),
optionally after ``55`` or ``+55``; a number written with ``+`` must carry the registry's
country code. Spaces, dashes, dots and brackets are ignored; the US "area code,number" form
is accepted. This is a structural check, not ``phonenumbers``: it accepts every landline and
mobile number ``phonenumbers`` calls valid (and a few unassigned area codes), at about 2 µs
a line instead of 30-40 µs, which is what lets a 15 M-line file import in under a minute
(bench/README.md). Simple CSV is accepted: the first column, or the column whose header is
phone/number/telefone. Malformed lines are counted, the first ``REJECTED_KEPT`` kept with
their line numbers, and the good lines imported.

**Staleness.** A registry imported more than ``max_age_days`` ago (30 for Brazil, 31 for
the US) is stale: the policy gate defers telemarketing to its country and telemarketing
sub-campaigns there cannot start. One never imported does not block (pages warn instead).
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import logging
import os
import re
import sys
import time
import uuid
import zipfile
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

import psycopg
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.actions import audit
from devices.keys import country_of_phone
from devices.models import Registry, RegistryImport

logger = logging.getLogger(__name__)

TELEMARKETING = "telemarketing"  # campaigns.models.Purpose.TELEMARKETING
MAX_UPLOAD_MB = 500
MAX_UNZIPPED_BYTES = 8 * 1024**3  # a zip expanding past this is refused, not read
REJECTED_KEPT = 1000
STALE_RETRY = dt.timedelta(hours=1)
BITMAP_BYTES = 1250  # 10,000 suffixes, one bit each
ARRAY_MAX = 624  # 2 * 624 bytes < BITMAP_BYTES: the length tells the encodings apart
CHUNK_BYTES = 1 << 20
PROGRESS_SECONDS = 0.5
MERGE_BATCH = 5000
MAX_LINE_SHOWN = 80
TEXT_MEMBERS = (".txt", ".csv", ".dat", ".tsv")
HEADER_NAMES = {"phone", "number", "telefone", "phonenumber", "phone_number", "numero", "número"}
_LITTLE = sys.byteorder == "little"

# Why a line was rejected: a code stored with the line, words shown on the page.
REASONS = {
    "characters": gettext_lazy("not a phone number (letters or symbols)"),
    "length": gettext_lazy("wrong number of digits"),
    "area_code": gettext_lazy("not a valid area code or exchange"),
    "subscriber": gettext_lazy("not a valid subscriber number"),
    "country": gettext_lazy("a number of another country"),
    "column": gettext_lazy("no value in the phone column"),
}


def reason_text(code: str) -> str:
    return str(REASONS.get(code, code))


# --- blocks ----------------------------------------------------------------------------


def encode_block(suffixes: list[int]) -> bytes:
    """Sorted, distinct suffixes (0..9999) as a uint16 array or a bitmap, the smaller."""
    if len(suffixes) <= ARRAY_MAX:
        values = array("H", suffixes)
        if not _LITTLE:
            values.byteswap()
        return values.tobytes()
    bitmap = bytearray(BITMAP_BYTES)
    for s in suffixes:
        bitmap[s >> 3] |= 1 << (s & 7)
    return bytes(bitmap)


def decode_block(data: bytes) -> list[int]:
    if len(data) == BITMAP_BYTES:
        return [
            (i << 3) | bit
            for i, byte in enumerate(data)
            if byte
            for bit in range(8)
            if byte >> bit & 1
        ]
    values = array("H")
    values.frombytes(data)
    if not _LITTLE:
        values.byteswap()
    return values.tolist()


def block_contains(data: bytes, suffix: int) -> bool:
    if len(data) == BITMAP_BYTES:
        return bool(data[suffix >> 3] >> (suffix & 7) & 1)
    if _LITTLE:
        values = memoryview(data).cast("H")
    else:
        values = array("H")
        values.frombytes(data)
        values.byteswap()
    i = bisect.bisect_left(values, suffix)
    return i < len(values) and values[i] == suffix


def merge_block(data: bytes | None, change: list[int], *, remove: bool) -> tuple[bytes, int]:
    """A block with suffixes added or removed: (payload, count). A bitmap is changed bit by
    bit (no decoding: a change file touches thousands of dense blocks) unless it shrinks
    to an array's size."""
    if data is not None and len(data) == BITMAP_BYTES:
        bitmap = bytearray(data)
        for s in change:
            if remove:
                bitmap[s >> 3] &= ~(1 << (s & 7)) & 0xFF
            else:
                bitmap[s >> 3] |= 1 << (s & 7)
        count = int.from_bytes(bitmap, "little").bit_count()
        if count > ARRAY_MAX:
            return bytes(bitmap), count
        return encode_block(decode_block(bytes(bitmap))), count
    current = set(decode_block(data)) if data is not None else set()
    merged = current.difference(change) if remove else current.union(change)
    return encode_block(sorted(merged)), len(merged)


def split_key(e164: str) -> tuple[int, int]:
    """(prefix, suffix) of an E.164 key: ``+17135554101`` → (1713555, 4101)."""
    return divmod(int(e164[1:]), 10000)


# --- parsing -----------------------------------------------------------------------------

# Ignored inside a number; "," joins the FTC's "201,5550123" (area code, number) form.
_SEPARATORS = str.maketrans("", "", " -().+/,\t\"'")


@dataclass(frozen=True)
class Scheme:
    """How one country's registry lines look. ``fast`` matches a whole clean line,
    capturing (national digits but the last four, last four digits)."""

    country: str
    country_code: str
    fast: re.Pattern

    def national(self, text: str) -> tuple[bytes, int] | str:
        """(prefix key, suffix) for one value, or the reason code it is rejected."""
        digits = text.translate(_SEPARATORS)
        if not digits.isdigit() or not digits.isascii():
            return "characters"
        if text.lstrip().startswith("+"):
            # Written internationally: the country code must be this registry's.
            if not digits.startswith(self.country_code):
                return "country"
            return self._check(digits[len(self.country_code) :])
        return self._check(self._without_country_code(digits))

    def _without_country_code(self, digits: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check(self, digits: str) -> tuple[bytes, int] | str:  # pragma: no cover - abstract
        raise NotImplementedError


class UsScheme(Scheme):
    def _without_country_code(self, digits: str) -> str:
        return digits[1:] if len(digits) == 11 and digits[0] == "1" else digits

    def _check(self, digits: str) -> tuple[bytes, int] | str:
        if len(digits) != 10:
            return "length"
        if digits[0] in "01" or digits[3] in "01":
            return "area_code"
        return digits[:6].encode(), int(digits[6:])


class BrScheme(Scheme):
    def _without_country_code(self, digits: str) -> str:
        return digits[2:] if len(digits) in (12, 13) and digits.startswith("55") else digits

    def _check(self, digits: str) -> tuple[bytes, int] | str:
        if len(digits) not in (10, 11):
            return "length"
        if "0" in digits[:2]:
            return "area_code"
        if len(digits) == 11 and digits[2] != "9":
            return "subscriber"  # mobiles have nine digits, starting with 9
        if len(digits) == 10 and digits[2] not in "23457":
            return "subscriber"  # landlines have eight, starting 2-5 (7: trunked radio)
        return digits[:-4].encode(), int(digits[-4:])


_TAIL = rb"(?:[,;\t][^\r\n]*)?\r?$"
SCHEMES: dict[str, Scheme] = {
    "US": UsScheme(
        "US", "1", re.compile(rb"^(?:\+?1)?([2-9]\d\d,?[2-9]\d\d)(\d{4})" + _TAIL, re.M)
    ),
    "BR": BrScheme(
        "BR",
        "55",
        re.compile(rb"^(?:\+?55)?([1-9][1-9](?:9\d{4}|[2-57]\d{3}))(\d{4})" + _TAIL, re.M),
    ),
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
    cells = line.split(layout.delimiter)
    if layout.column == 0 and scheme.country == "US" and len(cells) >= 2:
        # The FTC's flat files may read "area code,number": 201,5550123.
        first, second = cells[0].strip(), cells[1].strip()
        if len(first) == 3 and len(second) == 7 and (first + second).isdigit():
            return first + second
    return cells[layout.column] if layout.column < len(cells) else ""


def parse_lines(
    source: IO[bytes],
    scheme: Scheme,
    result: ParseResult,
    *,
    name: str = "",
    progress=None,
) -> ParseResult:
    """Reads one text file into ``result``. Lines that are a bare number in the first
    column go through one regular expression (a clean chunk in one ``findall``); any other
    line is checked on its own, which is where rejected lines get their numbers."""
    blocks = result.blocks
    us = scheme.country == "US"
    line_no = 0
    layout: Layout | None = None

    def add_clean(key: bytes, suffix: bytes) -> None:
        if us and len(key) == 7:  # "201,555" from the FTC's "201,5550123" form
            key = key.replace(b",", b"")
        block = blocks.get(key)
        if block is None:
            block = blocks[key] = array("H")
        block.append(int(suffix))

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
            result.lines_read += 1
            value = _value(text, layout, scheme).strip()
            found = scheme.national(value) if value else "column"
            if isinstance(found, str):
                result.reject(name, line_no, text, found)
                continue
            key, suffix = found
            block = blocks.get(key)
            if block is None:
                block = blocks[key] = array("H")
            block.append(suffix)
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
            if chunk.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise FileProblem(_("The file is UTF-16 text; save it as plain text or UTF-8."))
            if chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
        if b"\0" in chunk:
            raise FileProblem(
                _("%(name)s is not a text file (one number a line, or CSV).") % {"name": name}
            )
        if layout is None:
            head = chunk.lstrip(b"\r\n").split(b"\n", 1)[0].decode("utf-8", "replace")
            layout = _layout(head)
        if layout.column != 0:  # a named column further right: line by line
            check(chunk)
        else:
            lines_in_chunk = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
            matches = scheme.fast.findall(chunk)
            if len(matches) == lines_in_chunk:  # every line clean: the common case
                for key, suffix in matches:
                    add_clean(key, suffix)
                result.accepted += lines_in_chunk
                result.lines_read += lines_in_chunk
                line_no += lines_in_chunk
            else:  # clean lines by the expression, the lines between them one by one
                pos = 0
                for match in scheme.fast.finditer(chunk):
                    if match.start() != pos:
                        check(chunk[pos : match.start()])
                    add_clean(*match.groups())
                    line_no += 1
                    result.lines_read += 1
                    result.accepted += 1
                    pos = match.end() + 1  # past the line break
                if pos < len(chunk):
                    check(chunk[pos:])
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


# --- registry state -----------------------------------------------------------------------


# NANP region of an exchange (+1 NPA NXX), as phonenumbers says: asking it costs ~25 µs a
# number, the gate asks for every telemarketing call. Regions are assigned by area code,
# so one valid number answers for its exchange; an invalid one ("") is not remembered.
_NANP_REGIONS: dict[str, str] = {}
_NANP_REGIONS_MAX = 200_000


def registry_country(e164: str) -> str:
    """The registry country of a phone key: BR for +55, US for NANP numbers in the US."""
    if e164.startswith("+55"):
        return "BR"
    if not e164.startswith("+1"):
        return ""
    exchange = e164[:-4]
    region = _NANP_REGIONS.get(exchange)
    if region is None:
        region = country_of_phone(e164)
        if not region:
            return ""
        if len(_NANP_REGIONS) >= _NANP_REGIONS_MAX:
            _NANP_REGIONS.clear()
        _NANP_REGIONS[exchange] = region
    return "US" if region == "US" else ""


def is_stale(registry: Registry, now: dt.datetime | None = None) -> bool:
    if registry.last_imported_at is None:
        return False
    now = now or timezone.now()
    return now - registry.last_imported_at > dt.timedelta(days=registry.max_age_days)


def age_days(registry: Registry, now: dt.datetime | None = None) -> int | None:
    if registry.last_imported_at is None:
        return None
    return ((now or timezone.now()) - registry.last_imported_at).days


def stale_detail(registry: Registry) -> str:
    """The reason written on deferred attempts: which registry, since when (stored text)."""
    return (
        f"{registry.name} last imported {registry.last_imported_at:%Y-%m-%d}, "
        f"more than {registry.max_age_days} days ago"
    )


def refuse_stale_start(purpose: str, region: str, now: dt.datetime | None = None) -> None:
    """ValidationError if a telemarketing sub-campaign must not start: the registry of the
    enterprise's country is stale."""
    if purpose != TELEMARKETING:
        return
    registry = Registry.objects.filter(country=region).first()
    if registry is None or not is_stale(registry, now):
        return
    raise ValidationError(
        _(
            "Telemarketing cannot start: the %(registry)s registry was last imported on "
            "%(date)s, more than %(days)s days ago. Calls to numbers on it could break the "
            "law. A platform operator must import a current copy first; informational and "
            "collections sub-campaigns are not affected."
        )
        % {
            "registry": registry.name,
            "date": timezone.localtime(registry.last_imported_at).date().isoformat(),
            "days": registry.max_age_days,
        },
        code="registry_stale",
    )


# --- lookup ------------------------------------------------------------------------------

_LOOKUP_SQL = """
SELECT b.registry_id, b.prefix, b.suffixes
FROM public.devices_registryblock AS b
JOIN public.devices_registry AS r ON r.id = b.registry_id AND r.generation = b.generation
WHERE r.id = ANY(%s::bigint[]) AND b.prefix = ANY(%s::bigint[])
"""


def _fetch_blocks(registries: list[int], prefixes: list[int]) -> list[tuple[int, int, bytes]]:
    """The blocks, in one statement, with bytea in binary: half the bytes of hex text and
    no decoding, which halves the cost of a gate batch. Django's cursors bind parameters
    on the client, which rules binary results out, so this takes psycopg's own cursor on
    the same connection (same transaction; no prepared statement, for poolers) and logs
    the query as Django's debug cursor would, so query counts still see it."""
    connection.ensure_connection()
    started = time.monotonic()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_LOOKUP_SQL, [registries, prefixes], binary=True, prepare=False)
        rows = cursor.fetchall()
    if connection.queries_logged:
        connection.queries_log.append(
            {
                "sql": f"{_LOOKUP_SQL.strip()} -- {len(prefixes)} prefixes",
                "time": f"{time.monotonic() - started:.3f}",
            }
        )
    return rows


def listed(pairs: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
    """Which (registry id, E.164 key) pairs are on their registry: one query for them all."""
    wanted: dict[tuple[int, int], list[tuple[str, int]]] = {}
    for registry_id, key in pairs:
        prefix, suffix = split_key(key)
        wanted.setdefault((registry_id, prefix), []).append((key, suffix))
    if not wanted:
        return set()
    registries = sorted({r for r, _ in wanted})
    prefixes = sorted({p for _, p in wanted})
    found = set()
    for registry_id, prefix, data in _fetch_blocks(registries, prefixes):
        for key, suffix in wanted.get((registry_id, prefix), ()):
            if block_contains(data, suffix):
                found.add((registry_id, key))
    return found


def is_listed(registry: Registry, e164: str) -> bool:
    return (registry.pk, e164) in listed([(registry.pk, e164)])


# --- writing -----------------------------------------------------------------------------

_COPY_BLOCKS = (
    "COPY public.devices_registryblock (generation, prefix, registry_id, count, suffixes) "
    "FROM STDIN (FORMAT BINARY)"
)


def _copy_blocks(
    registry_id: int, generation: int, rows: Iterable[tuple[int, int, bytes]]
) -> tuple[int, int]:
    """COPY blocks into a generation; returns (blocks, numbers)."""
    blocks = numbers = 0
    with connection.cursor() as cursor, cursor.cursor.copy(_COPY_BLOCKS) as copy:
        copy.set_types(["int8", "int8", "int2", "int2", "bytea"])
        for prefix, count, payload in rows:
            copy.write_row((generation, prefix, registry_id, count, payload))
            blocks += 1
            numbers += count
    return blocks, numbers


def replace_numbers(
    registry: Registry,
    generation: int,
    rows: Iterable[tuple[int, int, bytes]],
    *,
    now: dt.datetime | None = None,
) -> tuple[int, int]:
    """A full snapshot: the new generation's blocks, the switch and the old generation's
    removal, in one transaction. Returns (size before, size after)."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Registry.objects.select_for_update().get(pk=registry.pk)
        before = locked.size
        # Left over by an import that died before committing? Never: one transaction.
        _, size = _copy_blocks(registry.pk, generation, rows)
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM public.devices_registryblock WHERE registry_id = %s "
                "AND generation <> %s",
                [registry.pk, generation],
            )
        locked.generation = generation
        locked.size = size
        locked.last_imported_at = now
        locked.last_full_import_at = now
        locked.save(update_fields=["generation", "size", "last_imported_at", "last_full_import_at"])
        for name in ("generation", "size", "last_imported_at", "last_full_import_at"):
            setattr(registry, name, getattr(locked, name))
    if not connection.in_atomic_block:
        # Millions of new rows: fresh statistics, or the gate's lookup is planned as a scan.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE public.devices_registryblock")
    return before, size


def merge_numbers(
    registry: Registry,
    changes: dict[int, list[int]],
    *,
    remove: bool,
    now: dt.datetime | None = None,
) -> tuple[int, int]:
    """Adds (or removes) numbers in the current generation's blocks, in one transaction.
    ``changes`` maps prefix → sorted distinct suffixes. Returns (added, removed)."""
    now = now or timezone.now()
    added = removed = 0
    with transaction.atomic():
        locked = Registry.objects.select_for_update().get(pk=registry.pk)
        if not locked.generation:
            raise FileProblem(
                _("%(registry)s has no numbers yet: import a full snapshot first.")
                % {"registry": locked.name}
            )
        prefixes = sorted(changes)
        upserts: list[tuple[int, int, bytes]] = []
        empties: list[int] = []
        with connection.cursor() as cursor:
            for start in range(0, len(prefixes), MERGE_BATCH):
                batch = prefixes[start : start + MERGE_BATCH]
                cursor.execute(
                    "SELECT prefix, count, suffixes FROM public.devices_registryblock "
                    "WHERE registry_id = %s AND generation = %s AND prefix = ANY(%s::bigint[])",
                    [locked.pk, locked.generation, batch],
                )
                existing = {p: (n, bytes(data)) for p, n, data in cursor.fetchall()}
                for prefix in batch:
                    before, had = existing.get(prefix, (0, None))
                    payload, after = merge_block(had, changes[prefix], remove=remove)
                    if after == before:
                        continue
                    if remove:
                        removed += before - after
                    else:
                        added += after - before
                    if after:
                        upserts.append((prefix, after, payload))
                    else:
                        empties.append(prefix)
            cursor.execute(
                "CREATE TEMP TABLE registry_merge (prefix int8, count int2, suffixes bytea) "
                "ON COMMIT DROP"
            )
            with cursor.cursor.copy(
                "COPY registry_merge (prefix, count, suffixes) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "int2", "bytea"])
                for row in upserts:
                    copy.write_row(row)
            cursor.execute(
                "INSERT INTO public.devices_registryblock "
                "(generation, prefix, registry_id, count, suffixes) "
                "SELECT %s, prefix, %s, count, suffixes FROM registry_merge "
                "ON CONFLICT (registry_id, generation, prefix) DO UPDATE "
                "SET count = EXCLUDED.count, suffixes = EXCLUDED.suffixes",
                [locked.generation, locked.pk],
            )
            if empties:
                cursor.execute(
                    "DELETE FROM public.devices_registryblock WHERE registry_id = %s "
                    "AND generation = %s AND prefix = ANY(%s::bigint[])",
                    [locked.pk, locked.generation, empties],
                )
            cursor.execute("DROP TABLE registry_merge")
        locked.size = locked.size + added - removed
        locked.last_imported_at = now
        locked.save(update_fields=["size", "last_imported_at"])
        registry.size, registry.last_imported_at = locked.size, now
    return added, removed


# --- imports -----------------------------------------------------------------------------


def upload_path(filename: str) -> str:
    """A private, unguessable storage path for an uploaded registry file."""
    ext = os.path.splitext(filename)[1].lower()
    return f"registries/{uuid.uuid4().hex}{ext if ext in (*TEXT_MEMBERS, '.zip') else ''}"


def check_upload_size(size_bytes: int) -> None:
    if size_bytes > MAX_UPLOAD_MB * 1024 * 1024:
        raise ValidationError(
            _(
                "The file is %(size).1f MB; the limit is %(limit)s MB. Split it, or import it "
                "on the server with the import_registry command."
            )  # fmt: skip
            % {"size": size_bytes / 1024 / 1024, "limit": MAX_UPLOAD_MB},
            code="too_large",
        )


def do_upload_registry_file(
    registry: Registry, kind: str, uploaded_file, *, actor, request=None
) -> RegistryImport:
    """Stores an upload privately and queues its import (a Celery task, sent on commit)."""
    from devices.tasks import import_registry_file
    from enterprise_portal.queueing import send_on_commit

    check_upload_size(uploaded_file.size)
    name = os.path.basename(uploaded_file.name or "upload")[:255]
    stored = default_storage.save(upload_path(name), uploaded_file)
    try:
        with transaction.atomic():
            job = RegistryImport.objects.create(
                registry=registry,
                kind=kind,
                source_name=name,
                upload_path=stored,
                bytes_total=uploaded_file.size,
                created_by=actor if actor is not None and actor.pk else None,
                created_by_label=getattr(actor, "email", "")[:254],
            )
            audit(
                actor,
                "registry.upload",
                obj=job,
                details={"registry": registry.code, "kind": kind, "file": name,
                         "bytes": uploaded_file.size},
                request=request,
            )  # fmt: skip
            send_on_commit(import_registry_file, args=[job.pk])
    except BaseException:
        default_storage.delete(stored)
        raise
    return job


def do_create_path_import(
    registry: Registry, kind: str, paths: list[str], *, actor=None
) -> RegistryImport:
    """An import of files on the server's disk (the import_registry command)."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileProblem(_("No such file: %(path)s") % {"path": ", ".join(missing)})
    with transaction.atomic():
        job = RegistryImport.objects.create(
            registry=registry,
            kind=kind,
            source_name=", ".join(os.path.basename(p) for p in paths)[:255],
            local_path="\n".join(os.path.abspath(p) for p in paths),
            bytes_total=sum(os.path.getsize(p) for p in paths),
            created_by=actor if actor is not None and actor.pk else None,
            created_by_label=getattr(actor, "email", "") or "import_registry command",
        )
        audit(
            actor,
            "registry.upload",
            obj=job,
            details={"registry": registry.code, "kind": kind, "paths": paths},
        )
    return job


def do_lookup(registry: Registry, e164: str, *, actor, request=None) -> bool:
    """Is this number on the registry? Audited: operators look numbers up, not browse."""
    found = is_listed(registry, e164)
    with transaction.atomic():
        audit(
            actor,
            "registry.lookup",
            obj=registry,
            details={"number": e164, "listed": found},
            request=request,
        )
    return found


def _job_sources(job: RegistryImport, stack: contextlib.ExitStack) -> list[Source]:
    if job.local_path:
        sources: list[Source] = []
        for path in job.local_path.split("\n"):
            sources += sources_for(
                lambda path=path: open(path, "rb"),  # noqa: SIM115 - closed by its user
                os.path.basename(path),
                os.path.getsize(path),
                stack,
            )
        return sources
    if not job.upload_path or not default_storage.exists(job.upload_path):
        raise FileProblem(_("The uploaded file is no longer available; upload it again."))
    return sources_for(
        lambda: default_storage.open(job.upload_path, "rb"),
        job.source_name,
        job.bytes_total,
        stack,
    )


@dataclass
class ImportOutcome:
    status: str
    lines_read: int = 0
    accepted: int = 0
    rejected: int = 0
    added: int = 0
    removed: int = 0
    size_after: int = 0
    error: str = ""
    seconds: float = 0.0
    parse_seconds: float = 0.0
    write_seconds: float = 0.0


def run_import(import_id: int, *, progress_out=None) -> ImportOutcome | None:
    """Imports one queued RegistryImport. Safe to run twice: a finished import is left alone,
    and one found ``importing`` (its worker died) starts again; nothing half-written can be
    left behind, since the registry changes in one transaction at the end."""
    lock_key = f"registry-import:{import_id}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [lock_key])
        (locked,) = cursor.fetchone()
    if not locked:
        logger.info("Registry import %s is running in another worker", import_id)
        return None
    try:
        job = RegistryImport.objects.select_related("registry").filter(pk=import_id).first()
        if job is None or job.finished:
            return None
        return _run(job, progress_out)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [lock_key])


def _run(job: RegistryImport, progress_out=None) -> ImportOutcome:
    started = time.perf_counter()
    registry = job.registry
    scheme = SCHEMES[registry.country]
    RegistryImport.objects.filter(pk=job.pk).update(
        status=RegistryImport.Status.IMPORTING, started_at=timezone.now(), error=""
    )
    result = ParseResult()
    last = [0.0]

    def progress(current: ParseResult, force: bool = False) -> None:
        tick = time.perf_counter()
        if not force and tick - last[0] < PROGRESS_SECONDS:
            return
        last[0] = tick
        RegistryImport.objects.filter(pk=job.pk).update(
            bytes_read=current.bytes_read,
            lines_read=current.lines_read,
            numbers_accepted=current.accepted,
            lines_rejected=current.rejected_count,
        )
        if progress_out is not None:
            progress_out(current)

    outcome = ImportOutcome(status=RegistryImport.Status.FAILED)
    try:
        with contextlib.ExitStack() as stack:
            sources = _job_sources(job, stack)
            total = sum(s.size for s in sources)
            if total != job.bytes_total:  # a zip: progress counts the files inside
                RegistryImport.objects.filter(pk=job.pk).update(bytes_total=total)
            for source in sources:
                with source.open() as handle:
                    parse_lines(handle, scheme, result, name=source.name, progress=progress)
        progress(result, force=True)
        outcome.parse_seconds = time.perf_counter() - started
        if result.accepted == 0:
            raise FileProblem(
                _("No %(registry)s numbers found in the file: nothing was imported.")
                % {"registry": registry.name}
            )
        writing = time.perf_counter()
        outcome = _apply(job, registry, scheme, result, outcome)
        outcome.write_seconds = time.perf_counter() - writing
    except Exception as exc:
        if isinstance(exc, FileProblem):
            message = str(exc)
        elif isinstance(exc, (zipfile.BadZipFile, OSError, EOFError)):
            message = _("The file could not be read: %(error)s") % {"error": exc}
        else:
            logger.exception("Registry import %s failed", job.pk)
            message = _("The import stopped on an unexpected error; nothing was changed.")
        RegistryImport.objects.filter(pk=job.pk).update(
            status=RegistryImport.Status.FAILED,
            error=message,
            finished_at=timezone.now(),
            bytes_read=result.bytes_read,
            lines_read=result.lines_read,
            numbers_accepted=result.accepted,
            lines_rejected=result.rejected_count,
            rejected=result.rejected,
        )
        outcome.error = message
    finally:
        if job.upload_path:
            with contextlib.suppress(OSError):
                default_storage.delete(job.upload_path)
    outcome.lines_read = result.lines_read
    outcome.accepted = result.accepted
    outcome.rejected = result.rejected_count
    outcome.seconds = time.perf_counter() - started
    logger.info(
        "Registry import %s (%s %s): %s, %s lines, %s numbers, %s rejected in %.1f s",
        job.pk, registry.code, job.kind, outcome.status, outcome.lines_read,
        outcome.accepted, outcome.rejected, outcome.seconds,
    )  # fmt: skip
    return outcome


def _apply(
    job: RegistryImport, registry: Registry, scheme: Scheme, result: ParseResult, outcome
) -> ImportOutcome:
    """Writes the parsed numbers and finishes the import row, in one transaction."""
    now = timezone.now()
    with transaction.atomic():
        if job.kind == RegistryImport.Kind.FULL:
            before, after = replace_numbers(
                registry, job.pk, encoded_blocks(scheme, result.blocks), now=now
            )
            # Numbers present before and after are neither: the difference is reported.
            added, removed = max(0, after - before), max(0, before - after)
        else:
            code = scheme.country_code.encode()
            changes = {
                int(code + key): sorted(set(values)) for key, values in result.blocks.items()
            }
            added, removed = merge_numbers(
                registry, changes, remove=job.kind == RegistryImport.Kind.REMOVE, now=now
            )
        RegistryImport.objects.filter(pk=job.pk).update(
            status=RegistryImport.Status.READY,
            finished_at=now,
            bytes_read=result.bytes_read,
            bytes_total=result.bytes_read,
            lines_read=result.lines_read,
            numbers_accepted=result.accepted,
            lines_rejected=result.rejected_count,
            rejected=result.rejected,
            numbers_added=added,
            numbers_removed=removed,
            size_after=registry.size,
        )
        audit(
            job.created_by,
            "registry.import",
            obj=job,
            details={"registry": registry.code, "kind": job.kind, "numbers": result.accepted,
                     "rejected": result.rejected_count, "size": registry.size},
        )  # fmt: skip
    outcome.status = RegistryImport.Status.READY
    outcome.added, outcome.removed, outcome.size_after = added, removed, registry.size
    return outcome


# --- synthetic registries (benchmarks) ------------------------------------------------------


def synthetic_prefixes(country: str, seed: int = 1) -> Iterator[int]:
    """Block prefixes of real-looking numbers, in a scattered order: US exchanges (NPA-NXX)
    and Brazilian mobile ranges (DDD 9xxxx) that phonenumbers calls valid in the country,
    so the numbers are ones a contact list could hold."""
    import phonenumbers

    if country == "US":
        space, step, code = 800 * 800, 7919, 1_000_000

        def national(slot: int) -> int:
            npa, nxx = divmod(slot, 800)
            return (200 + npa) * 1000 + 200 + nxx
    else:
        space, step, code = 89 * 10_000, 7919, 550_000_000

        def national(slot: int) -> int:
            ddd, rest = divmod(slot, 10_000)
            return (11 + ddd) * 100_000 + 90_000 + rest

    start = seed * 104_729 % space
    for n in range(space):
        prefix = national((start + n * step) % space)
        number = phonenumbers.parse(f"+{code + prefix}1234", None)
        if (
            phonenumbers.is_valid_number(number)
            and phonenumbers.region_code_for_number(number) == country
        ):
            yield code + prefix


def synthetic_blocks(
    country: str, numbers: int, *, seed: int = 1, density: tuple[int, int] = (1, 800)
) -> Iterator[tuple[int, int, bytes]]:
    """About ``numbers`` distinct valid numbers as blocks ready to COPY, each prefix holding
    between ``density`` numbers (the default, ~400 an exchange on average, is about what
    the real registries hold where people live)."""
    import random

    rng = random.Random(seed)
    made = 0
    for prefix in synthetic_prefixes(country, seed):
        if made >= numbers:
            return
        count = min(rng.randint(*density), numbers - made)
        made += count
        yield prefix, count, encode_block(sorted(rng.sample(range(10_000), count)))
    raise ValueError(f"{numbers} numbers do not fit in {country}'s valid ranges")


def load_synthetic(country: str, numbers: int, *, seed: int = 1) -> dict[str, float]:
    """Replaces a registry's numbers with ``numbers`` synthetic ones, as a full snapshot
    would (COPY into a new generation, switch, drop the old), and marks it imported now.
    For benchmarks of the policy gate: 15 M numbers load in a few minutes."""
    registry = Registry.objects.get(country=country)
    started = time.perf_counter()
    generation = int(time.time() * 1000)
    before, after = replace_numbers(
        registry, generation, synthetic_blocks(country, numbers, seed=seed)
    )
    return {"numbers": after, "seconds": time.perf_counter() - started}


def table_bytes() -> dict[str, int]:
    """Disk used by the block table: heap, its indexes and TOAST (expected to be empty)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_relation_size(c.oid), pg_indexes_size(c.oid), "
            "COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) "
            "FROM pg_class c WHERE c.oid = 'public.devices_registryblock'::regclass"
        )
        heap, indexes, toast = cursor.fetchone()
    return {"heap": heap, "indexes": indexes, "toast": toast, "total": heap + indexes + toast}
