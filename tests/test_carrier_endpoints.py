"""The endpoints carriers call, without a carrier: who may call them, what they refuse (a
4xx saying why, never a 500), and what they change only once."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns import dial_states, kannel
from campaigns.models import DialState
from devices import sms_routes
from devices.ledger import stamp
from devices.models import Attempt, DeviceSetting, InboundReceipt
from tests import factories

SECRET = "endpoint-test-secret"
DEVICE = "+17135554161"


@pytest.fixture(autouse=True)
def _secret(settings):
    settings.KANNEL_CALLBACK_SECRET = SECRET


def _sent(personas, disposition="SENT"):
    """An SMS attempt of acct_a1 recorded as handed to the carrier; (row, state)."""
    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(
            factories.contact_list([{"client_id": "D1", "phones": [DEVICE]}]), channel="sms"
        )
        state = DialState.objects.get(sub_campaign=sub)
        row = dial_states.ledger_row(
            sub, state, disposition=disposition, attempt_number=1, source_address="55123",
            completed_at=timezone.now(),
        )  # fmt: skip
        row.save()
        DialState.objects.filter(pk=state.pk).update(
            status="done", attempts=1, last_disposition=disposition
        )
        sms_routes.remember(personas.acct_a1.pk, [("55123", DEVICE)], timezone.now())
    return row, state


def _dlr(row, kind: int, *, answer: str = "", slug: str = "acme-one", sig: str | None = None,
         ip: str = "127.0.0.1", **extra):  # fmt: skip
    at = stamp(row.attempted_at)
    sig = sig if sig is not None else kannel.signature(slug, row.pk, at)
    query = {"attempt": row.pk, "at": at, "type": kind, "answer": answer, "sig": sig, **extra}
    return Client(REMOTE_ADDR=ip).get(f"/a/{slug}/carrier/kannel/dlr/", query)


def test_a_report_updates_the_row_and_a_late_intermediate_one_changes_nothing(personas):
    row, _state = _sent(personas)
    assert _dlr(row, 1, answer="id:1 stat:DELIVRD err:000").status_code == 200
    assert _dlr(row, 8, answer="ACK/").status_code == 200  # smsbox's retry, after the final
    row.refresh_from_db()
    assert (row.disposition, row.carrier_answer) == ("DELIVERED", "id:1 stat:DELIVRD err:000")


def test_an_undeliverable_report_queues_a_retry_under_the_sub_campaigns_rules(personas):
    row, state = _sent(personas)
    assert _dlr(row, 2, answer="stat:UNDELIV err:001").status_code == 200
    with tenant_context(personas.acct_a1):
        state.refresh_from_db()
    assert (state.status, state.last_disposition) == ("pending", "UNDELIVERED")
    assert state.next_attempt_at > timezone.now() + dt.timedelta(minutes=200)  # 240 min wait


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"sig": "0" * 32}, 403, "bad signature"),
        ({"ip": "10.9.8.7"}, 403, "address not allowed"),
        # Signed for another account of the enterprise: that account has no such attempt.
        ({"slug": "acme-two"}, 404, "no such attempt in this account"),
        ({"attempt": "12x"}, 400, "whole numbers"),
        ({"type": "3"}, 400, "unknown report type"),
    ],
)
def test_a_report_that_is_not_ours_or_is_malformed_is_refused(personas, change, status, reason):
    row, _state = _sent(personas)
    if "attempt" in change:
        response = Client().get(
            "/a/acme-one/carrier/kannel/dlr/", {"attempt": change["attempt"], "at": "1", "type": 1}
        )
    else:
        kind = int(change.pop("type", 1))
        response = _dlr(row, kind, **change)
    assert response.status_code == status and reason in response.content.decode()
    row.refresh_from_db()
    assert row.disposition == "SENT"


def test_a_report_for_an_attempt_this_account_does_not_have_is_404(personas):
    row, _state = _sent(personas)
    row.pk += 10_000  # a signed id that is not there
    assert _dlr(row, 1).status_code == 404


def _mo(**params):
    query = {"key": SECRET, "from": DEVICE, "to": "55123", "text": "STOP", "id": "k-1", **params}
    return Client().get("/carrier/kannel/mo/", query)


def test_a_reply_is_recorded_once_by_kannels_id(personas):
    _sent(personas)
    assert _mo().status_code == 200
    again = _mo()  # smsbox resending the same reply (same %I)
    assert again.status_code == 200 and "duplicate" in again.content.decode()
    replies = Attempt.objects.filter(account_id=personas.acct_a1.pk, direction="inbound")
    assert replies.count() == 1 and replies.get().message == "STOP"
    assert DeviceSetting.objects.filter(device_key=DEVICE, source="sms_opt_out").count() == 1
    assert InboundReceipt.objects.filter(source="kannel_mo", external_id="k-1").exists()


@pytest.mark.parametrize("sender", ["17135554161", "+17135554161", "7135554161"])
def test_the_sender_is_found_however_the_carrier_wrote_it(personas, sender):
    _sent(personas)
    assert _mo(**{"from": sender, "id": f"k-{sender}", "text": "hello"}).status_code == 200
    reply = Attempt.objects.get(account_id=personas.acct_a1.pk, direction="inbound")
    assert reply.device_key == DEVICE


def test_a_reply_from_a_number_no_account_texted_is_accepted_and_ignored(personas):
    response = _mo(**{"from": "+17135554999", "id": "k-nobody"})
    assert response.status_code == 202
    assert not Attempt.objects.filter(direction="inbound").exists()


@pytest.mark.parametrize(
    ("params", "status"),
    [({"key": "wrong"}, 403), ({"from": ""}, 400), ({"id": ""}, 400)],
)
def test_a_reply_without_the_key_or_its_fields_is_refused(personas, params, status):
    _sent(personas)
    assert _mo(**params).status_code == status
    assert not Attempt.objects.filter(direction="inbound").exists()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fields=st.dictionaries(
        st.sampled_from(["attempt", "at", "sig", "type", "answer", "from", "to", "text", "id",
                         "ts", "key"]),
        st.text(max_size=40),
    )
)  # fmt: skip
def test_hostile_input_is_a_4xx_never_a_500(personas, fields):
    for path in ("/a/acme-one/carrier/kannel/dlr/", "/carrier/kannel/mo/"):
        response = Client(raise_request_exception=False).get(path, fields)
        assert response.status_code < 500, (path, fields)
    response = Client(raise_request_exception=False).get(
        "/carrier/kannel/mo/", {**fields, "key": SECRET, "id": "x", "from": "1", "to": "2"}
    )
    assert response.status_code < 500


def test_a_reply_time_within_the_last_second_is_taken_from_our_clock():
    """Kannel's %t has whole seconds: a STOP sent in the same second as the text it answers
    must not be listed before it, so the receipt's own time is used then."""
    import datetime as dt

    from django.utils import timezone

    from campaigns.carrier_views import _timestamp

    now = timezone.now()
    assert _timestamp(str(int(now.timestamp()))) is None  # this very second: our clock
    earlier = (now - dt.timedelta(seconds=90)).replace(microsecond=0)
    assert _timestamp(earlier.strftime("%Y-%m-%d %H:%M:%S")) == earlier
    assert _timestamp("not a time") is None
