"""Celery tasks of the dialer. Tasks sent from an account's context run in its schema."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.models import Account
from accounts.outages import DATABASE_UNAVAILABLE, enter_sent_schema, retry_while_down
from campaigns import dialer, sip
from campaigns.blacklist_import import run_blacklist_import
from campaigns.blacklists import release_expired
from campaigns.inbound import record_inbound_sms
from campaigns.models import BlacklistEntry
from devices.models import ActiveSubCampaign

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def dispatch_tick() -> int:
    """Beat: fan out one dispatch task per active sub-campaign, each in its account."""
    entries = ActiveSubCampaign.objects.select_related("account").filter(account__is_active=True)
    sent = 0
    for entry in entries:
        with tenant_context(entry.account):
            dispatch_sub_campaign.delay(entry.sub_campaign_id)
        sent += 1
    return sent


@shared_task(ignore_result=True)
def dispatch_sub_campaign(sub_campaign_id: int) -> dict:
    report = dialer.dispatch_sub_campaign(sub_campaign_id)
    return {"claimed": report.claimed, "queued": report.queued}


@shared_task(bind=True, ignore_result=True, acks_late=True)
def perform_attempts(self, items: list[list]) -> None:
    """Runs a chunk of claimed attempts. Redelivery is safe: each attempt is dialled once.

    An attempt whose delivery is still running elsewhere (a duplicate message) is sent
    again a little later on its own, so it never holds up the rest of the chunk.

    While the database is unavailable the chunk is sent again later (accounts.outages):
    failed, it would be acknowledged and gone, and its claims would wait
    DIALING_STALE_SECONDS for the stale-claim sweep. A chunk cut off between delivery and
    record gets the stored result back from the gateway: nothing is dialled twice.
    """
    try:
        enter_sent_schema(self)
        _recorded, busy = dialer.perform_attempts(items)
    except DATABASE_UNAVAILABLE as exc:
        raise retry_while_down(self, exc) from exc
    if busy:
        perform_attempts.apply_async((busy,), countdown=5)


@shared_task(ignore_result=True)
def requeue_stale_claims() -> int:
    """Beat: claims whose task never finished (lost message, killed worker) are sent again."""
    # Every account: a paused or completed sub-campaign may still hold lost claims.
    accounts = Account.objects.exclude(schema_name="public").filter(is_active=True)
    total = 0
    for account in accounts:
        with tenant_context(account):
            items = dialer.stale_claims()
            if items:
                logger.info("Re-sending %d stale attempts in %s", len(items), account.schema_name)
                dialer.enqueue_attempts(items)
                total += len(items)
    return total


@shared_task(ignore_result=True)
def receive_inbound_sms(device_key: str, to_address: str, text: str) -> int:
    attempt = record_inbound_sms(device_key=device_key, to_address=to_address, text=text)
    logger.info("Inbound SMS in %s from %s", connection.schema_name, device_key)
    return attempt.pk


@shared_task
def import_blacklist(import_id: int) -> int | None:
    """Imports an uploaded blacklist file; a repeated delivery of a finished one does nothing."""
    job = run_blacklist_import(import_id)
    return job.added if job is not None else None


@shared_task(ignore_result=True)
def release_expired_blacklist_entries() -> int:
    """Beat: entries past their expiry leave their lists and release what they held."""
    released = 0
    for account in Account.objects.exclude(schema_name="public").filter(is_active=True):
        with tenant_context(account):
            if BlacklistEntry.objects.filter(expires_at__lte=timezone.now()).exists():
                released += release_expired()
    return released


@shared_task(ignore_result=True)
def sweep_lost_calls() -> dict:
    """Beat: calls whose engine died (UNKNOWN, never redialled) and calls no engine took."""
    unknown, failed = sip.sweep_lost_calls()
    return {"unknown": unknown, "failed": failed}
