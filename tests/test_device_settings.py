"""Device settings in the gate (block, allow, expiry, latest wins), SMS opt-outs in both
languages, and a block cancelling queued attempts in every account of the enterprise."""

import datetime as dt

import pytest
import time_machine
from django_tenants.utils import tenant_context

from campaigns import dialer
from campaigns.inbound import record_inbound_sms
from campaigns.models import DialState
from devices.actions import do_save_device_setting
from devices.models import Attempt, DeviceSetting
from devices.policy import DIAL, SUPPRESS, DialRequest, PolicyGate
from tests import factories

WORKDAY = dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC)
DEVICE = "+17135554190"
BLOCK, ALLOW, CLEAR = (DeviceSetting.Action.BLOCK, DeviceSetting.Action.ALLOW,
                       DeviceSetting.Action.CLEAR)  # fmt: skip


def _decide(personas, when=WORKDAY):
    request = DialRequest(personas.acct_a1.pk, 1, 1, "collections", "voice", DEVICE)
    return PolicyGate(personas.ent_a, when).decide_one(request)


@pytest.mark.parametrize(
    ("settings_in_order", "expected"),
    [
        ([], DIAL),
        ([BLOCK], SUPPRESS),
        ([ALLOW], DIAL),
        ([BLOCK, ALLOW], DIAL),  # the latest setting wins
        ([ALLOW, BLOCK], SUPPRESS),
        ([BLOCK, CLEAR], DIAL),
    ],
)
def test_latest_setting_wins(personas, settings_in_order, expected):
    with time_machine.travel(WORKDAY - dt.timedelta(days=1), tick=True):
        for action in settings_in_order:
            do_save_device_setting(personas.ent_a, DEVICE, action)
    decision = _decide(personas)
    assert decision.action == expected
    if expected == SUPPRESS:
        assert decision.rule == "device_block"


def test_an_expired_block_stops_applying_at_its_expiry(personas):
    do_save_device_setting(personas.ent_a, DEVICE, BLOCK, reason="dispute",
                           expires_at=WORKDAY + dt.timedelta(hours=1))  # fmt: skip
    assert _decide(personas, WORKDAY).action == SUPPRESS
    assert _decide(personas, WORKDAY + dt.timedelta(hours=1)).action == DIAL


def test_a_block_belongs_to_its_enterprise_only(personas):
    do_save_device_setting(personas.ent_b, DEVICE, BLOCK)
    assert _decide(personas).action == DIAL


@pytest.mark.parametrize(
    ("reply", "action"),
    [
        ("STOP", BLOCK), ("Stop.", BLOCK), (" stopall ", BLOCK), ("UNSUBSCRIBE", BLOCK),
        ("cancel", BLOCK), ("End!", BLOCK), ("quit", BLOCK), ("Revoke", BLOCK),
        ("OPT-OUT", BLOCK), (" pare ", BLOCK), ("Sair.", BLOCK), ("CANCELAR", BLOCK),
        ("descadastrar!", BLOCK), ("START", ALLOW), ("unstop", ALLOW), ("Voltar", ALLOW),
        ("Stop calling me at work", None), ("Vou pagar amanhã", None),
    ],
)  # fmt: skip
def test_sms_keywords_in_both_languages(personas, reply, action):
    with tenant_context(personas.acct_a1):
        record_inbound_sms(device_key=DEVICE, to_address="55123", text=reply)
    setting = DeviceSetting.objects.filter(enterprise=personas.ent_a, device_key=DEVICE).first()
    if action is None:
        assert setting is None
    else:
        assert setting.action == action
        expected = "sms_opt_out" if action == BLOCK else "sms_opt_in"
        assert setting.source == expected


def test_an_opt_out_stops_the_next_attempt(personas):
    with tenant_context(personas.acct_a1), time_machine.travel(WORKDAY, tick=False):
        sub = factories.sub_campaign(
            factories.contact_list([{"client_id": "OPT", "phones": [DEVICE]}]),
            channel="sms", max_attempts=3, retry_minutes={"UNDELIVERED": 0, "FAILED": 0},
        )  # fmt: skip
        record_inbound_sms(device_key=DEVICE, to_address="55123", text="Pare.")
        report = dialer.dispatch_sub_campaign(sub.pk)
        assert DialState.objects.get(sub_campaign=sub).status == "suppressed"
    assert report.claimed == 0, "the opt-out cancelled the queued attempt before any dispatch"
    rows = Attempt.objects.filter(account_id=personas.acct_a1.pk, sub_campaign_id=sub.pk)
    assert sorted(rows.values_list("disposition", flat=True)) == ["RECEIVED", "SUPPRESSED"]
    row = rows.get(disposition="SUPPRESSED")
    assert row.suppression_rule == "device_block"
    assert "SMS opt-out" in row.suppression_detail


def test_saving_a_block_cancels_queued_attempts_in_every_account(personas):
    subs = {}
    for account in (personas.acct_a1, personas.acct_a2, personas.acct_b1):
        with tenant_context(account), time_machine.travel(WORKDAY, tick=False):
            subs[account.slug] = factories.sub_campaign(
                factories.contact_list([{"client_id": f"Q-{account.slug}", "phones": [DEVICE]}])
            )
    with tenant_context(personas.acct_a1), time_machine.travel(WORKDAY, tick=False):
        dialer.dispatch_sub_campaign(subs["acme-one"].pk)  # one of them already claimed
    do_save_device_setting(personas.ent_a, DEVICE, BLOCK, reason="asked by phone",
                           actor=personas.ent_admin)  # fmt: skip
    for slug, account in (("acme-one", personas.acct_a1), ("acme-two", personas.acct_a2)):
        with tenant_context(account):
            state = DialState.objects.get(sub_campaign=subs[slug])
        assert state.status == "suppressed" and state.last_rule == "device_block"
        row = Attempt.objects.get(account_id=account.pk, sub_campaign_id=subs[slug].pk)
        assert (row.disposition, row.suppression_rule) == ("SUPPRESSED", "device_block")
    with tenant_context(personas.acct_b1):  # another enterprise: untouched
        assert DialState.objects.get(sub_campaign=subs["bor-one"]).status == "pending"
    # The claimed one's task arrives after the block: nothing is dialled.
    with tenant_context(personas.acct_a1):
        assert not DialState.objects.filter(status="dialing").exists()
    assert not Attempt.objects.filter(device_key=DEVICE).exclude(disposition="SUPPRESSED").exists()
