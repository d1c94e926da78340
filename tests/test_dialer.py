"""Dispatch, attempts, retries, calling windows, caps, idempotent redelivery."""

import datetime as dt
import zoneinfo

import pytest
import time_machine
from django.db import connection
from django_tenants.utils import tenant_context

from campaigns import dial_states, dialer
from campaigns.gateways import get_gateway, physical_delivery_count
from campaigns.inbound import record_inbound_sms
from campaigns.models import DialState
from devices.models import Attempt, CallingWindow, Holiday
from devices.policy import DEFER, DIAL, DialRequest, PolicyGate
from tests import factories

# 15:00 UTC on a Tuesday: 10:00 in Chicago (CDT), 12:00 in São Paulo.
WORKDAY = dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC)
HOUSTON = ["+17135554101", "+17135554102", "+17135554103"]


def _people(phones):
    return [
        {"client_id": f"C{n}", "name": f"Person {n}", "phones": [p]} for n, p in enumerate(phones)
    ]


def _run_until_settled(sub, now, rounds=20):
    """Dispatch and perform the claimed attempts, as beat and the workers would."""
    for _ in range(rounds):
        dialer.dispatch_sub_campaign(sub.pk, now=now)
        claimed = list(DialState.objects.filter(sub_campaign=sub, status="dialing"))
        for state in claimed:
            dialer.perform_attempt(state.pk, str(state.claim_token))
        if not claimed:
            return


@pytest.fixture
def acme_one(personas):
    with tenant_context(personas.acct_a1):
        yield personas.acct_a1


def test_dispatch_claims_due_devices_and_records_each_outcome(acme_one):
    with time_machine.travel(WORKDAY, tick=False):
        sub = factories.sub_campaign(factories.contact_list(_people(HOUSTON)), max_attempts=1)
        report = dialer.dispatch_sub_campaign(sub.pk)
        assert (report.claimed, report.queued) == (3, 3)
        states = list(DialState.objects.filter(sub_campaign=sub))
        assert {s.status for s in states} == {"dialing"}
        for state in states:
            assert dialer.perform_attempt(state.pk, str(state.claim_token)) == "recorded"

    rows = list(Attempt.objects.filter(account_id=acme_one.pk, sub_campaign_id=sub.pk))
    assert sorted(r.device_key for r in rows) == HOUSTON
    for row in rows:
        assert row.disposition in {
            "ANSWERED",
            "NO_ANSWER",
            "BUSY",
            "VOICEMAIL",
            "FAILED",
            "ABANDONED",
        }
        assert row.node.startswith("dialer-node-")
        assert row.enterprise_id == acme_one.enterprise_id
        assert (row.account_name, row.campaign_name) == ("Acme One", sub.campaign.name)
        assert row.client_id.startswith("C") and row.attempted_at == WORKDAY
    assert set(DialState.objects.filter(sub_campaign=sub).values_list("status", flat=True)) == {
        "done"
    }


def test_retries_follow_the_policy_and_stop_at_max_attempts(acme_one):
    phones = [f"+1713555{n:04d}" for n in range(4110, 4140)]
    with time_machine.travel(WORKDAY, tick=False):
        sub = factories.sub_campaign(
            factories.contact_list(_people(phones)),
            max_attempts=3,
            retry_minutes={key: 0 for key in dial_states.RETRYABLE},
        )
        _run_until_settled(sub, WORKDAY)
    states = list(DialState.objects.filter(sub_campaign=sub))
    assert all(s.status == "done" for s in states)
    retried = 0
    for state in states:
        count = Attempt.objects.filter(account_id=acme_one.pk, dial_state_id=state.pk).count()
        assert count == state.attempts <= 3
        if state.last_disposition in dial_states.RETRYABLE:
            assert state.attempts == 3, "a retryable result is retried until max attempts"
        retried += state.attempts > 1
    assert retried > 0


def test_retry_waits_for_the_configured_minutes(acme_one):
    with time_machine.travel(WORKDAY, tick=False):
        sub = factories.sub_campaign(
            factories.contact_list(_people([f"+1713555{n:04d}" for n in range(4200, 4230)])),
            retry_minutes={key: 45 for key in dial_states.RETRYABLE},
        )
        _run_until_settled(sub, WORKDAY, rounds=1)
    waiting = DialState.objects.filter(sub_campaign=sub, status="pending")
    assert waiting.exists()
    for state in waiting:
        assert state.next_attempt_at == WORKDAY + dt.timedelta(minutes=45)
    # Not due yet: nothing is claimed a minute later.
    assert dialer.dispatch_sub_campaign(sub.pk, now=WORKDAY + dt.timedelta(minutes=1)).claimed == 0


def test_outside_the_calling_window_devices_are_deferred_to_local_morning(acme_one):
    night = dt.datetime(2026, 3, 10, 7, 30, tzinfo=dt.UTC)  # 02:30 in Chicago
    with time_machine.travel(night, tick=False):
        sub = factories.sub_campaign(factories.contact_list(_people(HOUSTON[:1])))
        report = dialer.dispatch_sub_campaign(sub.pk)
    assert (report.queued, report.deferred) == (0, 1)
    state = DialState.objects.get(sub_campaign=sub)
    assert state.status == "pending"
    assert state.next_attempt_at == dt.datetime(2026, 3, 10, 13, 0, tzinfo=dt.UTC)  # 08:00 CDT
    assert state.last_rule == "calling_window"
    assert not Attempt.objects.filter(account_id=acme_one.pk, sub_campaign_id=sub.pk).exists()


def test_enterprise_window_per_country_and_holidays(personas):
    enterprise = personas.ent_a
    CallingWindow.objects.create(
        enterprise=enterprise, region="US", start=dt.time(9), end=dt.time(17)
    )
    Holiday.objects.create(enterprise=enterprise, date=dt.date(2026, 3, 11), name="Closed")
    request = DialRequest(personas.acct_a1.pk, 1, 1, "collections", "voice", "+17135554101")

    at_0830 = dt.datetime(2026, 3, 10, 13, 30, tzinfo=dt.UTC)  # 08:30 CDT
    decision = PolicyGate(enterprise, at_0830).decide_one(request)
    assert decision.action == DEFER
    assert decision.retry_at == dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)  # 09:00 CDT

    at_1730 = dt.datetime(2026, 3, 10, 22, 30, tzinfo=dt.UTC)  # 17:30 CDT, next day a holiday
    decision = PolicyGate(enterprise, at_1730).decide_one(request)
    assert decision.retry_at == dt.datetime(2026, 3, 12, 14, 0, tzinfo=dt.UTC)

    on_holiday = dt.datetime(2026, 3, 11, 16, 0, tzinfo=dt.UTC)
    decision = PolicyGate(enterprise, on_holiday).decide_one(request)
    assert (decision.action, decision.rule) == (DEFER, "holiday")

    # Brazil has no window of its own here: the 08:00-21:00 default applies.
    brazil = DialRequest(personas.acct_a1.pk, 1, 1, "collections", "voice", "+5511912345678")
    assert PolicyGate(enterprise, at_0830).decide_one(brazil).action == DIAL  # 10:30 in SP


def test_an_ambiguous_number_takes_the_most_restrictive_zone(personas):
    toll_free = DialRequest(personas.acct_a1.pk, 1, 1, "collections", "voice", "+18005551234")
    # 13:00 UTC: 08:00 in New York but 05:00 in Los Angeles (and earlier in Hawaii).
    decision = PolicyGate(
        personas.ent_a, dt.datetime(2026, 3, 10, 13, 0, tzinfo=dt.UTC)
    ).decide_one(toll_free)
    assert decision.action == DEFER
    for zone in ("America/New_York", "America/Los_Angeles", "Pacific/Honolulu"):
        local = decision.retry_at.astimezone(zoneinfo.ZoneInfo(zone))
        assert dt.time(8) <= local.time() < dt.time(21), zone


def test_email_is_not_held_to_calling_windows(personas):
    night = dt.datetime(2026, 3, 10, 7, 30, tzinfo=dt.UTC)
    request = DialRequest(personas.acct_a1.pk, 1, 1, "collections", "email", "ana@example.com")
    assert PolicyGate(personas.ent_a, night).decide_one(request).action == DIAL


def test_attempt_cap_counts_every_account_of_the_enterprise_only(personas):
    device = "+17135554199"
    for days_ago in range(7):
        for account, enterprise in (
            (personas.acct_a2, personas.ent_a),
            (personas.acct_b1, personas.ent_b),
        ):
            Attempt.objects.create(
                attempted_at=WORKDAY - dt.timedelta(days=days_ago, hours=1),
                enterprise_id=enterprise.pk, account_id=account.pk, account_name=account.name,
                device_key=device, channel="voice", direction="outbound", disposition="NO_ANSWER",
            )  # fmt: skip
    request = DialRequest(personas.acct_a1.pk, 1, 1, "collections", "voice", device)
    decision = PolicyGate(personas.ent_a, WORKDAY).decide_one(request)
    assert (decision.action, decision.rule) == (DEFER, "attempt_cap")
    # The oldest of the 7 leaves the 7-day period 6 days and 23 hours ago + 7 days.
    assert decision.retry_at == WORKDAY - dt.timedelta(days=6, hours=1) + dt.timedelta(days=7)
    # Enterprise B has the same 7 attempts but a stricter cap of its own is not reached by A's.
    personas.ent_b.attempt_cap = 8
    assert PolicyGate(personas.ent_b, WORKDAY).decide_one(request).action == DIAL


def test_a_task_delivered_twice_dials_once(acme_one):
    with time_machine.travel(WORKDAY, tick=False):
        sub = factories.sub_campaign(factories.contact_list(_people(HOUSTON[:1])))
        dialer.dispatch_sub_campaign(sub.pk)
        state = DialState.objects.get(sub_campaign=sub)
        token = str(state.claim_token)
        assert dialer.perform_attempt(state.pk, token) == "recorded"
        assert dialer.perform_attempt(state.pk, token) == "skipped"
    rows = Attempt.objects.filter(account_id=acme_one.pk, dial_state_id=state.pk)
    assert rows.count() == 1
    assert physical_delivery_count(rows.get().pk) == 1


def test_an_attempt_interrupted_after_authorisation_resumes_without_a_second_dial(acme_one):
    with time_machine.travel(WORKDAY, tick=False):
        sub = factories.sub_campaign(factories.contact_list(_people(HOUSTON[:1])))
        dialer.dispatch_sub_campaign(sub.pk)
        state = DialState.objects.get(sub_campaign=sub)
        token = str(state.claim_token)
        # The worker authorised and dialled, then died before recording the result.
        [(_, attempt)] = dialer._authorise([(state.pk, token)])
        get_gateway("voice").deliver(dialer._job(sub, state, attempt))
        assert Attempt.objects.get(pk=attempt.pk).disposition == "PENDING"
        # Redelivery of the same task finishes the same attempt.
        assert dialer.perform_attempt(state.pk, token) == "recorded"
    row = Attempt.objects.get(pk=attempt.pk)
    assert row.disposition != "PENDING"
    assert Attempt.objects.filter(account_id=acme_one.pk, dial_state_id=state.pk).count() == 1
    assert physical_delivery_count(attempt.pk) == 1


def test_sms_attempts_carry_carrier_source_and_message(acme_one):
    with time_machine.travel(WORKDAY, tick=False):
        sub = factories.sub_campaign(
            factories.contact_list(_people(HOUSTON[:2])), channel="sms", max_attempts=1
        )
        _run_until_settled(sub, WORKDAY)
    for row in Attempt.objects.filter(account_id=acme_one.pk, sub_campaign_id=sub.pk):
        assert row.channel == "sms" and row.sms_direction == "TEXT_SENT"
        assert row.carrier_code.isdigit()
        assert (row.source_address, row.source_type) == ("55123", "short_code")
        assert row.message.startswith("Hi Person")


def test_inbound_sms_is_recorded_against_the_campaign_that_texted(acme_one):
    with time_machine.travel(WORKDAY, tick=False):
        sub = factories.sub_campaign(
            factories.contact_list(_people(HOUSTON[:1])), channel="sms", max_attempts=1
        )
        _run_until_settled(sub, WORKDAY)
        reply = record_inbound_sms(
            device_key=HOUSTON[0], to_address="55123", text="<b>Who is this?</b>"
        )
    assert (reply.direction, reply.disposition, reply.sms_direction) == (
        "inbound", "RECEIVED", "TEXT_RECEIVED",
    )  # fmt: skip
    assert (reply.sub_campaign_id, reply.client_id) == (sub.pk, "C0")
    assert reply.message == "<b>Who is this?</b>"  # stored as sent; pages escape it


def test_paused_sub_campaign_is_not_dispatched(acme_one):
    from campaigns.actions import do_pause_sub_campaign

    with time_machine.travel(WORKDAY, tick=False):
        sub = factories.sub_campaign(factories.contact_list(_people(HOUSTON[:1])))
        do_pause_sub_campaign(sub)
        assert dialer.dispatch_sub_campaign(sub.pk).claimed == 0
    assert connection.schema_name == acme_one.schema_name


def test_an_authorised_attempt_never_delivered_is_judged_again_when_resumed(acme_one):
    """Authorised at 20:55, the worker died before dialling; resumed at 02:00 it must wait."""
    evening = dt.datetime(2026, 3, 11, 1, 55, tzinfo=dt.UTC)  # 20:55 CDT
    with time_machine.travel(evening, tick=False):
        sub = factories.sub_campaign(factories.contact_list(_people(HOUSTON[:1])))
        dialer.dispatch_sub_campaign(sub.pk)
        state = DialState.objects.get(sub_campaign=sub)
        token = str(state.claim_token)
        [(_, attempt)] = dialer._authorise([(state.pk, token)])  # then the worker died
    with time_machine.travel(evening + dt.timedelta(hours=5), tick=False):  # 01:55 CDT
        assert dialer.perform_attempt(state.pk, token) == "skipped"
    state.refresh_from_db()
    assert state.status == "pending" and state.last_rule == "calling_window"
    assert not Attempt.objects.filter(pk=attempt.pk).exists(), "no attempt was made"
    assert physical_delivery_count(attempt.pk) == 0


def test_a_claim_outliving_a_pause_is_released_not_dialled(acme_one):
    from campaigns.actions import do_pause_sub_campaign

    with time_machine.travel(WORKDAY, tick=False):
        sub = factories.sub_campaign(factories.contact_list(_people(HOUSTON[:1])))
        dialer.dispatch_sub_campaign(sub.pk)
        state = DialState.objects.get(sub_campaign=sub)
        do_pause_sub_campaign(sub)
        assert dialer.perform_attempt(state.pk, str(state.claim_token)) == "skipped"
    state.refresh_from_db()
    assert (state.status, state.attempts) == ("pending", 0)
    assert not Attempt.objects.filter(account_id=acme_one.pk, sub_campaign_id=sub.pk).exists()


def test_the_cap_holds_inside_one_chunk_for_a_shared_household_number(acme_one, personas):
    personas.ent_a.attempt_cap = 2
    personas.ent_a.save(update_fields=["attempt_cap"])
    household = "+17135559998"
    people = [{"client_id": f"H{n}", "phones": [household]} for n in range(5)]
    with time_machine.travel(WORKDAY, tick=False):
        sub = factories.sub_campaign(factories.contact_list(people), max_attempts=1)
        report = dialer.dispatch_sub_campaign(sub.pk)
        assert (report.queued, report.deferred) == (2, 3)
        _run_until_settled(sub, WORKDAY)
    dialled = Attempt.objects.filter(account_id=acme_one.pk, device_key=household)
    assert dialled.count() == 2
    deferred = DialState.objects.filter(sub_campaign=sub, status="pending")
    assert deferred.count() == 3
    assert all(s.last_rule == "attempt_cap" for s in deferred)


def test_the_contacts_own_time_zone_narrows_the_window(personas):
    # A Houston mobile whose owner lives in Los Angeles: 08:30 in Chicago is 06:30 there.
    at = dt.datetime(2026, 3, 10, 13, 30, tzinfo=dt.UTC)
    plain = DialRequest(personas.acct_a1.pk, 1, 1, "collections", "voice", "+17135554101")
    moved = DialRequest(personas.acct_a1.pk, 1, 1, "collections", "voice", "+17135554101",
                        time_zone="America/Los_Angeles")  # fmt: skip
    assert PolicyGate(personas.ent_a, at).decide_one(plain).action == DIAL
    decision = PolicyGate(personas.ent_a, at).decide_one(moved)
    assert decision.action == DEFER
    assert decision.retry_at == dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC)  # 08:00 PDT


def test_removing_a_list_stops_its_devices_and_channel_is_fixed(acme_one):
    from campaigns.actions import do_save_sub_campaign
    from campaigns.forms import SubCampaignForm

    with time_machine.travel(WORKDAY, tick=False):
        first = factories.contact_list(_people(HOUSTON[:2]))
        second = factories.contact_list(_people(["+17135554120"]))
        sub = factories.sub_campaign(first)
        do_save_sub_campaign(sub, lists=[first, second])
        assert DialState.objects.filter(sub_campaign=sub).count() == 3
        dialer.dispatch_sub_campaign(sub.pk)  # all three claimed
        do_save_sub_campaign(sub, lists=[first])  # the admin unticks the second list
        for state in DialState.objects.filter(sub_campaign=sub, status="dialing"):
            dialer.perform_attempt(state.pk, str(state.claim_token))
    dialled = set(
        Attempt.objects.filter(account_id=acme_one.pk, sub_campaign_id=sub.pk).values_list(
            "device_key", flat=True
        )
    )
    assert dialled == set(HOUSTON[:2]), "the removed list's number is never dialled"
    removed = DialState.objects.get(sub_campaign=sub, device_key="+17135554120")
    assert (removed.status, removed.last_reason) == ("done", "list removed")
    form = SubCampaignForm(instance=sub)
    assert form.fields["channel"].disabled


def test_message_placeholders_are_checked_when_saving(acme_one):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match=r"Unknown placeholder \{name.first\}"):
        factories.sub_campaign(channel="sms", message="Hi {name.first}", activate=False)
    from campaigns.models import render_message

    assert render_message("Hi {name} ({client_id})", name="Ana", client_id="A1") == "Hi Ana (A1)"


def _text_once(sub, now):
    """One dispatch and delivery of the sub-campaign's queued texts, at ``now``."""
    with time_machine.travel(now, tick=False):
        dialer.dispatch_sub_campaign(sub.pk, now=now)
        for state in DialState.objects.filter(sub_campaign=sub, status="dialing"):
            assert dialer.perform_attempt(state.pk, str(state.claim_token)) == "recorded"


def test_a_reply_lands_on_the_sub_campaign_that_texted_last(acme_one, settings):
    settings.SIMULATOR_REPLY_PERCENT = 0
    device = "+17135554190"
    listing = factories.contact_list([{"client_id": "R1", "phones": [device]}])
    with time_machine.travel(WORKDAY - dt.timedelta(hours=1), tick=False):
        # The later sub-campaign's states are made first: their rows are the older ones, so
        # a pick by the states' age, not by who texted, would choose the wrong one.
        later = factories.sub_campaign(listing, channel="sms", name="Texts second")
    with time_machine.travel(WORKDAY - dt.timedelta(minutes=30), tick=False):
        first = factories.sub_campaign(listing, channel="sms", name="Texts first")
    _text_once(first, WORKDAY)
    _text_once(later, WORKDAY + dt.timedelta(minutes=5))
    with time_machine.travel(WORKDAY + dt.timedelta(minutes=6), tick=False):
        reply = record_inbound_sms(device_key=device, to_address="55123", text="Who is this?")
    assert (reply.sub_campaign_id, reply.sub_campaign_name) == (later.pk, "Texts second")
    assert reply.direction == "inbound" and reply.client_id == "R1"
    # And the other way round once the first texts again: the reply follows the last text.
    DialState.objects.filter(sub_campaign=first).update(status="pending", next_attempt_at=None)
    _text_once(first, WORKDAY + dt.timedelta(minutes=10))
    with time_machine.travel(WORKDAY + dt.timedelta(minutes=11), tick=False):
        reply = record_inbound_sms(device_key=device, to_address="55123", text="Stop it")
    assert reply.sub_campaign_id == first.pk
