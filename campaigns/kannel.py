"""SMS through Kannel (``SMS_GATEWAY=kannel``): smsbox's HTTP sendsms interface, and the
delivery reports and replies Kannel sends back.

Kannel (bearerbox + smsbox) speaks SMPP to the carrier's SMSC. We send each text with
``dlr-mask=19`` and a ``dlr-url`` naming the account, the ledger row and a signature; the
reports come back to ``carrier_views.kannel_dlr`` in that account and update the ledger
row (``dial_states.record_report``): delivered, undeliverable, rejected, with the
carrier's words. Replies (MO) come to one shared endpoint, ``carrier_views.kannel_mo``:
the route a text took (``devices.sms_routes``) says which account they belong to, and
they go through the same code as every reply (``campaigns.inbound``), STOP included.

At most once: a text Kannel never accepted (refused connection, an error status) is
FAILED, and the sub-campaign's retry rules decide what follows; a request whose answer
never came may have been sent, so it is UNKNOWN and never sent again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from urllib.parse import urlencode

import urllib3
from django.conf import settings

from campaigns.gateways import DeliveryJob, DeliveryResult, IdempotentGateway
from campaigns.sms_text import is_gsm
from devices.models import Disposition

logger = logging.getLogger(__name__)

# Kannel's dlr-url escapes: %d the report type, %A the SMSC's answer (for SMPP receipts the
# receipt text: "id:… stat:DELIVRD err:000 …"), %i the SMSC id, %T the report's time.
DLR_FIELDS = "type=%d&answer=%A&smsc=%i&ts=%T"
# Kannel's report types (dlr-mask bits): what each means for the attempt.
DLR_DELIVERED, DLR_UNDELIVERED, DLR_BUFFERED, DLR_ACCEPTED, DLR_REJECTED = 1, 2, 4, 8, 16
REPORTS = {
    DLR_DELIVERED: Disposition.DELIVERED,
    DLR_UNDELIVERED: Disposition.UNDELIVERED,
    DLR_BUFFERED: Disposition.SENT,
    DLR_ACCEPTED: Disposition.SENT,
    DLR_REJECTED: Disposition.REJECTED,
}
_pool_lock = threading.Lock()
_pool: urllib3.PoolManager | None = None


def _http() -> urllib3.PoolManager:
    """One keep-alive connection pool per process (a worker sends hundreds a second)."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = urllib3.PoolManager(num_pools=4, maxsize=16, retries=False)
    return _pool


def signature(slug: str, attempt_id: int | str, at: int | str) -> str:
    """What proves a delivery report is about the attempt we sent: HMAC over its names."""
    message = f"dlr:{slug}:{attempt_id}:{at}".encode()
    return hmac.new(callback_secret(), message, hashlib.sha256).hexdigest()[:32]


def callback_secret() -> bytes:
    return settings.KANNEL_CALLBACK_SECRET.encode()


def dlr_url(job: DeliveryJob) -> str:
    """The report URL Kannel calls for this text: the account's endpoint, the ledger row
    (id and time: one partition) and the signature; Kannel fills in the escapes."""
    at = job.attempted_at_us
    sig = signature(job.account_slug, job.attempt_id, at)
    query = urlencode({"attempt": job.attempt_id, "at": at, "sig": sig})
    path = f"/a/{job.account_slug}/carrier/kannel/dlr/"
    return f"{settings.PORTAL_BASE_URL}{path}?{query}&{DLR_FIELDS}"


class KannelGateway(IdempotentGateway):
    """Sends through smsbox's sendsms. SENT when Kannel accepted the text for delivery; the
    carrier's delivery report then makes it DELIVERED, UNDELIVERED or REJECTED."""

    def perform(self, job: DeliveryJob) -> DeliveryResult:
        text = job.message
        params = {
            "username": settings.KANNEL_USERNAME,
            "password": settings.KANNEL_PASSWORD,
            "from": job.sms_source_address,
            "to": job.device_key,
            "text": text,
            "charset": "UTF-8",
            "coding": "0" if is_gsm(text) else "2",  # 2: UCS-2, for á, ç, ã…
            # Delivered, undeliverable, rejected: the reports that change a result (the
            # SMSC's "accepted" and "buffered" would only say SENT again, one request each).
            "dlr-mask": "19",
            "dlr-url": dlr_url(job),
        }
        base = {"source_address": job.sms_source_address, "source_type": job.sms_source_type,
                "message": text, "node": "kannel"}  # fmt: skip
        url = f"{settings.KANNEL_SENDSMS_URL}?{urlencode(params)}"
        timeout = urllib3.Timeout(connect=2.0, read=settings.KANNEL_TIMEOUT_SECONDS)
        try:
            response = _http().request("GET", url, timeout=timeout)
        except urllib3.exceptions.ReadTimeoutError:
            # Kannel may have taken it: sending again could text the person twice.
            logger.warning("Kannel did not answer for attempt %s: outcome unknown", job.attempt_id)
            return DeliveryResult(Disposition.UNKNOWN, carrier_answer="sendsms: no answer", **base)
        except urllib3.exceptions.HTTPError as exc:
            # Not connected, nothing sent: the sub-campaign's retry rules decide.
            logger.warning("Kannel unreachable for attempt %s: %s", job.attempt_id, exc)
            return DeliveryResult(
                Disposition.FAILED, carrier_answer="sendsms: gateway unreachable", **base
            )
        answer = response.data.decode("utf-8", "replace").strip()[:160]
        if response.status in (200, 202):
            return DeliveryResult(Disposition.SENT, carrier_answer=answer, **base)
        logger.warning("Kannel refused attempt %s: %s %s", job.attempt_id, response.status, answer)
        return DeliveryResult(
            Disposition.FAILED, carrier_answer=f"sendsms {response.status}: {answer}"[:160], **base
        )
