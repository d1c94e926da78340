"""Outbound webhooks: an enterprise's subscribed URLs hear about blocks, allows, opt-outs,
blacklist entries, deleted recordings and stale registries.

``emit`` writes one delivery row per subscription, in the transaction of the change it
reports (so an event exists exactly when its change committed), and sends the delivery
task after commit. ``deliver`` POSTs the event, signed: ``X-Portal-Signature:
t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the subscription's secret>``. A
receiver that fails or is down is tried again with growing waits for 24 hours; a beat
sweep (``send_due``) picks up deliveries whose task was lost, so nothing is dropped.

Addresses that resolve to loopback, private, link-local or reserved ranges are refused,
when subscribing and again when sending, unless ``WEBHOOK_ALLOW_PRIVATE_URLS`` is set
(tests, a receiver on the same network).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
import uuid
from collections.abc import Iterable
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.actions import audit
from accounts.models import Enterprise, WebhookDelivery, WebhookSubscription
from accounts.queueing import send

logger = logging.getLogger(__name__)

EVENTS = WebhookSubscription.Event
TEST_EVENT = "test.ping"
RETRY_FOR = dt.timedelta(hours=24)
# Waits after each failed attempt (then every 2 hours until RETRY_FOR has passed).
BACKOFF_SECONDS = [10, 30, 60, 300, 900, 1800, 3600, 7200]
TIMEOUT = urllib3.Timeout(connect=5, read=10)
LEASE = dt.timedelta(seconds=60)
_http = urllib3.PoolManager(num_pools=8, maxsize=4, retries=False)


# --- subscribing ------------------------------------------------------------------------------


def check_url(url: str) -> None:
    """Refuses URLs the portal must not call: other schemes, and (unless allowed) hosts
    that resolve to the portal's own side of the network (SSRF)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(_("Use an http:// or https:// URL with a host name."))
    if parts.username or parts.password:
        raise ValidationError(_("Put no user name or password in the URL; we sign deliveries."))
    if settings.WEBHOOK_ALLOW_PRIVATE_URLS:
        return
    for address in _addresses(parts.hostname, parts.port or 443):
        if not address.is_global or address.is_multicast:
            raise ValidationError(
                _("%(host)s resolves to %(address)s, a private or local address: the portal "
                  "calls public addresses only.") % {"host": parts.hostname, "address": address}
            )  # fmt: skip


def _addresses(host: str, port: int) -> list[ipaddress._BaseAddress]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise ValidationError(_("%(host)s cannot be resolved.") % {"host": host}) from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


@transaction.atomic(durable=True)
def do_subscribe(enterprise: Enterprise, url: str, events: list[str], *, actor,
                 request=None) -> WebhookSubscription:  # fmt: skip
    url = url.strip()
    check_url(url)
    unknown = set(events) - set(EVENTS.values)
    if not events or unknown:
        raise ValidationError(_("Choose one or more events."))
    subscription = WebhookSubscription.objects.create(
        enterprise=enterprise, url=url, events=sorted(set(events)),
        secret=secrets.token_hex(32), created_by_label=getattr(actor, "email", ""),
    )  # fmt: skip
    audit(actor, "webhook.subscribe", enterprise=enterprise, obj=subscription,
          details={"url": url, "events": subscription.events}, request=request)  # fmt: skip
    return subscription


@transaction.atomic(durable=True)
def do_unsubscribe(subscription: WebhookSubscription, *, actor, request=None) -> None:
    audit(actor, "webhook.delete", enterprise=subscription.enterprise, obj=subscription,
          details={"url": subscription.url}, request=request)  # fmt: skip
    subscription.delete()


@transaction.atomic(durable=True)
def do_send_test(subscription: WebhookSubscription, *, actor, request=None) -> WebhookDelivery:
    audit(actor, "webhook.test", enterprise=subscription.enterprise, obj=subscription,
          request=request)  # fmt: skip
    return _create(subscription, TEST_EVENT, {"message": "A test event from the portal."})[0]


# --- emitting ---------------------------------------------------------------------------------


def emit(enterprise_id: int | None, event: str, items: Iterable[dict]) -> int:
    """One delivery per item per subscription to ``event`` (every enterprise's when
    ``enterprise_id`` is None: a platform event). Call inside the change's transaction.
    Returns how many deliveries were written."""
    subscriptions = WebhookSubscription.objects.filter(is_active=True, events__contains=[event])
    if enterprise_id is not None:
        subscriptions = subscriptions.filter(enterprise_id=enterprise_id)
    subscriptions = list(subscriptions)
    if not subscriptions:
        return 0
    items = list(items)
    rows = []
    for subscription in subscriptions:
        rows += _rows(subscription, event, items)
    WebhookDelivery.objects.bulk_create(rows, batch_size=2000)
    ids = [row.pk for row in rows]
    transaction.on_commit(lambda: _send(ids))
    return len(rows)


def _rows(subscription: WebhookSubscription, event: str, items: list[dict]):
    now = timezone.now()
    return [
        WebhookDelivery(
            subscription=subscription,
            event=event,
            created_at=now,
            next_attempt_at=now,
            payload={
                "id": str(uuid.uuid4()),
                "type": event,
                "created_at": now.isoformat(),
                "enterprise_id": subscription.enterprise_id,
                "data": item,
            },
        )  # fmt: skip
        for item in items
    ]


def _create(subscription, event, item):
    rows = WebhookDelivery.objects.bulk_create(_rows(subscription, event, [item]))
    transaction.on_commit(lambda: _send([r.pk for r in rows]))
    return rows


def _send(ids: list[int]) -> None:
    if len(ids) > 200:  # a bulk change: the sweep sends them, a chunk per tick
        return
    for pk in ids:
        send("accounts.tasks.deliver_webhook", args=[pk], schema="public")


# --- delivering -------------------------------------------------------------------------------


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def deliver(delivery_id: int) -> str | None:
    """One attempt at one delivery, if it is due and nobody else holds it: the status
    after it (None when there was nothing to do)."""
    now = timezone.now()
    taken = WebhookDelivery.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now),
        pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now,
    ).update(lease_until=now + LEASE, attempts=F("attempts") + 1)  # fmt: skip
    if not taken:
        return None
    delivery = WebhookDelivery.objects.select_related("subscription").get(pk=delivery_id)
    subscription = delivery.subscription
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
    stamp = int(time.time())
    code, error = None, ""
    try:
        check_url(subscription.url)
        response = _http.request(
            "POST", subscription.url, body=body, timeout=TIMEOUT, redirect=False,
            headers={"Content-Type": "application/json", "User-Agent": "ComplianceBot/1",
                     "X-Portal-Event": delivery.event, "X-Portal-Delivery": delivery.payload["id"],
                     "X-Portal-Signature": signature(subscription.secret, stamp, body)},
        )  # fmt: skip
        code = response.status
        if not 200 <= code < 300:
            error = f"HTTP {code}"
    except ValidationError as exc:
        error = " ".join(exc.messages)
    except urllib3.exceptions.HTTPError as exc:
        error = type(exc).__name__ + (f": {exc.reason}" if getattr(exc, "reason", None) else "")
    now = timezone.now()
    if not error:
        status, next_at = WebhookDelivery.Status.DELIVERED, delivery.next_attempt_at
    elif now - delivery.created_at >= RETRY_FOR:
        status, next_at = WebhookDelivery.Status.FAILED, delivery.next_attempt_at
    else:
        wait = BACKOFF_SECONDS[min(delivery.attempts - 1, len(BACKOFF_SECONDS) - 1)]
        status, next_at = WebhookDelivery.Status.PENDING, now + dt.timedelta(seconds=wait)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=status, next_attempt_at=next_at, lease_until=None, last_status_code=code,
        last_error=error[:255], delivered_at=now if status == "delivered" else None,
    )  # fmt: skip
    if status == WebhookDelivery.Status.PENDING:
        send("accounts.tasks.deliver_webhook", args=[delivery.pk], schema="public",
             countdown=(next_at - now).total_seconds())  # fmt: skip
    return status


def send_due(limit: int = 500) -> int:
    """Beat: deliveries that are due and held by nobody (their task was lost, or a bulk
    change wrote many) are sent again. Returns how many were sent."""
    now = timezone.now()
    due = WebhookDelivery.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now),
        status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now,
    ).order_by("next_attempt_at").values_list("pk", flat=True)[:limit]  # fmt: skip
    sent = 0
    for pk in due:
        sent += send("accounts.tasks.deliver_webhook", args=[pk], schema="public")
    return sent
