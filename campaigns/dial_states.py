"""Dial states and the ledger rows of their attempts: the one module that writes them.

A dial state is one device (phone or email) of one contact, as one sub-campaign works
through it::

    pending ──claim──▶ dialing ──authorise──▶ (ledger row PENDING) ──record──▶ done
       ▲  ▲               │                                           │
       │  └── defer ──────┤ (window, holiday, cap, stale registry)     └──▶ pending (retry)
       │                  └── suppress ──▶ suppressed (a rule stopped it; ledger row)
       └──────── release ◀───────────────────┘ (what stopped it lifted)

Every transition is written here, and so is every ledger row of an attempt
(``devices.models.Attempt``): the authorised attempt and its outcome, the suppressed
attempt that names the rule that stopped it, an inbound reply. Other modules decide (the
dialer asks the gate, blacklists and device settings say what changed); this one writes.
Which rule stopped or deferred a state, and its source (a device setting's source, a
blacklist's id, a registry's code), are columns (``last_rule``, ``last_rule_source``), so
a lifted block releases exactly what it stopped.

Callers hold the locks (docs/architecture.md: campaigns, then devices, then rows) and the
transaction; nothing here commits.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from django.contrib.postgres.aggregates import ArrayAgg
from django.contrib.postgres.fields import ArrayField
from django.db import connection
from django.db.models import BooleanField, Count, F, Func, Q, TextField, Value
from django.utils import timezone

from campaigns.models import Blacklist, DialState, SubCampaign
from devices.interfaces import QueueImpact, Stop
from devices.models import Attempt, Channel, Direction, Disposition, RecordingState
from devices.policy import RULE_CAMPAIGN_BLACKLIST, RULE_DEVICE_BLOCK, SUPPRESS, Decision

if TYPE_CHECKING:
    from campaigns.gateways import DeliveryResult  # a type hint only (gateways is above)

# Results after which a device is tried again (if the sub-campaign's policy allows).
RETRYABLE = {"NO_ANSWER", "BUSY", "VOICEMAIL", "FAILED", "ABANDONED", "UNDELIVERED"}

# Every column a transition may change, with its SQL type for the VALUES list of _write.
_COLUMNS = {
    "status": "varchar", "claim_token": "uuid", "claimed_at": "timestamptz",
    "next_attempt_at": "timestamptz", "current_attempt_id": "bigint", "attempts": "integer",
    "last_disposition": "varchar", "last_reason": "varchar", "last_rule": "varchar",
    "last_rule_source": "varchar", "updated_at": "timestamptz",
}  # fmt: skip
_DIALLER_FIELDS = (
    "status", "claim_token", "claimed_at", "next_attempt_at", "current_attempt_id",
    "last_reason", "last_rule", "last_rule_source", "updated_at",
)  # fmt: skip
_WRITE_BATCH = 1000


def _write(states: Sequence[DialState], fields: Sequence[str]) -> None:
    """The states' new values, in one ``UPDATE … FROM (VALUES …)`` per thousand rows.

    Django's bulk_update writes a CASE per column with a branch per row, whose cost grows
    with rows × columns (and faster: it is planned as one expression); a VALUES list is
    joined by id, linear in the rows."""
    if not states:
        return
    row = "(%s::bigint, " + ", ".join(f"%s::{_COLUMNS[f]}" for f in fields) + ")"
    assignments = ", ".join(f"{f} = v.{f}" for f in fields)
    names = ", ".join(fields)
    with connection.cursor() as cursor:
        for start in range(0, len(states), _WRITE_BATCH):
            batch = states[start : start + _WRITE_BATCH]
            params: list = []
            for state in batch:
                params.append(state.pk)
                params.extend(getattr(state, f) for f in fields)
            cursor.execute(
                f"UPDATE campaigns_dialstate AS d SET {assignments} "  # noqa: S608 - fixed names
                f"FROM (VALUES {', '.join([row] * len(batch))}) AS v(id, {names}) "
                "WHERE d.id = v.id",
                params,
            )


def _account():
    return connection.tenant


def ledger_row(sub: SubCampaign, state: DialState, **values) -> Attempt:
    """An unsaved ledger row for an attempt of this state, in the current account."""
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


def _set_rule(state: DialState, rule: str = "", source: str = "", detail: str = "") -> None:
    state.last_rule = rule[:32]
    state.last_rule_source = source[:64]
    state.last_reason = detail[:255]


# --- creating states -----------------------------------------------------------------------


def sync(
    *, sub_campaign_ids: Iterable[int] | None = None, contact_list_ids: Iterable[int] | None = None
) -> int:
    """Creates the missing dial states for contacts of lists attached to sub-campaigns.

    Idempotent (ON CONFLICT DO NOTHING) and set-based, so attaching a list of 100,000
    contacts is one statement. Voice and SMS sub-campaigns reach each phone of a
    contact; email sub-campaigns reach its email address. States whose device a
    blacklist of their campaign holds arrive suppressed. Runs in the current account.
    """
    filters, params = [], []
    if sub_campaign_ids is not None:
        filters.append("l.subcampaign_id = ANY(%s)")
        params.append(list(sub_campaign_ids))
    if contact_list_ids is not None:
        filters.append("l.contactlist_id = ANY(%s)")
        params.append(list(contact_list_ids))
    where = " AND ".join(filters) or "TRUE"
    now = timezone.now()  # not SQL now(): frozen clocks in tests must agree with the dispatcher
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO campaigns_dialstate
                (sub_campaign_id, contact_id, device_key, status, attempts, next_attempt_at,
                 last_disposition, last_reason, last_rule, last_rule_source, updated_at)
            SELECT l.subcampaign_id, c.id, d.key, 'pending', 0, %s, '', '', '', '', %s
            FROM campaigns_subcampaign_contact_lists l
            JOIN campaigns_subcampaign s ON s.id = l.subcampaign_id
            JOIN contacts_contact c ON c.contact_list_id = l.contactlist_id
            CROSS JOIN LATERAL (
                SELECT unnest(c.phones) AS key WHERE s.channel IN ('voice', 'sms')
                UNION ALL
                SELECT c.email WHERE s.channel = 'email' AND c.email <> ''
            ) d
            WHERE {where}
            ON CONFLICT (sub_campaign_id, contact_id, device_key) DO NOTHING
            """,  # noqa: S608 - the WHERE clause is built from fixed fragments
            [now, now, *params],
        )
        created = cursor.rowcount
        if created:
            if sub_campaign_ids is None:
                sql = f"SELECT DISTINCT subcampaign_id FROM campaigns_subcampaign_contact_lists l WHERE {where}"  # noqa: E501, S608 - fixed fragments
                cursor.execute(sql, params)
                sub_campaign_ids = [row[0] for row in cursor.fetchall()]
            arrive_suppressed(list(sub_campaign_ids))
        return created


def on_list_ready(sender, list_ids: Sequence[int], **kwargs) -> int:
    """contacts.signals.contact_list_ready: sub-campaigns already using the lists get their
    new contacts' states in the same commit as "ready"."""
    return sync(contact_list_ids=list_ids)


def arrive_suppressed(sub_campaign_ids: Sequence[int] | None = None) -> int:
    """Newly created pending states whose device a list of their campaign holds are
    suppressed before anything can dial them (contacts imported after the entry)."""
    now = timezone.now()
    filters = "TRUE" if sub_campaign_ids is None else "s.id = ANY(%(subs)s)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE campaigns_dialstate d SET status = 'suppressed', next_attempt_at = NULL,
                last_rule = %(rule)s, last_rule_source = b.id::text, last_reason = b.name,
                updated_at = %(now)s
            FROM campaigns_subcampaign s, campaigns_campaign_blacklists cb,
                 campaigns_blacklistentry e, campaigns_blacklist b
            WHERE d.sub_campaign_id = s.id AND {filters}
              AND d.status = 'pending' AND d.attempts = 0 AND d.current_attempt_id IS NULL
              AND cb.campaign_id = s.campaign_id AND e.blacklist_id = cb.blacklist_id
              AND b.id = cb.blacklist_id AND e.device_key = d.device_key
              AND (e.expires_at IS NULL OR e.expires_at > %(now)s)
            """,  # noqa: S608 - fixed fragments
            {"now": now, "subs": list(sub_campaign_ids or []), "rule": RULE_CAMPAIGN_BLACKLIST},
        )
        return cursor.rowcount


def retire_uncovered(sub: SubCampaign) -> None:
    """Devices of lists no longer attached stop being dialled at once.

    Never-attempted states go; attempted ones are closed (their history stays in the
    ledger). Claimed ones finish: the attempt task releases claims of removed lists.
    """
    uncovered = DialState.objects.filter(sub_campaign=sub).exclude(
        contact__contact_list__in=sub.contact_lists.all()
    )
    uncovered.filter(status=DialState.Status.PENDING, attempts=0).delete()
    uncovered.filter(status=DialState.Status.PENDING).update(
        status=DialState.Status.DONE, next_attempt_at=None, last_reason="list removed",
        last_rule="", last_rule_source="", updated_at=timezone.now(),
    )  # fmt: skip


def note_schedule_ended(sub: SubCampaign) -> None:
    """The sub-campaign's end date passed: its pending states say why they wait."""
    DialState.objects.filter(sub_campaign=sub, status=DialState.Status.PENDING).update(
        last_reason="schedule ended", updated_at=timezone.now()
    )


# --- the dialler's transitions ---------------------------------------------------------------


class Batch:
    """The transitions and ledger rows of one transaction of the dialler, written together
    by ``save()``: one INSERT of the new ledger rows, one bulk UPDATE of the states.

    The dispatcher claims, suppresses and defers; the attempt task authorises (writing the
    PENDING ledger row that is the gateway's idempotency key), refuses what the gate now
    stops, and voids claims that no longer hold (list removed, sub-campaign paused)."""

    def __init__(self, now: dt.datetime):
        self.now = now
        self._states: dict[int, DialState] = {}
        self._rows: list[Attempt] = []
        self._authorised: list[tuple[DialState, Attempt]] = []
        self._discarded: list[Attempt] = []
        self._list_counts: dict[int, int] = {}

    def _touch(self, state: DialState) -> None:
        state.updated_at = self.now  # written by _write: no auto_now
        self._states[state.pk] = state

    def claim(self, state: DialState) -> None:
        state.status = DialState.Status.DIALING
        state.claim_token = uuid.uuid4()
        state.claimed_at = self.now
        _set_rule(state)
        self._touch(state)

    def refuse(self, state: DialState, decision: Decision, attempt: Attempt | None = None) -> bool:
        """The gate said no: suppressed (with a ledger row naming the rule; True) or
        deferred to ``decision.retry_at``. A resumed attempt never delivered is dropped."""
        if attempt is not None:
            self.discard(attempt)
        state.claim_token = None
        state.claimed_at = None
        state.current_attempt_id = None
        _set_rule(state, decision.rule, decision.source, decision.detail)
        self._touch(state)
        if decision.action != SUPPRESS:
            state.status = DialState.Status.PENDING
            state.next_attempt_at = decision.retry_at
            return False
        state.status = DialState.Status.SUPPRESSED
        state.next_attempt_at = None
        self._rows.append(
            ledger_row(
                state.sub_campaign,
                state,
                attempted_at=self.now,
                completed_at=self.now,
                disposition=Disposition.SUPPRESSED,
                attempt_number=state.attempts + 1,
                suppression_rule=decision.rule,
                suppression_detail=decision.detail[:255],
            )  # fmt: skip
        )
        if decision.ref is not None:
            self._list_counts[decision.ref] = self._list_counts.get(decision.ref, 0) + 1
        return True

    def void_claim(self, state: DialState, reason: str, attempt: Attempt | None = None, *,
                   close: bool = False) -> None:  # fmt: skip
        """The claim no longer holds (paused, out of schedule; ``close``: its list was
        removed): back to pending (or done) without an attempt."""
        if attempt is not None:
            self.discard(attempt)
        state.status = DialState.Status.DONE if close else DialState.Status.PENDING
        if close:
            state.next_attempt_at = None
        state.claim_token = None
        state.claimed_at = None
        state.current_attempt_id = None
        _set_rule(state, detail=reason)
        self._touch(state)

    def hold(self, state: DialState, decision: Decision, attempt: Attempt | None = None) -> None:
        """The sender may not send now (an email's From domain is no longer allowed): the
        ledger row of a suppressed attempt records why, and the state waits, pending, for
        the dispatcher, which claims it again once the sender may send."""
        self.refuse(state, decision, attempt)
        state.status = DialState.Status.PENDING

    def authorise(self, state: DialState, attempt: Attempt | None = None) -> Attempt:
        """The gate said yes: the attempt's ledger row (a resumed one keeps its row)."""
        sub = state.sub_campaign
        if attempt is None:
            sms = sub.channel == Channel.SMS
            attempt = ledger_row(
                sub, state,
                attempted_at=self.now, disposition=Disposition.PENDING,
                attempt_number=state.attempts + 1,
                source_address=sub.sms_source_address if sms else sub.caller_id,
                source_type=sub.sms_source_type if sms else "",
            )  # fmt: skip
            self._rows.append(attempt)
        self._authorised.append((state, attempt))
        self._touch(state)
        return attempt

    def discard(self, attempt: Attempt) -> None:
        """An authorisation that never became a dial leaves no attempt behind."""
        self._discarded.append(attempt)

    def save(self) -> None:
        for attempt in self._discarded:
            Attempt.objects.filter(pk=attempt.pk, attempted_at=attempt.attempted_at).delete()
        Attempt.objects.bulk_create([row for row in self._rows if row.pk is None])
        for state, attempt in self._authorised:
            state.current_attempt_id = attempt.pk
        _write(sorted(self._states.values(), key=lambda s: s.pk), _DIALLER_FIELDS)
        count_list_suppressions(self._list_counts, self.now)


def count_list_suppressions(counts: Mapping[int, int], now: dt.datetime) -> None:
    """Monitoring of campaign blacklists: how many attempts each stopped, and when it last
    did, kept in the transaction that suppresses, so the list page is one read."""
    for blacklist_id, count in sorted(counts.items()):
        Blacklist.objects.filter(pk=blacklist_id).update(
            suppressed_count=F("suppressed_count") + count, last_suppressed_at=now
        )


_RECORD_SQL = """
UPDATE public.devices_attempt AS a SET
    disposition = v.disposition, completed_at = v.completed_at, call_seconds = v.call_seconds,
    node = v.node, recording_state = v.recording_state, recording_file = v.recording_file,
    message = v.message, carrier_code = v.carrier_code, carrier_answer = v.carrier_answer,
    source_address = COALESCE(NULLIF(v.source_address, ''), a.source_address),
    source_type = COALESCE(NULLIF(v.source_type, ''), a.source_type)
FROM (VALUES {values}) AS v(id, attempted_at, disposition, completed_at, call_seconds, node,
     recording_state, recording_file, message, carrier_code, carrier_answer, source_address,
     source_type)
WHERE a.id = v.id AND a.attempted_at = v.attempted_at
"""
_RECORD_VALUE = (
    "(%s::bigint, %s::timestamptz, %s, %s::timestamptz, %s::integer, %s, %s, %s, %s, %s, %s, %s,"
    " %s)"
)


def record(
    outcomes: Sequence[tuple[int, Attempt, DeliveryResult]], now: dt.datetime
) -> list[DialState]:
    """Outcomes (dial state id, its authorised attempt, the gateway's result) into the
    ledger and the states, in the caller's transaction: the state is done, or pending
    again after the sub-campaign's wait for that result. A state whose current attempt
    changed was recorded already (a duplicate delivery) and is left alone. Returns the
    states recorded."""
    expected = {state_id: (attempt, result) for state_id, attempt, result in outcomes}
    states = list(
        DialState.objects.select_for_update(of=("self",))
        .select_related("sub_campaign")
        .filter(pk__in=list(expected))
        .order_by("pk")
    )
    states = [s for s in states if s.current_attempt_id == expected[s.pk][0].pk]
    if not states:
        return []
    reported = _reported([expected[s.pk][0] for s in states])
    params = []
    for state in states:
        attempt, result = expected[state.pk]
        if attempt.pk in reported and result.disposition not in FINAL_REPORTS:
            # The carrier's report came before the sender's own record: it stands.
            disposition, answer = reported[attempt.pk]
            answer = answer or result.carrier_answer
            result = dataclasses.replace(result, disposition=disposition, carrier_answer=answer)
        params += [
            attempt.pk, attempt.attempted_at, result.disposition, now, result.call_seconds,
            result.node,
            RecordingState.STORED if result.recording_file else RecordingState.NONE,
            result.recording_file, result.message, result.carrier_code,
            result.carrier_answer[:160], result.source_address, result.source_type,
        ]  # fmt: skip
        state.attempts += 1
        state.current_attempt_id = None
        state.claim_token = None
        state.claimed_at = None
        state.last_disposition = result.disposition
        state.updated_at = now
        sub = state.sub_campaign
        wait = sub.retry_wait_minutes(result.disposition)
        retry = result.disposition in RETRYABLE and state.attempts < sub.max_attempts
        if retry and wait is not None:
            state.status = DialState.Status.PENDING
            state.next_attempt_at = now + dt.timedelta(minutes=wait)
        else:
            state.status = DialState.Status.DONE
            state.next_attempt_at = None
    values = ", ".join([_RECORD_VALUE] * len(states))
    with connection.cursor() as cursor:
        cursor.execute(_RECORD_SQL.format(values=values), params)
    _write(states, ("attempts", "last_disposition", *_DIALLER_FIELDS))
    return states


# A carrier's later word on an attempt (SMPP delivery reports): final results are not
# overwritten by an intermediate one that arrives late.
FINAL_REPORTS = {Disposition.DELIVERED, Disposition.UNDELIVERED, Disposition.REJECTED}


def _reported(attempts: Sequence[Attempt]) -> dict[int, tuple[str, str]]:
    """Ledger rows among these that a carrier's final report reached already (a report
    may come back before the sender has recorded what it sent)."""
    rows = Attempt.objects.filter(
        pk__in=[a.pk for a in attempts],
        attempted_at__in={a.attempted_at for a in attempts},
        disposition__in=FINAL_REPORTS,
    ).values_list("pk", "disposition", "carrier_answer")
    return {pk: (disposition, answer) for pk, disposition, answer in rows}


def record_report(
    attempt_id: int,
    attempted_at: dt.datetime | None,
    disposition: str,
    *,
    carrier_answer: str = "",
    carrier_code: str = "",
    now: dt.datetime,
) -> Attempt | None:
    """A delivery report on an attempt of the current account, already recorded: its ledger
    row takes the new result and the carrier's words. When the new result is one the
    sub-campaign retries and the attempt is its state's latest, the state is queued again
    after the sub-campaign's wait, as a result known at once would have been. Returns the
    row (None: no such attempt here). Repeated and late reports change nothing twice."""
    account = _account()
    rows = Attempt.objects.filter(pk=attempt_id, account_id=account.pk)
    if attempted_at is not None:
        rows = rows.filter(attempted_at=attempted_at)  # one partition, not all of them
    attempt = rows.first()
    if attempt is None:
        return None
    # The lock order of record(): the dial state first, then its ledger row (the other
    # way round, a report and the sender's record deadlock). Then the row is read again.
    state = (
        DialState.objects.select_for_update(of=("self",))
        .select_related("sub_campaign")
        .filter(pk=attempt.dial_state_id)
        .first()
    )
    attempt = rows.first()
    final = attempt.disposition in FINAL_REPORTS
    if attempt.disposition == disposition or (final and disposition not in FINAL_REPORTS):
        return attempt
    values = {"disposition": disposition, "completed_at": attempt.completed_at or now}
    if carrier_answer:
        values["carrier_answer"] = carrier_answer[:160]
    if carrier_code:
        values["carrier_code"] = carrier_code[:16]
    Attempt.objects.filter(pk=attempt.pk, attempted_at=attempt.attempted_at).update(**values)
    for name, value in values.items():
        setattr(attempt, name, value)
    if (
        state is not None
        and state.current_attempt_id is None
        and state.attempts == attempt.attempt_number
    ):
        state.last_disposition = disposition
        state.updated_at = now
        sub = state.sub_campaign
        wait = sub.retry_wait_minutes(disposition)
        if (
            state.status == DialState.Status.DONE
            and disposition in RETRYABLE
            and state.attempts < sub.max_attempts
            and wait is not None
            and sub.status != SubCampaign.Status.COMPLETED
        ):
            state.status = DialState.Status.PENDING
            state.next_attempt_at = now + dt.timedelta(minutes=wait)
        _write([state], ("status", "next_attempt_at", "last_disposition", "updated_at"))
    return attempt


def reclaim_stale(now: dt.datetime, *, older_than: dt.datetime, limit: int) -> list[list]:
    """Claims whose task never finished (broker restart, killed worker): stamped again and
    returned as [[state id, token], ...] for the caller to send again."""
    states = list(
        DialState.objects.select_for_update(skip_locked=True)
        .filter(status=DialState.Status.DIALING, claimed_at__lt=older_than)
        .order_by("claimed_at")[:limit]
    )
    for state in states:
        state.claimed_at = now
        state.updated_at = now
    _write(states, ("claimed_at", "updated_at"))
    return [[s.pk, str(s.claim_token)] for s in states]


# --- set-based changes: blacklists and device blocks -------------------------------------------

_SUPPRESS_SQL = """
WITH hit AS (
    UPDATE campaigns_dialstate d SET
        status = 'suppressed', claim_token = NULL, claimed_at = NULL, next_attempt_at = NULL,
        last_rule = %(rule)s, last_rule_source = %(source)s, last_reason = %(detail)s,
        updated_at = %(now)s
    FROM campaigns_subcampaign s
    WHERE d.sub_campaign_id = s.id AND s.campaign_id = ANY(%(campaigns)s)
      AND {keys}
      AND d.status IN ('pending', 'dialing') AND d.current_attempt_id IS NULL
    RETURNING d.id, d.sub_campaign_id, d.contact_id, d.device_key, d.attempts
)
INSERT INTO public.devices_attempt
    (attempted_at, enterprise_id, account_id, account_name, campaign_id, campaign_name,
     sub_campaign_id, sub_campaign_name, contact_id, dial_state_id, attempt_number, client_id,
     device_key, channel, direction, disposition, completed_at, suppression_rule,
     suppression_detail)
SELECT %(now)s, %(enterprise)s, %(account)s, %(account_name)s, s.campaign_id, c.name,
       s.id, s.name, h.contact_id, h.id, h.attempts + 1, ct.client_id,
       h.device_key, s.channel, 'outbound', 'SUPPRESSED', %(now)s, %(rule)s, %(detail)s
FROM hit h
JOIN campaigns_subcampaign s ON s.id = h.sub_campaign_id
JOIN campaigns_campaign c ON c.id = s.campaign_id
JOIN contacts_contact ct ON ct.id = h.contact_id
"""

_RELEASE_LISTED_SQL = """
UPDATE campaigns_dialstate d SET
    status = 'pending', next_attempt_at = %(now)s, last_reason = %(reason)s, last_rule = '',
    last_rule_source = '', updated_at = %(now)s
FROM campaigns_subcampaign s
WHERE d.sub_campaign_id = s.id AND s.campaign_id = ANY(%(campaigns)s)
  AND {keys}
  AND d.status = 'suppressed' AND d.last_rule = %(rule)s
  AND NOT EXISTS (
      SELECT 1 FROM campaigns_campaign_blacklists cb
      JOIN campaigns_blacklistentry e ON e.blacklist_id = cb.blacklist_id
      WHERE cb.campaign_id = s.campaign_id AND e.device_key = d.device_key
        AND (e.expires_at IS NULL OR e.expires_at > %(now)s))
"""

# Which devices: a list's applying entries, or given keys (an array: index probes,
# where an IN over unnest() is planned as a nested loop over every state).
ENTRY_KEYS = (
    "d.device_key IN (SELECT device_key FROM campaigns_blacklistentry "
    "WHERE blacklist_id = %(blacklist)s AND (expires_at IS NULL OR expires_at > %(now)s))"
)
GIVEN_KEYS = "d.device_key = ANY(%(keys)s::text[])"


def suppress_listed(
    blacklist: Blacklist, campaign_ids: Sequence[int], keys_sql: str, params: dict
) -> int:
    """Pending states of the campaigns whose device the list holds (``keys_sql``, one of
    ENTRY_KEYS or GIVEN_KEYS) become suppressed, each with a ledger row naming the list.
    Returns how many. The caller holds the campaigns' locks."""
    if not campaign_ids:
        return 0
    account = _account()
    now = params.get("now") or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _SUPPRESS_SQL.format(keys=keys_sql),  # noqa: S608 - fixed fragments
            {
                **params,
                "now": now,
                "campaigns": list(campaign_ids),
                "rule": RULE_CAMPAIGN_BLACKLIST,
                "source": str(blacklist.pk),
                "detail": blacklist.name[:255],
                "enterprise": account.enterprise_id,
                "account": account.pk,
                "account_name": account.name,
            },
        )
        count = cursor.rowcount
    if count:
        count_list_suppressions({blacklist.pk: count}, now)
    return count


def release_unlisted(campaign_ids: Sequence[int], keys_sql: str, params: dict, why: str) -> int:
    """States a blacklist suppressed that no applying entry of their campaign holds any
    more go back to pending, due now. Returns how many."""
    if not campaign_ids:
        return 0
    now = params.get("now") or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _RELEASE_LISTED_SQL.format(keys=keys_sql),  # noqa: S608 - fixed fragments
            {**params, "now": now, "campaigns": list(campaign_ids),
             "rule": RULE_CAMPAIGN_BLACKLIST, "reason": why[:255]},
        )  # fmt: skip
        return cursor.rowcount


class _AnyOf(Func):
    """``column = ANY(array)``: one parameter however many keys, and an index scan. An
    IN list of 50,000 placeholders is slow to build, and ``IN (SELECT unnest(…))``
    was planned as a nested loop (2.7 s against 3 ms, measured)."""

    arg_joiner = " = ANY("
    template = "%(expressions)s)"
    output_field = BooleanField()


def _key_in(keys: Iterable[str]) -> _AnyOf:
    return _AnyOf(F("device_key"), Value(sorted(set(keys)), output_field=ArrayField(TextField())))


def suppress_devices(stops: Mapping[str, Stop], *, now: dt.datetime) -> int:
    """Device blocks: pending and claimed-but-not-authorised states of these devices become
    suppressed, each with a ledger row naming its Stop. Rows are locked in id order, after
    the devices' locks the caller holds (the dialler's order). Returns how many."""
    if not stops:
        return 0
    states = list(
        DialState.objects.select_for_update(of=("self",))
        .select_related("contact", "sub_campaign__campaign")
        .filter(_key_in(stops), current_attempt_id__isnull=True)
        .filter(status__in=[DialState.Status.PENDING, DialState.Status.DIALING])
        .order_by("pk")
    )
    rows = []
    for state in states:
        stop = stops[state.device_key]
        state.status = DialState.Status.SUPPRESSED
        state.claim_token = None
        state.claimed_at = None
        state.next_attempt_at = None
        state.updated_at = now
        _set_rule(state, stop.rule, stop.source, stop.detail)
        rows.append(
            ledger_row(
                state.sub_campaign,
                state,
                attempted_at=now,
                completed_at=now,
                disposition=Disposition.SUPPRESSED,
                attempt_number=state.attempts + 1,
                suppression_rule=stop.rule,
                suppression_detail=stop.detail[:255],
            )  # fmt: skip
        )
    if states:
        _write(states, _DIALLER_FIELDS)
        Attempt.objects.bulk_create(rows, batch_size=1000)
    return len(states)


def release_devices(keys: Sequence[str], rule: str, *, now: dt.datetime) -> int:
    """States that ``rule`` suppressed go back to the queue, due now (a block lifted: an
    Allow, a removal, an expiry). Nothing is dialled on this say-so: the gate decides each
    attempt, so a blacklist, a registry, the window or the cap still apply. Completed
    sub-campaigns are left as they ended. Returns how many."""
    if not keys:
        return 0
    return (
        DialState.objects.filter(_key_in(keys), status=DialState.Status.SUPPRESSED, last_rule=rule)
        .exclude(sub_campaign__status=SubCampaign.Status.COMPLETED)
        .update(
            status=DialState.Status.PENDING,
            next_attempt_at=now,
            claim_token=None,
            claimed_at=None,
            last_reason="device block lifted",
            last_rule="",
            last_rule_source="",
            updated_at=now,
        )
    )


def impact(device_key: str, sub_campaign_ids: Iterable[int], *, block: bool) -> list[QueueImpact]:
    """What a Block (``block``) would stop, or an Allow/removal release, for one device in
    these sub-campaigns: the same states suppress_devices and release_devices change.
    One aggregate query; changes nothing."""
    queued = Q(status__in=[DialState.Status.PENDING, DialState.Status.DIALING])
    if block:
        # Every state still to be worked stops; those not yet handed to a gateway are
        # cancelled now (an attempt already authorised finishes, and is not retried).
        contacts = ArrayAgg("contact_id", distinct=True, filter=queued, default=[])
        attempts = Count("id", filter=queued & Q(current_attempt_id__isnull=True))
    else:
        lifted = Q(status=DialState.Status.SUPPRESSED, last_rule=RULE_DEVICE_BLOCK)
        contacts = ArrayAgg("contact_id", distinct=True, filter=lifted, default=[])
        attempts = Count("id", filter=lifted)
    rows = (
        DialState.objects.filter(device_key=device_key, sub_campaign_id__in=list(sub_campaign_ids))
        .values(
            "sub_campaign_id",
            "sub_campaign__name",
            "sub_campaign__campaign__name",
            "sub_campaign__channel",
        )
        .annotate(contacts=contacts, attempts=attempts)
        .order_by("sub_campaign__campaign__name", "sub_campaign__name")
    )
    return [
        QueueImpact(
            sub_campaign_id=r["sub_campaign_id"],
            name=r["sub_campaign__name"],
            campaign_name=r["sub_campaign__campaign__name"],
            channel=r["sub_campaign__channel"],
            contact_ids=set(r["contacts"]),
            attempts=r["attempts"],
        )
        for r in rows
    ]


class AccountDialQueue:
    """``devices.interfaces.DialQueue`` for the current account (registered in apps.py)."""

    def cancel(self, stops: Mapping[str, Stop], *, now: dt.datetime) -> int:
        return suppress_devices(stops, now=now)

    def release(self, keys: Sequence[str], rule: str, *, now: dt.datetime) -> int:
        return release_devices(keys, rule, now=now)

    def impact(
        self, device_key: str, sub_campaign_ids: Iterable[int], *, block: bool
    ) -> list[QueueImpact]:
        return impact(device_key, sub_campaign_ids, block=block)


# --- inbound ----------------------------------------------------------------------------------

_LAST_TEXT_SQL = """
SELECT dial_state_id, sub_campaign_id, contact_id, client_id
FROM public.devices_attempt
WHERE enterprise_id = %(enterprise)s AND device_key = %(key)s AND account_id = %(account)s
  AND channel = 'sms' AND direction = 'outbound' AND disposition <> 'SUPPRESSED'
  AND attempted_at > %(since)s
ORDER BY (source_address = %(to)s) DESC, attempted_at DESC, id DESC
LIMIT 1
"""
REPLY_LOOKBACK = dt.timedelta(days=365)


def record_inbound_sms(
    *, device_key: str, to_address: str, text: str, received_at: dt.datetime | None = None
) -> Attempt:
    """A mobile-originated text, as a ledger row of the current account.

    It is attributed to the sub-campaign that texted this device last, from the address
    it replied to (or, failing that, from any address), as the ledger shows: the ledger
    is where every text sent is written, in the order it was sent. A reply from a device
    nothing has texted goes to the SMS sub-campaign that has it queued."""
    account = _account()
    received_at = received_at or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _LAST_TEXT_SQL,
            {"enterprise": account.enterprise_id, "key": device_key, "account": account.pk,
             "since": received_at - REPLY_LOOKBACK, "to": to_address},
        )  # fmt: skip
        last = cursor.fetchone()
    states = DialState.objects.select_related("sub_campaign__campaign", "contact")
    state = states.filter(pk=last[0]).first() if last is not None else None
    if state is None:
        # Nothing texted this device yet (or its state is gone): the SMS sub-campaign that
        # has it queued, from the address it wrote to if one does, the latest first.
        queued = states.filter(device_key=device_key, sub_campaign__channel=Channel.SMS)
        state = (
            queued.filter(sub_campaign__sms_source_address=to_address)
            .order_by("-updated_at", "-id")
            .first()
            or queued.order_by("-updated_at", "-id").first()
        )
    sub = state.sub_campaign if state is not None else None
    return Attempt.objects.create(
        attempted_at=received_at,
        completed_at=received_at,
        enterprise_id=account.enterprise_id,
        account_id=account.pk,
        account_name=account.name,
        campaign_id=sub.campaign_id if sub else None,
        campaign_name=sub.campaign.name if sub else "",
        sub_campaign_id=sub.pk if sub else None,
        sub_campaign_name=sub.name if sub else "",
        contact_id=state.contact_id if state else None,
        dial_state_id=state.pk if state else None,
        client_id=state.contact.client_id if state else "",
        device_key=device_key,
        channel=Channel.SMS,
        direction=Direction.INBOUND,
        disposition=Disposition.RECEIVED,
        message=text[:2000],
        source_address=to_address,
        source_type=sub.sms_source_type if sub else "",
    )
