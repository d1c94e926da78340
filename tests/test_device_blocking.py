"""Device Blocking (Enterprise › Devices): the setting form and its validation, View Setting's
preview with true numbers across accounts, Save Setting cancelling queued attempts in
every account, Allow and removal releasing them, expiry, the list (search, filters,
pagination, constant query count), CSV import and export, permissions and audit."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zoneinfo
from itertools import count

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from accounts.models import AuditEvent
from campaigns import dialer
from campaigns.actions import complete_sub_campaign, do_pause_sub_campaign
from campaigns.models import DialState
from devices.actions import (
    SettingInput,
    do_release_expired_blocks,
    do_save_device_setting,
    do_save_device_settings,
)
from devices.blocking import build_preview, parse_expiry, search_key
from devices.models import Attempt, DeviceSetting
from devices.policy import SUPPRESS, DialRequest, PolicyGate
from tests import factories
from tests.helpers import client_for

DEVICE = "+17135554321"
OTHER = "+17135554322"
EMAIL = "jsmith@domain.com"
CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
WORKDAY = dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC)
BLOCK, ALLOW, CLEAR = "block", "allow", "clear"
ROW = 'data-testid="setting-row"'
_seq = count(1)


# --- helpers -------------------------------------------------------------------------------


def _url(enterprise, suffix: str = "") -> str:
    return f"/enterprises/{enterprise.pk}/devices/blocking/{suffix}"


def _body(response) -> str:
    return response.content.decode()


def _search(client, enterprise, page=None, **terms):
    """The settings search, POSTed; the list it redirects to (?search=<opaque id>)."""
    posted = client.post(_url(enterprise), {"op": "search", **terms})
    assert posted.status_code == 303
    assert posted["Location"].startswith(_url(enterprise) + "?search=")
    return client.get(posted["Location"], {} if page is None else {"page": page})


def _post(client, enterprise, op="view", **fields):
    data = {"device": DEVICE, "action": BLOCK, "reason": "", "expires": "", "op": op, **fields}
    return client.post(_url(enterprise), data)


def _running(account, devices, *, activate=True, channel="voice", **fields):
    """A sub-campaign in ``account`` whose list has one contact per device."""
    with tenant_context(account):
        people = [
            {"client_id": f"C{next(_seq)}", "phones": [d]}
            if d.startswith("+")
            else {"client_id": f"C{next(_seq)}", "email": d}
            for d in devices
        ]
        return factories.sub_campaign(
            factories.contact_list(people), activate=activate, channel=channel, **fields
        )


def _states(account, sub=None, device=DEVICE):
    with tenant_context(account):
        states = DialState.objects.filter(device_key=device)
        if sub is not None:
            states = states.filter(sub_campaign=sub)
        return list(states.order_by("pk"))


def _statuses(account, device=DEVICE) -> list[str]:
    return [s.status for s in _states(account, device=device)]


@pytest.fixture
def two_accounts(personas):
    """The device queued in running sub-campaigns of both Acme accounts (two in Acme One,
    one of which reaches it through two contacts), a paused one in Acme One, and
    Borealis, another enterprise, with the same device."""
    subs = {
        "a1": _running(personas.acct_a1, [DEVICE, OTHER]),
        "a1_twice": _running(personas.acct_a1, [DEVICE, DEVICE]),
        "a2": _running(personas.acct_a2, [DEVICE]),
        "paused": _running(personas.acct_a1, [DEVICE]),
        "b1": _running(personas.acct_b1, [DEVICE]),
    }
    with tenant_context(personas.acct_a1):
        do_pause_sub_campaign(subs["paused"])
    return subs


# --- 1. the form ---------------------------------------------------------------------------


def test_the_tab_shows_the_product_labels(personas):
    body = _body(client_for(personas, "ent_admin").get(_url(personas.ent_a)))
    for label in ("Device Blocking", "Contact Trace", "Device", "Block all calls to this device",
                  "Allow calls to this device", "View Setting", "Save Setting", "Reason",
                  "Expires"):  # fmt: skip
        assert label in body, label
    assert f'aria-current="page" href="/enterprises/{personas.ent_a.pk}/devices/blocking/"' in body
    assert 'data-testid="settings-empty"' in body


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("12", "too short to be a complete phone number"),
        ("713 555 41019999", "has too many digits"),
        ("call me", "is not a phone number"),
        ("jsmith@", "is not a complete email address"),
        ("jsmith@domain", "is not a complete email address"),
        ("", "This field is required"),
        ("713\x00555", "Null characters are not allowed"),
    ],
)
@pytest.mark.parametrize("op", ["view", "save"])
def test_an_invalid_device_says_why_and_saves_nothing(personas, typed, message, op):
    response = _post(client_for(personas, "ent_admin"), personas.ent_a, op=op, device=typed)
    assert response.status_code == 200
    body = _body(response)
    assert "invalid-feedback" in body and message in body
    assert 'data-testid="preview"' not in body
    assert not DeviceSetting.objects.filter(enterprise=personas.ent_a).exists()


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        ("(713) 555-4321", DEVICE),
        ("713.555.4321", DEVICE),
        ("+1 713 555 4321", DEVICE),
        ("  JSmith@Domain.COM ", EMAIL),
    ],
)
def test_the_device_is_normalised_as_in_the_trace(personas, typed, key):
    response = _post(client_for(personas, "ent_admin"), personas.ent_a, device=typed)
    assert f'data-testid="preview-device">{key}<' in _body(response)


def test_a_brazilian_enterprise_reads_numbers_as_brazilian(personas):
    client = client_for(personas, "other_ent_admin")
    response = _post(client, personas.ent_b, device="(11) 91234-5678")
    assert 'data-testid="preview-device">+5511912345678<' in _body(response)


@pytest.mark.parametrize(
    ("expires", "message"),
    [
        ("2026-03-09", "must be in the future"),
        ("31/12/2026", "is not a date: use YYYY-MM-DD"),
        ("2026-02-30", "is not a date"),
        ("2099-01-01", "at most 10 years ahead"),
    ],
)
def test_an_expiry_must_be_a_future_date(personas, expires, message):
    with time_machine.travel(WORKDAY, tick=False):
        response = _post(
            client_for(personas, "ent_admin"), personas.ent_a, op="save", expires=expires
        )
    assert message in _body(response)
    assert not DeviceSetting.objects.filter(enterprise=personas.ent_a).exists()


def test_an_expiry_date_means_the_end_of_that_day_in_the_enterprise_zone():
    with time_machine.travel(WORKDAY, tick=False):
        assert parse_expiry("2026-03-10", "America/Chicago") == dt.datetime(
            2026, 3, 10, 23, 59, 59, 999999, tzinfo=CHICAGO
        )  # today still counts: it ends tonight
        assert parse_expiry("2026-03-11 08:30", "America/Chicago") == dt.datetime(
            2026, 3, 11, 8, 30, tzinfo=CHICAGO
        )
        assert parse_expiry("", "America/Chicago") is None
        for early in ("0001-01-01 00:30", "0001-01-01"):  # no overflow east of UTC
            with pytest.raises(ValueError, match="must be in the future"):
                parse_expiry(early, "Asia/Tokyo")
        with pytest.raises(ValueError, match="at most 10 years"):
            parse_expiry("9999-12-31 23:59", "America/Sao_Paulo")


# --- 2. View Setting: the preview ----------------------------------------------------------


def test_the_preview_says_one_in_the_singular(personas):
    # Issue 14, item 8: not "1 contacts stopped" nor "1 accounts affected".
    _running(personas.acct_a1, ["+17135554377"])
    body = _body(_post(client_for(personas, "ent_admin"), personas.ent_a, device="713 555 4377"))
    assert 'data-testid="preview-contacts">1<' in body
    assert "contact stopped" in body and "contacts stopped" not in body
    assert "queued attempt cancelled" in body and "queued attempts cancelled" not in body
    assert "account affected" in body and "accounts affected" not in body


def test_the_preview_counts_contacts_and_queued_attempts_per_account(personas, two_accounts):
    response = _post(client_for(personas, "ent_admin"), personas.ent_a, device="713 555 4321")
    body = _body(response)
    assert response.status_code == 200
    assert 'data-testid="preview-contacts">4<' in body  # 2 + 1 in Acme One, 1 in Acme Two
    assert 'data-testid="preview-attempts">4<' in body
    assert 'data-testid="preview-accounts">2<' in body
    assert "contacts stopped" in body and "accounts affected" in body
    assert body.count('data-testid="impact-row"') == 3  # the paused one is not running
    assert "Acme One" in body and "Acme Two" in body and "Borealis" not in body
    # Nothing saved, nothing changed.
    assert not DeviceSetting.objects.exists()
    assert _statuses(personas.acct_a1) == ["pending"] * 4
    assert AuditEvent.objects.filter(
        action="device.preview", enterprise=personas.ent_a, details__contacts=4
    ).exists()


def test_the_preview_numbers_are_what_saving_does(personas, two_accounts):
    preview = build_preview(personas.ent_a, DEVICE, BLOCK)
    by_account = {impact.account.slug: impact for impact in preview.accounts}
    assert (by_account["acme-one"].contacts, by_account["acme-one"].attempts) == (3, 3)
    assert (by_account["acme-two"].contacts, by_account["acme-two"].attempts) == (1, 1)
    setting = do_save_device_setting(personas.ent_a, DEVICE, BLOCK)
    running = [
        s for s in _states(personas.acct_a1) if s.sub_campaign_id != two_accounts["paused"].pk
    ]
    suppressed = sum(s.status == "suppressed" for s in running) + _statuses(personas.acct_a2).count(
        "suppressed"
    )
    assert suppressed == preview.attempts == 4
    # The paused sub-campaign's queued attempt is cancelled too (as the page says).
    assert setting.cancelled == 5


def test_an_attempt_already_on_the_line_is_stopped_but_not_cancelled(personas):
    sub = _running(personas.acct_a1, [DEVICE])
    with tenant_context(personas.acct_a1):
        DialState.objects.filter(sub_campaign=sub).update(status="dialing", current_attempt_id=1)
    preview = build_preview(personas.ent_a, DEVICE, BLOCK)
    assert (preview.contacts, preview.attempts) == (1, 0)


def test_the_preview_shows_the_current_setting_its_history_and_recent_attempts(personas):
    with time_machine.travel(WORKDAY - dt.timedelta(days=2), tick=False):
        do_save_device_setting(
            personas.ent_a, DEVICE, BLOCK, reason="asked by phone", actor=personas.ent_admin
        )
    with time_machine.travel(WORKDAY - dt.timedelta(days=1), tick=False):
        do_save_device_setting(
            personas.ent_a, DEVICE, BLOCK, reason="confirmed by letter", source="agent_dnc"
        )
    for n in range(12):
        Attempt.objects.create(
            attempted_at=timezone.now() - dt.timedelta(hours=n + 1),
            enterprise_id=personas.ent_a.pk,
            account_id=personas.acct_a2.pk,
            account_name="Acme Two",
            campaign_name=f"Recent {n}",
            device_key=DEVICE,
            channel="voice",
            direction="outbound",
            disposition="NO_ANSWER",
        )
    body = _body(_post(client_for(personas, "ent_admin"), personas.ent_a, action=ALLOW))
    current = body.split('data-testid="preview-current">')[1].split("</dd>")[0]
    assert "Block" in current and "by System (Agent: do not call)" in current
    assert "confirmed by letter" in current
    assert body.count('data-testid="history-row"') == 2
    assert (
        "ent.admin@acme.test" in body and "asked by phone" in body and "Agent: do not call" in body
    )
    assert body.count('data-testid="recent-attempt"') == 10
    assert "Recent 0" in body and "Recent 11" not in body
    assert "Lifts any enterprise block" in body


def test_the_preview_of_an_allow_counts_the_contacts_it_releases(personas, two_accounts):
    do_save_device_setting(personas.ent_a, DEVICE, BLOCK)
    preview = build_preview(personas.ent_a, DEVICE, ALLOW)
    assert (preview.contacts, preview.attempts, len(preview.accounts)) == (4, 4, 2)
    assert build_preview(personas.ent_a, DEVICE, BLOCK).attempts == 0


def test_a_link_can_open_the_preview_without_saving(personas):
    setting = do_save_device_setting(personas.ent_a, DEVICE, ALLOW)
    response = client_for(personas, "ent_admin").get(_url(personas.ent_a), {"setting": setting.pk})
    body = _body(response)
    assert f'data-testid="preview-device">{DEVICE}<' in body
    assert "Allow calls to this device" in body.split('data-testid="preview-new"')[1][:300]
    assert DeviceSetting.objects.count() == 1  # previewed, nothing saved
    # The device page links to it by the setting's id: no number in the URL.
    detail = _body(client_for(personas, "ent_admin").get(_url(personas.ent_a, f"{setting.pk}/")))
    assert f'href="{_url(personas.ent_a)}?setting={setting.pk}"' in detail
    assert "device=" not in detail


# --- 3. Save Setting -----------------------------------------------------------------------


def test_save_setting_blocks_and_cancels_queued_attempts_in_both_accounts(personas, two_accounts):
    client = client_for(personas, "ent_admin")
    with time_machine.travel(WORKDAY, tick=False):
        response = _post(
            client,
            personas.ent_a,
            op="save",
            device="(713) 555-4321",
            reason="Asked not to be called",
            expires="2026-04-30",
        )
    assert response.status_code == 302 and response["Location"] == _url(personas.ent_a)
    setting = DeviceSetting.objects.get(enterprise=personas.ent_a)
    assert (setting.device_key, setting.action, setting.source, setting.created_by_label) == (
        DEVICE,
        BLOCK,
        "manual",
        "ent.admin@acme.test",
    )
    assert setting.reason == "Asked not to be called"
    assert setting.expires_at == dt.datetime(2026, 4, 30, 23, 59, 59, 999999, tzinfo=CHICAGO)
    assert _statuses(personas.acct_a1) == ["suppressed"] * 4
    assert _statuses(personas.acct_a2) == ["suppressed"]
    assert _statuses(personas.acct_b1) == ["pending"]  # another enterprise
    rows = Attempt.objects.filter(enterprise_id=personas.ent_a.pk, device_key=DEVICE)
    assert rows.count() == 5
    assert {(r.disposition, r.suppression_rule, r.suppression_detail) for r in rows} == {
        ("SUPPRESSED", "device_block", "Manual: Asked not to be called")
    }
    event = AuditEvent.objects.get(action="device.block", enterprise=personas.ent_a)
    assert event.actor == personas.ent_admin and event.details["cancelled"] == 5
    page = _body(client.get(response["Location"]))
    assert "5 queued attempts cancelled." in page
    assert page.count(ROW) == 1 and "Asked not to be called" in page


def test_save_setting_needs_a_post_with_a_csrf_token(personas):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(personas.ent_admin)
    response = _post(client, personas.ent_a, op="save")
    assert response.status_code == 403
    assert not DeviceSetting.objects.exists()


def test_the_next_dispatch_suppresses_a_device_saved_as_blocked(personas):
    with time_machine.travel(WORKDAY, tick=False):
        _post(client_for(personas, "ent_admin"), personas.ent_a, op="save", reason="dispute")
        sub = _running(personas.acct_a2, [DEVICE])  # a list attached after the block
        with tenant_context(personas.acct_a2):
            report = dialer.dispatch_sub_campaign(sub.pk)
    assert (report.claimed, report.suppressed, report.queued) == (1, 1, 0)
    row = Attempt.objects.get(account_id=personas.acct_a2.pk, sub_campaign_id=sub.pk)
    assert row.suppression_rule == "device_block" and row.suppression_detail == "Manual: dispute"


# --- 4. Allow and removal release what a block stopped -------------------------------------


def test_allow_releases_the_contacts_a_block_stopped(personas, two_accounts):
    with time_machine.travel(WORKDAY - dt.timedelta(hours=1), tick=False):
        do_save_device_setting(personas.ent_a, DEVICE, BLOCK)
    with tenant_context(personas.acct_a1):
        complete_sub_campaign(two_accounts["a1_twice"])  # its end is history: left alone
    client = client_for(personas, "ent_admin")
    with time_machine.travel(WORKDAY, tick=False):
        response = _post(client, personas.ent_a, op="save", action=ALLOW, reason="consent on file")
    assert response.status_code == 302
    by_sub = {s.sub_campaign_id: s.status for s in _states(personas.acct_a1)}
    assert by_sub[two_accounts["a1"].pk] == "pending"
    assert by_sub[two_accounts["paused"].pk] == "pending"
    assert by_sub[two_accounts["a1_twice"].pk] == "suppressed"
    assert _statuses(personas.acct_a2) == ["pending"]
    assert "3 attempts back in the queue." in _body(client.get(_url(personas.ent_a)))
    assert AuditEvent.objects.get(action="device.allow").details["released"] == 3
    # Released means worked again: the next dispatch dials it.
    with tenant_context(personas.acct_a2), time_machine.travel(WORKDAY, tick=False):
        report = dialer.dispatch_sub_campaign(two_accounts["a2"].pk)
    assert report.queued == 1


def test_release_leaves_states_another_rule_suppressed(personas):
    sub = _running(personas.acct_a1, [DEVICE, OTHER])
    with tenant_context(personas.acct_a1):
        DialState.objects.filter(sub_campaign=sub, device_key=OTHER).update(
            status="suppressed", last_rule="calling_window", last_reason="no common calling window"
        )
    do_save_device_setting(personas.ent_a, DEVICE, BLOCK)
    do_save_device_setting(personas.ent_a, OTHER, ALLOW)
    assert _statuses(personas.acct_a1, OTHER) == ["suppressed"]
    do_save_device_setting(personas.ent_a, DEVICE, ALLOW)
    assert _statuses(personas.acct_a1) == ["pending"]


def test_an_sms_start_reply_releases_what_stop_suppressed(personas):
    from campaigns.inbound import record_inbound_sms

    sub = _running(personas.acct_a1, [DEVICE], channel="sms")
    with tenant_context(personas.acct_a1):
        record_inbound_sms(device_key=DEVICE, to_address="55123", text="STOP")
        assert DialState.objects.get(sub_campaign=sub).status == "suppressed"
        record_inbound_sms(device_key=DEVICE, to_address="55123", text="START")
        assert DialState.objects.get(sub_campaign=sub).status == "pending"


def test_remove_asks_first_then_saves_a_clear_and_releases(personas, two_accounts):
    block = do_save_device_setting(personas.ent_a, DEVICE, BLOCK, reason="dispute")
    client = client_for(personas, "ent_admin")
    confirm = client.get(_url(personas.ent_a, f"{block.pk}/remove/"))
    body = _body(confirm)
    assert confirm.status_code == 200 and "Remove the setting?" in body
    assert 'data-testid="preview-contacts">4<' in body and "contacts released" in body
    assert DeviceSetting.objects.count() == 1  # asking changed nothing
    response = client.post(_url(personas.ent_a, f"{block.pk}/remove/"), {"reason": "resolved"})
    assert response.status_code == 302
    latest = DeviceSetting.objects.filter(device_key=DEVICE).first()
    assert (latest.action, latest.reason, latest.source) == (CLEAR, "resolved", "manual")
    assert _statuses(personas.acct_a2) == ["pending"]
    assert (
        PolicyGate(personas.ent_a)
        .decide_one(DialRequest(personas.acct_a1.pk, 1, 1, "collections", "email", DEVICE))
        .dial
    )
    page = _body(client.get(_url(personas.ent_a)))
    assert ROW not in page and "Removed the setting for +17135554321." in page
    assert AuditEvent.objects.filter(action="device.clear", actor=personas.ent_admin).exists()
    # Removing again: nothing to remove, said plainly.
    again = client.get(_url(personas.ent_a, f"{block.pk}/remove/"), follow=True)
    assert "has no setting to change" in _body(again)


def test_remove_is_a_post(personas):
    block = do_save_device_setting(personas.ent_a, DEVICE, BLOCK)
    client = client_for(personas, "ent_admin")
    assert client.put(_url(personas.ent_a, f"{block.pk}/remove/")).status_code == 405
    assert DeviceSetting.objects.count() == 1


# --- 5. expiry -----------------------------------------------------------------------------


def test_setting_an_expiry_keeps_the_setting_and_adds_to_its_history(personas):
    with time_machine.travel(WORKDAY - dt.timedelta(days=1), tick=False):
        block = do_save_device_setting(
            personas.ent_a, DEVICE, BLOCK, reason="dispute", source="agent_dnc"
        )
    client = client_for(personas, "ent_admin")
    with time_machine.travel(WORKDAY, tick=False):
        form = client.get(_url(personas.ent_a, f"{block.pk}/expiry/"))
        assert form.status_code == 200 and "Currently no expiry." in _body(form)
        response = client.post(
            _url(personas.ent_a, f"{block.pk}/expiry/"), {"expires": "2026-03-20"}
        )
    assert response.status_code == 302
    latest = DeviceSetting.objects.filter(device_key=DEVICE).first()
    assert (latest.action, latest.reason, latest.source) == (BLOCK, "dispute", "manual")
    assert latest.expires_at == dt.datetime(2026, 3, 20, 23, 59, 59, 999999, tzinfo=CHICAGO)
    gate = PolicyGate(personas.ent_a, dt.datetime(2026, 3, 21, 15, tzinfo=dt.UTC))
    request = DialRequest(personas.acct_a1.pk, 1, 1, "collections", "email", DEVICE)
    assert gate.decide_one(request).dial
    assert PolicyGate(personas.ent_a, WORKDAY).decide_one(request).action == SUPPRESS
    # A past date is refused; an empty one takes the expiry away.
    with time_machine.travel(WORKDAY, tick=False):
        past = client.post(_url(personas.ent_a, f"{latest.pk}/expiry/"), {"expires": "2026-03-01"})
        assert "must be in the future" in _body(past)
        client.post(_url(personas.ent_a, f"{latest.pk}/expiry/"), {"expires": ""})
    assert DeviceSetting.objects.filter(device_key=DEVICE).first().expires_at is None
    assert DeviceSetting.objects.filter(device_key=DEVICE).count() == 3


def test_an_expired_block_releases_its_contacts_when_the_release_runs(personas):
    sub = _running(personas.acct_a2, [DEVICE])
    with time_machine.travel(WORKDAY, tick=False):
        do_save_device_setting(
            personas.ent_a, DEVICE, BLOCK, expires_at=WORKDAY + dt.timedelta(hours=2)
        )
        do_save_device_setting(
            personas.ent_a, OTHER, BLOCK, expires_at=WORKDAY + dt.timedelta(hours=2)
        )
        do_save_device_setting(personas.ent_a, OTHER, BLOCK)  # replaced: stays blocked
    assert _statuses(personas.acct_a2) == ["suppressed"]
    early = do_release_expired_blocks(since=WORKDAY, now=WORKDAY + dt.timedelta(hours=1))
    assert early == {} and _statuses(personas.acct_a2) == ["suppressed"]
    released = do_release_expired_blocks(since=WORKDAY, now=WORKDAY + dt.timedelta(hours=3))
    assert released == {personas.ent_a.pk: 1}
    assert [s.status for s in _states(personas.acct_a2, sub)] == ["pending"]


# --- 6. the list ---------------------------------------------------------------------------


def _many(enterprise, n, *, prefix="+1713555", action=BLOCK, **extra):
    keys = [f"{prefix}{5000 + i:04d}" for i in range(n)]
    do_save_device_settings(
        enterprise, [SettingInput(k, action, f"bulk {k}") for k in keys], **extra
    )
    return keys


def test_the_list_shows_each_devices_latest_setting_and_hides_removed_ones(personas):
    do_save_device_setting(personas.ent_a, DEVICE, BLOCK, reason="first")
    do_save_device_setting(personas.ent_a, DEVICE, ALLOW, reason="second")
    do_save_device_setting(personas.ent_a, OTHER, BLOCK)
    do_save_device_setting(personas.ent_a, OTHER, CLEAR)
    do_save_device_setting(personas.ent_a, EMAIL, BLOCK, reason="<script>alert(1)</script>")
    do_save_device_setting(personas.ent_b, "+17135559999", BLOCK)  # another enterprise's
    body = _body(client_for(personas, "ent_admin").get(_url(personas.ent_a)))
    assert body.count(ROW) == 2
    assert "second" in body and "first" not in body and OTHER not in body
    assert "+17135559999" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>alert(1)" not in body
    assert "History (2)" in body


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("(713) 555-4321", [DEVICE]),
        ("555-4321", [DEVICE]),
        ("432", [DEVICE, OTHER]),
        ("JSMITH@", [EMAIL]),
        ("domain.com", [EMAIL]),
        ("+1713", [DEVICE, OTHER]),
        ("%", []),
        ("_", []),
        ("\x00", [DEVICE, OTHER, EMAIL]),
    ],
)
def test_search_finds_devices_by_a_normalised_or_partial_key(personas, query, found):
    for key in (DEVICE, OTHER, EMAIL):
        do_save_device_setting(personas.ent_a, key, BLOCK)
    response = _search(client_for(personas, "ent_admin"), personas.ent_a, q=query)
    body = _body(response)
    assert response.status_code == 200
    assert sorted(k for k in (DEVICE, OTHER, EMAIL) if f">{k}<" in body) == sorted(found)


def test_the_list_filters_by_setting_source_and_status(personas):
    with time_machine.travel(WORKDAY - dt.timedelta(days=3), tick=False):
        do_save_device_setting(
            personas.ent_a, "+17135550001", BLOCK, expires_at=WORKDAY - dt.timedelta(days=1)
        )
    do_save_device_setting(personas.ent_a, "+17135550002", BLOCK, source="sms_opt_out")
    do_save_device_setting(personas.ent_a, "+17135550003", ALLOW)
    client = client_for(personas, "ent_admin")

    def keys(**params):
        body = _body(_search(client, personas.ent_a, q="", **params))
        return [k for k in ("+17135550001", "+17135550002", "+17135550003") if f">{k}<" in body]

    assert keys(setting="block") == ["+17135550001", "+17135550002"]
    assert keys(setting="allow") == ["+17135550003"]
    assert keys(source="sms_opt_out") == ["+17135550002"]
    assert keys(state="expired") == ["+17135550001"]
    assert keys(state="in_force") == ["+17135550002", "+17135550003"]
    assert keys(setting="nonsense", source="<b>") == [
        "+17135550001",
        "+17135550002",
        "+17135550003",
    ]
    assert "No device setting matches" in _body(_search(client, personas.ent_a, q="9999999"))


def test_the_list_is_paginated_with_a_constant_query_count(personas):
    keys = _many(personas.ent_a, 30)
    client = client_for(personas, "ent_admin")
    client.get(_url(personas.ent_a))  # warm the session
    first = client.get(_url(personas.ent_a))
    assert _body(first).count(ROW) == 25 and "Page 1 of 2" in _body(first)
    second = client.get(_url(personas.ent_a), {"page": 2})
    assert _body(second).count(ROW) == 5
    assert keys[0] in _body(second)  # newest first: the first saved is last
    counts = {}
    for n, params in ((5, {"page": 2}), (25, {})):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(_url(personas.ent_a), params)
        assert _body(response).count(ROW) == n
        counts[n] = len(queries.captured_queries)
    assert counts[5] == counts[25], counts
    # Tenant, session, user, memberships, count, page, history counts: 7, each after
    # the SET search_path that django-tenants issues per cursor.
    real = [q for q in queries.captured_queries if not q["sql"].startswith("SET search_path")]
    assert len(real) <= 7, [q["sql"][:80] for q in real]


def test_the_device_page_shows_the_whole_history(personas):
    first = do_save_device_setting(
        personas.ent_a, DEVICE, BLOCK, reason="one", actor=personas.ent_admin
    )
    do_save_device_setting(personas.ent_a, DEVICE, ALLOW, reason="two", source="sms_opt_in")
    do_save_device_setting(personas.ent_a, DEVICE, CLEAR, reason="three")
    response = client_for(personas, "ent_admin").get(_url(personas.ent_a, f"{first.pk}/"))
    body = _body(response)
    assert response.status_code == 200
    assert body.count('data-testid="history-row"') == 3
    assert all(w in body for w in ("one", "two", "three", "SMS opt-in", "ent.admin@acme.test"))
    assert "No setting: each campaign" in body
    assert AuditEvent.objects.filter(action="device.view", enterprise=personas.ent_a).exists()


def test_unknown_and_foreign_setting_ids_are_not_found(personas):
    theirs = do_save_device_setting(personas.ent_b, DEVICE, BLOCK)
    client = client_for(personas, "ent_admin")
    for suffix in ("", "remove/", "expiry/"):
        assert client.get(_url(personas.ent_a, f"{theirs.pk}/{suffix}")).status_code == 404
        assert client.get(_url(personas.ent_a, f"999999999/{suffix}")).status_code == 404
    assert client.post(_url(personas.ent_a, f"{theirs.pk}/remove/")).status_code == 404
    assert DeviceSetting.objects.filter(device_key=DEVICE).count() == 1


# --- 7. CSV import -------------------------------------------------------------------------


def _upload(client, enterprise, text: str | bytes, name="blocks.csv"):
    data = text.encode("utf-8") if isinstance(text, str) else text
    return client.post(
        _url(enterprise, "import/"),
        {"file": SimpleUploadedFile(name, data, content_type="text/csv")},
    )


def test_import_saves_good_lines_and_reports_bad_ones_by_number(personas, two_accounts):
    text = (
        "device,action,reason,expires\n"
        "713 555 4321,block,Asked not to be called,\n"  # line 2
        "12,block,too short,\n"  # line 3: bad phone
        "JSmith@Domain.com,,Disputed,2026-12-31\n"  # line 4: action defaults to block
        "+17135554322,maybe,,\n"  # line 5: bad action
        "\n"
        "+17135554323,allow,Consent on file,\n"  # line 7
        "+17135554324,block,,2020-01-01\n"  # line 8: past expiry
        "(713) 555-4321,block,Asked twice,\n"  # line 9: duplicate of line 2: wins
        "+17135554325,block,,31/12/2026\n"  # line 10: bad date
    )
    client = client_for(personas, "ent_admin")
    with time_machine.travel(WORKDAY, tick=False):
        response = _upload(client, personas.ent_a, text)
    assert response.status_code == 302
    assert response["Location"] == _url(personas.ent_a, "import/")
    saved = {s.device_key: s for s in DeviceSetting.objects.filter(enterprise=personas.ent_a)}
    assert sorted(saved) == sorted([DEVICE, EMAIL, "+17135554323"])
    assert saved[DEVICE].reason == "Asked twice" and saved[DEVICE].source == "import"
    assert saved[DEVICE].created_by_label == "ent.admin@acme.test"
    assert saved["+17135554323"].action == ALLOW
    assert saved[EMAIL].expires_at == dt.datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=CHICAGO)
    # The block cancelled the queued attempts in both accounts, as a manual one does.
    assert _statuses(personas.acct_a1) == ["suppressed"] * 4
    assert _statuses(personas.acct_a2) == ["suppressed"]
    assert (
        Attempt.objects.filter(device_key=DEVICE, suppression_detail="Import: Asked twice").count()
        == 5
    )
    with time_machine.travel(WORKDAY, tick=False):  # the session's clock
        body = _body(client.get(response["Location"]))
        again = _body(client.get(response["Location"]))
    assert "3 device settings saved from blocks.csv. 4 lines have errors and were skipped." in body
    errors = body.split('data-testid="import-errors"')[1]
    for line, text_ in ((3, "too short"), (5, "“maybe” is not a setting"),
                        (8, "must be in the future"), (10, "is not a date")):  # fmt: skip
        assert f'<td class="text-end">{line}</td><td>' in errors and text_ in errors, line
    assert 'data-testid="import-error-count">4<' in body
    assert 'Duplicate lines collapsed</dt><dd class="col-sm-7">1<' in body
    event = AuditEvent.objects.get(action="device.import", enterprise=personas.ent_a)
    assert event.details["saved"] == 3 and event.details["errors"] == 4
    assert event.details["file"] == "blocks.csv" and event.details["blocks"] == 2
    applied = AuditEvent.objects.filter(action="device.import_applied", enterprise=personas.ent_a)
    assert {e.account_id: e.details["cancelled"] for e in applied} == {
        personas.acct_a1.pk: 4,
        personas.acct_a2.pk: 1,
    }
    assert 'data-testid="import-report"' not in again  # the report is shown once


def test_import_without_a_header_and_with_semicolons(personas):
    client = client_for(personas, "ent_admin")
    _upload(
        client, personas.ent_a, "713 555 4321\n+17135554322;allow;cliente pediu, por telefone\n"
    )
    saved = dict(DeviceSetting.objects.values_list("device_key", "action"))
    assert saved == {DEVICE: BLOCK}  # semicolons only from line 2: the file is comma-separated
    DeviceSetting.objects.all().delete()
    _upload(
        client,
        personas.ent_a,
        "dispositivo;ação;motivo\n713 555 4321;bloquear;x\n"
        "+17135554322;permitir;cliente pediu, por telefone\n",
    )
    saved = dict(DeviceSetting.objects.values_list("device_key", "reason"))
    assert saved == {DEVICE: "x", "+17135554322": "cliente pediu, por telefone"}


def test_import_reads_its_own_export(personas):
    do_save_device_setting(personas.ent_a, DEVICE, BLOCK, reason="=HYPERLINK(1)")
    do_save_device_setting(
        personas.ent_a,
        "-x@domain.com",
        ALLOW,
        reason="ok",
        expires_at=timezone.now() + dt.timedelta(days=5),
    )
    client = client_for(personas, "ent_admin")
    exported = b"".join(client.get(_url(personas.ent_a, "settings.csv")).streaming_content)
    DeviceSetting.objects.all().delete()
    response = _upload(client, personas.ent_a, exported)
    assert response.status_code == 302
    saved = {s.device_key: s for s in DeviceSetting.objects.all()}
    assert saved[DEVICE].action == BLOCK
    assert saved["-x@domain.com"].action == ALLOW and saved["-x@domain.com"].expires_at


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The submitted file is empty."),
        (b"device\n\n\n", "The file has no devices in it."),
        ("device\n713 555 4321\n".encode("utf-16"), "not UTF-8"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"phone_number,why\n7135554321,x\n", "looks like a header but has no “device” column"),
        (b"action,reason\nblock,x\n", "The header has no “device” column."),
    ],
)
def test_a_file_that_cannot_be_read_saves_nothing(personas, data, message):
    response = _upload(client_for(personas, "ent_admin"), personas.ent_a, data)
    body = _body(response)
    assert response.status_code == 200
    assert "invalid-feedback" in body and message in body
    assert not DeviceSetting.objects.exists()


def test_hostile_lines_are_errors_not_failures(personas):
    text = (
        "device,action,reason\n"
        "713\x00555 4321,block,x\n"
        "+17135554321,block,bad\x00reason\n"
        f"+17135554322,block,{'x' * 256}\n"
        "=cmd|' /C calc'!A0,block,\n"
        "<script>@x.com,block,\n"
        ",block,no device\n"
        "+17135554323,block,<b>kept</b>\n"
    )
    client = client_for(personas, "ent_admin")
    response = _upload(client, personas.ent_a, text)
    assert response.status_code == 302
    assert list(DeviceSetting.objects.values_list("device_key", "reason")) == [
        ("+17135554323", "<b>kept</b>")
    ]
    body = _body(client.get(response["Location"]))
    assert 'data-testid="import-error-count">6<' in body
    assert "longer than 255 characters" in body and "No device" in body
    assert "<script>@x.com" not in body


def test_an_oversized_upload_is_refused_with_a_clear_message(personas):
    data = b"device\n" + b"+17135554321,block,padding padding padding padding\n" * 110_000
    assert len(data) > 5 * 1024 * 1024
    response = _upload(client_for(personas, "ent_admin"), personas.ent_a, data)
    assert response.status_code == 200
    assert "the limit is 5 MB. Split it and upload the parts." in _body(response)
    assert not DeviceSetting.objects.exists()


def test_more_than_50000_lines_is_refused(personas):
    data = "".join(f"+1713555{n % 10000:04d}\n" for n in range(50_001)).encode()
    assert len(data) < 5 * 1024 * 1024
    response = _upload(client_for(personas, "ent_admin"), personas.ent_a, data)
    assert "more than 50,000 lines" in _body(response)
    assert not DeviceSetting.objects.exists()


def test_a_bulk_save_locks_and_cancels_many_devices_across_accounts(personas):
    keys = [f"+1713555{6000 + i}" for i in range(1500)]  # more than one transaction's worth
    _running(personas.acct_a1, keys[:3])
    _running(personas.acct_a2, keys[-2:])
    result = do_save_device_settings(
        personas.ent_a, [SettingInput(k, BLOCK, "bulk") for k in keys], actor=personas.ent_admin
    )
    assert (result.saved, result.blocks, result.cancelled) == (1500, 1500, 5)
    assert result.accounts == {personas.acct_a1.pk, personas.acct_a2.pk}
    assert DeviceSetting.objects.filter(enterprise=personas.ent_a, source="import").count() == 1500
    with tenant_context(personas.acct_a1):
        assert set(DialState.objects.values_list("status", flat=True)) == {"suppressed"}
    events = AuditEvent.objects.filter(action="device.import", enterprise=personas.ent_a)
    assert sorted(e.details["saved"] for e in events) == [500, 1000]


# --- 8. CSV export -------------------------------------------------------------------------


def _csv(response) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_export_streams_the_current_settings_formula_safe(personas):
    with time_machine.travel(dt.datetime(2026, 3, 1, 18, 0, tzinfo=dt.UTC), tick=False):
        do_save_device_setting(
            personas.ent_a,
            DEVICE,
            BLOCK,
            reason='=HYPERLINK("x")',
            actor=personas.ent_admin,
            expires_at=dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=CHICAGO),
        )
        do_save_device_setting(
            personas.ent_a, EMAIL, ALLOW, reason="+cmd|' /C calc'!A0", source="sms_opt_in"
        )
        do_save_device_setting(personas.ent_a, OTHER, BLOCK)
        do_save_device_setting(personas.ent_a, OTHER, CLEAR)
        do_save_device_setting(personas.ent_b, "+17135559999", BLOCK)
    response = client_for(personas, "ent_admin").get(_url(personas.ent_a, "settings.csv"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="device-settings-')
    rows = _csv(response)
    assert rows[0] == ["Device", "Setting", "Reason", "Source", "Saved by", "Saved at", "Expires"]
    by_device = {r[0]: r for r in rows[1:]}
    assert sorted(by_device) == sorted([DEVICE, EMAIL])
    assert by_device[DEVICE] == [
        DEVICE,
        "Block",
        '\'=HYPERLINK("x")',
        "Manual",
        "ent.admin@acme.test",
        "2026-03-01 12:00:00",
        "2026-12-31 23:59",
    ]
    assert by_device[EMAIL][1:4] == ["Allow", "'+cmd|' /C calc'!A0", "SMS opt-in"]
    assert AuditEvent.objects.filter(action="device.export", enterprise=personas.ent_a).exists()


def test_export_follows_the_list_filters(personas):
    do_save_device_setting(personas.ent_a, DEVICE, BLOCK)
    do_save_device_setting(personas.ent_a, EMAIL, ALLOW)
    client = client_for(personas, "ent_admin")
    listed = _search(client, personas.ent_a, q="", setting=ALLOW)
    search_id = listed.request["QUERY_STRING"].removeprefix("search=")
    assert f'settings.csv?search={search_id}"' in _body(listed)
    rows = _csv(client.get(_url(personas.ent_a, "settings.csv"), {"search": search_id}))
    assert [r[0] for r in rows[1:]] == [EMAIL]


# --- 9. access -----------------------------------------------------------------------------

NEW_PAGES = ["", "settings.csv", "import/", "{pk}/", "{pk}/remove/", "{pk}/expiry/"]


@pytest.mark.parametrize("suffix", NEW_PAGES)
@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("anonymous", 302),
        ("outsider", 404),
        ("agent", 403),
        ("acct_admin", 403),
        ("ent_admin", 200),
        ("other_ent_admin", 404),
        ("operator", 404),
    ],
)
def test_only_the_enterprise_admin_may_use_device_blocking(personas, suffix, persona, expected):
    setting = do_save_device_setting(personas.ent_a, DEVICE, BLOCK)
    client = client_for(personas, persona)
    url = _url(personas.ent_a, suffix.format(pk=setting.pk))
    response = client.get(url)
    assert response.status_code == expected
    if expected == 302:
        assert response["Location"].startswith("/login/?next=")
    post = client.post(url, {"device": OTHER, "action": BLOCK, "op": "save", "reason": "x"})
    if expected == 200:  # GET-only pages refuse it; the import form wants a file
        assert post.status_code == {"settings.csv": 405, "{pk}/": 405, "import/": 200}.get(
            suffix, 302
        )
    else:
        assert post.status_code == expected
        assert list(DeviceSetting.objects.values_list("device_key", "action")) == [(DEVICE, BLOCK)]


def test_search_key_normalises_whole_devices_and_keeps_partial_ones():
    assert search_key("(713) 555-4321", "US") == DEVICE
    assert search_key("555-4321", "US") == "5554321"
    assert search_key("+55 11", "BR") == "+5511"
    assert search_key(" JSmith@ ", "US") == "jsmith@"
    assert search_key("", "US") == ""


_hostile = st.one_of(
    st.text(max_size=300),
    st.from_regex(r"[\d\s().+\-/]{0,50}", fullmatch=True),
    st.emails(),
    st.sampled_from(["\u202e1014 555 317", "🙂@🙂.com", "'; DROP TABLE x; --", "%", "_", "\\",
                     "<script>alert(1)</script>", "+" + "9" * 39, "x" * 254 + "@a.com",
                     "２０２６-０１-０１", "9999-12-31", "0001-01-01", "2026-13-01"]),
)  # fmt: skip


@hsettings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(device=_hostile, reason=_hostile, expires=_hostile, query=_hostile)
def test_hostile_input_never_fails_the_page(personas, device, reason, expires, query):
    client = client_for(personas, "ent_admin")
    for op in ("view", "save"):
        response = _post(client, personas.ent_a, op=op, device=device, reason=reason,
                         expires=expires)  # fmt: skip
        assert response.status_code in (200, 302)
        assert "<script>alert(1)" not in _body(response)
    response = _search(client, personas.ent_a, page=query, q=query, setting=query)
    assert response.status_code == 200
    response = client.get(_url(personas.ent_a), {"setting": query, "search": query})
    assert response.status_code == 200
