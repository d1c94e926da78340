"""Device settings: saved race-free against the dialler, audited, queued attempts cancelled
(for a Block) or released again (when a setting stops blocking)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.actions import audit
from accounts.models import Account, Enterprise
from devices.models import DeviceSetting
from devices.policy import RULE_DEVICE_BLOCK, lock_devices

OPT_OUT_WORDS = {
    "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
    "PARE", "SAIR", "CANCELAR", "DESCADASTRAR",
}  # fmt: skip
OPT_IN_WORDS = {"START", "UNSTOP", "VOLTAR"}
_NOISE = re.compile(r"[\s.!?,;:'\"()\-]+")


def keyword_of(text: str) -> str:
    """ "Stop." and " pare " are STOP and PARE: case, spaces and punctuation ignored."""
    return _NOISE.sub("", text or "").upper()


# Keys per statement and per transaction of an import: an advisory lock per device uses a
# slot of PostgreSQL's shared lock table (max_locks_per_transaction x max_connections,
# 6,400 by default), so 50,000 devices cannot be locked at once.
KEY_CHUNK = 1000
BLOCK_REASON_PREFIX = f"{RULE_DEVICE_BLOCK}:"


def do_save_device_setting(
    enterprise: Enterprise,
    device_key: str,
    action: str,
    *,
    source: str = DeviceSetting.Source.MANUAL,
    reason: str = "",
    expires_at: dt.datetime | None = None,
    actor=None,
    request=None,
) -> DeviceSetting:
    """Saves a setting. For a Block, the device's advisory lock is held while it commits,
    so no dial is authorised after the block commits; queued attempts to the device in
    every account of the enterprise are cancelled (suppressed, with the reason) with it.
    An Allow or a Clear releases what an earlier block suppressed (see release_suppressed).

    The returned row carries ``cancelled`` and ``released``: how many dial states changed.
    """
    with transaction.atomic():
        lock_devices([device_key])
        setting = DeviceSetting.objects.create(
            enterprise=enterprise,
            device_key=device_key,
            action=action,
            source=source,
            reason=reason[:255],
            expires_at=expires_at,
            created_by_label=getattr(actor, "email", "") or source,
        )
        cancelled = released = 0
        if action == DeviceSetting.Action.BLOCK:
            cancelled = sum(
                cancel_queued(enterprise, {device_key: suppression_detail(setting)}).values()
            )
        else:
            released = sum(release_suppressed(enterprise, [device_key]).values())
        audit(
            actor,
            f"device.{action}",
            enterprise=enterprise,
            obj=setting,
            details={"device": device_key, "source": source, "reason": reason,
                     "expires_at": expires_at.isoformat() if expires_at else "",
                     "cancelled": cancelled, "released": released},
            request=request,
        )  # fmt: skip
    setting.cancelled, setting.released = cancelled, released
    return setting


def suppression_detail(setting: DeviceSetting) -> str:
    """What a suppressed attempt says stopped it: the same words as the gate's."""
    return f"{setting.get_source_display()}: {setting.reason}".rstrip(": ")[:255]


def _chunks(keys: Iterable[str], size: int = KEY_CHUNK) -> list[list[str]]:
    ordered = sorted(set(keys))
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def _enterprise_accounts(enterprise: Enterprise):
    return Account.objects.filter(enterprise=enterprise, is_active=True).order_by("pk")


def cancel_queued(enterprise: Enterprise, details: Mapping[str, str]) -> dict[int, int]:
    """Pending and claimed-but-not-authorised states of the devices (``details`` maps each
    device key to the reason its attempts show) become suppressed, each with a ledger row
    naming the block, in every account of the enterprise. Call it holding the devices'
    locks. Returns the states cancelled per account id (accounts with none left out)."""
    from campaigns.dialer import ledger_row
    from campaigns.models import DialState
    from devices.models import Attempt, Disposition

    now = timezone.now()
    cancelled: dict[int, int] = {}
    for account in _enterprise_accounts(enterprise):
        with tenant_context(account):
            for keys in _chunks(details):
                states = list(
                    DialState.objects.select_for_update(of=("self",))
                    .select_related("contact", "sub_campaign__campaign")
                    .filter(device_key__in=keys, current_attempt_id__isnull=True)
                    .filter(status__in=[DialState.Status.PENDING, DialState.Status.DIALING])
                    .order_by("pk")
                )
                if not states:
                    continue
                rows = []
                for state in states:
                    detail = details[state.device_key]
                    state.status = DialState.Status.SUPPRESSED
                    state.claim_token = None
                    state.claimed_at = None
                    state.next_attempt_at = None
                    state.last_reason = f"{RULE_DEVICE_BLOCK}: {detail}"[:255]
                    state.updated_at = now
                    rows.append(
                        ledger_row(
                            state.sub_campaign,
                            state,
                            attempted_at=now,
                            completed_at=now,
                            disposition=Disposition.SUPPRESSED,
                            attempt_number=state.attempts + 1,
                            suppression_rule=RULE_DEVICE_BLOCK,
                            suppression_detail=detail,
                        )  # fmt: skip
                    )
                DialState.objects.bulk_update(
                    states,
                    ["status", "claim_token", "claimed_at", "next_attempt_at", "last_reason",
                     "updated_at"],
                    batch_size=200,  # CASE per row: cost grows with the square of the batch
                )  # fmt: skip
                Attempt.objects.bulk_create(rows, batch_size=1000)
                cancelled[account.pk] = cancelled.get(account.pk, 0) + len(states)
    return cancelled


def release_suppressed(
    enterprise: Enterprise, keys: Iterable[str], *, now: dt.datetime | None = None
) -> dict[int, int]:
    """States that a device block suppressed go back to the queue, due now, in every
    account of the enterprise: the block no longer applies (an Allow, a removal, an
    expiry), so the contact is worked again. Nothing is dialled on this say-so: the gate
    decides each attempt at dial time, so a campaign blacklist, a national registry, the
    calling window or the cap still apply. Completed sub-campaigns are left as they
    ended. Returns the states released per account id (accounts with none left out)."""
    from campaigns.models import DialState, SubCampaign

    now = now or timezone.now()
    released: dict[int, int] = {}
    for account in _enterprise_accounts(enterprise):
        with tenant_context(account):
            for chunk in _chunks(keys):
                count = (
                    DialState.objects.filter(
                        device_key__in=chunk,
                        status=DialState.Status.SUPPRESSED,
                        last_reason__startswith=BLOCK_REASON_PREFIX,
                    )
                    .exclude(sub_campaign__status=SubCampaign.Status.COMPLETED)
                    .update(
                        status=DialState.Status.PENDING,
                        next_attempt_at=now,
                        claim_token=None,
                        claimed_at=None,
                        last_reason="device block lifted",
                        updated_at=now,
                    )
                )
                if count:
                    released[account.pk] = released.get(account.pk, 0) + count
    return released


# --- many settings at once (CSV import) ------------------------------------------------


@dataclass(frozen=True)
class SettingInput:
    """One device's new setting, already normalised and checked (see devices.setting_csv)."""

    device_key: str
    action: str
    reason: str = ""
    expires_at: dt.datetime | None = None


@dataclass
class BulkResult:
    saved: int = 0
    blocks: int = 0
    allows: int = 0
    cancelled: int = 0
    released: int = 0
    accounts: set[int] = field(default_factory=set)


def do_save_device_settings(
    enterprise: Enterprise,
    inputs: Sequence[SettingInput],
    *,
    source: str = DeviceSetting.Source.IMPORT,
    actor=None,
    request=None,
    audit_details: dict | None = None,
) -> BulkResult:
    """Saves many settings (one per device; duplicates are the caller's to collapse) with
    the same promise as do_save_device_setting: each device's lock is held while its
    setting commits, queued attempts of blocked devices are cancelled and those of
    allowed ones released, in every account, with set-based statements.

    Devices are saved in key order, up to KEY_CHUNK per transaction (the lock table
    bounds how many advisory locks one transaction may hold); one audit row per
    transaction says what it saved."""
    by_key = {item.device_key: item for item in inputs}
    result = BulkResult()
    label = getattr(actor, "email", "") or source
    for keys in _chunks(by_key):
        with transaction.atomic():
            lock_devices(keys)
            rows = DeviceSetting.objects.bulk_create(
                [
                    DeviceSetting(
                        enterprise=enterprise,
                        device_key=key,
                        action=by_key[key].action,
                        reason=by_key[key].reason[:255],
                        expires_at=by_key[key].expires_at,
                        source=source,
                        created_by_label=label,
                    )
                    for key in keys
                ]
            )
            blocks = {r.device_key: suppression_detail(r) for r in rows
                      if r.action == DeviceSetting.Action.BLOCK}  # fmt: skip
            others = [r.device_key for r in rows if r.action != DeviceSetting.Action.BLOCK]
            cancelled = cancel_queued(enterprise, blocks) if blocks else {}
            released = release_suppressed(enterprise, others) if others else {}
            chunk = {
                "saved": len(rows),
                "blocks": len(blocks),
                "allows": sum(r.action == DeviceSetting.Action.ALLOW for r in rows),
                "cancelled": sum(cancelled.values()),
                "released": sum(released.values()),
            }
            audit(actor, "device.import", enterprise=enterprise,
                  details={**(audit_details or {}), **chunk, "source": source,
                           "first": keys[0], "last": keys[-1]},
                  request=request)  # fmt: skip
        result.saved += chunk["saved"]
        result.blocks += chunk["blocks"]
        result.allows += chunk["allows"]
        result.cancelled += chunk["cancelled"]
        result.released += chunk["released"]
        result.accounts |= set(cancelled) | set(released)
    return result


def do_release_expired_blocks(
    *, since: dt.datetime, now: dt.datetime | None = None
) -> dict[int, int]:
    """For a periodic task: devices whose block expired in (since, now] and is still their
    latest setting get their suppressed states back in the queue, as a removal would.
    Returns the states released per enterprise id (enterprises with none left out)."""
    now = now or timezone.now()
    candidates: dict[int, set[str]] = {}
    for enterprise_id, key in DeviceSetting.objects.filter(
        action=DeviceSetting.Action.BLOCK, expires_at__gt=since, expires_at__lte=now
    ).values_list("enterprise_id", "device_key"):
        candidates.setdefault(enterprise_id, set()).add(key)
    released: dict[int, int] = {}
    for enterprise in Enterprise.objects.filter(pk__in=candidates).order_by("pk"):
        for keys in _chunks(candidates[enterprise.pk]):
            with transaction.atomic():
                lock_devices(keys)
                # Re-read under the locks: a setting saved since decides instead.
                latest = (
                    DeviceSetting.objects.filter(enterprise=enterprise, device_key__in=keys)
                    .order_by("device_key", "-created_at", "-id")
                    .distinct("device_key")
                )
                lapsed = [
                    s.device_key
                    for s in latest
                    if s.action == DeviceSetting.Action.BLOCK and not s.applies_at(now)
                ]
                count = sum(release_suppressed(enterprise, lapsed, now=now).values())
                if count:
                    audit(None, "device.block_expired", enterprise=enterprise,
                          details={"devices": len(lapsed), "released": count})  # fmt: skip
                    released[enterprise.pk] = released.get(enterprise.pk, 0) + count
    return released
