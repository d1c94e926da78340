"""devices.keys, the one normaliser: its fast phone path is phonenumbers, exactly.

The property test runs 1,000,000 generated inputs per country (US, BR) through the fast
path, ``normalize_phone`` and the phonenumbers reference (tests/normaliser_reference.py),
and a few hundred thousand block numbers through ``national_block_valid``, in two worker
processes. Needs no database.
"""

from __future__ import annotations

import multiprocessing
import time

import pytest
from phonenumbers import PhoneMetadata

from devices import keys
from tests import normaliser_reference as ref

SEED = 20_240_611
INPUTS_PER_COUNTRY = 1_000_000
BLOCK_PREFIXES_PER_COUNTRY = 37_500  # 8 numbers each: 300,000 numbers
CHUNKS = 10  # per country and kind: small tasks keep both workers busy to the end


def _work() -> list[tuple[str, str, int, int]]:
    tasks = []
    for chunk in range(CHUNKS):
        for n, region in enumerate(("US", "BR")):
            seed = SEED + 1000 * n + chunk
            tasks.append(("inputs", region, INPUTS_PER_COUNTRY // CHUNKS, seed))
            tasks.append(("blocks", region, BLOCK_PREFIXES_PER_COUNTRY // CHUNKS, seed + 500))
    return tasks


def test_fast_path_is_phonenumbers_on_generated_numbers():
    started = time.monotonic()
    # fork: the children inherit Django's set-up and never touch the database.
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = list(pool.imap_unordered(ref.run, _work()))
    elapsed = time.monotonic() - started

    totals: dict[str, dict] = {}
    for result in results:
        total = totals.setdefault(result["region"], {"mismatches": []})
        for name, value in result.items():
            if name == "mismatches":
                total["mismatches"] += value
            elif name != "region":
                total[name] = total.get(name, 0) + value
    report = "; ".join(
        f"{region}: " + ", ".join(f"{k}={v:,}" for k, v in t.items() if k != "mismatches")
        for region, t in sorted(totals.items())
    ) + f" ({elapsed:.0f} s)"  # fmt: skip

    for region in ("US", "BR"):
        total = totals[region]
        assert not total["mismatches"], f"{region} disagrees with phonenumbers:\n" + "\n".join(
            total["mismatches"][:40]
        ) + f"\n{report}"  # fmt: skip
        assert total["inputs"] >= 1_000_000, report
        assert total["block_numbers"] >= 300_000, report
        # Both answers of national_block_valid were exercised.
        assert 0 < total["blocks_valid"] < total["block_prefixes"], report
        # The generated inputs are mostly, not only, valid numbers.
        assert 0.5 < total["reference_valid"] / total["inputs"] < 0.95, report
        # The fast path answers (almost) every valid number written in its shapes.
        assert total["shape_valid_fast"] >= 0.99 * total["shape_valid"], report
        assert total["shape_valid"] >= 0.5 * total["reference_valid"], report


# (region, input, key phonenumbers gives or None, whether the fast path answers)
TRICKY = [
    # Brazil: landlines 2-5, mobiles 9 + 8 digits, trunked radio 7, no 8-digit mobiles.
    ("BR", "(11) 3123-4567", "+551131234567", True),
    ("BR", "11 91234-5678", "+5511912345678", True),
    ("BR", "(11) 9 1234-5678", "+5511912345678", True),
    ("BR", "+55 (11) 9.1234.5678", "+5511912345678", True),
    ("BR", "11 7123-4567", "+551171234567", True),
    ("BR", "11 8123-4567", None, False),
    ("BR", "+55 11 6123 4567", None, False),
    ("BR", "+55 11 1234 5678", None, False),
    ("BR", "61 3123 4567", "+556131234567", True),
    # Area codes (DDD) not in service, or not area codes.
    ("BR", "20 91234 5678", None, False),
    ("BR", "+55 36 3123 4567", None, False),
    ("BR", "10 3123 4567", None, False),
    ("BR", "1891234567", None, False),
    # National prefix 0, carrier selection (0 + carrier), collect calls (90 + carrier).
    ("BR", "011 91234 5678", "+5511912345678", False),
    ("BR", "0 21 11 91234 5678", "+5511912345678", False),
    ("BR", "021 11 91234 5678", "+5511912345678", False),
    ("BR", "0 15 11 3123 4567", "+551131234567", False),
    ("BR", "90 21 11 91234 5678", "+5511912345678", False),
    ("BR", "+55 0 11 91234 5678", "+5511912345678", False),
    # Non-geographic: toll free, shared cost, premium; 4004-style numbers have 8 digits.
    ("BR", "0800 123 4567", "+558001234567", False),
    ("BR", "0800 12 3456", "+55800123456", False),
    ("BR", "800 123 4567", "+558001234567", True),
    ("BR", "0300 123 4567", "+553001234567", False),
    ("BR", "0900 123 4567", "+559001234567", False),
    ("BR", "4004-1234", "+5540041234", False),
    # The country code written without +, and DDD 55 (Rio Grande do Sul), which looks like it.
    ("BR", "5511912345678", "+5511912345678", True),
    ("BR", "55 11 3123 4567", "+551131234567", True),
    ("BR", "55 9 1234 5678", "+5555912345678", True),
    ("BR", "(55) 3222-1234", "+555532221234", True),
    ("BR", "55 55 91234 5678", "+5555912345678", True),
    ("BR", "555 9 1234 5678", None, False),
    ("BR", "55 4004 1234", "+555540041234", True),  # DDD 55 + landline, not +55 4004-1234
    # 11 digits from 555: not a DDD 55 number (its pattern leaves out 555 + 8 digits), so
    # phonenumbers reads 55 as the country code: a 9-digit premium-rate number.
    ("BR", "55500123456", "+55500123456", True),
    ("BR", "55900123456", "+5555900123456", True),  # but 559 is DDD 55 + mobile
    ("BR", "+55 4004 1234", "+5540041234", False),
    ("BR", "5591234567", None, False),
    ("BR", "0055 11 91234 5678", "+5511912345678", True),
    ("BR", "005511912345678", "+5511912345678", True),
    # Other countries in Brazil; wrong lengths; a tab (\s to us, not punctuation to it).
    ("BR", "+1 713 555 4101", "+17135554101", True),
    ("BR", "00 1 713 555 4101", "+17135554101", True),
    ("BR", "(11) 91234-567", None, False),
    ("BR", "911234-5678", None, False),
    ("BR", "11 91234-56789", None, False),
    ("BR", "11\t91234-5678", None, False),
    # NANP: N11 and 555 exchanges are valid numbers, N11 and 555 area codes are not.
    ("US", "713 555 4101", "+17135554101", True),
    ("US", "1 713 555 4101", "+17135554101", True),
    ("US", "1(713)555-4101", "+17135554101", True),
    ("US", "+1 (713) 555-4101", "+17135554101", True),
    ("US", "(+1) 713 555 4101", "+17135554101", True),
    ("US", "7135554101/", "+17135554101", True),
    ("US", "713 555 0100", "+17135550100", True),
    ("US", "212 911 1234", "+12129111234", True),
    ("US", "911 555 1234", None, False),
    ("US", "555 555 1234", None, False),
    ("US", "212 055 1234", None, False),
    ("US", "212 155 1234", None, False),
    ("US", "123 456 7890", None, False),
    ("US", "800 555 1234", "+18005551234", True),
    ("US", "1-800-555-1234", "+18005551234", True),
    ("US", "900 555 1234", "+19005551234", True),
    ("US", "500 555 1234", "+15005551234", True),
    ("US", "983 555 1234", "+19835551234", True),
    # Canada and the Caribbean in region US: valid, +1, their own region.
    ("US", "+1 416 555 0199", "+14165550199", True),
    ("US", "416 555 0199", "+14165550199", True),
    ("US", "268 464 1234", "+12684641234", True),
    ("US", "809 555 1234", "+18095551234", True),
    # Canada's 310-xxxx: a valid 7-digit +1 number.
    ("US", "310 1234", "+13101234", False),
    ("US", "+1 310 1234", "+13101234", False),
    # Other countries in region US, with +, 00 and the US international prefix 011.
    ("US", "+55 11 91234 5678", "+5511912345678", True),
    ("US", "0055 11 91234 5678", "+5511912345678", True),
    ("US", "011 55 11 91234 5678", "+5511912345678", False),
    ("US", "+44 20 7946 0958", "+442079460958", False),
    ("US", "001 713 555 4101", "+17135554101", True),
    # phonenumbers strips a doubled national prefix and pluses, reads Unicode digits and
    # no-break spaces, but not tabs; a + inside the number is not a number.
    ("US", "1 1 713 555 4101", "+17135554101", False),
    ("US", "+1 1 713 555 4101", "+17135554101", False),
    ("US", "++1 713 555 4101", "+17135554101", False),
    ("US", "٧١٣٥٥٥٤١٠١", "+17135554101", False),
    ("US", "713\xa0555\xa04101", "+17135554101", False),
    ("US", "713\t555\t4101", None, False),
    ("US", "1+713 555 4101", None, False),
    ("US", "713-555-41O1", None, False),
    ("US", "+1 800 555 1234 5", None, False),
    ("US", "713" + " " * 30 + "555 4101", None, False),  # over 40 characters: refused
]


@pytest.mark.parametrize(("region", "text", "expected", "fast"), TRICKY, ids=repr)
def test_tricky_case(region, text, expected, fast):
    assert ref.reference_key(text, region) == expected, "phonenumbers itself changed"
    if expected is None:
        with pytest.raises(keys.DeviceKeyError):
            keys.normalize_phone(text, region)
    else:
        assert keys.normalize_phone(text, region) == expected
    assert keys._fast_phone(text, region) == (expected if fast else None)


def test_refusals_keep_their_messages():
    with pytest.raises(keys.DeviceKeyError, match="^Enter a phone number.$"):
        keys.normalize_phone("  ", "US")
    with pytest.raises(keys.DeviceKeyError, match="^“abc” is not a phone number. Enter all 10"):
        keys.normalize_phone("abc", "US")
    with pytest.raises(keys.DeviceKeyError, match="^“713 555 410” is too short to be a complete"):
        keys.normalize_phone("713 555 410", "US")
    with pytest.raises(keys.DeviceKeyError, match="^“11 91234-56789” has too many digits"):
        keys.normalize_phone("11 91234-56789", "BR")
    with pytest.raises(keys.DeviceKeyError, match="^“1” is not a phone number"):
        keys.normalize_phone("1", "BR")
    with pytest.raises(keys.DeviceKeyError, match="is not a phone number"):
        keys.normalize_phone("7" * 41, "US")
    with pytest.raises(keys.DeviceKeyError, match="^“555 555 1234” is not a valid phone number"):
        keys.normalize_phone("555 555 1234", "US")


def test_blocks_are_decided_by_their_prefix():
    """The structural property national_block_valid rests on, for the installed
    phonenumbers: every alternative of every pattern ends in 4 or more free digits."""
    for region in ("US", "BR"):
        assert keys.national_blocks_uniform(region)
        metadata = PhoneMetadata.metadata_for_region(region)
        descs = ["general_desc", *keys._TYPE_DESCS]
        patterns = [
            desc.national_number_pattern
            for name in descs
            if (desc := getattr(metadata, name)) is not None and desc.national_number_pattern
        ]
        assert len(patterns) >= 5
        for pattern in patterns:
            assert keys._free_tail(pattern), (region, pattern)
        assert metadata.leading_digits is None
    # The checker refuses what would break the argument.
    assert keys._free_tail(r"[2-9]\d{9}|3\d{6}")
    assert keys._free_tail(r"(?:1|2[0-5])\d{4,}")
    for pattern in (
        r"\d{3}",  # fewer than four free digits
        r"(?:1\d{4})",  # tail inside a group
        r"1\d{4}|2\d{3}",  # one alternative short
        r"1\d{4}(?=5)",  # lookahead
        r"1\d{4}+",  # possessive
        r"1\d{4}$",  # anchor
        r"1\d{4}|",  # empty alternative
    ):
        assert not keys._free_tail(pattern), pattern
    # Canada shares +1 but is not its main region: no block verdicts for it.
    assert not keys.national_blocks_uniform("CA")
    with pytest.raises(ValueError):
        keys.national_block_valid("CA", "416555")
    with pytest.raises(ValueError):
        keys.national_block_valid("US", "71a555")


def test_block_verdicts():
    assert keys.national_block_valid("US", "713555")
    assert keys.national_block_valid("US", "800555")
    assert not keys.national_block_valid("US", "416555")  # valid, but Canada's
    assert not keys.national_block_valid("US", "555555")
    assert not keys.national_block_valid("US", "71355")  # 9-digit numbers
    assert keys.national_block_valid("BR", "1191234")
    assert keys.national_block_valid("BR", "113123")
    assert keys.national_block_valid("BR", "4004")  # 4004-dddd
    assert not keys.national_block_valid("BR", "118123")
    assert not keys.national_block_valid("BR", "2091234")


def test_national_numbers():
    assert keys.region_of_national("1", "7135554101") == "US"
    assert keys.region_of_national("1", "4165550199") == "CA"
    assert keys.region_of_national("1", "2684641234") == "AG"
    assert keys.region_of_national("1", "5555551234") == ""
    assert keys.region_of_national("55", "11912345678") == "BR"
    assert keys.region_of_national("55", "11812345678") == ""
    assert keys.is_valid_national("1", "3101234")  # Canada's 310-xxxx
    assert not keys.is_valid_national("1", "7135554１01")  # a fullwidth digit
    assert not keys.is_valid_national("55", "")
    with pytest.raises(ValueError):
        keys.is_valid_national("44", "2079460958")


def test_parse_phone_or_extension():
    assert keys.parse_phone_or_extension(" 42 ", "US") == keys.DeviceKey(keys.EXTENSION, "42")
    assert keys.parse_phone_or_extension("12345678", "BR") == keys.DeviceKey(
        "extension", "12345678"
    )
    assert keys.parse_phone_or_extension("(713) 555-4101", "US") == keys.DeviceKey(
        keys.PHONE, "+17135554101"
    )
    assert keys.parse_phone_or_extension("11912345678", "BR").key == "+5511912345678"
    with pytest.raises(keys.DeviceKeyError, match="An extension is 2 to 8 digits"):
        keys.parse_phone_or_extension("7", "US")
    with pytest.raises(keys.DeviceKeyError, match="too short|not a valid|not a phone"):
        keys.parse_phone_or_extension("123456789", "US")  # 9 digits: a (short) phone number
    with pytest.raises(keys.DeviceKeyError, match="too short"):
        keys.parse_phone_or_extension("١٢٣", "US")  # not ASCII: not an extension
    with pytest.raises(keys.DeviceKeyError, match="Enter a phone number"):
        keys.parse_phone_or_extension("", "US")


def test_display_phone():
    assert keys.display_phone("+17135554101") == "+1 713-555-4101"
    assert keys.display_phone("+5511912345678") == "+55 11 91234-5678"
    assert keys.display_phone("4101") == "4101"
    assert keys.display_phone("ann@example.com") == "ann@example.com"
    assert keys.display_phone("+") == "+"
