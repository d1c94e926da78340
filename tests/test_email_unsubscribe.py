"""Email unsubscribe, one click (RFC 8058): the headers every campaign email carries, the
POST that blocks the address for the whole enterprise, the GET that only asks, and the
links that are refused (changed, replayed, too old)."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlparse

import time_machine
from django.test import Client
from django_tenants.utils import tenant_context

from campaigns import dialer
from campaigns.models import DialState
from devices.models import DeviceSetting, InboundReceipt
from devices.unsubscribe import make_token
from tests import factories

EMAIL = "jane.doe@example.com"
WORKDAY = dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC)


def _send_one(account, email=EMAIL):
    """An email sub-campaign in the account sends one message through the dialer."""
    with tenant_context(account):
        sub = factories.sub_campaign(
            factories.contact_list([{"client_id": "E1", "name": "Jane", "email": email}]),
            channel="email",
        )
        dialer.dispatch_sub_campaign(sub.pk)
        state = DialState.objects.get(sub_campaign=sub)
        assert dialer.perform_attempt(state.pk, str(state.claim_token)) == "recorded"
        return sub


def _link(message) -> str:
    return re.fullmatch(r"<(.+)>", message.extra_headers["List-Unsubscribe"]).group(1)


def _path(url: str) -> str:
    return urlparse(url).path


def test_every_campaign_email_carries_a_one_click_unsubscribe(personas, mailoutbox):
    _send_one(personas.acct_a1)
    (message,) = mailoutbox
    url = _link(message)
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert url.startswith("http") and "/u/" in url
    assert url in message.body, "the link is in the body too, for people"


def test_a_one_click_post_blocks_the_address_in_every_account(personas, mailoutbox):
    _send_one(personas.acct_a1)
    with tenant_context(personas.acct_a2):  # another account of the enterprise queues it too
        other = factories.sub_campaign(
            factories.contact_list([{"client_id": "E9", "email": EMAIL}]), channel="email"
        )
    client = Client(enforce_csrf_checks=True)  # a mail client: no session, no CSRF token
    response = client.post(
        _path(_link(mailoutbox[0])),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert 'data-testid="unsubscribe-done"' in response.content.decode()
    setting = DeviceSetting.objects.get(enterprise=personas.ent_a, device_key=EMAIL)
    assert (setting.action, setting.source) == ("block", "email_unsub")
    with tenant_context(personas.acct_a2):
        state = DialState.objects.get(sub_campaign=other)
        assert (state.status, state.last_rule) == ("suppressed", "device_block")
    assert not DeviceSetting.objects.filter(enterprise=personas.ent_b).exists()


def test_a_get_only_asks_and_speaks_the_recipients_language(personas, mailoutbox):
    _send_one(personas.acct_a1)
    path = _path(_link(mailoutbox[0]))
    page = Client().get(path, HTTP_ACCEPT_LANGUAGE="pt-BR")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'data-testid="unsubscribe-confirm"' in body
    assert "Cancelar inscrição" in body or "Descadastrar" in body
    assert "j•••@example.com" in body and EMAIL not in body
    assert not DeviceSetting.objects.filter(device_key=EMAIL).exists(), "a GET changes nothing"
    # The page's own button does it.
    done = Client().post(path, {"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    assert DeviceSetting.objects.filter(device_key=EMAIL, action="block").count() == 1


def test_a_changed_token_is_refused(personas, mailoutbox):
    _send_one(personas.acct_a1)
    path = _path(_link(mailoutbox[0]))
    token = path.rstrip("/").rsplit("/", 1)[1]
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    forged = make_token(personas.ent_a.pk, "someone.else@example.com", 1)[:-2] + token[-2:]
    for bad in (flipped, forged, "not-a-token"):
        response = Client().post(f"/u/{bad}/", {"List-Unsubscribe": "One-Click"})
        assert response.status_code == 400
        assert 'data-testid="unsubscribe-invalid"' in response.content.decode()
    assert not DeviceSetting.objects.filter(enterprise=personas.ent_a).exists()


def test_a_replayed_click_changes_nothing_twice(personas, mailoutbox):
    _send_one(personas.acct_a1)
    path = _path(_link(mailoutbox[0]))
    assert Client().post(path, {"List-Unsubscribe": "One-Click"}).status_code == 200
    again = Client().post(path, {"List-Unsubscribe": "One-Click"})
    assert again.status_code == 409
    assert 'data-testid="unsubscribe-used"' in again.content.decode()
    assert DeviceSetting.objects.filter(device_key=EMAIL).count() == 1
    assert InboundReceipt.objects.filter(source="email_unsub").count() == 1


def test_a_link_older_than_six_months_is_refused(personas):
    token = make_token(personas.ent_a.pk, EMAIL, 42)
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(days=181)):
        response = Client().post(f"/u/{token}/", {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 400
    assert not DeviceSetting.objects.filter(device_key=EMAIL).exists()
