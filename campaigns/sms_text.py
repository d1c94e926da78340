"""How a text travels as SMS: the GSM 03.38 alphabet, or UCS-2 for anything else (á, ç, ã
…), and how many parts it takes. Carriers and Kannel (``max-messages``) take at most
``MAX_PARTS`` parts of one text."""

from __future__ import annotations

import math

MAX_PARTS = 10
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


def is_gsm(text: str) -> bool:
    """Sent as GSM 7-bit (coding 0); otherwise as UCS-2, where Portuguese stays whole."""
    return set(text) <= GSM_BASIC


def sms_parts(text: str) -> int:
    """Parts the text takes: 160 GSM characters in one, 153 a part when split; 70 UCS-2
    units in one, 67 a part when split."""
    if is_gsm(text):
        single, each, units = 160, 153, len(text)
    else:
        single, each, units = 70, 67, len(text.encode("utf-16-le")) // 2
    if units <= single:
        return 1
    return math.ceil(units / each)


def longest(text: str) -> int:
    """The most characters a text like this one may have in ``MAX_PARTS`` parts."""
    return MAX_PARTS * (153 if is_gsm(text) else 67)
