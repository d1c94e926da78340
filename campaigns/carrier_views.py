"""Endpoints that carriers call: Kannel's delivery reports (per account) and replies (one,
shared). Authenticated by the network address (``KANNEL_ALLOWED_IPS``) and a secret (a
per-attempt signature for reports, the shared secret for replies); idempotent; malformed
input gets a 4xx with the reason in plain text, never a 500. Kannel retries what did not
get a 2xx, so a 4xx is only for input that would never succeed.
"""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import logging

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from django_tenants.utils import tenant_context

from accounts.actions import client_ip
from campaigns import dial_states, kannel
from campaigns.inbound import receive_sms
from devices import sms_routes
from devices.keys import DeviceKeyError, normalize_phone
from devices.ledger import from_stamp
from devices.models import InboundReceipt

logger = logging.getLogger(__name__)

MAX_TEXT = 2000
MAX_FIELD = 64


def _answer(status: int, text: str) -> HttpResponse:
    return HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")


def _allowed(request) -> bool:
    address = client_ip(request)
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in network for network in settings.KANNEL_ALLOWED_NETWORKS)


def _param(request, name: str, limit: int = MAX_FIELD) -> str:
    value = (request.GET.get(name) or request.POST.get(name) or "").replace("\x00", "")
    return value[:limit]


@csrf_exempt
@require_http_methods(["GET", "POST"])
def kannel_dlr(request):
    """A delivery report: ``?attempt=&at=&sig=`` (ours) and ``type=&answer=&smsc=`` (Kannel's
    %d, %A, %i), in the account the text was sent from."""
    if not _allowed(request):
        return _answer(403, "address not allowed")
    attempt, at, sig = _param(request, "attempt"), _param(request, "at"), _param(request, "sig")
    if not (attempt.isascii() and attempt.isdigit() and at.isascii() and at.isdigit()):
        return _answer(400, "attempt and at must be whole numbers")
    if len(attempt) > 19 or len(at) > 19:
        return _answer(400, "attempt or at out of range")
    expected = kannel.signature(connection.tenant.slug, attempt, at)
    if not hmac.compare_digest(sig.encode(), expected.encode()):
        return _answer(403, "bad signature")
    kind = _param(request, "type")
    if not (kind.isascii() and kind.isdigit()) or int(kind) not in kannel.REPORTS:
        return _answer(400, f"unknown report type {kind[:8]!r}")
    try:
        attempted_at = from_stamp(int(at))
    except OverflowError:
        return _answer(400, "at out of range")
    with transaction.atomic(durable=True):
        row = dial_states.record_report(
            int(attempt),
            attempted_at,
            kannel.REPORTS[int(kind)],
            carrier_answer=_param(request, "answer", 160),
            now=timezone.now(),
        )
    if row is None:
        return _answer(404, "no such attempt in this account")
    return _answer(200, "ok")


def sender_keys(sender: str) -> list[str]:
    """The E.164 keys a reply's sender may be. Carriers send it international with or
    without "+" (TON 1), or national (TON 2), so each reading that is a valid number."""
    text = sender.strip()
    digits = text.lstrip("+")
    readings = [text if text.startswith("+") else f"+{digits}", digits]
    keys = []
    for value, region in [(readings[0], "US"), (readings[1], "US"), (readings[1], "BR")]:
        try:
            keys.append(normalize_phone(value, region))
        except DeviceKeyError:
            continue
    return list(dict.fromkeys(keys))


@csrf_exempt
@require_http_methods(["GET", "POST"])
def kannel_mo(request):
    """A reply from a handset: ``?key=&from=&to=&text=&id=&ts=`` (Kannel's %p, %P, %b, %I,
    %t). Routed to the account that texted the sender last from that address; recorded
    once per Kannel message id; STOP-style words block the device (campaigns.inbound)."""
    if not _allowed(request):
        return _answer(403, "address not allowed")
    key = _param(request, "key", 200)
    if not hmac.compare_digest(key.encode(), settings.KANNEL_CALLBACK_SECRET.encode()):
        return _answer(403, "bad key")
    sender, receiver = _param(request, "from"), _param(request, "to")
    message_id = _param(request, "id", 128)
    text = _param(request, "text", MAX_TEXT)
    if not sender or not receiver:
        return _answer(400, "from and to are required")
    if not message_id:
        return _answer(400, "id is required (Kannel's %I): replies are recorded once by it")
    route = sms_routes.account_for(receiver, sender_keys(sender))
    if route is None:
        logger.info("Reply to %s from a number none of our accounts texted; ignored", receiver)
        return _answer(202, "no account texted this number from that address")
    account, device_key = route
    received_at = _timestamp(_param(request, "ts"))
    try:
        with transaction.atomic(durable=True):
            InboundReceipt.objects.create(
                source=InboundReceipt.Source.KANNEL_MO,
                external_id=message_id,
                enterprise_id=account.enterprise_id,
                device_key=device_key,
            )
            with tenant_context(account):
                receive_sms(device_key=device_key, to_address=receiver, text=text,
                            received_at=received_at)  # fmt: skip
    except IntegrityError:
        return _answer(200, "duplicate: already recorded")
    return _answer(200, "ok")


def _timestamp(value: str) -> dt.datetime | None:
    """Kannel's %t ("2026-12-03 09:15:02") or a Unix time; None (now) if neither, or if it
    is not within the last week (a handset's clock, not ours, wrote it)."""
    try:
        if value.isascii() and value.isdigit() and len(value) <= 12:
            parsed = dt.datetime.fromtimestamp(int(value), tz=dt.UTC)
        else:
            parsed = dt.datetime.fromisoformat(value)
    except (ValueError, OverflowError, OSError):
        return None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    now = timezone.now()
    if not now - dt.timedelta(days=7) <= parsed <= now + dt.timedelta(hours=1):
        return None
    # Kannel's time has whole seconds: within the last second (or ahead of our clock), our
    # own time is the truer one, and keeps a quick STOP after the text it answers.
    if now - parsed < dt.timedelta(seconds=1):
        return None
    return parsed
