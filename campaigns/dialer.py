"""Dispatch and attempts: claim due devices, ask the gate, dial once, record everything.

The promise: every attempt is written to the ledger in the same transaction as the
account's dial state, the gate is asked again inside the transaction that authorises
the dial, and an attempt delivered twice (or resumed after a crash) is dialled once:
the ledger row is the gateway's idempotency key.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
import zoneinfo
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from campaigns.blacklists import apply_auto_rules, lock_campaigns, record_suppressions
from campaigns.gateways import (
    DeliveryJob,
    DeliveryResult,
    GatewayBusy,
    get_gateway,
    physical_delivery_count,
)
from campaigns.models import DialState, SubCampaign, render_message
from devices.models import Attempt, Direction, Disposition, RecordingState
from devices.policy import SUPPRESS, Decision, DialRequest, PolicyGate, lock_devices

logger = logging.getLogger(__name__)

# Results after which a device is tried again (if the sub-campaign's policy allows).
RETRYABLE = {"NO_ANSWER", "BUSY", "VOICEMAIL", "FAILED", "ABANDONED", "UNDELIVERED"}
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


def ledger_row(sub: SubCampaign, state: DialState, **values) -> Attempt:
    account = _account()
    base = {
        "attempted_at": timezone.now(),
        "enterprise_id": account.enterprise_id,
        "account_id": account.pk,
        "account_name": account.name,
        "campaign_id": sub.campaign_id,
        "campaign_name": sub.campaign.name,
        "sub_campaign_id": sub.pk,
        "sub_campaign_name": sub.name,
        "contact_id": state.contact_id,
        "dial_state_id": state.pk,
        "client_id": state.contact.client_id,
        "device_key": state.device_key,
        "channel": sub.channel,
        "direction": Direction.OUTBOUND,
    }
    base.update(values)
    return Attempt(**base)


def _apply_refusal(sub: SubCampaign, state: DialState, decision: Decision, now) -> Attempt | None:
    """Marks a state suppressed (returning its ledger row) or deferred."""
    state.claim_token = None
    state.claimed_at = None
    state.last_reason = f"{decision.rule}: {decision.detail}"[:255]
    if decision.action == SUPPRESS:
        state.status = DialState.Status.SUPPRESSED
        state.next_attempt_at = None
        return ledger_row(
            sub,
            state,
            attempted_at=now,
            completed_at=now,
            disposition=Disposition.SUPPRESSED,
            attempt_number=state.attempts + 1,
            suppression_rule=decision.rule,
            suppression_detail=decision.detail[:255],
        )
    state.status = DialState.Status.PENDING
    state.next_attempt_at = decision.retry_at
    return None


AUTO_RULE_RESULTS = {"NO_ANSWER", "WRONG_NUMBER", "SPAM"}


def _count_blacklist_suppressions(decisions: list[Decision], now: dt.datetime) -> None:
    counts: dict[int, int] = {}
    for decision in decisions:
        if decision.ref is not None and decision.action == SUPPRESS:
            counts[decision.ref] = counts.get(decision.ref, 0) + 1
    if counts:
        record_suppressions(counts, now)


def enterprise_today(now: dt.datetime) -> dt.date:
    """Sub-campaign start and end dates are days in the enterprise's time zone."""
    return now.astimezone(zoneinfo.ZoneInfo(_account().enterprise.time_zone)).date()


def dispatch_sub_campaign(sub_campaign_id: int, now: dt.datetime | None = None) -> DispatchReport:
    """One dispatcher pass over one sub-campaign, in the current account's schema."""
    now = now or timezone.now()
    report = DispatchReport()
    with transaction.atomic():
        sub = (
            SubCampaign.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("campaign")
            .filter(pk=sub_campaign_id, status=SubCampaign.Status.ACTIVE)
            .first()
        )
        if sub is None:  # paused, gone, or another dispatcher holds it right now
            return report
        today = enterprise_today(now)
        if sub.end_date and today > sub.end_date:
            from campaigns.actions import complete_sub_campaign

            complete_sub_campaign(sub)
            return report
        if sub.start_date and today < sub.start_date:
            return report
        last = sub.last_dispatch_at or now - dt.timedelta(
            seconds=settings.DISPATCH_INTERVAL_SECONDS
        )
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
        decisions = PolicyGate(_account().enterprise, now).decide(
            [request_for(sub, s) for s in states]
        )
        to_dial, rows = [], []
        for state, decision in zip(states, decisions, strict=True):
            if decision.dial:
                state.status = DialState.Status.DIALING
                state.claim_token = uuid.uuid4()
                state.claimed_at = now
                state.last_reason = ""
                to_dial.append(state)
                continue
            row = _apply_refusal(sub, state, decision, now)
            if row is not None:
                rows.append(row)
                report.suppressed += 1
            else:
                report.deferred += 1
            report.reasons[decision.rule] = report.reasons.get(decision.rule, 0) + 1
        _count_blacklist_suppressions(decisions, now)
        DialState.objects.bulk_update(
            states,
            ["status", "claim_token", "claimed_at", "next_attempt_at", "last_reason", "updated_at"],
            batch_size=200,  # CASE per row: cost grows with the square of the batch
        )
        Attempt.objects.bulk_create(rows)
        report.queued = len(to_dial)
        sub.dispatch_credit = max(0.0, credit - len(to_dial))
        sub.last_dispatch_at = now
        sub.save(update_fields=["dispatch_credit", "last_dispatch_at"])
        items = [[s.pk, str(s.claim_token)] for s in to_dial]
        if items:
            transaction.on_commit(lambda: enqueue_attempts(items))
    return report


def enqueue_attempts(items: list[list]) -> None:
    """Sends attempt tasks in chunks. If the broker is down the states stay claimed and the
    stale-claim sweep sends them again once it is back: nothing is lost, nothing dialled."""
    from campaigns.tasks import perform_attempts

    size = settings.ATTEMPT_TASK_CHUNK
    try:
        for start in range(0, len(items), size):
            perform_attempts.delay(items[start : start + size])
    except Exception:  # noqa: BLE001 - broker errors vary by transport
        logger.warning(
            "Could not enqueue %d attempts; the stale-claim sweep will retry", len(items)
        )


def _job(sub: SubCampaign, state: DialState, attempt: Attempt) -> DeliveryJob:
    contact = state.contact
    message = render_message(sub.message, name=contact.name, client_id=contact.client_id)
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


def _discard(attempt: Attempt | None) -> None:
    """An authorisation that never became a dial leaves no attempt behind."""
    if attempt is not None:
        Attempt.objects.filter(pk=attempt.pk, attempted_at=attempt.attempted_at).delete()


def _release(state: DialState, reason: str) -> None:
    """Back to pending without an attempt: the claim is void (paused, out of schedule)."""
    state.status = DialState.Status.PENDING
    state.claim_token = None
    state.claimed_at = None
    state.current_attempt_id = None
    state.last_reason = reason


def _authorise(items: list[tuple[int, str]]) -> list[tuple[DialState, Attempt]]:
    """Phase 1, one transaction for the chunk: lock the claimed devices and their states,
    re-ask the gate, write the authorised attempts to the ledger. Returns what may be
    delivered now.

    The devices are locked (advisory, in key order) so that caps count attempts
    authorised concurrently by other workers, and a block saved elsewhere either
    commits before this decision or waits for it.
    """
    tokens = dict(items)
    with transaction.atomic():
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
        resumed_ids = [s.current_attempt_id for s in states if s.current_attempt_id]
        resumed = {a.pk: a for a in Attempt.objects.filter(pk__in=resumed_ids)}
        ready: list[tuple[DialState, Attempt]] = []
        to_decide: list[tuple[DialState, Attempt | None]] = []
        released = []
        for state in states:
            attempt = resumed.get(state.current_attempt_id)
            if attempt is not None and physical_delivery_count(attempt.pk) > 0:
                # The delivery began before a crash: finish it (the gateway will not dial again).
                ready.append((state, attempt))
            elif state.contact.contact_list_id not in attached[state.sub_campaign_id]:
                _discard(attempt)
                _release(state, "list removed")
                state.status = DialState.Status.DONE
                state.next_attempt_at = None
                released.append(state)
            elif not _dialable(state.sub_campaign, now):
                _discard(attempt)
                _release(state, "not active when the attempt was due")
                released.append(state)
            else:
                # New, or authorised but never delivered: the gate decides now, not then.
                to_decide.append((state, attempt))
        decisions = PolicyGate(_account().enterprise, now).decide(
            [request_for(s.sub_campaign, s) for s, _ in to_decide]
        )
        _count_blacklist_suppressions(decisions, now)
        refused, new_rows, authorised = [], [], []
        for (state, attempt), decision in zip(to_decide, decisions, strict=True):
            sub = state.sub_campaign
            if not decision.dial:
                _discard(attempt)
                row = _apply_refusal(sub, state, decision, now)
                state.current_attempt_id = None
                refused.append(state)
                if row is not None:
                    new_rows.append(row)
                continue
            if attempt is None:
                attempt = ledger_row(
                    sub,
                    state,
                    attempted_at=now,
                    disposition=Disposition.PENDING,
                    attempt_number=state.attempts + 1,
                    source_address=sub.sms_source_address
                    if sub.channel == "sms"
                    else sub.caller_id,
                    source_type=sub.sms_source_type if sub.channel == "sms" else "",
                )
                new_rows.append(attempt)
            authorised.append((state, attempt))
        Attempt.objects.bulk_create([row for row in new_rows if row.pk is None])
        for state, row in authorised:
            state.current_attempt_id = row.pk
        DialState.objects.bulk_update(
            released + refused + [s for s, _ in authorised],
            ["status", "claim_token", "claimed_at", "next_attempt_at", "last_reason",
             "current_attempt_id", "updated_at"],
        )  # fmt: skip
        return ready + authorised


_RECORD_SQL = """
UPDATE public.devices_attempt AS a SET
    disposition = v.disposition, completed_at = v.completed_at, call_seconds = v.call_seconds,
    node = v.node, recording_state = v.recording_state, recording_file = v.recording_file,
    message = v.message, carrier_code = v.carrier_code,
    source_address = COALESCE(NULLIF(v.source_address, ''), a.source_address),
    source_type = COALESCE(NULLIF(v.source_type, ''), a.source_type)
FROM (VALUES {values}) AS v(id, attempted_at, disposition, completed_at, call_seconds, node,
     recording_state, recording_file, message, carrier_code, source_address, source_type)
WHERE a.id = v.id AND a.attempted_at = v.attempted_at
"""
_RECORD_VALUE = (
    "(%s::bigint, %s::timestamptz, %s, %s::timestamptz, %s::integer, %s, %s, %s, %s, %s, %s, %s)"
)


def _record(outcomes: list[tuple[DialState, Attempt, DeliveryResult]]) -> int:
    """Phase 3, one transaction for the chunk: outcomes into the ledger and the states."""
    now = timezone.now()
    expected = {state.pk: (attempt, result) for state, attempt, result in outcomes}
    with transaction.atomic():
        states = list(
            DialState.objects.select_for_update(of=("self",))
            .select_related("sub_campaign")
            .filter(pk__in=list(expected))
            .order_by("pk")
        )
        # Recorded already by a duplicate delivery: its current attempt changed.
        states = [s for s in states if s.current_attempt_id == expected[s.pk][0].pk]
        if not states:
            return 0
        params, replies = [], []
        for state in states:
            attempt, result = expected[state.pk]
            params += [
                attempt.pk, attempt.attempted_at, result.disposition, now, result.call_seconds,
                result.node,
                RecordingState.STORED if result.recording_file else RecordingState.NONE,
                result.recording_file, result.message, result.carrier_code,
                result.source_address, result.source_type,
            ]  # fmt: skip
            state.attempts += 1
            state.current_attempt_id = None
            state.claim_token = None
            state.claimed_at = None
            state.last_disposition = result.disposition
            sub = state.sub_campaign
            wait = sub.retry_wait_minutes(result.disposition)
            retry = result.disposition in RETRYABLE and state.attempts < sub.max_attempts
            if retry and wait is not None:
                state.status = DialState.Status.PENDING
                state.next_attempt_at = now + dt.timedelta(minutes=wait)
            else:
                state.status = DialState.Status.DONE
                state.next_attempt_at = None
            if result.reply_text:
                replies.append(
                    (
                        {
                            "device_key": state.device_key,
                            "to_address": result.source_address,
                            "text": result.reply_text,
                        },
                        result.reply_delay_seconds,
                    )
                )
        values = ", ".join([_RECORD_VALUE] * len(states))
        with connection.cursor() as cursor:
            cursor.execute(_RECORD_SQL.format(values=values), params)
        DialState.objects.bulk_update(
            states,
            ["attempts", "current_attempt_id", "claim_token", "claimed_at", "last_disposition",
             "status", "next_attempt_at", "updated_at"],
        )  # fmt: skip
        if replies:
            transaction.on_commit(lambda: [_schedule_reply(r, d) for r, d in replies])
        ruled = [
            (s.sub_campaign.campaign_id, s.device_key, s.last_disposition)
            for s in states
            if s.last_disposition in AUTO_RULE_RESULTS
        ]
        if ruled:  # after the outcome commits, in its own transaction with the list's locks
            transaction.on_commit(lambda: apply_auto_rules(ruled))
    return len(states)


def _schedule_reply(reply: dict, delay: int) -> None:
    from campaigns.tasks import receive_inbound_sms

    try:
        receive_inbound_sms.apply_async(kwargs=reply, countdown=delay)
    except Exception:  # noqa: BLE001
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
    with transaction.atomic():
        states = list(
            DialState.objects.select_for_update(skip_locked=True)
            .filter(status=DialState.Status.DIALING, claimed_at__lt=cutoff)
            .order_by("claimed_at")[: settings.DISPATCH_BATCH_SIZE]
        )
        for state in states:
            state.claimed_at = now
        DialState.objects.bulk_update(states, ["claimed_at"])
    return [[s.pk, str(s.claim_token)] for s in states]
