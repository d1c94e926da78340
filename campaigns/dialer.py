"""Dispatch and attempts: claim due devices, ask the gate, dial once, record everything.

The promise: every attempt is written to the ledger in the same transaction as the
account's dial state, the gate is asked again inside the transaction that authorises
the dial, and an attempt delivered twice (or resumed after a crash) is dialled once:
the ledger row is the gateway's idempotency key.

This module decides and orchestrates; the writes go through ``campaigns.dial_states``
(dial states and ledger rows) and the tasks are sent by name (``accounts.queueing``).
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.queueing import send
from campaigns import dial_states
from campaigns.actions import complete_sub_campaign
from campaigns.auto_rules import AUTO_RULE_RESULTS, apply_auto_rules
from campaigns.gateways import (
    DeliveryJob,
    DeliveryResult,
    GatewayBusy,
    get_gateway,
    physical_delivery_count,
)
from campaigns.locks import lock_campaigns
from campaigns.models import DialState, SubCampaign, render_message
from devices import sms_routes
from devices.ledger import stamp
from devices.locks import lock_devices
from devices.models import Attempt, Channel
from devices.policy import RULE_SENDING_DOMAIN, SUPPRESS, Decision, DialRequest, PolicyGate
from devices.unsubscribe import unsubscribe_url

logger = logging.getLogger(__name__)

MAX_BURST_MINUTES = 1.0


@dataclass
class DispatchReport:
    claimed: int = 0
    queued: int = 0
    suppressed: int = 0
    deferred: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def _account():
    return connection.tenant


def request_for(sub: SubCampaign, state: DialState) -> DialRequest:
    return DialRequest(
        account_id=_account().pk,
        campaign_id=sub.campaign_id,
        sub_campaign_id=sub.pk,
        purpose=sub.purpose,
        channel=sub.channel,
        device_key=state.device_key,
        time_zone=state.contact.time_zone,
    )


def enterprise_today(now: dt.datetime) -> dt.date:
    """Sub-campaign start and end dates are days in the enterprise's time zone."""
    return now.astimezone(zoneinfo.ZoneInfo(_account().enterprise.time_zone)).date()


def dispatch_sub_campaign(sub_campaign_id: int, now: dt.datetime | None = None) -> DispatchReport:
    """One dispatcher pass over one sub-campaign, in the current account's schema."""
    now = now or timezone.now()
    report = DispatchReport()
    held: list[tuple[object, list[int]]] = []  # channels reserved by this pass
    try:
        with transaction.atomic(durable=True):
            _dispatch(sub_campaign_id, now, report, held)
    except BaseException:
        for gateway, ids in held:  # the claims they were for never committed
            gateway.release(ids)
        raise
    return report


def _dispatch(sub_campaign_id: int, now: dt.datetime, report: DispatchReport, held: list) -> None:
    sub = (
        SubCampaign.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("campaign")
        .filter(pk=sub_campaign_id, status=SubCampaign.Status.ACTIVE)
        .first()
    )
    if sub is None:  # paused, gone, or another dispatcher holds it right now
        return
    today = enterprise_today(now)
    if sub.end_date and today > sub.end_date:
        complete_sub_campaign(sub)
        return
    if sub.start_date and today < sub.start_date:
        return
    if sub.channel == Channel.EMAIL and sub.sending_problem():
        # Held: nothing is claimed while the From domain is not allowed (the sub-campaign's
        # page says why); sending resumes by itself once it is allowed again.
        return
    last = sub.last_dispatch_at or now - dt.timedelta(seconds=settings.DISPATCH_INTERVAL_SECONDS)
    elapsed_minutes = max(0.0, (now - last).total_seconds() / 60)
    credit = min(
        sub.dispatch_credit + sub.pacing_per_minute * elapsed_minutes,
        sub.pacing_per_minute * MAX_BURST_MINUTES,
    )
    limit = min(int(credit), settings.DISPATCH_BATCH_SIZE)
    # Before any state row: blacklist changes lock the campaign, then the rows.
    lock_campaigns([sub.campaign_id], shared=True)
    states = list(
        DialState.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("contact")
        .filter(sub_campaign=sub, status=DialState.Status.PENDING)
        .filter(Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True))
        .order_by("next_attempt_at", "id")[:limit]
    )
    report.claimed = len(states)
    decisions = PolicyGate(_account().enterprise, now).decide([request_for(sub, s) for s in states])
    batch = dial_states.Batch(now)
    to_dial = []
    # Calls need a free channel: the ones the gate lets through get one each, as many
    # as are free; the rest stay pending, untouched, for the next tick.
    free = _reserve(sub, [s.pk for s, d in zip(states, decisions, strict=True) if d.dial], held)
    for state, decision in zip(states, decisions, strict=True):
        state.sub_campaign = sub
        if decision.dial:
            if state.pk in free:
                batch.claim(state)
                to_dial.append(state)
            continue
        if batch.refuse(state, decision):
            report.suppressed += 1
        else:
            report.deferred += 1
        report.reasons[decision.rule] = report.reasons.get(decision.rule, 0) + 1
    batch.save()
    report.queued = len(to_dial)
    sub.dispatch_credit = max(0.0, credit - len(to_dial))
    sub.last_dispatch_at = now
    sub.save(update_fields=["dispatch_credit", "last_dispatch_at"])
    items = [[s.pk, str(s.claim_token)] for s in to_dial]
    if items:
        transaction.on_commit(lambda: enqueue_attempts(items))


def _reserve(sub: SubCampaign, state_ids: list[int], held: list) -> set[int]:
    """Channels for the claims of a gateway that has a fixed number of them (SIP call
    engines); every claim gets one where the gateway has no such limit. What is reserved
    is added to ``held``, which the caller releases if its transaction does not commit."""
    gateway = get_gateway(sub.channel)
    if not getattr(gateway, "reserves_channels", False):
        return set(state_ids)
    granted = gateway.reserve(state_ids)
    held.append((gateway, sorted(granted)))
    return granted


def _release_channels(states: list[DialState]) -> None:
    """Once committed, the channels of claims that ended (recorded, refused, voided)."""
    by_channel: dict[str, list[int]] = {}
    for state in states:
        by_channel.setdefault(state.sub_campaign.channel, []).append(state.pk)
    for channel, ids in by_channel.items():
        gateway = get_gateway(channel)
        if getattr(gateway, "reserves_channels", False):
            transaction.on_commit(lambda gateway=gateway, ids=ids: gateway.release(ids))


def enqueue_attempts(items: list[list]) -> None:
    """Sends attempt tasks in chunks. If the broker is down the states stay claimed and the
    stale-claim sweep sends them again once it is back: nothing is lost, nothing dialled."""
    size = settings.ATTEMPT_TASK_CHUNK
    for start in range(0, len(items), size):
        if not send("campaigns.tasks.perform_attempts", args=[items[start : start + size]]):
            logger.warning(
                "Could not enqueue %d attempts; the stale-claim sweep will retry", len(items)
            )
            return


def _job(sub: SubCampaign, state: DialState, attempt: Attempt) -> DeliveryJob:
    contact = state.contact
    message = render_message(sub.message, name=contact.name, client_id=contact.client_id)
    unsubscribe = ""
    if sub.channel == Channel.EMAIL:
        unsubscribe = unsubscribe_url(_account().enterprise_id, state.device_key, attempt.pk)
    return DeliveryJob(
        attempt_id=attempt.pk,
        channel=sub.channel,
        device_key=state.device_key,
        client_id=contact.client_id,
        contact_name=contact.name,
        caller_id=sub.caller_id,
        record_call=sub.record_calls,
        sms_source_address=sub.sms_source_address,
        sms_source_type=sub.sms_source_type,
        message=message,
        email_from=sub.email_from,
        email_subject=sub.email_subject,
        unsubscribe_url=unsubscribe,
        voice_message=sub.voice_message_file if sub.channel == Channel.VOICE else "",
        voice_message_seconds=sub.voice_message_seconds if sub.channel == Channel.VOICE else 0,
        dial_state_id=state.pk,
        account_slug=_account().slug,
        attempted_at_us=stamp(attempt.attempted_at),
    )


def _dialable(sub: SubCampaign, now: dt.datetime) -> bool:
    """Still active and inside its schedule (a claim may outlive a pause)."""
    if sub.status != SubCampaign.Status.ACTIVE:
        return False
    today = enterprise_today(now)
    return not (sub.end_date and today > sub.end_date) and not (
        sub.start_date and today < sub.start_date
    )


def _attached_lists(sub_campaign_ids: set[int]) -> dict[int, set[int]]:
    attached: dict[int, set[int]] = {pk: set() for pk in sub_campaign_ids}
    links = SubCampaign.contact_lists.through.objects.filter(subcampaign_id__in=sub_campaign_ids)
    for sub_id, list_id in links.values_list("subcampaign_id", "contactlist_id"):
        attached[sub_id].add(list_id)
    return attached


def _authorise(items: list[tuple[int, str]]) -> list[tuple[DialState, Attempt]]:
    """Phase 1, one transaction for the chunk: lock the claimed devices and their states,
    re-ask the gate, write the authorised attempts to the ledger. Returns what may be
    delivered now.

    The devices are locked (advisory, in key order) so that caps count attempts
    authorised concurrently by other workers, and a block saved elsewhere either
    commits before this decision or waits for it.
    """
    tokens = dict(items)
    with transaction.atomic(durable=True):
        # Locks in one order everywhere (campaigns, devices, then state rows): a block
        # takes its device, then the states it cancels; the other way round the two
        # deadlock, and when PostgreSQL aborts the block, the block is lost.
        # Campaign locks are shared: blacklist changes take them exclusively, so they
        # commit before this decision or wait for it; device locks do the same for blocks.
        targets = DialState.objects.filter(pk__in=list(tokens)).values_list(
            "device_key", "sub_campaign__campaign_id"
        )
        targets = list(targets)
        lock_campaigns({campaign for _key, campaign in targets}, shared=True)
        lock_devices([key for key, _campaign in targets])
        states = list(
            DialState.objects.select_for_update(of=("self",))
            .select_related("contact", "sub_campaign__campaign")
            .filter(pk__in=list(tokens), status=DialState.Status.DIALING)
            .order_by("pk")
        )
        # A state whose claim token differs was finished or claimed again since.
        states = [s for s in states if str(s.claim_token) == tokens[s.pk]]
        # Stamped once the devices are locked: an attempt's attempted_at and a block's
        # created_at are then in lock order, so the ledger alone shows which came first.
        now = timezone.now()
        attached = _attached_lists({s.sub_campaign_id for s in states})
        # The sender is checked again here, just before sending: a sending domain removed
        # since the sub-campaign was saved (or the claim made) stops the email.
        senders = {s.sub_campaign_id: s.sub_campaign for s in states}
        unsendable = {
            pk: problem
            for pk, sub in senders.items()
            if sub.channel == Channel.EMAIL and (problem := sub.sending_problem())
        }
        resumed_ids = [s.current_attempt_id for s in states if s.current_attempt_id]
        resumed = {a.pk: a for a in Attempt.objects.filter(pk__in=resumed_ids)}
        batch = dial_states.Batch(now)
        ready: list[tuple[DialState, Attempt]] = []
        to_decide: list[tuple[DialState, Attempt | None]] = []
        ended: list[DialState] = []  # claims that end here: their channels are free again
        for state in states:
            attempt = resumed.get(state.current_attempt_id)
            if attempt is not None and physical_delivery_count(attempt.pk) > 0:
                # The delivery began before a crash: finish it (the gateway will not dial again).
                ready.append((state, attempt))
            elif state.contact.contact_list_id not in attached[state.sub_campaign_id]:
                batch.void_claim(state, "list removed", attempt, close=True)
                ended.append(state)
            elif not _dialable(state.sub_campaign, now):
                batch.void_claim(state, "not active when the attempt was due", attempt)
                ended.append(state)
            elif state.sub_campaign_id in unsendable:
                held = Decision(SUPPRESS, RULE_SENDING_DOMAIN, unsendable[state.sub_campaign_id])
                batch.hold(state, held, attempt)
                ended.append(state)
            else:
                # New, or authorised but never delivered: the gate decides now, not then.
                to_decide.append((state, attempt))
        decisions = PolicyGate(_account().enterprise, now).decide(
            [request_for(s.sub_campaign, s) for s, _ in to_decide]
        )
        authorised = []
        for (state, attempt), decision in zip(to_decide, decisions, strict=True):
            if decision.dial:
                authorised.append((state, batch.authorise(state, attempt)))
            else:
                batch.refuse(state, decision, attempt)
                ended.append(state)
        batch.save()
        _release_channels(ended)
        return ready + authorised


def _record(outcomes: list[tuple[DialState, Attempt, DeliveryResult]]) -> int:
    """Phase 3, one transaction for the chunk: outcomes into the ledger and the states;
    simulated replies and auto-add rules follow once it commits."""
    now = timezone.now()
    results = {state.pk: result for state, _attempt, result in outcomes}
    with transaction.atomic(durable=True):
        recorded = dial_states.record(
            [(state.pk, attempt, result) for state, attempt, result in outcomes], now
        )
        replies = [
            ({"device_key": s.device_key, "to_address": results[s.pk].source_address,
              "text": results[s.pk].reply_text}, results[s.pk].reply_delay_seconds)
            for s in recorded
            if results[s.pk].reply_text
        ]  # fmt: skip
        if replies:
            transaction.on_commit(lambda: [_schedule_reply(r, d) for r, d in replies])
        ruled = [
            (s.sub_campaign.campaign_id, s.device_key, s.last_disposition)
            for s in recorded
            if s.last_disposition in AUTO_RULE_RESULTS
        ]
        if ruled:  # after the outcome commits, in its own transaction with the list's locks
            transaction.on_commit(lambda: apply_auto_rules(ruled))
        _release_channels(recorded)
        # Texts handed to a carrier: where their replies belong (a shared gateway's MO).
        sms_routes.remember(
            _account().pk,
            [(results[s.pk].source_address, s.device_key) for s in recorded
             if s.sub_campaign.channel == Channel.SMS and results[s.pk].disposition in HANDED],
            now,
        )  # fmt: skip
    return len(recorded)


# Results that mean the text reached the carrier (a reply may follow).
HANDED = {"SENT", "DELIVERED", "UNDELIVERED"}


def record_outcome(attempt_id: int, attempted_at: dt.datetime, result: DeliveryResult) -> bool:
    """The outcome of an attempt a gateway handed on (a call engine), in the current
    account: recorded through the same path as every other. False when there is nothing
    to record (the attempt is not this account's, or its outcome is recorded already)."""
    attempt = Attempt.objects.filter(
        pk=attempt_id, attempted_at=attempted_at, account_id=_account().pk
    ).first()
    if attempt is None or attempt.dial_state_id is None:
        return False
    state = (
        DialState.objects.select_related("sub_campaign__campaign", "contact")
        .filter(pk=attempt.dial_state_id)
        .first()
    )
    if state is None or state.current_attempt_id != attempt.pk:
        return False
    return _record([(state, attempt, result)]) == 1


def _schedule_reply(reply: dict, delay: int) -> None:
    if not send("campaigns.tasks.receive_inbound_sms", kwargs=reply, countdown=delay):
        logger.warning("Could not schedule the simulated reply from %s", reply["device_key"])


def perform_attempts(items: list[tuple[int, str]]) -> tuple[int, list[list]]:
    """Authorise (gate and ledger, one transaction), deliver each once, record (one
    transaction). Returns how many were recorded, and the items whose delivery is still
    running elsewhere (a duplicate message): the caller sends those again later."""
    ready = _authorise([(int(pk), str(token)) for pk, token in items])
    outcomes, busy = [], []
    for state, attempt in ready:
        gateway = get_gateway(state.sub_campaign.channel)
        try:
            result = gateway.deliver(_job(state.sub_campaign, state, attempt))
        except GatewayBusy:
            busy.append([state.pk, str(state.claim_token)])
            continue
        except Exception:
            # One failing delivery must not hold up the chunk: it stays claimed and the
            # stale-claim sweep tries it again (the gateway never dials it twice).
            logger.exception("Delivery of attempt %s failed; it will be retried", attempt.pk)
            continue
        if result.pending:  # handed to a call engine: its outcome comes by record_outcome
            continue
        outcomes.append((state, attempt, result))
    recorded = _record(outcomes) if outcomes else 0
    return recorded, busy


def perform_attempt(state_id: int, token: str) -> str:
    """One claimed attempt (tests and tools); workers run chunks with perform_attempts."""
    recorded, busy = perform_attempts([(state_id, token)])
    if busy:
        raise GatewayBusy(busy[0][0])
    return "recorded" if recorded else "skipped"


def stale_claims(now: dt.datetime | None = None) -> list[list]:
    """Claims older than DIALING_STALE_SECONDS: their task was lost (broker restart, crash)."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=settings.DIALING_STALE_SECONDS)
    with transaction.atomic(durable=True):
        return dial_states.reclaim_stale(now, older_than=cutoff, limit=settings.DISPATCH_BATCH_SIZE)
