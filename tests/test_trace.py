"""Contact Trace (Enterprise › Devices): search normalisation, scoping, the 12-month window,
SMS and suppressed rows, escaping, links, recordings (Range, delete), CSV export,
permissions for every persona, constant query count, hostile input."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re
import uuid
import wave
import zoneinfo
from itertools import count

import pytest
import time_machine
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from accounts.actions import do_add_membership
from accounts.models import AuditEvent, Role, SavedSearch, User
from accounts.searches import purge_expired
from devices import ledger
from devices.models import Attempt
from tests import factories
from tests.helpers import client_for

HOUSTON = "+17135554101"
LONDON = "+442079460958"
SAO_PAULO = "+5511912345678"
CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
ROW = 'data-testid="trace-row"'
SMS_ROW = 'data-testid="trace-sms"'
TABLE = 'data-testid="trace-table"'
ERROR = "invalid-feedback"
NOT_APPLICABLE = 'aria-label="Does not apply">—<'  # call seconds, recording: not for a text
US_HINT = "Enter all 10 digits, e.g. 713 555 4101"
_seq = count(1)


# --- builders -----------------------------------------------------------------------------


def _attempt(account, *, when=None, device=HOUSTON, **extra) -> Attempt:
    """One ledger row of ``account`` (by default a voice call a day ago)."""
    n = next(_seq)
    fields = {
        "attempted_at": when or timezone.now() - dt.timedelta(days=1),
        "enterprise_id": account.enterprise_id,
        "account_id": account.pk,
        "account_name": account.name,
        "campaign_id": 1000 + n,
        "campaign_name": f"Campaign {n}",
        "sub_campaign_id": 2000 + n,
        "sub_campaign_name": f"Sub {n}",
        "client_id": "C1",
        "device_key": device,
        "channel": "voice",
        "direction": "outbound",
        "disposition": "ANSWERED",
        "call_seconds": 42,
        "node": "dialer-node-01",
    }
    fields.update(extra)
    return Attempt.objects.create(**fields)


def _wav_bytes(seconds: float = 1.0) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(bytes((i * 7 + i // 256) % 256 for i in range(int(16000 * seconds))))
    return buffer.getvalue()


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _recorded(account, **extra) -> tuple[Attempt, str, bytes]:
    """An attempt of ``account`` with a stored recording; (row, storage path, file bytes)."""
    data = _wav_bytes()
    path = default_storage.save(f"recordings/test/{uuid.uuid4().hex}.wav", ContentFile(data))
    row = _attempt(account, recording_state="stored", recording_file=path, **extra)
    return row, path, data


def _trace_url(enterprise) -> str:
    return f"/enterprises/{enterprise.pk}/devices/"


def _export(client, enterprise, params: dict):
    """A search POSTed, then its export: the results' URL (opaque) plus trace.csv."""
    posted = client.post(_trace_url(enterprise), params)
    if posted.status_code != 303:
        return posted
    return client.get(posted["Location"] + "trace.csv")


def _listen_url(enterprise, attempt) -> str:
    return f"/enterprises/{enterprise.pk}/recordings/{attempt.pk}.wav"


def _delete_url(enterprise, attempt) -> str:
    return f"/enterprises/{enterprise.pk}/recordings/{attempt.pk}/delete/"


def _trace(client, enterprise, value, criteria="device", page=None):
    """The search POSTed, then its results opened at the URL it redirects to."""
    posted = client.post(_trace_url(enterprise), {"criteria": criteria, "value": value})
    if posted.status_code != 303:
        return posted
    return client.get(posted["Location"], {} if page is None else {"page": page})


def _rows(response) -> int:
    assert response.status_code == 200
    return response.content.decode().count(ROW)


def _body(response) -> str:
    return response.content.decode()


def _csv(response) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def _stream(response) -> bytes:
    return b"".join(response.streaming_content)


# --- 1. normalisation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed", ["713 555 4101", "(713) 555-4101", "713.555.4101", "+1 713 555 4101", HOUSTON]
)
def test_us_numbers_in_any_usual_format_find_the_e164_attempt(personas, typed):
    _attempt(personas.acct_a1, device=HOUSTON, node="node-houston")
    _attempt(personas.acct_a1, device="+17135554102", node="node-neighbour")
    response = _trace(client_for(personas, "ent_admin"), personas.ent_a, typed)
    body = _body(response)
    assert _rows(response) == 1
    assert "node-houston" in body and "node-neighbour" not in body
    assert f"1 attempt to reach {HOUSTON}" in body


@pytest.mark.parametrize("typed", ["+44 20 7946 0958", "+44 (0)20 7946 0958", "0044 20 7946 0958"])
def test_international_numbers_with_country_code_find_their_attempt(personas, typed):
    _attempt(personas.acct_a2, device=LONDON, node="node-london")
    response = _trace(client_for(personas, "ent_admin"), personas.ent_a, typed)
    assert _rows(response) == 1
    assert f"1 attempt to reach {LONDON}" in _body(response)


@pytest.mark.parametrize("typed", ["(11) 91234-5678", "+55 11 91234-5678", "11 91234 5678"])
def test_br_enterprise_reads_numbers_without_country_code_as_brazilian(personas, typed):
    _attempt(personas.acct_b1, device=SAO_PAULO, node="node-sp")
    response = _trace(client_for(personas, "other_ent_admin"), personas.ent_b, typed)
    body = _body(response)
    assert _rows(response) == 1
    assert "node-sp" in body and SAO_PAULO in body


def test_a_us_enterprise_reads_a_bare_br_number_as_american_and_says_so(personas):
    _attempt(personas.acct_a1, device=SAO_PAULO)
    response = _trace(client_for(personas, "ent_admin"), personas.ent_a, "(11) 91234-5678")
    body = _body(response)
    assert response.status_code == 200
    assert TABLE not in body and ERROR in body
    assert US_HINT in html.unescape(body)


@pytest.mark.parametrize("typed", ["713 555", "12345", "abc", "555-4101", "+1 713 555 41019"])
def test_invalid_or_incomplete_us_numbers_get_an_error_saying_the_format(personas, typed):
    _attempt(personas.acct_a1, device=HOUSTON)
    response = _trace(client_for(personas, "ent_admin"), personas.ent_a, typed)
    body = html.unescape(_body(response))
    assert response.status_code == 200
    assert TABLE not in body and 'data-testid="trace-count"' not in body
    assert ERROR in body
    assert US_HINT in body
    assert not AuditEvent.objects.filter(enterprise=personas.ent_a, action="trace.search").exists()


@pytest.mark.parametrize("typed", ["9123", "abc", "(11) 9123"])
def test_invalid_br_numbers_get_the_brazilian_format_hint(personas, typed):
    response = _trace(client_for(personas, "other_ent_admin"), personas.ent_b, typed)
    body = html.unescape(_body(response))
    assert response.status_code == 200
    assert TABLE not in body and ERROR in body
    assert "(11) 91234-5678" in body and "+55 11 91234-5678" in body  # pt-br or en: examples


@pytest.mark.parametrize(
    ("enterprise", "admin", "typed", "key"),
    [("ent_a", "ent_admin", "(555) 201-0000", "+15552010000"),  # no such area code
     ("ent_a", "ent_admin", "+1 212 055 1234", "+12120551234"),  # an exchange cannot start 0
     ("ent_b", "other_ent_admin", "(11) 1234-5678", "+551112345678")],  # no 1 in BR landlines
)  # fmt: skip
def test_a_number_of_a_possible_length_is_searched_even_if_the_metadata_says_invalid(
    personas, enterprise, admin, typed, key
):
    # A trace is a lookup: an older numbering plan, a new range or metadata that lags must
    # still find the person's attempts, or say there are none (issue 14, item 4).
    ent = getattr(personas, enterprise)
    client = client_for(personas, admin)
    body = html.unescape(_body(_trace(client, ent, typed)))
    assert ERROR not in body
    assert 'data-testid="trace-empty"' in body and key in body  # the normalised form searched
    account = personas.acct_a1 if enterprise == "ent_a" else personas.acct_b1
    _attempt(account, device=key, node="node-old-plan")
    found = _body(_trace(client, ent, typed))
    assert found.count(ROW) == 1 and "node-old-plan" in found
    # Blocking keeps the stricter rule, and says why.
    refused = client.post(f"/enterprises/{ent.pk}/devices/blocking/",
                          {"device": typed, "action": "block", "op": "preview"})  # fmt: skip
    assert "not a valid phone number" in html.unescape(refused.content.decode()) or (
        "não é um número de telefone válido" in html.unescape(refused.content.decode())
    )


def test_the_trace_api_searches_possible_numbers_too(personas):
    from accounts.api_keys import do_create_api_key

    _key, secret = do_create_api_key(
        name="Trace", scopes=["trace:read"], created_by=personas.ent_admin,
        enterprise=personas.ent_a,
    )  # fmt: skip
    _attempt(personas.acct_a1, device="+15552010000")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    found = api.get("/api/v1/trace", {"phone": "(555) 201-0000"})
    assert found.status_code == 200, found.content
    assert found.json()["query"] == "+15552010000" and len(found.json()["items"]) == 1
    assert api.get("/api/v1/trace", {"phone": "555-4101"}).status_code == 422


def test_the_example_in_the_format_hint_is_itself_accepted(personas):
    import re as _re

    from devices.keys import phone_format_hint

    examples = _re.findall(r"\+44[\d ]+\d", phone_format_hint("US"))
    assert examples, "the US hint shows an international example"
    response = _trace(client_for(personas, "ent_admin"), personas.ent_a, examples[0])
    assert ERROR not in _body(response)


def test_the_form_alone_shows_no_results_and_no_error(personas):
    response = client_for(personas, "ent_admin").get(_trace_url(personas.ent_a))
    body = _body(response)
    assert response.status_code == 200
    assert "Find Attempts" in body and "Phone Number / Email Address" in body
    assert TABLE not in body and ERROR not in body


# --- 2. email -----------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["JSmith@Domain.com", "jsmith@domain.com", " JSMITH@DOMAIN.COM "])
def test_email_is_case_insensitive(personas, typed):
    _attempt(personas.acct_a1, device="jsmith@domain.com", channel="email", disposition="SENT",
             node="node-mail")  # fmt: skip
    _attempt(personas.acct_a1, device="jsmith@domain.co", channel="email", node="node-other")
    response = _trace(client_for(personas, "ent_admin"), personas.ent_a, typed)
    body = _body(response)
    assert _rows(response) == 1
    assert "node-mail" in body and "node-other" not in body
    assert "1 attempt to reach jsmith@domain.com" in body


@pytest.mark.parametrize("typed", ["jsmith@", "@domain.com", "jsmith@domain", "a@b@c.com"])
def test_incomplete_email_gets_an_error(personas, typed):
    response = _trace(client_for(personas, "ent_admin"), personas.ent_a, typed)
    body = html.unescape(_body(response))
    assert response.status_code == 200
    assert TABLE not in body and ERROR in body
    assert "is not a complete email address (name@domain.com)" in body


# --- 3. client ID -------------------------------------------------------------------------


def test_client_id_is_exact_and_whole_and_case_sensitive(personas):
    _attempt(personas.acct_a1, client_id="A430", node="node-a430")
    _attempt(personas.acct_a2, client_id="A430", node="node-a430-two", device="+17135554102")
    _attempt(personas.acct_a1, client_id="A4307", node="node-a4307")
    client = client_for(personas, "ent_admin")

    short = _body(_trace(client, personas.ent_a, "A430", "client_id"))
    assert short.count(ROW) == 2
    assert "node-a430-two" in short and "node-a4307" not in short
    assert "2 attempts to reach A430" in short

    long = _body(_trace(client, personas.ent_a, "A4307", "client_id"))
    assert long.count(ROW) == 1 and "node-a4307" in long and "node-a430-two" not in long

    for other in ["a430", "A43", "430", "A430%", "A430_", "A43_", "%"]:
        body = _body(_trace(client, personas.ent_a, other, "client_id"))
        assert ROW not in body, other
        assert ERROR not in body, other


def test_client_id_longer_than_the_column_is_a_form_error(personas):
    response = _trace(client_for(personas, "ent_admin"), personas.ent_a, "X" * 101, "client_id")
    body = _body(response)
    assert response.status_code == 200
    assert ERROR in body and "Enter the whole client ID (at most 100 characters)." in body


# --- 4. the 12-month window ---------------------------------------------------------------

NOW = dt.datetime(2026, 8, 15, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("age", "shown"),
    [
        (dt.timedelta(days=1), False),  # 12 months + 1 day
        (dt.timedelta(minutes=1), False),  # 12 months + 1 minute
        (-dt.timedelta(minutes=1), True),  # 12 months - 1 minute
        (-dt.timedelta(days=1), True),  # 12 months - 1 day
    ],
)
def test_trace_covers_exactly_the_last_twelve_months(personas, age, shown):
    ledger.ensure_partitions(NOW.date())
    year_ago = NOW.replace(year=NOW.year - 1)
    with time_machine.travel(NOW, tick=False):
        _attempt(personas.acct_a1, when=year_ago - age, node="node-edge")
        _attempt(personas.acct_a1, when=NOW - dt.timedelta(hours=1), node="node-recent")
        client = client_for(personas, "ent_admin")
        page = _body(_trace(client, personas.ent_a, HOUSTON))
        export = _csv(_export(client, personas.ent_a, {"criteria": "device", "value": HOUSTON}))
    assert "node-recent" in page
    assert ("node-edge" in page) is shown
    assert page.count(ROW) == (2 if shown else 1)
    assert len(export) - 1 == (2 if shown else 1)


# --- 5. scoping, count, order, pagination -------------------------------------------------


def test_another_enterprises_attempts_never_appear(personas):
    _attempt(personas.acct_a1, node="node-acme", client_id="SHARED")
    _attempt(personas.acct_b1, node="node-bor", client_id="SHARED")
    _attempt(personas.acct_b2, node="node-bor2", client_id="SHARED")

    mine = _body(_trace(client_for(personas, "ent_admin"), personas.ent_a, "713 555 4101"))
    assert mine.count(ROW) == 1 and "node-acme" in mine
    assert "node-bor" not in mine and "Borealis" not in mine
    assert f"1 attempt to reach {HOUSTON}" in mine

    theirs_client = client_for(personas, "other_ent_admin")
    theirs = _body(_trace(theirs_client, personas.ent_b, "+1 713 555 4101"))
    assert theirs.count(ROW) == 2 and "node-bor" in theirs and "node-bor2" in theirs
    assert "node-acme" not in theirs and "Acme One" not in theirs

    by_id = _body(_trace(theirs_client, personas.ent_b, "SHARED", "client_id"))
    assert by_id.count(ROW) == 2 and "node-acme" not in by_id

    # An enterprise's id in the URL is no way round it.
    assert _trace(theirs_client, personas.ent_a, HOUSTON).status_code == 404


def test_all_accounts_channels_and_directions_are_counted_newest_first(personas):
    now = timezone.now()
    _attempt(personas.acct_a2, when=now - dt.timedelta(hours=3), node="node-third")
    _attempt(personas.acct_a1, when=now - dt.timedelta(hours=1), node="node-first",
             channel="sms", disposition="DELIVERED", message="Hi")  # fmt: skip
    _attempt(personas.acct_a1, when=now - dt.timedelta(hours=2), node="node-second",
             channel="sms", direction="inbound", disposition="RECEIVED")  # fmt: skip
    _attempt(personas.acct_a2, when=now - dt.timedelta(days=200), node="node-fourth",
             disposition="SUPPRESSED", suppression_rule="calling_window")  # fmt: skip
    body = _body(_trace(client_for(personas, "ent_admin"), personas.ent_a, HOUSTON))
    assert f"4 attempts to reach {HOUSTON}" in body
    positions = [body.index(n) for n in ["node-first", "node-second", "node-third", "node-fourth"]]
    assert positions == sorted(positions)
    assert "Acme One" in body and "Acme Two" in body


def test_same_instant_rows_are_ordered_newest_id_first(personas):
    when = timezone.now() - dt.timedelta(hours=5)
    _attempt(personas.acct_a1, when=when, node="node-older-id")
    _attempt(personas.acct_a1, when=when, node="node-newer-id")
    body = _body(_trace(client_for(personas, "ent_admin"), personas.ent_a, HOUSTON))
    assert body.index("node-newer-id") < body.index("node-older-id")


def test_results_are_paginated_fifty_a_page(personas):
    now = timezone.now()
    Attempt.objects.bulk_create(
        Attempt(attempted_at=now - dt.timedelta(hours=i), enterprise_id=personas.ent_a.pk,
                account_id=personas.acct_a1.pk, account_name="Acme One", device_key=HOUSTON,
                channel="voice", direction="outbound", disposition="NO_ANSWER",
                node=f"node-{i:02d}")
        for i in range(60)
    )  # fmt: skip
    client = client_for(personas, "ent_admin")
    first = _trace(client, personas.ent_a, "713 555 4101")
    body = _body(first)
    assert f"60 attempts to reach {HOUSTON}" in body
    assert body.count(ROW) == 50
    assert "node-00<" in body and "node-49<" in body and "node-50<" not in body
    assert "Page 1 of 2" in body
    assert 'href="?page=2"' in body  # the search's own URL: no number in it

    second = client.get(first.request["PATH_INFO"], {"page": 2})
    body = _body(second)
    assert body.count(ROW) == 10
    assert "node-50<" in body and "node-59<" in body and "node-49<" not in body
    assert f"60 attempts to reach {HOUSTON}" in body

    # Out of range or nonsense: a page of results, never an error.
    assert _rows(_trace(client, personas.ent_a, HOUSTON, page=99)) == 10
    assert _rows(_trace(client, personas.ent_a, HOUSTON, page="abc")) == 50


def test_no_attempts_says_so_once(personas):
    body = _body(_trace(client_for(personas, "ent_admin"), personas.ent_a, "713 555 4199"))
    assert "No attempts to reach +17135554199 in the last 12 months." in body
    assert 'data-testid="trace-empty"' in body and TABLE not in body
    assert "0 attempts" not in body and 'data-testid="trace-count"' not in body
    assert 'data-testid="trace-export"' not in body


def test_dates_are_shown_in_the_enterprise_time_zone(personas):
    when = timezone.now().replace(microsecond=0) - dt.timedelta(days=3)
    _attempt(personas.acct_a1, when=when)
    _attempt(personas.acct_b1, when=when)
    ours = _body(_trace(client_for(personas, "ent_admin"), personas.ent_a, HOUSTON))
    assert when.astimezone(CHICAGO).strftime("%Y-%m-%d %H:%M:%S") in ours
    theirs = _body(_trace(client_for(personas, "other_ent_admin"), personas.ent_b, "+17135554101"))
    sp = when.astimezone(zoneinfo.ZoneInfo("America/Sao_Paulo"))
    assert sp.strftime("%Y-%m-%d %H:%M:%S") in theirs


def test_a_search_is_audited(personas):
    _attempt(personas.acct_a1)
    _trace(client_for(personas, "ent_admin"), personas.ent_a, "(713) 555-4101")
    event = AuditEvent.objects.get(enterprise=personas.ent_a, action="trace.search")
    assert event.actor == personas.ent_admin
    assert event.details == {"criteria": "device", "value": HOUSTON, "results": 1}


# --- 6, 7. SMS and suppressed rows --------------------------------------------------------


def test_sms_rows_show_direction_message_carrier_and_source(personas):
    now = timezone.now()
    _attempt(personas.acct_a1, when=now - dt.timedelta(hours=1), channel="sms",
             disposition="DELIVERED", message="Your balance is due", carrier_code="TMOB",
             source_address="55123", source_type="short_code")  # fmt: skip
    _attempt(personas.acct_a1, when=now - dt.timedelta(hours=2), channel="sms",
             direction="inbound", disposition="RECEIVED", message="STOP please",
             carrier_code="VZW", source_address="+17135550000",
             source_type="long_code")  # fmt: skip
    _attempt(personas.acct_a2, when=now - dt.timedelta(hours=3), channel="sms",
             disposition="SENT", message="Hello from Acme", source_address="ACME",
             source_type="alpha")  # fmt: skip
    _attempt(personas.acct_a2, when=now - dt.timedelta(hours=4), node="node-voice")
    body = _body(_trace(client_for(personas, "ent_admin"), personas.ent_a, HOUSTON))
    assert body.count(ROW) == 4 and body.count(SMS_ROW) == 3
    sms = body.split(SMS_ROW)[1:]
    assert "Mobile Terminated · TEXT_SENT" in sms[0]
    assert "“Your balance is due”" in sms[0]
    assert "Carrier: TMOB" in sms[0] and "Source address: 55123 (Short code)" in sms[0]
    assert "Mobile Originated · TEXT_RECEIVED" in sms[1]
    assert "“STOP please”" in sms[1]
    assert "Carrier: VZW" in sms[1] and "Source address: +17135550000 (Long code)" in sms[1]
    assert "Mobile Terminated · TEXT_SENT" in sms[2]
    assert "Source address: ACME (Alphanumeric)" in sms[2] and "Carrier:" not in sms[2]
    assert "Delivered" in body and "Received" in body


def test_br_enterprise_sees_sms_labels_in_portuguese(personas):
    _attempt(personas.acct_b1, device=SAO_PAULO, channel="sms", direction="inbound",
             disposition="RECEIVED", message="Oi")  # fmt: skip
    body = _body(_trace(client_for(personas, "other_ent_admin"), personas.ent_b, "(11) 91234-5678"))
    assert "Originada no celular · TEXT_RECEIVED" in body
    assert f"1 tentativa de contato com {SAO_PAULO}" in body


@pytest.mark.parametrize(
    ("rule", "words", "detail"),
    [("attempt_cap", "Attempt cap", "3 attempts in 7 days"),
     ("calling_window", "Calling window", ""),
     ("device_block", "Device block", "Manual"),
     ("dnc", "dnc", "federal list")],  # a rule of an older release: its code, as stored
)  # fmt: skip
def test_suppressed_rows_show_the_rule_that_stopped_them_in_words(personas, rule, words, detail):
    _attempt(personas.acct_a1, disposition="SUPPRESSED", call_seconds=0, node="",
             suppression_rule=rule, suppression_detail=detail)  # fmt: skip
    body = _body(_trace(client_for(personas, "ent_admin"), personas.ent_a, HOUSTON))
    assert body.count(ROW) == 1
    assert ">Suppressed</span>" in body
    expected = f"Stopped by: {words}" + (f" ({detail})" if detail else "")
    assert expected + "</div>" in body
    # A suppressed call made no call: no seconds, no recording.
    row = body.split(ROW)[1].split("</tr>")[0]
    assert ">0<" not in row and "N/A" not in row and row.count(NOT_APPLICABLE) == 2


def test_a_suppressed_text_says_it_was_not_sent_and_why_on_the_page_and_in_the_csv(personas):
    # A regulator must not read a suppressed text as a sent one (issue 14, item 3).
    now = timezone.now()
    _attempt(personas.acct_a1, when=now - dt.timedelta(hours=1), channel="sms",
             disposition="SUPPRESSED", call_seconds=0, node="", message="",
             suppression_rule="device_block", suppression_detail="Manual: dispute")  # fmt: skip
    _attempt(personas.acct_a1, when=now - dt.timedelta(hours=2), channel="sms",
             disposition="DELIVERED", call_seconds=0, message="Your balance is due")  # fmt: skip
    client = client_for(personas, "ent_admin")
    body = _body(_trace(client, personas.ent_a, HOUSTON))
    suppressed, delivered = body.split(SMS_ROW)[1:]
    assert "TEXT_SENT" not in suppressed and "Mobile Terminated" not in suppressed
    assert 'data-testid="sms-not-sent">Not sent<' in suppressed
    assert "No text went to this device: Device block stopped it." in suppressed
    assert "“”" not in suppressed, "no empty quotes for a text that has none"
    assert "Mobile Terminated · TEXT_SENT" in delivered
    rows = body.split(ROW)[1:]
    for row in rows:  # texts have no call seconds and no recording
        cells = row.split("</tr>")[0]
        assert cells.count(NOT_APPLICABLE) == 2 and "N/A" not in cells

    table = _csv(_export(client, personas.ent_a, {"criteria": "device", "value": HOUSTON}))
    header, first, second = table
    column = {name: i for i, name in enumerate(header)}
    assert first[column["Direction"]] == "Not sent"
    assert first[column["Stopped by"]] == "Device block"
    assert first[column["Call Seconds"]] == first[column["Recording"]] == "—"
    assert second[column["Direction"]] == "TEXT_SENT"
    assert second[column["Call Seconds"]] == "—"


def test_the_rule_is_in_portuguese_for_a_portuguese_reader(personas):
    _attempt(personas.acct_b1, device=SAO_PAULO, disposition="SUPPRESSED", call_seconds=0,
             suppression_rule="campaign_blacklist", suppression_detail="Opt-outs")  # fmt: skip
    body = _body(_trace(client_for(personas, "other_ent_admin"), personas.ent_b, "(11) 91234-5678"))
    assert "campaign_blacklist" not in body
    assert "Blacklist de campanhas" in body


# --- 8. escaping --------------------------------------------------------------------------


def test_html_in_ledger_fields_and_search_is_escaped(personas):
    _attempt(personas.acct_a1, client_id="<b>X</b>", channel="sms", disposition="SENT",
             message="<script>alert(1)</script>", campaign_name="<i>camp</i>",
             sub_campaign_name="<u>sub</u>", node="<em>n</em>", carrier_code="<s>c</s>",
             source_address="<a>x</a>", source_type="alpha", suppression_rule="",
             account_name="<img src=x>")  # fmt: skip
    client = client_for(personas, "ent_admin")
    for body in (
        _body(_trace(client, personas.ent_a, HOUSTON)),
        _body(_trace(client, personas.ent_a, "<b>X</b>", "client_id")),
    ):
        assert body.count(ROW) == 1
        for raw in ["<script>alert(1)</script>", "<b>X</b>", "<i>camp</i>", "<u>sub</u>",
                    "<em>n</em>", "<s>c</s>", "<a>x</a>", "<img src=x>"]:  # fmt: skip
            assert raw not in body
            assert html.escape(raw) in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "1 attempt to reach &lt;b&gt;X&lt;/b&gt;" in body


@pytest.mark.parametrize("criteria", ["device", "client_id"])
def test_html_in_the_search_value_is_escaped_in_errors(personas, criteria):
    value = '<img src=x onerror="alert(1)">' + ("y" * 100 if criteria == "client_id" else "")
    body = _body(_trace(client_for(personas, "ent_admin"), personas.ent_a, value, criteria))
    assert ERROR in body
    assert "<img src=x" not in body


# --- 9. links -----------------------------------------------------------------------------


def test_account_and_sub_campaign_links_sign_in_and_open_the_sub_campaign(personas):
    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(activate=False, campaign_name="Spring Collections")
    _attempt(personas.acct_a1, campaign_id=sub.campaign_id, campaign_name="Spring Collections",
             sub_campaign_id=sub.pk, sub_campaign_name=sub.name)  # fmt: skip
    client = client_for(personas, "ent_admin", signed_in=False)
    body = _body(_trace(client, personas.ent_a, HOUSTON))
    account_link = f"/accounts/{personas.acct_a1.pk}/sign-in/"
    sub_link = f"{account_link}?next=%2Fa%2Facme-one%2Fsub-campaigns%2F{sub.pk}%2F"
    assert f'href="{account_link}"' in body
    assert f'href="{sub_link}"' in body
    assert f">{sub.name}</a>" in body and "Spring Collections / " in body

    confirm = client.get(sub_link)  # asks first: a link alone writes no audit row
    assert confirm.status_code == 200
    assert 'name="next" value="/a/acme-one/sub-campaigns/' in _body(confirm)
    response = client.post(account_link, {"next": f"/a/acme-one/sub-campaigns/{sub.pk}/"})
    assert response.status_code == 302
    assert response["Location"] == f"/a/acme-one/sub-campaigns/{sub.pk}/"
    landed = client.get(response["Location"])
    assert landed.status_code == 200 and sub.name in _body(landed)
    assert AuditEvent.objects.filter(
        action="account.sign_in", account=personas.acct_a1, actor=personas.ent_admin
    ).exists()


def test_links_point_into_the_attempts_own_account(personas):
    _attempt(personas.acct_a2, sub_campaign_id=777, sub_campaign_name="Two's sub")
    body = _body(_trace(client_for(personas, "ent_admin"), personas.ent_a, HOUSTON))
    assert f'href="/accounts/{personas.acct_a2.pk}/sign-in/"' in body
    assert "next=%2Fa%2Facme-two%2Fsub-campaigns%2F777%2F" in body
    assert "acme-one" not in body.split(TABLE)[1].split("</table>")[0]


def test_rows_without_a_sub_campaign_have_no_sub_campaign_link(personas):
    _attempt(personas.acct_a1, campaign_id=None, campaign_name="", sub_campaign_id=None,
             sub_campaign_name="", channel="sms", direction="inbound",
             disposition="RECEIVED")  # fmt: skip
    body = _body(_trace(client_for(personas, "ent_admin"), personas.ent_a, HOUSTON))
    assert body.count(ROW) == 1
    assert "sub-campaigns" not in body


# --- 10. listening ------------------------------------------------------------------------


def test_listen_returns_the_whole_file_privately(personas, media):
    row, path, data = _recorded(personas.acct_a1)
    response = client_for(personas, "ent_admin").get(_listen_url(personas.ent_a, row))
    assert response.status_code == 200
    assert response["Content-Type"] == "audio/wav"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Length"] == str(len(data))
    assert "private" in response["Cache-Control"]
    assert _stream(response) == data
    assert data[:4] == b"RIFF"


def test_listening_is_audited_once_per_user_per_recording_per_few_minutes(personas, media):
    row, _, data = _recorded(personas.acct_a1)
    admin = client_for(personas, "ent_admin")
    agent = client_for(personas, "agent")

    def listens():
        return list(
            AuditEvent.objects.filter(action="recording.listen").values_list(
                "actor__email", "account__slug", "object_id", "details"
            )
        )

    assert listens() == []
    # The player's several range requests while one person listens: one row.
    for header in ("bytes=0-", "bytes=100-199", "bytes=-10"):
        assert _stream(admin.get(_listen_url(personas.ent_a, row), HTTP_RANGE=header))
    expected = {"attempt": row.pk, "device": row.device_key, "client_id": row.client_id}
    assert listens() == [("ent.admin@acme.test", "acme-one", str(row.pk), expected)]
    # Another user, through the account's own page: a row of their own.
    assert _stream(agent.get(f"/a/acme-one/recordings/{row.pk}.wav")) == data
    assert sorted(listens()) == [
        ("agent@acme.test", "acme-one", str(row.pk), expected),
        ("ent.admin@acme.test", "acme-one", str(row.pk), expected),
    ]
    # Minutes later, the same user listening again is recorded again.
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=6)):
        _stream(admin.get(_listen_url(personas.ent_a, row)))
    assert len(listens()) == 3
    event = AuditEvent.objects.filter(action="recording.listen").first()
    assert event.enterprise == personas.ent_a and event.ip_address == "127.0.0.1"
    # A refused range plays nothing and records nothing.
    AuditEvent.objects.filter(action="recording.listen").delete()
    assert (
        agent.get(f"/a/acme-one/recordings/{row.pk}.wav", HTTP_RANGE="bytes=50-10").status_code
        == 416
    )
    assert listens() == []


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-199", 100, 199),
        ("bytes=-10", "-10", None),
        ("bytes=16000-", 16000, None),
        ("bytes=0-999999", 0, None),
        ("bytes=5-5", 5, 5),
        ("bytes=0-" + "9" * 5000, 0, None),  # an end past any file: to the end
        ("bytes=-" + "9" * 5000, 0, None),  # a suffix longer than the file: all of it
    ],
)
def test_listen_answers_byte_ranges_with_206(personas, media, header, start, end):
    row, path, data = _recorded(personas.acct_a1)
    size = len(data)
    if start == "-10":
        first, last = size - 10, size - 1
    else:
        first, last = start, size - 1 if end is None else end
    response = client_for(personas, "ent_admin").get(
        _listen_url(personas.ent_a, row), HTTP_RANGE=header
    )
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {first}-{last}/{size}"
    assert response["Content-Length"] == str(last - first + 1)
    assert response["Accept-Ranges"] == "bytes"
    assert "private" in response["Cache-Control"]
    body = _stream(response)
    assert len(body) == last - first + 1
    assert body == data[first : last + 1]


def test_listen_first_hundred_bytes(personas, media):
    row, path, data = _recorded(personas.acct_a1)
    response = client_for(personas, "ent_admin").get(
        _listen_url(personas.ent_a, row), HTTP_RANGE="bytes=0-99"
    )
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 0-99/{len(data)}"
    body = _stream(response)
    assert len(body) == 100 and body == data[:100]


@pytest.mark.parametrize(
    "header",
    ["bytes={size}-", "bytes={size}-{size}", "bytes=50-10", "bytes=" + "9" * 5000 + "-",
     "bytes=²-"],
)  # fmt: skip
def test_unsatisfiable_ranges_get_416(personas, media, header):
    row, path, data = _recorded(personas.acct_a1)
    response = client_for(personas, "ent_admin").get(
        _listen_url(personas.ent_a, row), HTTP_RANGE=header.format(size=len(data))
    )
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(data)}"


def test_a_range_in_an_unknown_unit_is_ignored(personas, media):
    row, path, data = _recorded(personas.acct_a1)
    response = client_for(personas, "ent_admin").get(
        _listen_url(personas.ent_a, row), HTTP_RANGE="seconds=0-5"
    )
    assert response.status_code == 200
    assert _stream(response) == data


def test_several_ranges_get_the_whole_file(personas, media):
    row, path, data = _recorded(personas.acct_a1)
    response = client_for(personas, "ent_admin").get(
        _listen_url(personas.ent_a, row), HTTP_RANGE="bytes=0-1,5-9"
    )
    assert response.status_code == 200
    assert _stream(response) == data


def test_recordings_have_no_public_media_url(personas, media):
    row, path, data = _recorded(personas.acct_a1)
    assert (media / path).read_bytes() == data
    for persona in ["anonymous", "ent_admin", "operator"]:
        client = client_for(personas, persona)
        for url in [f"/media/{path}", f"/{path}", f"/static/{path}", f"/a/acme-one/media/{path}"]:
            assert client.get(url).status_code == 404, (persona, url)
    body = _body(_trace(client_for(personas, "ent_admin"), personas.ent_a, HOUSTON))
    assert path not in body
    assert f'data-listen="{_listen_url(personas.ent_a, row)}"' in body
    assert f'action="{_delete_url(personas.ent_a, row)}"' in body
    assert ">Stored</span>" in body


def test_recordings_of_other_enterprises_or_without_a_file_are_not_found(personas, media):
    theirs, _, _ = _recorded(personas.acct_b1)
    none = _attempt(personas.acct_a1)
    client = client_for(personas, "ent_admin")
    assert client.get(_listen_url(personas.ent_a, theirs)).status_code == 404
    assert client.post(_delete_url(personas.ent_a, theirs)).status_code == 404
    assert client.get(_listen_url(personas.ent_a, none)).status_code == 404
    assert client.get(f"/enterprises/{personas.ent_a.pk}/recordings/999999999.wav").status_code == (
        404
    )
    assert Attempt.objects.get(pk=theirs.pk).recording_state == "stored"


def test_a_missing_file_is_a_404_not_a_500(personas, media):
    row, path, _ = _recorded(personas.acct_a1)
    default_storage.delete(path)
    assert client_for(personas, "ent_admin").get(_listen_url(personas.ent_a, row)).status_code == (
        404
    )


# --- 11. deleting -------------------------------------------------------------------------


def test_the_delete_confirmation_names_the_recording(personas, media):
    # Issue 14, item 5: "Delete this recording?" did not say which one.
    row, _path, _ = _recorded(personas.acct_a1)
    body = html.unescape(_body(_trace(client_for(personas, "ent_admin"), personas.ent_a,
                                      "713 555 4101")))  # fmt: skip
    when = timezone.localtime(row.attempted_at, CHICAGO).strftime("%Y-%m-%d %H:%M")
    form = body.split(f'data-testid="delete-form-{row.pk}"')[1].split(">")[0]
    assert f"Delete the recording of the call to {HOUSTON} on {when} (Acme One)?" in form


def test_delete_removes_the_file_keeps_the_trace_and_audits(
    personas, media, django_capture_on_commit_callbacks
):
    row, path, _ = _recorded(personas.acct_a1, node="node-rec")
    client = client_for(personas, "ent_admin")
    trace = _trace(client, personas.ent_a, "713 555 4101").request["PATH_INFO"]
    assert client.get(_delete_url(personas.ent_a, row)).status_code == 405
    assert default_storage.exists(path)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_delete_url(personas.ent_a, row), {"next": trace})
    assert response.status_code == 302
    assert response["Location"] == trace

    assert not default_storage.exists(path)
    row.refresh_from_db()
    assert row.recording_state == "deleted"
    assert row.recording_file == ""
    assert row.recording_deleted_by == "ent.admin@acme.test"
    assert row.recording_deleted_at is not None
    event = AuditEvent.objects.get(enterprise=personas.ent_a, action="recording.delete")
    assert event.account == personas.acct_a1
    assert event.actor == personas.ent_admin
    assert event.details["attempt"] == row.pk and event.details["device"] == HOUSTON

    body = _body(client.get(trace))
    when = row.recording_deleted_at.astimezone(CHICAGO).strftime("%Y-%m-%d %H:%M")
    assert f"N/A (deleted by ent.admin@acme.test at {when})" in body
    assert f"listen-{row.pk}" not in body and f"delete-{row.pk}" not in body
    assert "Recording deleted." in body

    assert client.get(_listen_url(personas.ent_a, row)).status_code == 404
    assert client.post(_delete_url(personas.ent_a, row)).status_code == 404
    assert AuditEvent.objects.filter(action="recording.delete").count() == 1


@pytest.mark.parametrize("next_url", ["https://evil.test/", "//evil.test/x", "", "/\\evil.test"])
def test_delete_never_redirects_off_site(personas, media, next_url):
    row, _, _ = _recorded(personas.acct_a1)
    response = client_for(personas, "ent_admin").post(
        _delete_url(personas.ent_a, row), {"next": next_url}
    )
    assert response.status_code == 302
    assert response["Location"] == _trace_url(personas.ent_a)


def test_a_delete_that_rolls_back_keeps_the_file(personas, media, monkeypatch):
    from devices import recordings

    row, path, _ = _recorded(personas.acct_a1)

    def broken_audit(*args, **kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr(recordings, "audit", broken_audit)
    client = client_for(personas, "ent_admin")
    client.raise_request_exception = False
    response = client.post(_delete_url(personas.ent_a, row))
    assert response.status_code == 500
    assert default_storage.exists(path)
    row.refresh_from_db()
    assert row.recording_state == "stored" and row.recording_file == path


# --- 12. the owning account's members -----------------------------------------------------


def test_agents_of_the_owning_account_listen_and_delete(
    personas, media, django_capture_on_commit_callbacks
):
    row, path, data = _recorded(personas.acct_a1)
    agent = client_for(personas, "agent")
    response = agent.get(f"/a/acme-one/recordings/{row.pk}.wav", HTTP_RANGE="bytes=0-99")
    assert response.status_code == 206 and _stream(response) == data[:100]
    response = agent.get(f"/a/acme-one/recordings/{row.pk}.wav")
    assert response.status_code == 200 and _stream(response) == data
    assert response["Content-Type"] == "audio/wav"

    assert agent.get(f"/a/acme-one/recordings/{row.pk}/delete/").status_code == 405
    with django_capture_on_commit_callbacks(execute=True):
        response = agent.post(
            f"/a/acme-one/recordings/{row.pk}/delete/", {"next": "/a/acme-one/campaigns/"}
        )
    assert response.status_code == 302
    assert response["Location"] == "/a/acme-one/campaigns/"
    assert not default_storage.exists(path)
    row.refresh_from_db()
    assert row.recording_state == "deleted"
    assert row.recording_deleted_by == "agent@acme.test"
    event = AuditEvent.objects.get(action="recording.delete", actor=personas.agent)
    assert (event.enterprise, event.account) == (personas.ent_a, personas.acct_a1)
    assert agent.get(f"/a/acme-one/recordings/{row.pk}.wav").status_code == 404

    body = _body(_trace(client_for(personas, "ent_admin"), personas.ent_a, HOUSTON))
    assert "N/A (deleted by agent@acme.test at " in body


@pytest.mark.parametrize("next_url", ["/a/acme-two/", "https://evil.test/", "/a/acme-one//evil"])
def test_account_delete_redirects_only_inside_the_account(personas, media, next_url):
    row, _, _ = _recorded(personas.acct_a1)
    response = client_for(personas, "agent").post(
        f"/a/acme-one/recordings/{row.pk}/delete/", {"next": next_url}
    )
    assert response.status_code == 302
    assert response["Location"] == "/a/acme-one/"


def test_other_accounts_recordings_are_not_found_through_an_account(personas, media):
    two, two_path, _ = _recorded(personas.acct_a2)
    bor, _, _ = _recorded(personas.acct_b1)
    mine, _, _ = _recorded(personas.acct_a1)
    agent = client_for(personas, "agent")
    assert agent.get(f"/a/acme-one/recordings/{two.pk}.wav").status_code == 404
    assert agent.post(f"/a/acme-one/recordings/{two.pk}/delete/").status_code == 404
    assert agent.get(f"/a/acme-one/recordings/{bor.pk}.wav").status_code == 404
    assert agent.get(f"/a/acme-two/recordings/{two.pk}.wav").status_code == 404
    assert agent.post(f"/a/acme-two/recordings/{two.pk}/delete/").status_code == 404
    assert default_storage.exists(two_path)
    assert Attempt.objects.get(pk=two.pk).recording_state == "stored"

    other = client_for(personas, "other_ent_admin")
    assert other.get(f"/a/acme-one/recordings/{mine.pk}.wav").status_code == 404
    assert other.get(f"/a/bor-one/recordings/{mine.pk}.wav").status_code == 404
    assert other.get(_listen_url(personas.ent_b, mine)).status_code == 404
    assert other.post(_delete_url(personas.ent_b, mine)).status_code == 404
    # Their own, through their own enterprise: fine.
    assert other.get(_listen_url(personas.ent_b, bor)).status_code == 200

    admin = client_for(personas, "ent_admin")
    assert admin.get(f"/a/acme-two/recordings/{two.pk}.wav").status_code == 200
    assert admin.get(f"/a/acme-one/recordings/{two.pk}.wav").status_code == 404


# --- 13. CSV export -----------------------------------------------------------------------

CSV_HEADER = [
    "Date", "Account", "Client ID", "Campaign", "Sub-campaign", "Channel", "Direction",
    "Device", "Result", "Call Seconds", "Node", "Recording", "Message", "Carrier",
    "Source address", "Source type", "Stopped by", "Carrier's answer",
]  # fmt: skip


def test_csv_export_has_one_row_per_attempt_newest_first(personas, media):
    now = timezone.now()
    _attempt(personas.acct_a1, when=now - dt.timedelta(hours=3), node="node-3",
             client_id="C3", disposition="SUPPRESSED", suppression_rule="attempt_cap")  # fmt: skip
    _attempt(personas.acct_a2, when=now - dt.timedelta(hours=1), node="node-1",
             client_id="C1", channel="sms", direction="inbound", disposition="RECEIVED",
             message="Olá, São Paulo ✓", carrier_code="TIM", source_address="55123",
             source_type="short_code")  # fmt: skip
    _recorded(personas.acct_a1, when=now - dt.timedelta(hours=2), node="node-2")
    _attempt(personas.acct_b1, when=now - dt.timedelta(minutes=5), node="node-bor")
    _attempt(personas.acct_a1, device="+17135554102", node="node-neighbour")

    response = _export(
        client_for(personas, "ent_admin"),
        personas.ent_a,
        {"criteria": "device", "value": "(713) 555-4101"},
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="contact-trace-')
    rows = _csv(response)
    assert rows[0] == CSV_HEADER
    data = [dict(zip(CSV_HEADER, r, strict=True)) for r in rows[1:]]
    assert [r["Node"] for r in data] == ["node-1", "node-2", "node-3"]
    assert all(r["Device"] == HOUSTON for r in data)  # a number stays a number
    sms, recorded, suppressed = data
    assert (sms["Account"], sms["Channel"], sms["Direction"]) == ("Acme Two", "SMS",
                                                                  "TEXT_RECEIVED")  # fmt: skip
    assert sms["Message"] == "Olá, São Paulo ✓"
    assert (sms["Carrier"], sms["Source address"], sms["Source type"]) == (
        "TIM", "55123", "Short code"
    )  # fmt: skip
    assert recorded["Recording"] == "Stored" and recorded["Direction"] == "Outbound"
    assert (recorded["Result"], recorded["Call Seconds"]) == ("Answered", "42")
    assert suppressed["Result"] == "Suppressed" and suppressed["Stopped by"] == "Attempt cap"
    event = AuditEvent.objects.get(enterprise=personas.ent_a, action="trace.export")
    assert event.details == {"criteria": "device", "value": HOUSTON}


def test_csv_export_by_client_id_is_exact(personas):
    _attempt(personas.acct_a1, client_id="A430", node="node-a430")
    _attempt(personas.acct_a1, client_id="A4307", node="node-a4307")
    _attempt(personas.acct_b1, client_id="A430", node="node-bor")
    rows = _csv(
        _export(
            client_for(personas, "ent_admin"),
            personas.ent_a,
            {"criteria": "client_id", "value": "A430"},
        )
    )
    assert [r[CSV_HEADER.index("Node")] for r in rows[1:]] == ["node-a430"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://evil.test","x")', '\'=HYPERLINK("http://evil.test","x")'),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("\t=1+1", "'\t=1+1"),
        ("Plain words", "Plain words"),
        ("+1 (713) 555-4101", "+1 (713) 555-4101"),
    ],
)
def test_csv_cells_that_would_run_as_formulas_are_neutralised(personas, value, expected):
    _attempt(personas.acct_a1, channel="sms", disposition="SENT", message=value,
             client_id="=1+2")  # fmt: skip
    rows = _csv(
        _export(
            client_for(personas, "ent_admin"),
            personas.ent_a,
            {"criteria": "device", "value": HOUSTON},
        )
    )
    row = dict(zip(CSV_HEADER, rows[1], strict=True))
    assert row["Message"] == expected
    assert row["Client ID"] == "'=1+2"
    assert row["Device"] == HOUSTON


def test_csv_shows_deleted_recordings_with_who_and_when(personas, media):
    row, _, _ = _recorded(personas.acct_a1)
    client_for(personas, "ent_admin").post(_delete_url(personas.ent_a, row))
    row.refresh_from_db()
    rows = _csv(
        _export(
            client_for(personas, "ent_admin"),
            personas.ent_a,
            {"criteria": "device", "value": HOUSTON},
        )
    )
    recording = rows[1][CSV_HEADER.index("Recording")]
    assert recording.startswith("N/A (deleted by ent.admin@acme.test at ")


def test_csv_dates_are_in_the_enterprise_time_zone_like_the_page(personas):
    when = timezone.now().replace(microsecond=0) - dt.timedelta(days=3)
    _attempt(personas.acct_a1, when=when)
    client = client_for(personas, "ent_admin")
    local = when.astimezone(CHICAGO).strftime("%Y-%m-%d %H:%M:%S")
    assert local in _body(_trace(client, personas.ent_a, HOUSTON))
    rows = _csv(_export(client, personas.ent_a, {"criteria": "device", "value": HOUSTON}))
    assert rows[1][0] == local


def test_csv_header_is_in_the_enterprise_language(personas):
    _attempt(personas.acct_b1, device=SAO_PAULO)
    rows = _csv(
        _export(
            client_for(personas, "other_ent_admin"),
            personas.ent_b,
            {"criteria": "device", "value": "(11) 91234-5678"},
        )
    )
    assert rows[0][0] == "Data"


@pytest.mark.parametrize(
    "query",
    [{}, {"criteria": "device", "value": "713 555"}, {"criteria": "device", "value": ""},
     {"criteria": "nonsense", "value": HOUSTON}, {"criteria": "device", "value": "jsmith@"}],
)  # fmt: skip
def test_an_invalid_search_shows_its_error_and_saves_nothing(personas, query):
    client = client_for(personas, "ent_admin")
    response = client.post(_trace_url(personas.ent_a), query)
    assert response.status_code == 200
    assert response.context["form"].errors
    assert 'data-testid="trace-export"' not in _body(response)
    assert not SavedSearch.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="trace.").exists()


def test_the_page_links_to_the_export_of_the_same_search(personas):
    _attempt(personas.acct_a1)
    response = _trace(client_for(personas, "ent_admin"), personas.ent_a, "713 555 4101")
    search = SavedSearch.objects.get()
    assert (
        response.request["PATH_INFO"]
        == f"/enterprises/{personas.ent_a.pk}/devices/trace/{search.pk}/"
    )
    assert f'href="{response.request["PATH_INFO"]}trace.csv"' in _body(response)


def test_no_number_or_email_is_in_any_url_of_the_trace(personas):
    _attempt(personas.acct_a1, sub_campaign_id=5, sub_campaign_name="S")
    client = client_for(personas, "ent_admin")
    posted = client.post(
        _trace_url(personas.ent_a), {"criteria": "device", "value": "713 555 4101"}
    )
    assert posted.status_code == 303
    body = _body(client.get(posted["Location"]))
    urls = [posted["Location"], *re.findall(r'(?:href|action|src)="([^"]*)"', body)]
    for url in urls:
        assert "713" not in url and "5554101" not in url and "%40" not in url, url
    assert AuditEvent.objects.get(action="trace.search").details["value"] == HOUSTON


def test_a_search_opens_for_the_enterprise_until_it_expires(personas):
    _attempt(personas.acct_a1)
    mine = client_for(personas, "ent_admin")
    location = mine.post(_trace_url(personas.ent_a), {"criteria": "device",
                         "value": "713 555 4101"})["Location"]  # fmt: skip
    search = SavedSearch.objects.get()
    assert _rows(mine.get(location)) == 1
    # Another enterprise admin of the same enterprise opens the shared link; each is audited.
    colleague = User.objects.create_user("second.admin@acme.test", "pw-long-enough-1")
    do_add_membership(colleague, personas.ent_a, Role.ENTERPRISE_ADMIN)
    shared = Client()
    shared.force_login(colleague)
    assert _rows(shared.get(location)) == 1
    assert _rows(shared.get(location)) == 1
    assert sorted(
        AuditEvent.objects.filter(action="trace.search").values_list("actor__email", flat=True)
    ) == ["ent.admin@acme.test", "second.admin@acme.test"]
    # Another enterprise does not find it, even under its own enterprise's path.
    other = client_for(personas, "other_ent_admin")
    assert other.get(location).status_code == 404
    assert (
        other.get(f"/enterprises/{personas.ent_b.pk}/devices/trace/{search.pk}/").status_code == 404
    )
    # Expired: it says so, shows the form filled with the search, and no attempts.
    with time_machine.travel(search.expires_at + dt.timedelta(seconds=1)):
        mine = client_for(personas, "ent_admin")  # the old session has expired too
        expired = mine.get(location)
        assert expired.status_code == 410
        assert "This search expired on" in _body(expired)
        assert ROW not in _body(expired)
        assert mine.get(location + "trace.csv").status_code == 302
        assert purge_expired() == 1
    assert mine.get(location).status_code == 404


# --- 14. permissions ----------------------------------------------------------------------

PERSONAS = ["anonymous", "outsider", "agent", "acct_admin", "ent_admin", "other_ent_admin",
            "operator"]  # fmt: skip
LOGIN = "login"
ENTERPRISE_PAGE = [LOGIN, 404, 403, 403, 200, 404, 404]
ACCESS = {
    ("GET", "trace"): ENTERPRISE_PAGE,
    ("GET", "trace_query"): ENTERPRISE_PAGE,
    ("GET", "trace_bad_query"): [LOGIN, 404, 403, 403, 404, 404, 404],
    ("POST", "trace"): [LOGIN, 404, 403, 403, 200, 404, 404],
    ("GET", "a_search_under_b"): [LOGIN, 404, 404, 404, 404, 404, 404],
    ("GET", "export"): ENTERPRISE_PAGE,
    ("GET", "listen"): ENTERPRISE_PAGE,
    ("GET", "delete"): [LOGIN, 404, 403, 403, 405, 404, 404],
    ("POST", "delete"): [LOGIN, 404, 403, 403, 302, 404, 404],
    ("GET", "trace_b"): [LOGIN, 404, 404, 404, 404, 200, 404],
    ("GET", "listen_b"): [LOGIN, 404, 404, 404, 404, 200, 404],
    ("GET", "account_listen"): [LOGIN, 404, 200, 200, 200, 404, 404],
    ("POST", "account_delete"): [LOGIN, 404, 302, 302, 302, 404, 404],
    ("GET", "account_two_listen"): [LOGIN, 404, 404, 404, 200, 404, 404],
}


def _access_cases():
    for (method, page), outcomes in ACCESS.items():
        for persona, expected in zip(PERSONAS, outcomes, strict=True):
            yield pytest.param(method, page, persona, expected, id=f"{persona}:{method}:{page}")


@pytest.mark.parametrize(("method", "page", "persona", "expected"), list(_access_cases()))
def test_access_for_every_persona(personas, media, method, page, persona, expected):
    a1, a1_path, _ = _recorded(personas.acct_a1)
    a2, _, _ = _recorded(personas.acct_a2)
    b1, _, _ = _recorded(personas.acct_b1)
    ent_a, ent_b = personas.ent_a, personas.ent_b
    terms = {"criteria": "device", "value": HOUSTON}
    in_a = searches_save(ent_a, terms)
    in_b = searches_save(ent_b, terms)
    url = {
        "trace": _trace_url(ent_a),
        "trace_query": f"{_trace_url(ent_a)}trace/{in_a}/",
        "trace_bad_query": f"{_trace_url(ent_a)}trace/not-a-search/",
        "export": f"{_trace_url(ent_a)}trace/{in_a}/trace.csv",
        "listen": _listen_url(ent_a, a1),
        "delete": _delete_url(ent_a, a1),
        "trace_b": f"{_trace_url(ent_b)}trace/{in_b}/",
        "a_search_under_b": f"{_trace_url(ent_b)}trace/{in_a}/",
        "listen_b": _listen_url(ent_b, b1),
        "account_listen": f"/a/acme-one/recordings/{a1.pk}.wav",
        "account_delete": f"/a/acme-one/recordings/{a1.pk}/delete/",
        "account_two_listen": f"/a/acme-two/recordings/{a2.pk}.wav",
    }[page]
    client = client_for(personas, persona)
    response = client.post(url) if method == "POST" else client.get(url)
    if expected == LOGIN:
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")
    else:
        assert response.status_code == expected
    if expected == 404:
        assert b'data-testid="not-found"' in response.content
        assert HOUSTON.encode() not in response.content
    if expected in (403, 404, LOGIN):
        # Nothing was read, deleted or audited on the way.
        assert default_storage.exists(a1_path)
        assert Attempt.objects.get(pk=a1.pk).recording_state == "stored"
        assert not AuditEvent.objects.filter(
            action__in=["trace.search", "trace.export", "recording.delete"]
        ).exists()
    if expected == 200 and "listen" in page:
        assert response["Content-Type"] == "audio/wav"
        assert _stream(response)[:4] == b"RIFF"
    response.close()


# --- 15. query count ----------------------------------------------------------------------


def searches_save(enterprise, terms: dict) -> str:
    return SavedSearch.objects.create(
        kind="trace", enterprise=enterprise, params=terms,
        expires_at=timezone.now() + dt.timedelta(days=1),
    ).pk  # fmt: skip


def _mixed_rows(personas, device: str, n: int) -> None:
    now = timezone.now()
    accounts = [personas.acct_a1, personas.acct_a2]
    for i in range(n):
        extra = {}
        if i % 3 == 1:
            extra = {"channel": "sms", "disposition": "DELIVERED", "message": f"m{i}",
                     "source_address": "55123", "source_type": "short_code"}  # fmt: skip
        elif i % 3 == 2:
            extra = {"disposition": "SUPPRESSED", "suppression_rule": "attempt_cap"}
        if i % 4 == 0:
            extra.update(recording_state="stored", recording_file=f"recordings/x/{i}.wav")
        if i % 5 == 0:
            extra.update(recording_state="deleted", recording_deleted_by="x@acme.test",
                         recording_deleted_at=now)  # fmt: skip
        _attempt(accounts[i % 2], device=device, when=now - dt.timedelta(minutes=i),
                 client_id=f"C{i}", **extra)  # fmt: skip


def test_the_page_query_count_does_not_grow_with_results(personas):
    _mixed_rows(personas, "+17135554105", 5)
    _mixed_rows(personas, "+17135554150", 50)
    client = client_for(personas, "ent_admin")
    _trace(client, personas.ent_a, "+17135554199")  # warm the session and caches

    counts = {}
    for device, expected_rows in [("+17135554105", 5), ("+17135554150", 50)]:
        results = _trace(client, personas.ent_a, device).request["PATH_INFO"]
        with CaptureQueriesContext(connection) as queries:
            response = client.get(results)
        assert _rows(response) == expected_rows
        counts[expected_rows] = len(queries.captured_queries)
    assert counts[5] == counts[50], counts
    assert counts[50] <= 20, counts


def test_the_export_query_count_does_not_grow_with_results(personas):
    _mixed_rows(personas, "+17135554105", 5)
    _mixed_rows(personas, "+17135554150", 50)
    client = client_for(personas, "ent_admin")
    counts = {}
    for device, expected_rows in [("+17135554105", 5), ("+17135554150", 50)]:
        with CaptureQueriesContext(connection) as queries:
            rows = _csv(_export(client, personas.ent_a, {"criteria": "device", "value": device}))
        assert len(rows) - 1 == expected_rows
        counts[expected_rows] = len(queries.captured_queries)
    assert counts[5] == counts[50], counts


# --- 16. hostile input --------------------------------------------------------------------

_hostile_values = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=300),
    st.from_regex(r"[\d\s().+\-/]{0,50}", fullmatch=True),
    st.from_regex(r"\+?[0-9٠-٩０-９ ]{1,30}", fullmatch=True),
    st.emails(),
    st.builds(lambda a, b: f"{a}@{b}", st.text(max_size=80), st.text(max_size=80)),
    st.sampled_from([
        "\u202e1014 555 317", "🙂@🙂.com", "713 555 4101\u200b", "\x00", "A430\x00",
        "'; DROP TABLE devices_attempt; --", "%", "_", "\\", "<script>alert(1)</script>",
        "+" + "9" * 39, "0" * 254, "x" * 254 + "@a.com", "ｊｓｍｉｔｈ@ｄｏｍａｉｎ.ｃｏｍ",
    ]),
)  # fmt: skip


@hsettings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=_hostile_values, criteria=st.sampled_from(["device", "client_id"]))
def test_any_value_gives_a_form_error_or_a_result_page_never_a_500(personas, value, criteria):
    client = client_for(personas, "ent_admin")
    response = _trace(client, personas.ent_a, value, criteria)
    assert response.status_code == 200
    body = _body(response)
    assert not (ERROR in body and 'data-testid="trace-count"' in body)
    assert "Find Attempts" in body
    assert "<script>alert(1)</script>" not in body

    export = _export(client, personas.ent_a, {"criteria": criteria, "value": value})
    if response.context["page"] is not None:  # a search ran: its export is the CSV
        assert export.status_code == 200 and _csv(export)[0] == CSV_HEADER
    else:  # the form said what is wrong, and nothing was saved to export
        assert export.status_code == 200 and "Find Attempts" in _body(export)
