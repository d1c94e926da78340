"""National registries: parsing US and Brazilian files, blocks, full snapshots and
incremental files, lookups, the policy gate's registry rule and its precedence, staleness
(deferred dialling, refused starts, banners), and the operator pages."""

from __future__ import annotations

import datetime as dt
import io
import random
import zipfile

import phonenumbers
import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context
from hypothesis import given, settings
from hypothesis import strategies as st

from accounts.models import AuditEvent, User
from campaigns import dialer
from campaigns.actions import do_activate_sub_campaign
from campaigns.models import DialState, Purpose
from devices.actions import do_save_device_setting
from devices.models import Registry, RegistryBlock, RegistryImport
from devices.policy import DEFER, DIAL, SUPPRESS, DialRequest, PolicyGate
from devices.registry import codec, imports, lookup, parsing, store
from tests import factories
from tests.helpers import client_for

# Tuesday 10 March 2026, 15:00 UTC: 10:00 in Houston, 12:00 in São Paulo.
WORKDAY = dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC)
US_LISTED = ["+17135554101", "+17135554102", "+12125550199"]
US_FREE = "+17135554109"
BR_LISTED = ["+5511912345678", "+551131234567"]
BR_FREE = "+5511912345600"
CANADA = "+14165550123"
FIXED, MOBILE, FIXED_OR_MOBILE = (
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
)  # NANP, but Toronto: not the US registry's business


def _parse(text: str | bytes, country: str, name: str = "f.txt") -> parsing.ParseResult:
    data = text.encode() if isinstance(text, str) else text
    scheme = parsing.SCHEMES[country]
    return parsing.parse_lines(io.BytesIO(data), scheme, parsing.ParseResult(), name=name)


def _numbers(result: parsing.ParseResult, country: str) -> set[str]:
    code = parsing.SCHEMES[country].country_code
    return {
        f"+{code}{key.decode()}{suffix:04d}"
        for key, suffixes in result.blocks.items()
        for suffix in suffixes
    }


def _key(found: tuple[bytes, int], country: str) -> str:
    code = parsing.SCHEMES[country].country_code
    return f"+{code}{found[0].decode()}{found[1]:04d}"


def _registry(country: str) -> Registry:
    return Registry.objects.get(country=country)


def _load(country: str, numbers: list[str], when: dt.datetime = WORKDAY, generation: int = 0):
    """The registry holds exactly these numbers, imported at ``when``."""
    registry = _registry(country)
    blocks: dict[int, list[int]] = {}
    for key in numbers:
        prefix, suffix = codec.split_key(key)
        blocks.setdefault(prefix, []).append(suffix)
    rows = [(p, len(set(s)), codec.encode_block(sorted(set(s)))) for p, s in sorted(blocks.items())]
    store.replace_numbers(registry, generation or random.randint(10**9, 2 * 10**9), rows, now=when)
    return registry


def _file(tmp_path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(path)


def _import(tmp_path, country: str, kind: str, content: str | bytes, name: str = "dnc.txt"):
    path = _file(tmp_path, name, content)
    job = imports.do_create_path_import(_registry(country), kind, [path])
    imports.run_import(job.pk)
    job.refresh_from_db()
    return job


# --- 1. parsing --------------------------------------------------------------------------------


def test_us_lines_in_every_accepted_form():
    result = _parse(
        "7135554101\n17135554102\n+1 713 555 4103\n(713) 555-4104\n713.555.4105\n201,5550123\n",
        "US",
    )
    assert result.rejected_count == 0
    assert _numbers(result, "US") == {
        "+17135554101", "+17135554102", "+17135554103", "+17135554104", "+17135554105",
        "+12015550123",
    }  # fmt: skip
    assert (result.lines_read, result.accepted) == (6, 6)


def test_malformed_us_lines_are_reported_with_their_line_numbers_and_good_lines_kept():
    result = _parse(
        "7135554101\n"  # 1
        "713555410\n"  # 2 too short
        "\n"  # 3 blank: skipped, still counted as a line
        "call me maybe\n"  # 4
        "0135554101\n"  # 5 area code starting 0
        "7131554101\n"  # 6 exchange starting 1
        "27135554101\n"  # 7 eleven digits not starting with 1
        "7135554102\n",  # 8
        "US",
    )
    assert _numbers(result, "US") == {"+17135554101", "+17135554102"}
    assert result.rejected == [
        ["f.txt", 2, "713555410", "length"],
        ["f.txt", 4, "call me maybe", "characters"],
        ["f.txt", 5, "0135554101", "range"],
        ["f.txt", 6, "7131554101", "range"],
        ["f.txt", 7, "27135554101", "length"],
    ]
    assert (result.lines_read, result.accepted, result.rejected_count) == (7, 2, 5)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("phone,name\n7135554101,Ann\n7135554102,Bob\n", {"+17135554101", "+17135554102"}),
        ("name;telefone\nAna;(11) 91234-5678\nBia;11 3123 4567\n", None),
        ("id\tnumber\n1\t7135554101\n2\t+1 713 555 4102\n", {"+17135554101", "+17135554102"}),
        ('"7135554101","x"\n"7135554102","y"\n', {"+17135554101", "+17135554102"}),
        ("7135554101,2026-01-01\n7135554102,2026-01-02\n", {"+17135554101", "+17135554102"}),
    ],
)
def test_simple_csv_first_column_or_named_column(content, expected):
    country = "BR" if "telefone" in content else "US"
    result = _parse(content, country, name="f.csv")
    assert result.rejected_count == 0, result.rejected
    assert _numbers(result, country) == (expected or {"+5511912345678", "+551131234567"})


def test_brazilian_lines_ddd_and_number_with_or_without_55():
    result = _parse(
        "11912345678\n1131234567\n5511912345679\n551131234568\n+55 (21) 99876-5432\n"
        "55912345678\n",  # DDD 55 (Rio Grande do Sul), a mobile
        "BR",
    )
    assert result.rejected_count == 0, result.rejected
    assert _numbers(result, "BR") == {
        "+5511912345678", "+551131234567", "+5511912345679", "+551131234568", "+5521998765432",
        "+5555912345678",
    }  # fmt: skip


def test_malformed_brazilian_lines():
    result = _parse(
        "11812345678\n"  # 11 digits but not a 9 after the DDD
        "1191234567\n"  # 10 digits starting 9: an old 8-digit mobile
        "+11912345678\n"  # written with + but without 55
        "0112345678\n"  # DDD with a 0
        "123456789\n"  # too short
        "+44 20 7946 0958\n"  # not Brazilian at all
        "55500123456\n",  # not DDD 55: the premium-rate 500 123 456, as phonenumbers reads it
        "BR",
    )
    # Refusals are the normaliser's: "+1 191…" is read as a (bad) US number, not a
    # Brazilian one missing its 55.
    assert [r[1:] for r in result.rejected] == [
        [1, "11812345678", "range"],
        [2, "1191234567", "range"],
        [3, "+11912345678", "range"],
        [4, "0112345678", "range"],
        [5, "123456789", "range"],
        [6, "+44 20 7946 0958", "country"],
    ]
    assert _numbers(result, "BR") == {"+55500123456"}


def test_line_numbers_stay_right_across_chunks_and_only_the_first_rejects_are_kept():
    good = [f"713555{n:04d}" for n in range(10_000)] * 12  # ~1.3 MB: several chunks
    lines = list(good)
    for n in range(parsing.REJECTED_KEPT + 5):
        lines.insert(100_000 + n * 3, f"bad{n}")
    result = _parse("\n".join(lines) + "\n", "US")
    assert result.rejected_count == parsing.REJECTED_KEPT + 5
    assert len(result.rejected) == parsing.REJECTED_KEPT
    assert result.rejected[0][1:3] == [100_001, "bad0"]
    assert result.rejected[1][1:3] == [100_004, "bad1"]
    assert result.accepted == len(good)
    assert len(_numbers(result, "US")) == 10_000


def test_a_utf16_or_binary_file_is_refused():
    with pytest.raises(parsing.FileProblem, match="UTF-16"):
        _parse("7135554101\n".encode("utf-16"), "US")
    with pytest.raises(parsing.FileProblem, match="not a CSV text file"):
        _parse(b"\x00\x01\x02garbage", "US", name="dnc.xls")


def test_a_utf8_bom_and_windows_line_ends_are_fine():
    result = _parse(b"\xef\xbb\xbf7135554101\r\n7135554102\r\n", "US")
    assert result.rejected_count == 0
    assert _numbers(result, "US") == {"+17135554101", "+17135554102"}


@settings(max_examples=400, deadline=None)
@given(
    country=st.sampled_from(["US", "BR"]),
    digits=st.text(alphabet="0123456789", min_size=8, max_size=14),
    plus=st.booleans(),
)
def test_the_fast_path_and_the_line_by_line_check_agree(country, digits, plus):
    """A clean line (the shape and a block check) and the same value read on its own by
    the normaliser (line_key) give the same key, or are both refused."""
    line = ("+" if plus else "") + digits
    scheme = parsing.SCHEMES[country]
    fast = _parse(f"{line}\n".encode(), country)
    slow = parsing.line_key(line, scheme)
    if isinstance(slow, str):
        assert fast.accepted == 0
    else:
        assert fast.accepted == 1 and _numbers(fast, country) == {_key(slow, country)}


@pytest.mark.parametrize("country", ["US", "BR"])
def test_numbers_phonenumbers_calls_valid_are_accepted_and_keyed_the_same(country):
    rng = random.Random(7)
    samples = []
    for kind in (FIXED, MOBILE):
        samples.append(phonenumbers.example_number_for_type(country, kind))
    # Random numbers phonenumbers considers valid, in the national format people write.
    while len(samples) < 300:
        national = str(rng.randint(10**9, 10**11 - 1))
        number = phonenumbers.parse(national, country)
        # Landlines and mobiles of the country itself (not 0800 numbers, nor, for +1, the
        # Caribbean and Canada), the numbers people put on a do-not-call registry.
        kind = phonenumbers.number_type(number)
        if (
            phonenumbers.is_valid_number(number)
            and phonenumbers.region_code_for_number(number) == country
            and kind in (FIXED, MOBILE, FIXED_OR_MOBILE)
        ):
            samples.append(number)
    text = "\n".join(
        phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.NATIONAL) for n in samples
    )
    result = _parse(text, country)
    assert result.rejected == []
    expected = {phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164) for n in samples}
    assert _numbers(result, country) == expected


def _registry_lines(country: str, count: int, seed: int) -> list[str]:
    """Lines as registry files hold them: mostly clean numbers of the country in every
    written form, clustered by exchange, with invalid ranges and other countries mixed in."""
    rng = random.Random(seed)
    lines = []
    while len(lines) < count:
        if country == "US":
            prefix = f"{rng.randint(100, 999)}{rng.randint(100, 999)}"
            forms = ("{n}", "1{n}", "+1{n}", "+1 {a} {b} {c}", "({a}) {b}-{c}", "{a},{b}{c}")
        else:
            prefix = f"{rng.randint(10, 99)}{rng.choice(['9', ''])}{rng.randint(1000, 9999)}"
            forms = ("{n}", "55{n}", "+55{n}", "+55 {a} {b}-{c}", "({a}) {b}-{c}", "0{n}")
        for _ in range(rng.randint(1, 8)):  # several numbers of one block
            national = f"{prefix}{rng.randint(0, 9999):04d}"
            cut = 3 if country == "US" else 2
            a, rest = national[:cut], national[cut:]
            b, c = rest[:-4], rest[-4:]
            form = rng.choice(forms)
            lines.append(form.format(n=national, a=a, b=b, c=c))
    return lines[:count]


@pytest.mark.parametrize("country", ["US", "BR"])
def test_a_file_of_many_lines_agrees_with_the_normaliser_line_by_line(country):
    """200,000 lines through the import's reader (clean chunks, blocks decided once per
    prefix) against each line read alone by the normaliser: same keys, same refusals."""
    lines = _registry_lines(country, 200_000, seed=11 if country == "US" else 12)
    result = _parse("\n".join(lines) + "\n", country)
    scheme = parsing.SCHEMES[country]
    expected, refused = set(), set()
    for number, line in enumerate(lines, start=1):
        value = line.replace(",", "") if country == "US" and "," in line else line
        found = parsing.line_key(value, scheme)
        if isinstance(found, str):
            refused.add(number)
        else:
            expected.add(_key(found, country))
    assert _numbers(result, country) == expected
    assert result.rejected_count == len(refused)
    assert {line for _name, line, _text, _reason in result.rejected} <= refused
    assert len(expected) > 50_000 and refused, "both outcomes are exercised"


# --- 2. blocks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 623, 624, 625, 626, 5000, 10_000])
def test_blocks_round_trip_and_are_never_bigger_than_a_bitmap(count):
    suffixes = sorted(random.Random(count).sample(range(10_000), count))
    data = codec.encode_block(suffixes)
    assert len(data) == (2 * count if count <= codec.ARRAY_MAX else codec.BITMAP_BYTES)
    assert codec.decode_block(data) == suffixes
    members = set(suffixes)
    for s in [0, 1, 4999, 9998, 9999, *suffixes[:50]]:
        assert codec.block_contains(data, s) == (s in members)


# --- 3. imports: full snapshots and incremental files ------------------------------------------


def _listed_now(country: str) -> set[str]:
    registry = _registry(country)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT prefix, suffixes FROM devices_registryblock "
            "WHERE registry_id = %s AND generation = %s",
            [registry.pk, registry.generation],
        )
        return {
            f"+{prefix}{suffix:04d}"
            for prefix, data in cursor.fetchall()
            for suffix in codec.decode_block(bytes(data))
        }


def test_a_full_snapshot_replaces_every_number(personas, tmp_path):
    first = _import(tmp_path, "US", "full", "7135554101\n7135554102\n2125550199\n")
    assert first.status == RegistryImport.Status.READY, first.error
    registry = _registry("US")
    assert (registry.size, registry.generation) == (3, first.pk)
    assert registry.last_imported_at is not None
    assert registry.last_full_import_at == registry.last_imported_at

    second = _import(tmp_path, "US", "full", "7135554102\n7135554103\n7135554103\n", "b.txt")
    registry.refresh_from_db()
    assert _listed_now("US") == {"+17135554102", "+17135554103"}
    assert (registry.size, registry.generation, second.size_after) == (2, second.pk, 2)
    # The old generation is gone with the switch: nothing else is stored.
    assert set(
        RegistryBlock.objects.filter(registry_id=registry.pk).values_list("generation", flat=True)
    ) == {second.pk}
    assert (second.lines_read, second.numbers_accepted, second.numbers_removed) == (3, 3, 1)
    assert AuditEvent.objects.filter(action="registry.import", object_id=str(second.pk)).exists()


def test_a_full_snapshot_with_no_good_line_fails_and_keeps_the_registry(personas, tmp_path):
    _load("US", US_LISTED)
    before = _registry("US")
    job = _import(tmp_path, "US", "full", "hello\nworld\n")
    assert job.status == RegistryImport.Status.FAILED
    assert "No US National DNC numbers found" in job.error
    assert job.lines_rejected == 2
    after = _registry("US")
    assert (after.generation, after.size) == (before.generation, before.size)
    assert _listed_now("US") == set(US_LISTED)


def test_incremental_add_and_remove_files_merge_into_the_registry(personas, tmp_path):
    _load("US", US_LISTED)
    added = _import(tmp_path, "US", "add", "7135554101\n7135554105\n3055550100\n")
    assert (added.status, added.numbers_added, added.size_after) == ("ready", 2, 5)
    assert _listed_now("US") == {*US_LISTED, "+17135554105", "+13055550100"}

    removed = _import(tmp_path, "US", "remove", "2125550199\n3055550100\n4045550000\n")
    assert (removed.status, removed.numbers_removed, removed.size_after) == ("ready", 2, 3)
    assert _listed_now("US") == {"+17135554101", "+17135554102", "+17135554105"}
    # An emptied block is deleted, not kept with no numbers.
    registry = _registry("US")
    assert not RegistryBlock.objects.filter(registry_id=registry.pk, prefix=1305555).exists()
    assert registry.size == 3


def test_incremental_changes_switch_a_block_between_array_and_bitmap(personas, tmp_path):
    _load("BR", ["+5511912340000"])
    many = "\n".join(f"1191234{n:04d}" for n in range(1, 700)) + "\n"
    _import(tmp_path, "BR", "add", many)
    registry = _registry("BR")
    block = RegistryBlock.objects.get(registry_id=registry.pk, prefix=551191234)
    assert (block.count, len(bytes(block.suffixes))) == (700, codec.BITMAP_BYTES)
    fewer = "\n".join(f"1191234{n:04d}" for n in range(1, 600)) + "\n"
    _import(tmp_path, "BR", "remove", fewer)
    block = RegistryBlock.objects.get(registry_id=registry.pk, prefix=551191234)
    assert block.count == 101
    assert len(bytes(block.suffixes)) == 202
    assert lookup.is_listed(registry, "+5511912340650")
    assert not lookup.is_listed(registry, "+5511912340001")


def test_an_incremental_file_needs_a_full_snapshot_first(personas, tmp_path):
    job = _import(tmp_path, "BR", "add", "11912345678\n")
    assert job.status == RegistryImport.Status.FAILED
    assert "import a full snapshot first" in job.error
    assert _registry("BR").size == 0


def test_a_zip_of_area_code_files_is_one_import(personas, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("713.txt", "7135554101\n7135554102\nbad\n")
        archive.writestr("212.txt", "2125550199\n")
        archive.writestr("__MACOSX/._713.txt", "junk")
        archive.writestr("readme.pdf", "%PDF")
    job = _import(tmp_path, "US", "full", buffer.getvalue(), name="dnc.zip")
    assert job.status == "ready", job.error
    assert _listed_now("US") == set(US_LISTED)
    assert job.rejected == [["dnc.zip:713.txt", 3, "bad", "characters"]]


def test_the_management_command_imports_files_from_disk(personas, tmp_path):
    one = _file(tmp_path, "a.txt", "11912345678\n")
    two = _file(tmp_path, "b.csv", "telefone\n(11) 3123-4567\nnope\n")
    out = io.StringIO()
    call_command("import_registry", "br", "full", one, two, stdout=out)
    assert "2 numbers accepted, 1 rejected; the registry holds 2 numbers" in out.getvalue()
    assert "b.csv line 3: not a phone number (letters or symbols): nope" in out.getvalue()
    assert _listed_now("BR") == set(BR_LISTED)
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_registry", "us", "full", str(tmp_path / "missing.txt"))
    with pytest.raises(CommandError, match="Unknown registry"):
        call_command("import_registry", "uk", "full", one)


def test_a_finished_import_is_not_run_again(personas, tmp_path):
    job = _import(tmp_path, "US", "full", "7135554101\n")
    assert imports.run_import(job.pk) is None
    assert RegistryImport.objects.get(pk=job.pk).status == "ready"


# --- 4. lookups --------------------------------------------------------------------------------


def test_lookup_of_numbers_in_both_registries_in_one_query(personas):
    us, br = _load("US", US_LISTED), _load("BR", BR_LISTED)
    pairs = [(us.pk, k) for k in [*US_LISTED, US_FREE]] + [
        (br.pk, k) for k in [*BR_LISTED, BR_FREE]
    ]
    pairs.append((us.pk, BR_LISTED[0]))  # a Brazilian number is never on the US registry
    with CaptureQueriesContext(connection) as queries:
        found = lookup.listed(pairs)
    assert [q for q in queries if "registryblock" in q["sql"]] == queries[-1:]
    assert found == {(us.pk, k) for k in US_LISTED} | {(br.pk, k) for k in BR_LISTED}


# --- 5. the gate -------------------------------------------------------------------------------


def _ask(personas, device, purpose="telemarketing", *, enterprise=None, when=WORKDAY):
    enterprise = enterprise or personas.ent_a
    request = DialRequest(personas.acct_a1.pk, 1, 1, purpose, "voice", device)
    return PolicyGate(enterprise, when).decide_one(request)


@pytest.fixture
def loaded(personas):
    _load("US", [*US_LISTED, CANADA])
    _load("BR", BR_LISTED)
    return personas


@pytest.mark.parametrize(
    ("device", "purpose", "setting", "expected"),
    [
        # a listed number: suppressed for telemarketing only
        (US_LISTED[0], "telemarketing", None, (SUPPRESS, "national_registry", "US National DNC")),
        (US_LISTED[0], "informational", None, (DIAL, "", "")),
        (US_LISTED[0], "collections", None, (DIAL, "", "")),
        (BR_LISTED[0], "telemarketing", None, (SUPPRESS, "national_registry", "Não Me Perturbe")),
        (BR_LISTED[1], "collections", None, (DIAL, "", "")),
        # consent on file (an Allow) exempts; a Block still wins
        (US_LISTED[1], "telemarketing", "allow", (DIAL, "", "")),
        (BR_LISTED[0], "telemarketing", "allow", (DIAL, "", "")),
        (US_LISTED[1], "telemarketing", "block", (SUPPRESS, "device_block", "Manual")),
        (US_FREE, "telemarketing", "block", (SUPPRESS, "device_block", "Manual")),
        # numbers not on their country's registry, or of another country
        (US_FREE, "telemarketing", None, (DIAL, "", "")),
        (BR_FREE, "telemarketing", None, (DIAL, "", "")),
        (CANADA, "telemarketing", None, (DIAL, "", "")),  # on the file, but not in the US
        ("+442079460958", "telemarketing", None, (DIAL, "", "")),
    ],
)
def test_registry_rule_precedence(loaded, device, purpose, setting, expected):
    if setting:
        do_save_device_setting(loaded.ent_a, device, setting)
    decision = _ask(loaded, device, purpose)
    assert (decision.action, decision.rule, decision.detail) == expected


def test_an_expired_allow_no_longer_exempts(loaded):
    do_save_device_setting(
        loaded.ent_a, US_LISTED[0], "allow", expires_at=WORKDAY - dt.timedelta(minutes=1)
    )
    assert _ask(loaded, US_LISTED[0]).rule == "national_registry"


def test_a_later_rule_still_applies_to_numbers_the_registry_lets_through(loaded):
    night = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)  # 04:00 in Houston
    assert _ask(loaded, US_FREE, when=night).rule == "calling_window"
    # The registry comes first: a listed number is suppressed, not deferred to the morning.
    assert _ask(loaded, US_LISTED[0], when=night).rule == "national_registry"


def test_the_gate_reads_registries_with_one_query_per_batch(loaded):
    gate = PolicyGate(loaded.ent_a, WORKDAY)
    devices = [f"+1713555{n:04d}" for n in range(4100, 4300)]
    requests = [DialRequest(loaded.acct_a1.pk, 1, 1, "telemarketing", "voice", d) for d in devices]
    gate.decide(requests[-1:])  # the registries' two rows are read once per gate
    with CaptureQueriesContext(connection) as one:
        gate.decide(requests[:1])
    with CaptureQueriesContext(connection) as many:
        decisions = gate.decide(requests)
    assert len(many) == len(one)
    assert sum(1 for q in many if "devices_registryblock" in q["sql"]) == 1
    suppressed = {r.device_key for r, d in zip(requests, decisions, strict=True) if not d.dial}
    assert suppressed == {"+17135554101", "+17135554102"}


def test_a_registry_never_imported_does_not_block(personas):
    assert _registry("US").last_imported_at is None
    assert _ask(personas, US_LISTED[0]).action == DIAL
    assert _ask(personas, BR_LISTED[0], enterprise=personas.ent_b).action == DIAL


# --- 6. staleness ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "device", "days", "stale"),
    [
        ("BR", BR_FREE, 30, False),
        ("BR", BR_FREE, 31, True),
        ("US", US_FREE, 31, False),
        ("US", US_FREE, 32, True),
    ],
)
def test_a_stale_registry_defers_telemarketing_to_its_country(
    personas, country, device, days, stale
):
    imported = WORKDAY - dt.timedelta(days=days)
    _load(country, US_LISTED if country == "US" else BR_LISTED, when=imported)
    with time_machine.travel(WORKDAY, tick=False):
        decision = _ask(personas, device, when=WORKDAY)
    if not stale:
        assert decision.action == DIAL
        return
    assert (decision.action, decision.rule) == (DEFER, "registry_stale")
    name = "Não Me Perturbe" if country == "BR" else "US National DNC"
    limit = 30 if country == "BR" else 31
    assert decision.detail == (
        f"{name} last imported {imported:%Y-%m-%d}, more than {limit} days ago"
    )
    assert decision.retry_at == WORKDAY + dt.timedelta(hours=1)


def test_a_stale_registry_holds_only_telemarketing_to_its_own_country(personas):
    _load("BR", BR_LISTED, when=WORKDAY - dt.timedelta(days=40))
    _load("US", US_LISTED, when=WORKDAY - dt.timedelta(days=1))
    assert _ask(personas, BR_LISTED[0]).rule == "registry_stale"  # listed or not: held
    assert _ask(personas, BR_FREE).rule == "registry_stale"
    assert _ask(personas, BR_FREE, "collections").action == DIAL
    assert _ask(personas, BR_FREE, "informational").action == DIAL
    assert _ask(personas, US_FREE).action == DIAL
    assert _ask(personas, US_LISTED[0]).rule == "national_registry"
    do_save_device_setting(personas.ent_a, BR_FREE, "allow")
    assert _ask(personas, BR_FREE).action == DIAL  # consent on file: no registry applies
    do_save_device_setting(personas.ent_a, BR_FREE, "block")
    assert _ask(personas, BR_FREE).rule == "device_block"


@pytest.fixture
def bor_one(personas):
    with tenant_context(personas.acct_b1):
        yield personas.acct_b1


def _people(phones):
    return [{"client_id": f"C{n}", "phones": [p]} for n, p in enumerate(phones)]


def test_starting_telemarketing_with_a_stale_registry_is_refused_with_the_reason(bor_one):
    with time_machine.travel(WORKDAY, tick=False):
        _load("BR", BR_LISTED, when=WORKDAY - dt.timedelta(days=31))
        listing = factories.contact_list(_people([BR_FREE]))
        sub = factories.sub_campaign(listing, purpose=Purpose.TELEMARKETING, activate=False)
        with pytest.raises(ValidationError) as refused:
            do_activate_sub_campaign(sub)
        message = " ".join(refused.value.messages)
        assert "Telemarketing cannot start: the Não Me Perturbe registry" in message
        assert "more than 30 days ago" in message
        sub.refresh_from_db()
        assert sub.status == "draft"
        # Collections and informational sub-campaigns start as usual.
        other = factories.sub_campaign(listing, purpose=Purpose.COLLECTIONS, activate=False)
        assert do_activate_sub_campaign(other).status == "active"
        # A current copy lets telemarketing start.
        _load("BR", BR_LISTED, when=WORKDAY - dt.timedelta(days=1))
        assert do_activate_sub_campaign(sub).status == "active"


def test_the_start_button_shows_why_and_the_page_shows_a_banner(personas, bor_one):
    with time_machine.travel(WORKDAY, tick=False):
        _load("BR", BR_LISTED, when=WORKDAY - dt.timedelta(days=45))
        listing = factories.contact_list(_people([BR_FREE]))
        sub = factories.sub_campaign(listing, purpose=Purpose.TELEMARKETING, activate=False)
        collections = factories.sub_campaign(listing, activate=False)
        client = client_for(personas, "other_ent_admin")
        page = f"/a/bor-one/sub-campaigns/{sub.pk}/"
        response = client.post(f"{page}start/", follow=True)
        body = response.content.decode()
        # Borealis works in Portuguese (Brazil).
        assert "O telemarketing não pode ser iniciado: a última importação do cadastro " \
               "Não Me Perturbe" in body  # fmt: skip
        assert 'data-testid="registry-banner"' in body
        assert "A discagem de telemarketing está suspensa: a última importação do cadastro " \
               "Não Me Perturbe" in body  # fmt: skip
        other = client.get(f"/a/bor-one/sub-campaigns/{collections.pk}/").content.decode()
        assert 'data-testid="registry-banner"' not in other


def test_a_running_telemarketing_sub_campaign_stops_dialling_when_its_registry_goes_stale(
    bor_one,
):
    imported = WORKDAY - dt.timedelta(days=29)
    _load("BR", BR_LISTED, when=imported)
    with time_machine.travel(WORKDAY, tick=False):
        listing = factories.contact_list(_people([BR_FREE, BR_LISTED[0]]))
        sub = factories.sub_campaign(listing, purpose=Purpose.TELEMARKETING)
    later = WORKDAY + dt.timedelta(days=2)  # 31 days after the import
    with time_machine.travel(later, tick=False):
        report = dialer.dispatch_sub_campaign(sub.pk)
    assert (report.deferred, report.queued, report.reasons) == (2, 0, {"registry_stale": 2})
    states = DialState.objects.filter(sub_campaign=sub)
    assert {s.status for s in states} == {"pending"}
    assert {s.next_attempt_at for s in states} == {later + dt.timedelta(hours=1)}
    assert all(
        s.last_rule == "registry_stale"
        and s.last_rule_source == "br_nmp"
        and s.last_reason.startswith("Não Me Perturbe last imported")
        for s in states
    )


def test_never_imported_registry_warns_on_the_sub_campaign_page(personas):
    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(
            factories.contact_list(_people([US_FREE])), purpose=Purpose.TELEMARKETING
        )
    body = client_for(personas, "acct_admin").get(f"/a/acme-one/sub-campaigns/{sub.pk}/")
    assert sub.status == "active"
    text = body.content.decode()
    assert "US National DNC has never been imported: telemarketing to numbers in the United " in (
        text
    )


# --- 7. operator pages -------------------------------------------------------------------------

INDEX = "/platform/registries/"


def test_operator_page_lists_registries_with_size_date_age_and_badge(personas):
    with time_machine.travel(WORKDAY, tick=False):
        _load("US", US_LISTED, when=WORKDAY - dt.timedelta(days=3))
        _load("BR", BR_LISTED, when=WORKDAY - dt.timedelta(days=31))
        body = client_for(personas, "operator").get(INDEX).content.decode()
    assert "Não Me Perturbe was last imported 31 days ago (the limit is 30)" in body
    us_row = body.split('data-testid="registry-us_dnc"')[1].split("</tr>")[0]
    assert 'data-testid="registry-size">3<' in us_row
    assert "2026-03-07 15:00" in us_row
    assert "3 days" in us_row
    assert ">Current<" in us_row
    br_row = body.split('data-testid="registry-br_nmp"')[1].split("</tr>")[0]
    assert ">Stale<" in br_row


def test_operator_page_warns_about_registries_never_imported(personas):
    body = client_for(personas, "operator").get(INDEX).content.decode()
    assert body.count(">Never imported<") == 2
    assert (
        "Não Me Perturbe has never been imported: telemarketing to Brazil is not screened" in body
    )
    assert "telemarketing to the United States is not screened against it" in body


def test_upload_queues_an_import_and_shows_its_progress_page(personas):
    client = client_for(personas, "operator")
    us = _registry("US")
    upload = SimpleUploadedFile("dnc-713.txt", b"7135554101\nnot a number\n7135554102\n")
    response = client.post(INDEX, {"registry": us.pk, "kind": "full", "file": upload})
    job = RegistryImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/platform/registries/imports/{job.pk}/"
    assert (job.status, job.source_name, job.created_by) == (
        "queued",
        "dnc-713.txt",
        personas.operator,
    )
    assert AuditEvent.objects.filter(action="registry.upload", object_id=str(job.pk)).exists()
    page = client.get(response["Location"]).content.decode()
    assert 'data-testid="import-progress"' in page
    assert client.get(f"/platform/registries/imports/{job.pk}/progress.json").json()["status"] == (
        "queued"
    )
    # What the worker does (tested with a real worker in test_registries_worker.py):
    imports.run_import(job.pk)
    progress = client.get(f"/platform/registries/imports/{job.pk}/progress.json").json()
    assert progress == {
        "status": "ready", "status_label": "Imported", "percent": 100, "lines_read": 3,
        "numbers_accepted": 2, "lines_rejected": 1, "size_after": 2, "error": "",
    }  # fmt: skip
    page = client.get(f"/platform/registries/imports/{job.pk}/").content.decode()
    assert "US National DNC now holds 2 numbers" in page
    rejected = page.split('data-testid="rejected-table"')[1].split("</table>")[0]
    assert "<td>2</td><td>not a phone number (letters or symbols)</td>" in rejected
    assert not default_storage.exists(job.upload_path)  # removed once imported


def test_upload_form_errors(personas):
    client = client_for(personas, "operator")
    response = client.post(INDEX, {"registry": _registry("US").pk, "kind": "everything"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Select a valid choice" in body
    assert "This field is required." in body
    assert not RegistryImport.objects.exists()
    response = client.post(INDEX, {}, CONTENT_LENGTH=str(600 * 1024 * 1024))
    assert response.status_code == 303  # refused unread (tests/test_request_body_limits.py)
    assert "The upload is larger than 500 MB" in client.get(response["Location"]).content.decode()


def _lookup(client, terms: dict) -> str:
    """The lookup, POSTed; the page it opens at (?search=<opaque id>, no number in it)."""
    posted = client.post(INDEX, terms)
    assert posted.status_code == 303 and "number" not in posted["Location"]
    return client.get(posted["Location"]).content.decode()


def test_lookup_box_answers_and_is_audited(personas):
    _load("US", US_LISTED)
    client = client_for(personas, "operator")
    us = _registry("US").pk
    body = _lookup(client, {"registry": us, "number": "(713) 555-4101"})
    assert "+17135554101 is on US National DNC." in body
    body = _lookup(client, {"registry": us, "number": "713 555 4109"})
    assert "+17135554109 is not on US National DNC." in body
    assert AuditEvent.objects.filter(action="registry.lookup").count() == 2
    body = _lookup(client, {"registry": us, "number": "+55 11 91234-5678"})
    assert "+5511912345678 is not a US number." in body
    body = _lookup(client, {"registry": us, "number": "hello"})
    assert "is not a phone number" in body
    assert AuditEvent.objects.filter(action="registry.lookup").count() == 2


@pytest.mark.parametrize(
    ("persona", "expected"),
    [("anonymous", 302), ("outsider", 404), ("agent", 404), ("acct_admin", 404),
     ("ent_admin", 404), ("other_ent_admin", 404), ("operator", 302)],
)  # fmt: skip
def test_only_operators_may_upload(personas, persona, expected):
    upload = SimpleUploadedFile("x.txt", b"7135554101\n")
    response = client_for(personas, persona).post(
        INDEX, {"registry": _registry("US").pk, "kind": "full", "file": upload}
    )
    assert response.status_code == expected
    if persona == "anonymous":
        assert response["Location"].startswith("/login/?next=")
    assert RegistryImport.objects.exists() == (persona == "operator")


def test_platform_staff_who_are_not_operators_get_403(personas):
    staff = User.objects.create_user("staff@platform.test", "pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(INDEX).status_code == 403


def test_upload_needs_the_csrf_token(personas):
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas.operator)
    upload = SimpleUploadedFile("x.txt", b"7135554101\n")
    response = client.post(INDEX, {"registry": _registry("US").pk, "kind": "full", "file": upload})
    assert response.status_code == 403
    assert not RegistryImport.objects.exists()


def test_unknown_imports_are_not_found(personas):
    client = client_for(personas, "operator")
    assert client.get("/platform/registries/imports/999999/").status_code == 404
    assert client.get("/platform/registries/imports/999999/progress.json").status_code == 404


def test_only_operators_see_the_navigation_link(personas):
    assert INDEX in client_for(personas, "operator").get("/").content.decode()
    body = client_for(personas, "ent_admin").get("/", follow=True).content.decode()
    assert INDEX not in body


@pytest.mark.parametrize(
    ("start", "change", "remove"),
    [(0, 5, False), (100, 600, False), (620, 10, False), (700, 50, True), (700, 100, True),
     (5000, 4990, True), (3, 3, True), (10_000, 1, True)],
)  # fmt: skip
def test_merging_a_block_matches_set_arithmetic(start, change, remove):
    rng = random.Random(start * 31 + change)
    current = set(rng.sample(range(10_000), start))
    pool = sorted(current) if remove else range(10_000)
    changed = sorted(rng.sample(pool, min(change, len(pool))))
    data = codec.encode_block(sorted(current)) if current else None
    payload, count = codec.merge_block(data, changed, remove=remove)
    expected = current.difference(changed) if remove else current.union(changed)
    decoded = codec.decode_block(payload) if count else []
    assert (decoded, count) == (sorted(expected), len(expected))
    assert len(payload) == (2 * count if count <= codec.ARRAY_MAX else codec.BITMAP_BYTES)
