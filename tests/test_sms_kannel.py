"""SMS through real Kannel (bearerbox + smsbox) and an SMPP carrier (tests.carriers.smsc):
texts go out by sendsms, delivery reports and replies come back to the portal's endpoints
(a live server), and a STOP from a handset blocks the device like any opt-out."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client, override_settings
from django_tenants.utils import tenant_context

from accounts.actions import do_add_membership
from accounts.models import Role, User
from campaigns import dialer
from campaigns.actions import do_create_campaign
from campaigns.models import DialState, SubCampaign
from devices.models import Attempt, DeviceSetting
from tests import factories
from tests.carriers import kannel as kannel_stack
from tests.carriers.kannel import SENDSMS_PASSWORD, SENDSMS_USER, installed
from tests.helpers import wait_for

pytestmark = pytest.mark.carrier

SECRET = "kannel-callbacks-test-secret"
DELIVERED, UNDELIVERABLE, REJECTED = "+17135554101", "+17135554100", "+17135554109"


@pytest.fixture(scope="module")
def kannel(tmp_path_factory, live_server_url):
    if not installed():
        pytest.skip("missing program: bearerbox/smsbox (apt-get install kannel; .ci/run does)")
    stack = kannel_stack.for_portal(tmp_path_factory.mktemp("kannel"), live_server_url, SECRET)
    yield stack
    stack.stop()


@pytest.fixture
def via_kannel(kannel, live_server_url, tasks_held):
    """The SMS gateway is Kannel, which reports back to the live server. The dialer's tasks
    run here, not in the session's worker, which has the simulator as its gateway."""
    gateways = {**settings.DIALER_GATEWAYS, "sms": "campaigns.kannel.KannelGateway"}
    with override_settings(
        PORTAL_BASE_URL=live_server_url.replace("localhost", "127.0.0.1"),
        KANNEL_SENDSMS_URL=kannel.sendsms_url, KANNEL_USERNAME=SENDSMS_USER,
        KANNEL_PASSWORD=SENDSMS_PASSWORD, KANNEL_CALLBACK_SECRET=SECRET,
        DIALER_GATEWAYS=gateways,
    ):  # fmt: skip
        yield kannel


def _send(account, phones: list[str], message: str = "Hi {name}", **fields):
    """An SMS sub-campaign in the account texts each phone once, through the dialer."""
    people = [{"client_id": f"K{n}", "name": f"Person {n}", "phones": [p]}
              for n, p in enumerate(phones)]  # fmt: skip
    with tenant_context(account):
        sub = factories.sub_campaign(
            factories.contact_list(people), channel="sms", message=message, max_attempts=2,
            **fields,
        )  # fmt: skip
        dialer.dispatch_sub_campaign(sub.pk)
        for state in DialState.objects.filter(sub_campaign=sub, status="dialing"):
            dialer.perform_attempt(state.pk, str(state.claim_token))
    return sub


def _results(account, sub) -> dict[str, Attempt]:
    rows = Attempt.objects.filter(
        account_id=account.pk, sub_campaign_id=sub.pk, direction="outbound"
    )
    return {row.device_key: row for row in rows}


def test_delivery_reports_reach_the_ledger_and_the_trace(via_kannel, open_all_day_account):
    account = open_all_day_account
    sub = _send(account, [DELIVERED, UNDELIVERABLE, REJECTED], message="Olá {name}, ação pendente")
    finals = {"DELIVERED", "UNDELIVERED", "REJECTED"}

    def settled():
        rows = _results(account, sub)
        return rows if {r.disposition for r in rows.values()} == finals else None

    rows = wait_for(settled)
    assert rows, {k: r.disposition for k, r in _results(account, sub).items()}
    assert rows[DELIVERED].disposition == "DELIVERED"
    assert "stat:UNDELIV err:001" in rows[UNDELIVERABLE].carrier_answer
    assert "Invalid Destination Address" in rows[REJECTED].carrier_answer
    # Portuguese went out as UCS-2, whole: the carrier got exactly what was written.
    sent = [pdu for pdu in via_kannel.submitted() if pdu["dst"].endswith("7135554101")]
    assert sent[-1]["data_coding"] == 8 and sent[-1]["text"] == "Olá Person 0, ação pendente"
    # The enterprise's trace shows the carrier's words.
    admin = User.objects.create_user(f"trace-{account.slug}@acme.test", "pw-1234567890")
    do_add_membership(admin, account.enterprise, Role.ENTERPRISE_ADMIN)
    client = Client()
    client.force_login(admin)
    searched = client.post(
        f"/enterprises/{account.enterprise_id}/devices/",
        {"criteria": "device", "value": UNDELIVERABLE},
    )
    page = client.get(searched["Location"]).content.decode()
    assert "Undelivered" in page and "stat:UNDELIV err:001" in page


@pytest.mark.parametrize(("word", "coding"), [("STOP", 0), ("Pare.", 8)])
def test_a_stop_from_the_handset_blocks_the_device_and_cancels_what_is_queued(
    via_kannel, open_all_day_account, word, coding
):
    account = open_all_day_account
    first = _send(account, [DELIVERED])
    wait_for(lambda: _results(account, first)[DELIVERED].disposition == "DELIVERED")
    with tenant_context(account):  # another sub-campaign has the same person queued
        queued = factories.sub_campaign(
            factories.contact_list([{"client_id": "Q", "phones": [DELIVERED]}]), channel="sms"
        )
    via_kannel.reply(DELIVERED.lstrip("+"), word, coding=coding)  # TON 1: Kannel adds the +
    setting = wait_for(
        lambda: DeviceSetting.objects.filter(
            enterprise_id=account.enterprise_id, device_key=DELIVERED
        ).first()
    )
    assert setting is not None and (setting.action, setting.source) == ("block", "sms_opt_out")
    assert word in setting.reason
    reply = Attempt.objects.get(account_id=account.pk, direction="inbound", device_key=DELIVERED)
    assert (reply.message, reply.sub_campaign_id) == (word, first.pk)
    with tenant_context(account):
        state = DialState.objects.get(sub_campaign=queued)
    assert (state.status, state.last_rule) == ("suppressed", "device_block")


def test_kannel_down_at_send_time_is_retried_by_the_rules_and_sent_once(
    via_kannel, open_all_day_account
):
    account = open_all_day_account
    number = "+17135554131"
    via_kannel.stop_kannel()
    try:
        sub = _send(account, [number], retry_minutes={"FAILED": 0})
        row = _results(account, sub)[number]
        assert (row.disposition, row.carrier_answer) == ("FAILED", "sendsms: gateway unreachable")
    finally:
        via_kannel.start_kannel()
    with tenant_context(account):  # the retry, once Kannel is back
        dialer.dispatch_sub_campaign(sub.pk)
        for state in DialState.objects.filter(sub_campaign=sub, status="dialing"):
            dialer.perform_attempt(state.pk, str(state.claim_token))
    rows = Attempt.objects.filter(account_id=account.pk, device_key=number).order_by("id")
    assert wait_for(lambda: rows.last().disposition == "DELIVERED")
    assert [r.disposition for r in rows] == ["FAILED", "DELIVERED"]
    sent = [pdu for pdu in via_kannel.submitted() if pdu["dst"].endswith(number[1:])]
    assert len(sent) == 1, "the carrier got the text once"


def test_a_text_longer_than_ten_parts_is_refused_with_its_limit(personas):
    """Checked where it is written (the sub-campaign), not found out at the carrier."""
    with tenant_context(personas.acct_a1):
        base = {"channel": "sms", "sms_source_address": "55123", "sms_source_type": "short_code",
                "name": "Long", "purpose": "collections", "pacing_per_minute": 60}  # fmt: skip
        fine = SubCampaign(campaign=do_create_campaign(name="Long"), message="x" * 1530, **base)
        fine.full_clean(exclude=["campaign"])
        with pytest.raises(ValidationError) as refused:
            SubCampaign(campaign=fine.campaign, message="ç" * 671, **base).full_clean(
                exclude=["campaign"]
            )
    text = " ".join(refused.value.message_dict["message"])
    assert "11 SMS parts" in text and "670 characters" in text
