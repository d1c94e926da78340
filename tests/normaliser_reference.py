"""The reference for devices.keys' phone fast path, and the inputs it is checked on.

``reference_key`` is normalize_phone as it was before the fast path: its own checks, then
phonenumbers (parse, is_valid_number, format E.164) and nothing else. ``inputs`` generates
seeded, reproducible inputs for one region: a few per national prefix (so per block), in
many written forms, realistic and adversarial. ``check_inputs`` compares ``_fast_phone``
and ``normalize_phone`` with the reference on each; ``check_blocks`` compares
``national_block_valid`` (and ``region_of_national``, ``is_valid_national``) with
phonenumbers on numbers of sampled blocks. ``run`` is one chunk of either, in a worker
process (see tests/test_normaliser.py): it returns counts and examples, and never raises.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import random
import re
from collections.abc import Callable, Iterator

import phonenumbers

from devices import keys

_PHONE_CHARS = re.compile(r"^[\d\s().+\-/]+$")  # normalize_phone's own check, copied


def reference_key(value: str, region: str) -> str | None:
    """normalize_phone's key by the phonenumbers path alone; None where it refuses."""
    text = (value or "").strip()
    if not text or len(text) > 40 or not _PHONE_CHARS.match(text):
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def number_of(country_code: int, nsn: str) -> phonenumbers.PhoneNumber:
    """The PhoneNumber whose national significant number is ``nsn``, leading zeros kept as
    parse() keeps them."""
    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(nsn))
    zeros = len(nsn) - len(nsn.lstrip("0"))
    if len(nsn) > 1 and zeros:
        number.italian_leading_zero = True
        if min(zeros, len(nsn) - 1) > 1:
            number.number_of_leading_zeros = min(zeros, len(nsn) - 1)
    return number


def reference_region(country_code: int, nsn: str) -> str:
    """The region of +cc nsn as phonenumbers gives it, "" if it is not a valid number."""
    number = number_of(country_code, nsn)
    assert phonenumbers.national_significant_number(number) == nsn
    # is_valid_number(n) is is_valid_number_for_region(n, region_code_for_number(n)): the
    # same calls, made once.
    region = phonenumbers.region_code_for_number(number)
    return region if phonenumbers.is_valid_number_for_region(number, region) else ""


def fast_shape(text: str, region: str) -> bool:
    """Whether ``text`` is written in one of the shapes the fast path is meant to answer."""
    text = text.strip()
    if len(text) > 40:
        return False
    if text.startswith("00"):
        text = "+" + text[2:]
    digits = re.sub(r"[ ().\-/]", "", text)
    plus = digits.startswith("+")
    digits = digits[1:] if plus else digits
    if not re.fullmatch(r"[0-9]+", digits):
        return False
    n = len(digits)
    if plus:
        return (n == 11 and digits[0] == "1") or (n in (12, 13) and digits[:2] == "55")
    if digits[0] == "0":
        return False
    if region == "US":
        return n == 10 or (n == 11 and digits[0] == "1")
    if region == "BR":
        return n in (10, 11) or (n in (12, 13) and digits[:2] == "55")
    return False


# --- the inputs ----------------------------------------------------------------------------

_SEPARATORS = " ().-/"
_CANADA = [
    "204", "226", "236", "249", "250", "257", "263", "289", "306", "343", "354", "365", "367",
    "368", "382", "403", "416", "418", "428", "431", "437", "438", "450", "460", "468", "474",
    "506", "514", "519", "548", "579", "581", "584", "587", "604", "613", "639", "647", "672",
    "683", "705", "709", "742", "753", "778", "780", "782", "807", "819", "825", "867", "873",
    "879", "902", "905", "942",
]  # fmt: skip
_CARIBBEAN = [
    "242", "246", "264", "268", "284", "340", "345", "441", "473", "649", "658", "664", "670",
    "671", "684", "721", "758", "767", "784", "787", "809", "829", "849", "868", "869", "876",
    "939",
]  # fmt: skip
_NON_GEOGRAPHIC = [
    "500", "521", "522", "523", "524", "525", "526", "527", "528", "529", "533", "544", "566",
    "577", "588", "600", "622", "633", "700", "710", "800", "833", "844", "855", "866", "877",
    "888", "900",
]  # fmt: skip
_N11 = [f"{n}11" for n in range(2, 10)]
_SPECIAL_NXX = [*_N11, "555", "950", "958", "959", "976", "000", "100", "101", "199"]
_BR_DDD = [str(ddd) for ddd in (
    11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 24, 27, 28, 31, 32, 33, 34, 35, 37, 38, 41,
    42, 43, 44, 45, 46, 47, 48, 49, 51, 53, 54, 55, 61, 62, 63, 64, 65, 66, 67, 68, 69, 71,
    73, 74, 75, 77, 79, 81, 82, 83, 84, 85, 86, 87, 88, 89, 91, 92, 93, 94, 95, 96, 97, 98, 99,
)]  # fmt: skip
# Carrier-selection codes, real and not.
_BR_CARRIERS = ["12", "14", "15", "21", "23", "25", "31", "41", "43", "55", "65", "99", "10", "77"]
_BR_SPECIAL = ["800", "300", "303", "500", "900", "4004", "4003", "4020", "4370", "4864", "3003"]


def _digits(rnd: random.Random, n: int) -> str:
    # random() rather than randrange(): three times faster, as reproducible.
    return f"{int(rnd.random() * 10**n):0{n}d}" if n else ""


def _sprinkle(rnd: random.Random, digits: str) -> str:
    """Separators in random places, doubled, leading and trailing."""
    out = [rnd.choice(_SEPARATORS) if rnd.random() < 0.2 else ""]
    for d in digits:
        out.append(d)
        if rnd.random() < 0.3:
            out.append("".join(rnd.choice(_SEPARATORS) for _ in range(rnd.randint(1, 2))))
    return "".join(out)


def _mangle(rnd: random.Random, text: str) -> str:
    """Characters phonenumbers and normalize_phone treat differently from ASCII separators."""
    choice = rnd.randrange(6)
    if choice == 0:  # tab and newline: \s to normalize_phone, not punctuation to phonenumbers
        return text.replace(" ", rnd.choice(["\t", "\n", " \t"]))
    if choice == 1:  # no-break and other Unicode spaces
        return text.replace(" ", rnd.choice(["\xa0", "\u2003", "\u3000"]))
    if choice == 2:  # Arabic-Indic digits
        return text.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    if choice == 3:  # fullwidth digits
        return text.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    if choice == 4:  # pluses in odd places
        return rnd.choice(["++", "+ +", "00+"]) + text.lstrip("+0")
    return text[:2] + "+" + text[2:]


def _resize(rnd: random.Random, national: str) -> str:
    if rnd.random() < 0.5 and len(national) > 2:
        return national[: -rnd.randint(1, 2)]
    return national + _digits(rnd, rnd.randint(1, 2))


# Written forms, with weights: {n} the national number, {a} {b} {c} its NPA, NXX and line
# (US) or DDD, middle and last four (BR), {k} a carrier code; callables for the odd ones.
_US_FORMATS: list[tuple[int, str | Callable[[random.Random, str], str]]] = [
    (20, "{n}"),
    (8, "{a}-{b}-{c}"),
    (8, "({a}) {b}-{c}"),
    (3, "{a}.{b}.{c}"),
    (3, "{a} {b} {c}"),
    (2, "{a}/{b}-{c}"),
    (2, "({a}){b}-{c}"),
    (6, "1{n}"),
    (3, "1-{a}-{b}-{c}"),
    (2, "1 ({a}) {b}-{c}"),
    (8, "+1{n}"),
    (5, "+1 {a} {b} {c}"),
    (3, "+1 ({a}) {b}-{c}"),
    (2, "+1-{a}-{b}-{c}"),
    (1, "(+1) {a}.{b}.{c}"),
    (2, "001{n}"),
    (2, "001 {a} {b} {c}"),
    (1, "011 1 {a} {b} {c}"),
    (1, "+1 1 {a} {b} {c}"),
    (1, "11{n}"),
    (1, "0{n}"),
    (2, "  {n}  "),
    (5, lambda r, n: _sprinkle(r, r.choice(["", "1", "+1", "001"]) + n)),
    (4, lambda r, n: r.choice(["", "1", "+1 "]) + _resize(r, n)),
    (2, lambda r, n: _mangle(r, r.choice(["+1 ", ""]) + f"{n[:3]} {n[3:6]} {n[6:]}")),
]
_BR_FORMATS: list[tuple[int, str | Callable[[random.Random, str], str]]] = [
    (20, "{n}"),
    (10, "({a}) {b}-{c}"),
    (5, "{a} {b}-{c}"),
    (3, "{a} {b0} {b1}-{c}"),
    (3, "({a}){b}-{c}"),
    (1, "{a}.{b}.{c}"),
    (1, "{a}/{b}-{c}"),
    (8, "+55 {a} {b}-{c}"),
    (6, "+55{n}"),
    (3, "+55 ({a}) {b}-{c}"),
    (3, "55 {a} {b} {c}"),
    (5, "55{n}"),
    (2, "0055 {a} {b} {c}"),
    (1, "0055{n}"),
    (3, "0 {a} {b} {c}"),
    (2, "0{n}"),
    (1, "(0{a}) {b}-{c}"),
    (3, "0 {k} {a} {b}-{c}"),
    (1, "0{k}{n}"),
    (1, "90 {k} {n}"),
    (1, "+55 0 {a} {b} {c}"),
    (4, lambda r, n: _sprinkle(r, r.choice(["", "55", "+55", "0055", "0"]) + n)),
    (4, lambda r, n: r.choice(["", "55", "+55 "]) + _resize(r, n)),
    (1, lambda r, n: _mangle(r, r.choice(["+55 ", ""]) + f"({n[:2]}) {n[2:-4]}-{n[-4:]}")),
]


def _written(rnd: random.Random, region: str, form, national: str) -> str:
    if callable(form):
        return form(rnd, national)
    if region == "US":
        a, b, c = national[:3], national[3:6], national[6:]
    else:
        a, b, c = national[:2], national[2:-4], national[-4:]
    k = rnd.choice(_BR_CARRIERS) if "{k}" in form else ""
    return form.format(n=national, a=a, b=b, c=c, b0=b[:1], b1=b[1:], k=k)


@functools.cache
def _real_npas() -> tuple[str, ...]:
    """Area codes phonenumbers knows (US, Canada, Caribbean, non-geographic), by asking it."""
    return tuple(str(npa) for npa in range(200, 1000) if reference_region(1, f"{npa}2345678"))


def _us_prefix(rnd: random.Random) -> str:
    """A 6-digit NPA-NXX: real ranges, special codes and nonsense."""
    kind = rnd.random()
    if kind < 0.62:
        return rnd.choice(_real_npas()) + f"{rnd.randint(200, 999)}"
    if kind < 0.72:
        npa = rnd.choice([*_CANADA, *_CARIBBEAN, *_NON_GEOGRAPHIC, *_N11, "555"])
        return npa + f"{rnd.randint(200, 999)}"
    if kind < 0.82:
        return rnd.choice(_real_npas()) + rnd.choice(_SPECIAL_NXX)
    if kind < 0.92:
        return f"{rnd.randint(200, 999)}{rnd.randint(0, 999):03d}"
    if kind < 0.96:
        return f"{rnd.randint(0, 199):03d}{rnd.randint(0, 999):03d}"
    return _digits(rnd, 6)


def _br_prefix(rnd: random.Random) -> str:
    """DDD + all but the last four digits: landlines, mobiles (with and without the 9),
    trunked radio, non-geographic services and nonsense."""
    kind = rnd.random()
    if kind < 0.06:
        special = rnd.choice(_BR_SPECIAL)
        return special + _digits(rnd, rnd.choice([0, 1, 2, 3]) if len(special) == 3 else 0)
    ddd = rnd.choice(_BR_DDD) if rnd.random() < 0.85 else _digits(rnd, 2)
    kind = rnd.random()
    if kind < 0.35:
        return ddd + str(rnd.randint(2, 5)) + _digits(rnd, 3)  # landline
    if kind < 0.80:
        return ddd + "9" + _digits(rnd, 4)  # mobile
    if kind < 0.86:
        return ddd + str(rnd.randint(6, 9)) + _digits(rnd, 3)  # mobile without the 9
    if kind < 0.92:
        return ddd + "7" + _digits(rnd, 3)  # trunked radio
    return ddd + _digits(rnd, rnd.choice([3, 4, 5]))


def _foreign(rnd: random.Random, region: str) -> str:
    """Numbers of the other country, and of others, written with + or 00."""
    if region == "US":
        national = _br_prefix(rnd) + _digits(rnd, 4)
        return rnd.choice(["+55 ", "+55", "0055 ", "(+55) "]) + national
    national = _us_prefix(rnd) + _digits(rnd, 4)
    if rnd.random() < 0.2:
        return rnd.choice(["+44 20 7946 ", "+351 21 ", "+52 55 "]) + _digits(rnd, 4)
    return rnd.choice(["+1 ", "+1", "001 ", "(+1) "]) + national


def inputs(region: str, count: int, seed: int) -> Iterator[str]:
    """``count`` inputs for ``region``, mostly a few per national prefix (block)."""
    rnd = random.Random(seed)
    formats = _US_FORMATS if region == "US" else _BR_FORMATS
    cumulative = list(itertools.accumulate(weight for weight, _ in formats))
    total = cumulative[-1]
    forms = [form for _, form in formats]
    prefix_of = _us_prefix if region == "US" else _br_prefix
    made = 0
    while made < count:
        roll = rnd.random()
        if roll < 0.02:  # random digit strings, any length
            batch = [_digits(rnd, rnd.randint(1, 16)) for _ in range(4)]
        elif roll < 0.05:
            batch = [_foreign(rnd, region) for _ in range(4)]
        else:
            prefix = prefix_of(rnd)
            batch = []
            for _ in range(rnd.randint(3, 8)):
                suffix = "01" + _digits(rnd, 2) if rnd.random() < 0.05 else _digits(rnd, 4)
                form = forms[bisect.bisect(cumulative, rnd.random() * total)]
                batch.append(_written(rnd, region, form, prefix + suffix))
        batch = batch[: count - made]
        made += len(batch)
        yield from batch


# --- the check -----------------------------------------------------------------------------

_EXAMPLES = 20


def _counts(region: str, **counts: int) -> dict:
    return {"region": region, **counts, "mismatches": []}


def _note(stats: dict, message: str) -> None:
    if len(stats["mismatches"]) < _EXAMPLES:
        stats["mismatches"].append(message)


def check_inputs(region: str, count: int, seed: int) -> dict:
    """``_fast_phone`` and ``normalize_phone`` against phonenumbers on ``count`` inputs."""
    stats = _counts(
        region, inputs=0, reference_valid=0, fast_answers=0, shape_valid=0, shape_valid_fast=0
    )
    for text in inputs(region, count, seed):
        stats["inputs"] += 1
        expected = reference_key(text, region)
        fast = keys._fast_phone(text, region)
        if fast is not None:
            stats["fast_answers"] += 1
            if fast != expected:
                _note(stats, f"_fast_phone({text!r}, {region!r}) = {fast!r}, not {expected!r}")
        try:
            got = keys.normalize_phone(text, region)
        except keys.DeviceKeyError:
            got = None
        except Exception as exc:  # reported, not raised: this runs in a worker
            got = f"raised {exc!r}"
        if got != expected:
            _note(stats, f"normalize_phone({text!r}, {region!r}) = {got!r}, not {expected!r}")
        if expected is not None:
            stats["reference_valid"] += 1
            facts = keys.phone_facts(expected)
            slow = (keys.country_of_phone(expected), keys.time_zones_for_phone(expected))
            if facts != slow:
                _note(stats, f"phone_facts({expected!r}) = {facts!r}, not {slow!r}")
            if fast_shape(text, region):
                stats["shape_valid"] += 1
                stats["shape_valid_fast"] += fast is not None
    return stats


def check_blocks(region: str, count: int, seed: int) -> dict:
    """``national_block_valid`` (and ``region_of_national``, ``is_valid_national``) against
    phonenumbers: ``count`` prefixes, each with 8 random numbers of its block."""
    stats = _counts(region, block_prefixes=0, block_numbers=0, blocks_valid=0)
    rnd = random.Random(seed)
    country_code = 1 if region == "US" else 55
    code = str(country_code)
    prefix_of = _us_prefix if region == "US" else _br_prefix
    for _ in range(count):
        prefix = prefix_of(rnd)
        if rnd.random() < 0.05:  # other lengths: short numbers, too long ones
            prefix = prefix[: rnd.randint(0, len(prefix))] or prefix + _digits(rnd, 2)
        verdict = keys.national_block_valid(region, prefix)
        stats["block_prefixes"] += 1
        stats["blocks_valid"] += verdict
        for _ in range(8):
            nsn = prefix + _digits(rnd, 4)
            stats["block_numbers"] += 1
            expected = reference_region(country_code, nsn)
            if verdict != (expected == region):
                _note(stats, f"national_block_valid({region!r}, {prefix!r}) = {verdict}, "
                             f"but {nsn} is {expected or 'invalid'}")  # fmt: skip
            got = keys.region_of_national(code, nsn)
            if got != expected:
                _note(stats, f"region_of_national({code!r}, {nsn!r}) = {got!r}, not {expected!r}")
            if keys.is_valid_national(code, nsn) != bool(expected):
                _note(stats, f"is_valid_national({code!r}, {nsn!r}) != {bool(expected)}")
    return stats


def _answer_repeats() -> None:
    """Make ``phonenumbers.parse`` and ``phonenumbers.is_valid_number`` answer a call that
    repeats the one just before it (same arguments) with that call's answer.

    For every input the reference asks phonenumbers, then normalize_phone, where its fast
    path declines, asks it the very same questions: phonenumbers is deterministic, so the
    second asking is skipped, which saves a third of the test's time. A different question
    (another text or region, another number) is asked of phonenumbers itself. Only the
    module attributes change, which the reference and devices.keys call; phonenumbers'
    own internals are untouched."""
    real_parse, real_is_valid = phonenumbers.parse, phonenumbers.is_valid_number
    last_parse: list = [None, None]  # (arguments, PhoneNumber or (error_type, message))
    last_valid: list = [None, None]  # (PhoneNumber, answer)

    def parse(number, region=None, *args, **kwargs):
        if args or kwargs:
            return real_parse(number, region, *args, **kwargs)
        if last_parse[0] != (number, region):
            try:
                answer = real_parse(number, region)
            except phonenumbers.NumberParseException as exc:
                answer = (exc.error_type, *exc.args)
            last_parse[:] = [(number, region), answer]
        answer = last_parse[1]
        if isinstance(answer, tuple):
            raise phonenumbers.NumberParseException(*answer)
        return answer

    def is_valid_number(number):
        # The same PhoneNumber object parse() just gave (callers do not change it).
        if last_valid[0] is not number:
            last_valid[:] = [number, real_is_valid(number)]
        return last_valid[1]

    phonenumbers.parse = parse
    phonenumbers.is_valid_number = is_valid_number


def run(task: tuple[str, str, int, int]) -> dict:
    """One chunk of work, in a worker process: ("inputs" | "blocks", region, count, seed)."""
    kind, region, count, seed = task
    # In the worker only: it dies with it. Keeping phonenumbers' compiled patterns rather
    # than re-fetching them from re's cache at every use: the same regexes, ~12% faster.
    phonenumbers.enable_pattern_cache()
    if phonenumbers.parse.__module__ == "phonenumbers.phonenumberutil":
        _answer_repeats()
    return (check_inputs if kind == "inputs" else check_blocks)(region, count, seed)
