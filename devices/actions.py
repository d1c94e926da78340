"""Device settings: saved race-free against the dialler, audited, queued attempts cancelled
(for a Block) or released again (when a setting stops blocking).

The queued attempts live in the accounts' schemas; this module changes them through the
dial queue a tenant app registered (``devices.interfaces.DialQueue``), account by account,
inside the transaction that holds the devices' locks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts import webhooks
from accounts.actions import audit
from accounts.models import Account, Enterprise
from devices import interfaces
from devices.interfaces import Stop
from devices.locks import lock_devices
from devices.models import DeviceSetting
from devices.policy import RULE_DEVICE_BLOCK

# Devices per transaction of a bulk save: an advisory lock per device takes a slot of
# PostgreSQL's shared lock table (max_locks_per_transaction x max_connections, 6,400 by
# default), so 50,000 devices cannot be locked at once ("out of shared memory").
KEY_CHUNK = 1000


def do_save_device_setting(
    enterprise: Enterprise, device_key: str, action: str, **options
) -> DeviceSetting:
    """Saves a setting, as an entry point (its own, durable transaction): see
    save_device_setting, which takes the same options."""
    with transaction.atomic(durable=True):
        return save_device_setting(enterprise, device_key, action, **options)


def save_device_setting(
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
    Inside a caller's transaction (an inbound reply, an agent's disposition), the lock is
    held until that transaction commits.

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
            cancelled = sum(cancel_queued(enterprise, {device_key: block_stop(setting)}).values())
        else:
            released = sum(release_suppressed(enterprise, [device_key]).values())
        _emit_settings(enterprise, [setting])
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


def _emit_settings(enterprise: Enterprise, rows: Sequence[DeviceSetting | SavedSetting]) -> None:
    """device.blocked / device.allowed webhooks, in the settings' transaction."""
    for action, event in (("block", "device.blocked"), ("allow", "device.allowed")):
        items = [
            {"device": row.device_key, "source": row.source, "reason": row.reason,
             "expires_at": row.expires_at.isoformat() if row.expires_at else None,
             "saved_by": row.created_by_label}
            for row in rows if row.action == action
        ]  # fmt: skip
        if items:
            webhooks.emit(enterprise.pk, event, items)


def block_stop(setting: DeviceSetting | SavedSetting, source_label: str | None = None) -> Stop:
    """What a block's cancelled attempts say stopped them: the same words as the gate's."""
    label = source_label or str(DeviceSetting.Source(setting.source).label)
    detail = f"{label}: {setting.reason}".rstrip(": ")[:255]
    return Stop(RULE_DEVICE_BLOCK, setting.source, detail)


class SavedSetting(NamedTuple):
    """A setting of a bulk save, as written (without building a model instance each)."""

    device_key: str
    action: str
    reason: str
    expires_at: dt.datetime | None
    source: str
    created_by_label: str


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value) -> str:
    """One field of COPY's text format: NULL as \\N, separators and backslashes escaped."""
    if value is None:
        return "\\N"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value).translate(_COPY_ESCAPES)


def _copy_settings(enterprise: Enterprise, rows: Sequence[SavedSetting], now: dt.datetime):
    """The rows in one COPY: 1,000 settings took ~80 ms as bulk_create (building and
    compiling 1,000 model instances, more than the INSERT itself)."""
    created = now.isoformat()
    lines = [
        # Keys, actions and sources are normalised words: only the reason and who saved it
        # may hold a separator.
        f"{enterprise.pk}\t{row.device_key}\t{row.action}\t{_copy_text(row.reason)}\t"
        f"{_copy_text(row.expires_at)}\t{row.source}\t{created}\t"
        f"{_copy_text(row.created_by_label)}\n"
        for row in rows
    ]
    # psycopg's own copy: its errors wrapped as Django's, so an outage is a 503, not a 500.
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(_COPY_SETTINGS) as copy,
    ):
        copy.write("".join(lines))


_COPY_SETTINGS = (
    f"COPY public.{DeviceSetting._meta.db_table} (enterprise_id, device_key, action, reason, "
    "expires_at, source, created_at, created_by_label) FROM STDIN"
)


def _chunks(keys: Iterable[str], size: int = KEY_CHUNK) -> list[list[str]]:
    ordered = sorted(set(keys))
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def _enterprise_accounts(enterprise: Enterprise):
    return Account.objects.filter(enterprise=enterprise, is_active=True).order_by("pk")


def cancel_queued(enterprise: Enterprise, stops: Mapping[str, Stop]) -> dict[int, int]:
    """Pending and claimed-but-not-authorised states of the devices (``stops`` maps each
    device key to what its attempts show stopped them) become suppressed, each with a
    ledger row naming the block, in every account of the enterprise. Call it holding the
    devices' locks, or after the block committed. Returns the states cancelled per
    account id (accounts with none left out)."""
    cancelled: dict[int, int] = {}
    if not stops:
        return cancelled
    queue = interfaces.dial_queue()
    now = timezone.now()
    for account in _enterprise_accounts(enterprise):
        with tenant_context(account):
            count = queue.cancel(stops, now=now)
        if count:
            cancelled[account.pk] = count
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
    released: dict[int, int] = {}
    keys = sorted(set(keys))
    if not keys:
        return released
    queue = interfaces.dial_queue()
    now = now or timezone.now()
    for account in _enterprise_accounts(enterprise):
        with tenant_context(account):
            count = queue.release(keys, RULE_DEVICE_BLOCK, now=now)
        if count:
            released[account.pk] = count
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
    """Saves many settings (one per device: a later input for a device replaces an
    earlier one) with the promise of do_save_device_setting: each device's lock is held
    while its setting commits, so no dial is authorised after that. Then queued attempts
    of blocked devices are cancelled and those of allowed ones released, with one
    statement per account for all the devices.

    Up to KEY_CHUNK devices this is one transaction. A bigger file is saved in key
    order, KEY_CHUNK devices per transaction, because one transaction cannot hold
    50,000 advisory locks (PostgreSQL's shared lock table holds max_locks_per_transaction
    x max_connections, 6,400 by default); each account's states are then changed in a
    transaction of their own. A state that the dispatcher claims in between is
    suppressed by the gate, which reads the committed settings under the same locks.
    One audit row per settings transaction, and one per account changed."""
    by_key = {item.device_key: item for item in inputs}
    result = BulkResult()
    if not by_key:
        return result
    label = getattr(actor, "email", "") or source
    # Looked up once: the choices' lazy labels cost more than the rest at 50,000 rows.
    source_label = str(DeviceSetting.Source(source).label)
    blocks: dict[str, Stop] = {}
    others: list[str] = []
    small = len(by_key) <= KEY_CHUNK
    whole = transaction.atomic(durable=True) if small else contextlib.nullcontext()
    with whole:
        for keys in _chunks(by_key):
            with transaction.atomic(durable=not small):
                lock_devices(keys)
                rows = [
                    SavedSetting(key, by_key[key].action, by_key[key].reason[:255],
                                 by_key[key].expires_at, source, label)
                    for key in keys
                ]  # fmt: skip
                _copy_settings(enterprise, rows, timezone.now())
                _emit_settings(enterprise, rows)
                chunk = {"saved": len(rows), "blocks": 0, "allows": 0}
                for row in rows:
                    if row.action == DeviceSetting.Action.BLOCK:
                        blocks[row.device_key] = block_stop(row, source_label)
                        chunk["blocks"] += 1
                    else:
                        others.append(row.device_key)
                        chunk["allows"] += row.action == DeviceSetting.Action.ALLOW
                audit(actor, "device.import", enterprise=enterprise,
                      details={**(audit_details or {}), **chunk, "source": source,
                               "first": keys[0], "last": keys[-1]},
                      request=request)  # fmt: skip
            result.saved += chunk["saved"]
            result.blocks += chunk["blocks"]
            result.allows += chunk["allows"]
        queue = interfaces.dial_queue()
        now = timezone.now()
        for account in _enterprise_accounts(enterprise):
            with transaction.atomic(durable=not small), tenant_context(account):
                cancelled = queue.cancel(blocks, now=now) if blocks else 0
                released = queue.release(others, RULE_DEVICE_BLOCK, now=now) if others else 0
                if cancelled or released:
                    audit(actor, "device.import_applied", enterprise=enterprise,
                          account=account, details={"cancelled": cancelled,
                                                    "released": released, "source": source},
                          request=request)  # fmt: skip
            if cancelled or released:
                result.cancelled += cancelled
                result.released += released
                result.accounts.add(account.pk)
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
            with transaction.atomic(durable=True):
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
