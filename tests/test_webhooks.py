"""Outbound webhooks: subscriptions (SSRF refused), events written with the change they
report, signed deliveries to a real HTTP receiver, retries, a receiver down, the pages."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts import webhooks
from accounts.models import WebhookDelivery, WebhookSubscription
from campaigns.blacklists import do_add_entry, do_create_blacklist
from devices.actions import do_save_device_setting
from devices.models import Registry
from devices.opt_outs import honour_keyword
from devices.registry.freshness import announce_stale
from tests.helpers import WebhookReceiver, client_for

HOUSTON = "+17135554101"


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    found = WebhookReceiver()
    yield found
    found.stop()


def _subscribe(personas, url, events=None):
    return webhooks.do_subscribe(personas.ent_a, url, events or list(webhooks.EVENTS.values),
                                 actor=personas.ent_admin)  # fmt: skip


def _verify(subscription, request) -> dict:
    header = request["headers"]["X-Portal-Signature"]
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(subscription.secret.encode(), f"{parts['t']}.".encode() + request["body"],
                        hashlib.sha256).hexdigest()  # fmt: skip
    assert hmac.compare_digest(parts["v1"], expected), "signed with the subscription's secret"
    assert abs(int(parts["t"]) - time.time()) < 60
    return json.loads(request["body"])


REFUSED = [
    "http://127.0.0.1:8000/x",
    "http://localhost/x",
    "http://10.1.2.3/x",
    "http://169.254.169.254/latest",
    "ftp://example.com/x",
    "http://user:pw@example.com/x",
]


@pytest.mark.parametrize("url", REFUSED)
def test_urls_the_portal_must_not_call_are_refused(personas, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    with pytest.raises(ValidationError):
        _subscribe(personas, url)
    assert not WebhookSubscription.objects.exists()


def test_a_block_is_delivered_signed_to_the_receiver(personas, receiver):
    subscription = _subscribe(personas, receiver.url, ["device.blocked"])
    do_save_device_setting(personas.ent_a, HOUSTON, "block", reason="Cease letter")
    do_save_device_setting(personas.ent_a, "+17135554102", "allow")  # not subscribed
    delivery = WebhookDelivery.objects.get(subscription=subscription)
    assert (delivery.event, delivery.status) == ("device.blocked", "pending")
    assert webhooks.deliver(delivery.pk) == "delivered"
    (request,) = receiver.received
    event = _verify(subscription, request)
    assert event["type"] == "device.blocked" and event["enterprise_id"] == personas.ent_a.pk
    assert event["data"]["device"] == HOUSTON and event["data"]["reason"] == "Cease letter"
    assert request["headers"]["X-Portal-Delivery"] == event["id"]
    assert webhooks.deliver(delivery.pk) is None, "delivered once"


def test_failures_are_retried_with_backoff_and_a_receiver_down_loses_nothing(personas, receiver):
    subscription = _subscribe(personas, receiver.url, ["device.blocked"])
    do_save_device_setting(personas.ent_a, HOUSTON, "block")
    delivery = WebhookDelivery.objects.get(subscription=subscription)
    receiver.codes = [500, 503]
    assert webhooks.deliver(delivery.pk) == "pending"
    delivery.refresh_from_db()
    assert delivery.last_status_code == 500 and delivery.attempts == 1
    assert delivery.next_attempt_at > timezone.now() + dt.timedelta(seconds=5)
    assert webhooks.deliver(delivery.pk) is None, "not due yet"
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert webhooks.deliver(delivery.pk) == "pending"
    # The receiver is down for a while: connection refused, kept for later.
    receiver.stop()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert webhooks.deliver(delivery.pk) == "pending"
    delivery.refresh_from_db()
    assert delivery.attempts == 3 and "Error" in delivery.last_error
    wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
    assert 40 < wait <= 60, "the third wait is a minute"
    # Back up: the sweep sends what is due.
    again = WebhookReceiver()
    try:
        WebhookSubscription.objects.filter(pk=subscription.pk).update(url=again.url)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        assert webhooks.deliver(delivery.pk) == "delivered"
        assert len(again.received) == 1 and len(receiver.received) == 2
    finally:
        again.stop()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 4)


def test_after_a_day_of_failures_a_delivery_is_failed(personas, receiver):
    subscription = _subscribe(personas, receiver.url, ["device.blocked"])
    do_save_device_setting(personas.ent_a, HOUSTON, "block")
    delivery = WebhookDelivery.objects.get(subscription=subscription)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        created_at=timezone.now() - dt.timedelta(hours=25)
    )
    receiver.codes = [500]
    assert webhooks.deliver(delivery.pk) == "failed"


def test_every_event_is_written_with_its_change(personas, receiver):
    subscription = _subscribe(personas, receiver.url)
    honour_keyword(personas.ent_a, HOUSTON, "Pare.")
    with tenant_context(personas.acct_a1):
        blacklist = do_create_blacklist(name="Hold")
        do_add_entry(blacklist, "phone", "+17135554109", reason="Attorney")
    registry = Registry.objects.order_by("code").first()
    stale_since = timezone.now() - dt.timedelta(days=registry.max_age_days + 3)
    Registry.objects.filter(pk=registry.pk).update(last_imported_at=stale_since,
                                                   last_full_import_at=stale_since)  # fmt: skip
    assert announce_stale() == [registry.code]
    assert announce_stale() == [], "announced once per snapshot"
    events = {d.event: d.payload["data"] for d in subscription.deliveries.all()}
    assert events["opt_out.received"] == {"device": HOUSTON, "channel": "sms", "keyword": "PARE"}
    assert events["device.blocked"]["source"] == "sms_opt_out"
    assert events["blacklist.entry_added"]["number"] == "+17135554109"
    assert events["blacklist.entry_added"]["account"] == "acme-one"
    assert events["registry.stale"]["registry"] == registry.code


def test_a_change_rolled_back_sends_nothing(personas, receiver):
    subscription = _subscribe(personas, receiver.url, ["device.blocked"])
    with pytest.raises(RuntimeError), transaction.atomic():
        do_save_device_setting(personas.ent_a, HOUSTON, "block")
        raise RuntimeError("rolled back")
    assert not subscription.deliveries.exists()


def test_the_pages_subscribe_show_the_secret_once_and_send_a_test_event(personas, receiver):
    client = client_for(personas, "ent_admin")
    page = f"/enterprises/{personas.ent_a.pk}/webhooks/"
    assert b'data-testid="no-webhooks"' in client.get(page).content
    created = client.post(page, {"url": receiver.url, "events": ["device.blocked"]})
    subscription = WebhookSubscription.objects.get(enterprise=personas.ent_a)
    assert created["Location"] == f"{page}{subscription.pk}/"
    detail = client.get(created["Location"]).content.decode()
    assert subscription.secret in detail
    assert subscription.secret not in client.get(created["Location"]).content.decode()
    assert client.post(f"{page}{subscription.pk}/test/").status_code == 302
    test = subscription.deliveries.get(event="test.ping")
    assert webhooks.deliver(test.pk) == "delivered"
    log = client.get(f"{page}{subscription.pk}/").content.decode()
    assert "test.ping" in log and "Delivered" in log
    assert client_for(personas, "other_ent_admin").get(f"{page}{subscription.pk}/").status_code \
        == 404  # fmt: skip
    assert client.get(f"{page}{subscription.pk}/delete/").status_code == 200
    assert client.post(f"{page}{subscription.pk}/delete/").status_code == 302
    assert not WebhookSubscription.objects.exists()


def test_the_worker_delivers_after_commit(committed, celery_worker, open_all_day_account):
    """The whole path: a committed block, the task sent after commit, a real worker."""
    got = WebhookReceiver()
    try:
        enterprise = open_all_day_account.enterprise
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("django.conf.settings.WEBHOOK_ALLOW_PRIVATE_URLS", True)
            subscription = webhooks.do_subscribe(enterprise, got.url, ["device.blocked"],
                                                 actor=None)  # fmt: skip
        do_save_device_setting(enterprise, HOUSTON, "block")
        deadline = time.monotonic() + 30
        while not got.received and time.monotonic() < deadline:
            time.sleep(0.2)
        assert got.received, "the worker delivered it"
        assert _verify(subscription, got.received[0])["data"]["device"] == HOUSTON
    finally:
        got.stop()
        WebhookSubscription.objects.filter(enterprise=open_all_day_account.enterprise).delete()
