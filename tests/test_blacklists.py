"""Campaign blacklists: immediate removal and release across campaigns, extensions,
expiry, precedence in the gate, contacts arriving suppressed, auto-add rules, agent
dispositions and bulk import with errors by line."""

import datetime as dt
import io

import phonenumbers
import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context

from campaigns import dial_states, dialer
from campaigns.auto_rules import apply_auto_rules
from campaigns.blacklist_import import do_upload_blacklist, run_blacklist_import
from campaigns.blacklists import (
    do_add_entry,
    do_create_blacklist,
    do_remove_entry,
    do_set_blacklist_campaigns,
    release_expired,
)
from campaigns.dispositions import do_record_agent_disposition
from campaigns.models import Blacklist, BlacklistEntry, BlacklistImport, Campaign, DialState
from devices.actions import do_save_device_setting
from devices.keys import DeviceKeyError, normalize_phone, parse_phone_or_extension
from devices.models import Attempt, DeviceSetting
from devices.policy import DIAL, SUPPRESS, DialRequest, PolicyGate
from tests import factories

WORKDAY = dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC)
NUMBER = "+17135554301"
OTHER = "+17135554302"
PHONE, EXT = BlacklistEntry.Kind.PHONE, BlacklistEntry.Kind.EXTENSION


def _two_campaigns(devices=(NUMBER, OTHER)):
    """Two running campaigns whose lists hold the same people."""
    people = [{"client_id": f"C{i}", "phones": [d]} for i, d in enumerate(devices)]
    first = factories.sub_campaign(factories.contact_list(people))
    second = factories.sub_campaign(factories.contact_list(people))
    return first, second


def _status(sub, device=NUMBER):
    return DialState.objects.get(sub_campaign=sub, device_key=device).status


def test_adding_a_number_removes_it_at_once_from_every_campaign_using_the_list(personas):
    with tenant_context(personas.acct_a1):
        first, second = _two_campaigns()
        unrelated = factories.sub_campaign(factories.contact_list([{"phones": [NUMBER]}]))
        blacklist = do_create_blacklist(name="Opt-outs")
        do_set_blacklist_campaigns(blacklist, [first.campaign, second.campaign])
        added, suppressed = do_add_entry(blacklist, PHONE, NUMBER, reason="asked by phone",
                                         actor=personas.acct_admin)  # fmt: skip
        assert (added, suppressed) == (True, 2)
        assert _status(first) == _status(second) == "suppressed"
        assert _status(first, OTHER) == "pending"
        assert _status(unrelated) == "pending", "a campaign not using the list still dials"
        state = DialState.objects.get(sub_campaign=first, device_key=NUMBER)
        assert (state.last_rule, state.last_reason) == ("campaign_blacklist", "Opt-outs")
        assert state.last_rule_source == str(blacklist.pk)
        blacklist.refresh_from_db()
        assert blacklist.suppressed_count == 2 and blacklist.last_suppressed_at is not None
    rows = Attempt.objects.filter(account_id=personas.acct_a1.pk, device_key=NUMBER)
    assert sorted(rows.values_list("suppression_rule", flat=True)) == ["campaign_blacklist"] * 2
    assert set(rows.values_list("suppression_detail", flat=True)) == {"Opt-outs"}


def test_removing_the_entry_releases_only_what_no_other_list_holds(personas):
    with tenant_context(personas.acct_a1):
        first, second = _two_campaigns()
        opt_outs = do_create_blacklist(name="Opt-outs")
        disputes = do_create_blacklist(name="Disputes")
        do_set_blacklist_campaigns(opt_outs, [first.campaign, second.campaign])
        do_set_blacklist_campaigns(disputes, [second.campaign])
        do_add_entry(opt_outs, PHONE, NUMBER)
        do_add_entry(disputes, PHONE, NUMBER)
        released = do_remove_entry(BlacklistEntry.objects.get(blacklist=opt_outs))
        assert released == 1
        assert _status(first) == "pending"
        assert _status(second) == "suppressed", "the other list still holds it there"
        state = DialState.objects.get(sub_campaign=first, device_key=NUMBER)
        assert state.next_attempt_at is not None and "released" in state.last_reason


def test_attaching_a_list_to_a_running_campaign_suppresses_its_numbers(personas):
    with tenant_context(personas.acct_a1):
        first, _second = _two_campaigns()
        blacklist = do_create_blacklist(name="Wrong numbers")
        do_add_entry(blacklist, PHONE, NUMBER)
        assert _status(first) == "pending"
        suppressed, _ = do_set_blacklist_campaigns(blacklist, [first.campaign])
        assert suppressed == 1 and _status(first) == "suppressed"
        _, released = do_set_blacklist_campaigns(blacklist, [])
        assert released == 1 and _status(first) == "pending"


def test_contacts_imported_later_arrive_suppressed(personas):
    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(factories.contact_list([{"phones": [OTHER]}]))
        blacklist = do_create_blacklist(name="Opt-outs")
        do_set_blacklist_campaigns(blacklist, [sub.campaign])
        do_add_entry(blacklist, PHONE, NUMBER)
        later = factories.contact_list([{"client_id": "LATE", "phones": [NUMBER]}])
        sub.contact_lists.add(later)
        dial_states.sync(contact_list_ids=[later.pk])
        assert _status(sub) == "suppressed"
        assert _status(sub, OTHER) == "pending"


def test_extension_entries_stop_extensions(personas):
    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(factories.contact_list([{"phones": ["4321", "+17135554303"]}]))
        blacklist = do_create_blacklist(name="Internal")
        do_set_blacklist_campaigns(blacklist, [sub.campaign])
        device = parse_phone_or_extension(" 4321 ", "US")
        assert (device.kind, device.key) == (EXT, "4321")
        do_add_entry(blacklist, device.kind, device.key)
        assert _status(sub, "4321") == "suppressed"
        assert _status(sub, "+17135554303") == "pending"


def _gate(personas, campaign_id, when=WORKDAY, purpose="collections"):
    request = DialRequest(personas.acct_a1.pk, campaign_id, 1, purpose, "voice", NUMBER)
    return PolicyGate(personas.ent_a, when).decide_one(request)


def test_a_blacklist_beats_an_enterprise_allow_and_a_block_beats_both(personas):
    with tenant_context(personas.acct_a1):
        campaign = factories.sub_campaign(activate=False).campaign
        blacklist = do_create_blacklist(name="Opt-outs")
        do_set_blacklist_campaigns(blacklist, [campaign])
        assert _gate(personas, campaign.pk).action == DIAL
        do_add_entry(blacklist, PHONE, NUMBER, reason="wrong person")
        with time_machine.travel(WORKDAY - dt.timedelta(hours=1)):
            do_save_device_setting(personas.ent_a, NUMBER, DeviceSetting.Action.ALLOW)
        decision = _gate(personas, campaign.pk)
        assert (decision.action, decision.rule) == (SUPPRESS, "campaign_blacklist")
        assert decision.detail == "Opt-outs: wrong person"
        with time_machine.travel(WORKDAY - dt.timedelta(minutes=30)):
            do_save_device_setting(personas.ent_a, NUMBER, DeviceSetting.Action.BLOCK)
        assert _gate(personas, campaign.pk).rule == "device_block"
        other = factories.sub_campaign(activate=False).campaign
        Campaign.objects.filter(pk=other.pk)  # a campaign without the list
        do_save_device_setting(personas.ent_a, NUMBER, DeviceSetting.Action.CLEAR)
        assert _gate(personas, other.pk, when=dt.datetime.now(dt.UTC)).rule != "campaign_blacklist"


def test_an_expired_entry_stops_applying_and_releases_its_contacts(personas):
    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(factories.contact_list([{"phones": [NUMBER]}]))
        blacklist = do_create_blacklist(name="Cooling off")
        do_set_blacklist_campaigns(blacklist, [sub.campaign])
        expiry = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
        do_add_entry(blacklist, PHONE, NUMBER, expires_at=expiry)
        assert _status(sub) == "suppressed"
        before = _gate(personas, sub.campaign_id, when=expiry - dt.timedelta(minutes=1))
        assert before.rule == "campaign_blacklist"
        after = _gate(personas, sub.campaign_id, when=expiry + dt.timedelta(minutes=1))
        assert after.rule != "campaign_blacklist"
        assert release_expired(now=expiry + dt.timedelta(minutes=1)) == 1
        assert _status(sub) == "pending"
        assert not BlacklistEntry.objects.filter(blacklist=blacklist).exists()


def test_the_dispatcher_suppresses_and_counts_per_list(personas):
    with tenant_context(personas.acct_a1), time_machine.travel(WORKDAY, tick=False):
        sub = factories.sub_campaign(factories.contact_list([{"phones": [NUMBER]}]))
        blacklist = do_create_blacklist(name="Opt-outs")
        blacklist.campaigns.add(sub.campaign)  # attached behind the actions' back
        BlacklistEntry.objects.create(blacklist=blacklist, kind=PHONE, device_key=NUMBER,
                                      source="manual")  # fmt: skip
        report = dialer.dispatch_sub_campaign(sub.pk)
        assert report.reasons == {"campaign_blacklist": 1}
        blacklist.refresh_from_db()
        assert blacklist.suppressed_count == 1


def _finish(sub, disposition, device=NUMBER):
    """One finished attempt with this result in the ledger."""
    state = DialState.objects.get(sub_campaign=sub, device_key=device)
    row = dial_states.ledger_row(sub, state, disposition=disposition, attempt_number=1)
    row.save()
    return row


def test_auto_add_after_consecutive_unanswered_attempts(personas):
    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(factories.contact_list([{"phones": [NUMBER]}]))
        target = do_create_blacklist(name="Never answers")
        Campaign.objects.filter(pk=sub.campaign_id).update(
            auto_blacklist=target, auto_unanswered_after=3
        )
        _finish(sub, "NO_ANSWER")
        _finish(sub, "ANSWERED")
        _finish(sub, "NO_ANSWER")
        _finish(sub, "NO_ANSWER")
        assert apply_auto_rules([(sub.campaign_id, NUMBER, "NO_ANSWER")]) == 0
        _finish(sub, "NO_ANSWER")
        assert apply_auto_rules([(sub.campaign_id, NUMBER, "NO_ANSWER")]) == 1
        entry = BlacklistEntry.objects.get(blacklist=target)
        assert entry.source == "auto_rule" and "3 consecutive unanswered" in entry.reason


def test_a_wrong_number_result_feeds_the_rule_and_do_not_call_blocks(personas):
    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(
            factories.contact_list([{"client_id": "W", "phones": [NUMBER, OTHER]}])
        )
        target = do_create_blacklist(name="Wrong numbers")
        Campaign.objects.filter(pk=sub.campaign_id).update(
            auto_blacklist=target, auto_on_wrong_number=True
        )
        assert apply_auto_rules([(sub.campaign_id, NUMBER, "WRONG_NUMBER")]) == 1
        contact = DialState.objects.get(sub_campaign=sub, device_key=OTHER).contact
        attempt = _finish(sub, "ANSWERED", device=OTHER)
        do_record_agent_disposition(contact, attempt, "do_not_call", "asked twice",
                                    actor=personas.agent)  # fmt: skip
    setting = DeviceSetting.objects.get(enterprise=personas.ent_a, device_key=OTHER)
    assert (setting.action, setting.source, setting.reason) == ("block", "agent_dnc", "asked twice")


@pytest.mark.parametrize(
    "value",
    ["713 555 4101", "(713) 555-4101", "+1 713 555 4101", "17135554101", "7135554101",
     "001 713 555 4101"],
)  # fmt: skip
def test_the_fast_path_agrees_with_phonenumbers_us(value):
    device = parse_phone_or_extension(value, "US")
    assert (device.kind, device.key) == (PHONE, normalize_phone(value, "US"))


@pytest.mark.parametrize(
    "value",
    ["(11) 91234-5678", "11912345678", "5511912345678", "+55 11 91234-5678", "1132345678",
     "+55 21 3234-5678"],
)  # fmt: skip
def test_the_fast_path_agrees_with_phonenumbers_br(value):
    device = parse_phone_or_extension(value, "BR")
    assert (device.kind, device.key) == (PHONE, normalize_phone(value, "BR"))


def test_random_numbers_agree_with_phonenumbers():
    for region in ("US", "BR"):
        for n in range(300):
            example = phonenumbers.example_number_for_type(region, n % 2)
            number = phonenumbers.national_significant_number(example)
            value = str(int(number) + n * 7919)
            try:
                expected = normalize_phone(value, region)
            except DeviceKeyError:
                continue
            assert parse_phone_or_extension(value, region).key == expected


@pytest.mark.parametrize("bad", ["1", "12345678901234567", "abc", "713 555", "+99 123"])
def test_bad_values_are_refused_with_a_message(bad):
    with pytest.raises(DeviceKeyError) as info:
        parse_phone_or_extension(bad, "US")
    assert str(info.value)


def _upload(personas, blacklist, content: bytes, name="numbers.csv"):
    return do_upload_blacklist(
        blacklist, SimpleUploadedFile(name, content), reason="file", actor=personas.acct_admin
    )


def test_import_reports_bad_lines_keeps_good_ones_and_ignores_duplicates(personas):
    content = (
        b"number,reason\n"
        b"713 555 4101,asked\n"
        b"not a number,x\n"
        b"(713) 555-4101,again\n"  # the same number: a duplicate
        b"4321,\n"
        b"\n"
        b"713 555,short\n"
        b"+55 11 91234-5678,\n"
    )
    with tenant_context(personas.acct_a1):
        blacklist = do_create_blacklist(name="Imported")
        BlacklistEntry.objects.create(blacklist=blacklist, kind=PHONE, device_key="+5511912345678",
                                      source="manual")  # fmt: skip
        job = _upload(personas, blacklist, content)
        assert job.status == BlacklistImport.Status.DONE
        assert (job.lines_read, job.added, job.duplicates, job.rejected) == (6, 2, 2, 2)
        assert [line for line, _reason, _raw in job.issues] == [3, 7]
        assert "too short" in job.issues[1][1]
        entries = dict(BlacklistEntry.objects.filter(blacklist=blacklist)
                       .values_list("device_key", "reason"))  # fmt: skip
    assert entries == {"+17135554101": "asked", "4321": "file", "+5511912345678": ""}


def test_plain_text_import_without_header(personas):
    with tenant_context(personas.acct_a1):
        blacklist = do_create_blacklist(name="Plain")
        job = _upload(personas, blacklist, b"7135554101\r\n7135554102\r\n", name="list.txt")
        assert (job.added, job.rejected) == (2, 0)


def test_an_import_that_matches_queued_contacts_suppresses_them(personas):
    with tenant_context(personas.acct_a1):
        first, second = _two_campaigns()
        blacklist = do_create_blacklist(name="Opt-outs")
        do_set_blacklist_campaigns(blacklist, [first.campaign, second.campaign])
        job = _upload(personas, blacklist, f"{NUMBER}\n".encode())
        assert job.added == 1
        assert _status(first) == _status(second) == "suppressed"


@pytest.mark.worker
def test_a_large_import_runs_in_the_worker_with_progress(committed, celery_worker):
    import time
    import uuid

    from accounts.models import Account, User

    admin = User.objects.get(email="acct.admin@acme.test")
    lines = "\n".join(f"713{n:07d}" for n in range(2_000_000, 2_030_000)).encode()
    with tenant_context(Account.objects.get(slug="acme-two")):
        blacklist = do_create_blacklist(name=f"Large import {uuid.uuid4().hex[:6]}")
        try:
            job = do_upload_blacklist(blacklist, SimpleUploadedFile("big.txt", lines), actor=admin)
            assert job.status == BlacklistImport.Status.QUEUED
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                job.refresh_from_db()
                if job.status in ("done", "failed"):
                    break
                time.sleep(0.2)
            assert (job.status, job.added, job.rejected) == ("done", 30_000, 0), job.error
            assert BlacklistEntry.objects.filter(blacklist=blacklist).count() == 30_000
        finally:
            Blacklist.objects.filter(pk=blacklist.pk).delete()


def test_a_file_over_the_line_limit_keeps_the_first_lines(personas, settings):
    from campaigns import blacklist_import

    with tenant_context(personas.acct_a1):
        blacklist = do_create_blacklist(name="Limit")
        job = BlacklistImport.objects.create(blacklist=blacklist, file_name="x", upload_path="x")
        old = blacklist_import.MAX_LINES
        blacklist_import.MAX_LINES = 3
        try:
            data = b"7135554101\n7135554102\n7135554103\n7135554104\n"
            reader = blacklist_import._Reader(io.BytesIO(data), "US")
            blacklist_import._import(job, reader)
        finally:
            blacklist_import.MAX_LINES = old
        assert job.added == 3 and "more than 3 lines" in job.error
        assert run_blacklist_import(999999) is None


def test_the_demo_campaign_uses_a_blacklist(personas):
    from campaigns.demo import load_demo_campaigns

    assert load_demo_campaigns(personas.acct_a2, size=30)
    with tenant_context(personas.acct_a2):
        blacklist = Blacklist.objects.get(name="Do not call (demo)")
        assert blacklist.entries.count() == 3
        suppressed = DialState.objects.filter(status="suppressed").count()
        assert suppressed >= 2  # their voice and SMS states left the pending contacts
