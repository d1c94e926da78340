"""One registry block: the last four digits of the numbers that share a prefix.

A block stores its suffixes as sorted little-endian uint16 values while it has fewer than
625 of them, and as a 10,000-bit bitmap (1,250 bytes) from 625 on, whichever is smaller.
So a number costs at most 2 bytes, a dense exchange 1.25 bits a number, and no block is
larger than 1,250 bytes: every block stays inline in its heap page (PostgreSQL only
compresses or moves a value out of line when a row passes ~2 kB). Measurements:
bench/README.md (registry target of bench/import.py).
"""

from __future__ import annotations

import bisect
import sys
from array import array

BITMAP_BYTES = 1250  # 10,000 suffixes, one bit each
ARRAY_MAX = 624  # 2 * 624 bytes < BITMAP_BYTES: the length tells the encodings apart
_LITTLE = sys.byteorder == "little"


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
