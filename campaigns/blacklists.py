"""Campaign blacklists: numbers and extensions the campaigns using a list must never dial.

Every change takes the exclusive advisory lock of each campaign using the list; the
dialler takes the same locks, shared, around the decision that authorises a dial. So an
entry (or an attached list) either commits before a dial is decided, and the gate sees
it, or waits until that dial's authorisation has committed: no dial is authorised after
the change commits. Adding suppresses the matching dial states of those campaigns and
cancels their queued attempts in the same transaction; removing releases them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import phonenumbers
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.actions import audit
from campaigns.models import Blacklist, BlacklistEntry, Campaign
from devices.keys import DeviceKeyError, normalize_extension, normalize_phone

RULE_CAMPAIGN_BLACKLIST = "campaign_blacklist"
REASON_PREFIX = RULE_CAMPAIGN_BLACKLIST + ":"

_EXTENSION = re.compile(r"^\d{2,8}$")
_PUNCTUATION = re.compile(r"[\s().\-/]")
# Brazilian area codes (DDD) in service; anything else goes to phonenumbers, which says why.
_BR_DDD = frozenset(
    str(ddd)
    for ddd in (
        11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 24, 27, 28, 31, 32, 33, 34, 35, 37, 38,
        41, 42, 43, 44, 45, 46, 47, 48, 49, 51, 53, 54, 55, 61, 62, 63, 64, 65, 66, 67, 68,
        69, 71, 73, 74, 75, 77, 79, 81, 82, 83, 84, 85, 86, 87, 88, 89, 91, 92, 93, 94, 95,
        96, 97, 98, 99,
    )
)  # fmt: skip
_NANP = re.compile(r"^[2-9]\d\d[2-9]\d{6}$")


@dataclass(frozen=True)
class Hit:
    blacklist_id: int
    blacklist_name: str
    reason: str


# --- keys ------------------------------------------------------------------------------


def parse_entry(value: str, region: str) -> tuple[str, str]:
    """(kind, key) for one blacklist value: an extension of 2–8 digits, or a phone number.

    The common shapes of file lines (US 10 digits, Brazilian DDD + number, E.164) are
    checked structurally, which keeps bulk imports fast; every other shape goes through
    phonenumbers, which also gives the clear message. Raises DeviceKeyError."""
    text = (value or "").strip()
    if _EXTENSION.match(text):
        return BlacklistEntry.Kind.EXTENSION, normalize_extension(text)
    digits = _PUNCTUATION.sub("", text)
    plus = digits.startswith("+")
    if plus:
        digits = digits[1:]
    elif digits.startswith("00"):
        digits, plus = digits[2:], True
    if digits.isdigit():
        key = _fast_e164(digits, plus, region)
        if key:
            return BlacklistEntry.Kind.PHONE, key
    return BlacklistEntry.Kind.PHONE, normalize_phone(text, region)


def _fast_e164(digits: str, international: bool, region: str) -> str:
    n = len(digits)
    if international or (region == "US" and n == 11) or (region == "BR" and n in (12, 13)):
        if n == 11 and digits[0] == "1" and _NANP.match(digits[1:]):
            return "+" + digits
        if n in (12, 13) and digits.startswith("55") and _br_national(digits[2:]):
            return "+" + digits
        return ""
    if region == "US" and n == 10 and _NANP.match(digits):
        return "+1" + digits
    if region == "BR" and _br_national(digits):
        return "+55" + digits
    return ""


def _br_national(digits: str) -> bool:
    if digits[:2] not in _BR_DDD:
        return False
    rest = digits[2:]
    return (len(rest) == 9 and rest[0] == "9") or (len(rest) == 8 and rest[0] in "2345")


def display_key(key: str) -> str:
    if not key.startswith("+"):
        return key
    try:
        number = phonenumbers.parse(key, None)
    except phonenumbers.NumberParseException:
        return key
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


# --- the gate's question ---------------------------------------------------------------


def blacklist_hits(
    campaign_ids: Iterable[int], keys: Iterable[str], now: dt.datetime
) -> dict[tuple[int, str], Hit]:
    """Applying entries per (campaign, device) in the current account: one query."""
    campaign_ids, keys = sorted(set(campaign_ids)), sorted(set(keys))
    if not campaign_ids or not keys or connection.schema_name == "public":
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT DISTINCT ON (cb.campaign_id, e.device_key)
                   cb.campaign_id, e.device_key, b.id, b.name, e.reason
            FROM campaigns_campaign_blacklists cb
            JOIN campaigns_blacklistentry e ON e.blacklist_id = cb.blacklist_id
            JOIN campaigns_blacklist b ON b.id = cb.blacklist_id
            WHERE cb.campaign_id = ANY(%s) AND e.device_key = ANY(%s)
              AND (e.expires_at IS NULL OR e.expires_at > %s)
            ORDER BY cb.campaign_id, e.device_key, e.created_at
            """,
            [campaign_ids, keys, now],
        )
        return {(c, k): Hit(b, name, reason) for c, k, b, name, reason in cursor.fetchall()}


def record_suppressions(counts: dict[int, int], now: dt.datetime) -> None:
    """Monitoring: how many attempts each list stopped, and when it last did."""
    for blacklist_id, count in sorted(counts.items()):
        Blacklist.objects.filter(pk=blacklist_id).update(
            suppressed_count=F("suppressed_count") + count, last_suppressed_at=now
        )


def lock_campaigns(campaign_ids: Iterable[int], *, shared: bool) -> None:
    """Advisory locks on campaigns of the current account, in id order."""
    ids = sorted(set(campaign_ids))
    if not ids:
        return
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    keys = [f"campaign:{connection.schema_name}:{i}" for i in ids]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count({function}(hashtextextended(k, 1))) "  # noqa: S608 - fixed name
            "FROM (SELECT unnest(%s::text[]) AS k ORDER BY 1) AS keys",
            [keys],
        )


# --- suppress and release --------------------------------------------------------------

_SUPPRESS_SQL = """
WITH hit AS (
    UPDATE campaigns_dialstate d SET
        status = 'suppressed', claim_token = NULL, claimed_at = NULL, next_attempt_at = NULL,
        last_reason = %(reason)s, updated_at = %(now)s
    FROM campaigns_subcampaign s
    WHERE d.sub_campaign_id = s.id AND s.campaign_id = ANY(%(campaigns)s)
      AND d.device_key IN ({keys})
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

_RELEASE_SQL = """
UPDATE campaigns_dialstate d SET
    status = 'pending', next_attempt_at = %(now)s, last_reason = %(reason)s, updated_at = %(now)s
FROM campaigns_subcampaign s
WHERE d.sub_campaign_id = s.id AND s.campaign_id = ANY(%(campaigns)s)
  AND d.device_key IN ({keys})
  AND d.status = 'suppressed' AND d.last_reason LIKE %(prefix)s
  AND NOT EXISTS (
      SELECT 1 FROM campaigns_campaign_blacklists cb
      JOIN campaigns_blacklistentry e ON e.blacklist_id = cb.blacklist_id
      WHERE cb.campaign_id = s.campaign_id AND e.device_key = d.device_key
        AND (e.expires_at IS NULL OR e.expires_at > %(now)s))
"""

ENTRY_KEYS = (
    "SELECT device_key FROM campaigns_blacklistentry "
    "WHERE blacklist_id = %(blacklist)s AND (expires_at IS NULL OR expires_at > %(now)s)"
)
GIVEN_KEYS = "SELECT unnest(%(keys)s::text[])"


def suppress_states(
    blacklist: Blacklist, campaign_ids: Sequence[int], keys_sql: str, params: dict
) -> int:
    """Matching pending states of the campaigns become suppressed, each with a ledger row
    naming the list; returns how many. Caller holds the campaigns' locks."""
    if not campaign_ids:
        return 0
    account = connection.tenant
    now = params.get("now") or timezone.now()
    detail = blacklist.name[:255]
    with connection.cursor() as cursor:
        cursor.execute(
            _SUPPRESS_SQL.format(keys=keys_sql),  # noqa: S608 - fixed fragments
            {
                **params,
                "now": now,
                "campaigns": list(campaign_ids),
                "reason": f"{RULE_CAMPAIGN_BLACKLIST}: {detail}"[:255],
                "enterprise": account.enterprise_id,
                "account": account.pk,
                "account_name": account.name,
                "rule": RULE_CAMPAIGN_BLACKLIST,
                "detail": detail,
            },
        )
        count = cursor.rowcount
    if count:
        record_suppressions({blacklist.pk: count}, now)
    return count


def release_states(campaign_ids: Sequence[int], keys_sql: str, params: dict, why: str) -> int:
    """Suppressed-by-blacklist states no applying entry holds any more go back to pending."""
    if not campaign_ids:
        return 0
    now = params.get("now") or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _RELEASE_SQL.format(keys=keys_sql),  # noqa: S608 - fixed fragments
            {
                **params,
                "now": now,
                "campaigns": list(campaign_ids),
                "prefix": REASON_PREFIX + "%",
                "reason": why[:255],
            },
        )
        return cursor.rowcount


def _campaign_ids(blacklist: Blacklist) -> list[int]:
    return list(blacklist.campaigns.values_list("pk", flat=True))


# --- actions -----------------------------------------------------------------------------


def _account():
    return connection.tenant


@transaction.atomic
def do_create_blacklist(*, name: str, description: str = "", actor=None, request=None):
    blacklist = Blacklist(
        name=name, description=description, created_by_label=getattr(actor, "email", "")
    )
    blacklist.full_clean()
    blacklist.save()
    audit(actor, "blacklist.create", account=_account(), obj=blacklist, request=request)
    return blacklist


@transaction.atomic
def do_update_blacklist(
    blacklist: Blacklist, *, name: str, description: str, actor=None, request=None
):
    before = {"name": blacklist.name, "description": blacklist.description}
    blacklist.name, blacklist.description = name, description
    blacklist.full_clean()
    blacklist.save(update_fields=["name", "description"])
    audit(actor, "blacklist.update", account=_account(), obj=blacklist,
          details={"before": before, "after": {"name": name, "description": description}},
          request=request)  # fmt: skip
    return blacklist


@transaction.atomic
def do_delete_blacklist(blacklist: Blacklist, *, actor=None, request=None) -> int:
    """Deleting a list releases what only it held."""
    campaign_ids = _campaign_ids(blacklist)
    lock_campaigns(campaign_ids, shared=False)
    params = {"blacklist": blacklist.pk, "now": timezone.now()}
    keys = list(
        BlacklistEntry.objects.filter(blacklist=blacklist).values_list("device_key", flat=True)
    )
    entries = len(keys)
    audit(actor, "blacklist.delete", account=_account(), obj=blacklist,
          details={"entries": entries, "campaigns": campaign_ids}, request=request)  # fmt: skip
    blacklist.delete()
    params["keys"] = keys
    release_states(campaign_ids, GIVEN_KEYS, params, f"released: list {blacklist.name} deleted")
    return entries


@transaction.atomic
def do_set_blacklist_campaigns(
    blacklist: Blacklist, campaigns: Iterable[Campaign], *, actor=None, request=None
) -> tuple[int, int]:
    """Attach the list to exactly these campaigns: newly attached campaigns stop dialling
    its numbers at once; detached ones get back what only this list held.
    Returns (suppressed, released)."""
    wanted = {c.pk for c in campaigns}
    current = set(_campaign_ids(blacklist))
    lock_campaigns(wanted | current, shared=False)
    added, removed = sorted(wanted - current), sorted(current - wanted)
    blacklist.campaigns.set(sorted(wanted))
    params = {"blacklist": blacklist.pk, "now": timezone.now()}
    suppressed = suppress_states(blacklist, added, ENTRY_KEYS, params)
    released = release_states(
        removed, ENTRY_KEYS, params, f"released: list {blacklist.name} detached"
    )
    audit(actor, "blacklist.campaigns", account=_account(), obj=blacklist,
          details={"attached": added, "detached": removed, "suppressed": suppressed,
                   "released": released}, request=request)  # fmt: skip
    return suppressed, released


def add_entries(
    blacklist: Blacklist,
    entries: Sequence[tuple[str, str]],
    *,
    reason: str,
    source: str,
    expires_at: dt.datetime | None,
    added_by: str,
    now: dt.datetime | None = None,
) -> tuple[list[str], int]:
    """Inserts entries (kind, key), skipping keys already listed; suppresses matching
    states. Call inside a transaction that holds the campaigns' locks.
    Returns (the keys added, states suppressed)."""
    now = now or timezone.now()
    if not entries:
        return [], 0
    kinds = [kind for kind, _key in entries]
    keys = [key for _kind, key in entries]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO campaigns_blacklistentry
                (blacklist_id, kind, device_key, reason, source, created_at, created_by_label,
                 expires_at)
            SELECT %s, kind, key, %s, %s, %s, %s, %s
            FROM unnest(%s::text[], %s::text[]) AS t(kind, key)
            ON CONFLICT (blacklist_id, device_key) DO NOTHING
            RETURNING device_key
            """,
            [blacklist.pk, reason[:255], source, now, added_by[:254], expires_at, kinds, keys],
        )
        added = [row[0] for row in cursor.fetchall()]
    suppressed = suppress_states(
        blacklist, _campaign_ids(blacklist), GIVEN_KEYS, {"keys": added, "now": now}
    )
    return added, suppressed


@transaction.atomic
def do_add_entry(
    blacklist: Blacklist,
    kind: str,
    key: str,
    *,
    reason: str = "",
    source: str = BlacklistEntry.Source.MANUAL,
    expires_at: dt.datetime | None = None,
    actor=None,
    request=None,
) -> tuple[bool, int]:
    """One number or extension; (added, states suppressed). Already listed: nothing changes."""
    lock_campaigns(_campaign_ids(blacklist), shared=False)
    label = getattr(actor, "email", "") or source
    added, suppressed = add_entries(
        blacklist, [(kind, key)], reason=reason, source=source, expires_at=expires_at,
        added_by=label,
    )  # fmt: skip
    if added:
        audit(actor, "blacklist.entry_add", account=_account(), obj=blacklist,
              details={"device": key, "kind": kind, "reason": reason, "source": source,
                       "expires_at": expires_at.isoformat() if expires_at else "",
                       "suppressed": suppressed}, request=request)  # fmt: skip
    return bool(added), suppressed


@transaction.atomic
def do_remove_entry(entry: BlacklistEntry, *, actor=None, request=None) -> int:
    """Removes one entry and releases the states only it held; returns how many."""
    blacklist = entry.blacklist
    campaign_ids = _campaign_ids(blacklist)
    lock_campaigns(campaign_ids, shared=False)
    key = entry.device_key
    entry.delete()
    released = release_states(
        campaign_ids, GIVEN_KEYS, {"keys": [key]}, f"released: removed from {blacklist.name}"
    )
    audit(actor, "blacklist.entry_remove", account=_account(), obj=blacklist,
          details={"device": key, "released": released}, request=request)  # fmt: skip
    return released


def release_expired(now: dt.datetime | None = None) -> int:
    """Entries past their expiry stop applying in the gate at once; this also puts the
    states they held back to pending and removes them from the list (audited)."""
    now = now or timezone.now()
    released = 0
    for blacklist in Blacklist.objects.filter(entries__expires_at__lte=now).distinct():
        with transaction.atomic():
            campaign_ids = _campaign_ids(blacklist)
            lock_campaigns(campaign_ids, shared=False)
            expired = BlacklistEntry.objects.filter(blacklist=blacklist, expires_at__lte=now)
            keys = list(expired.values_list("device_key", flat=True))
            if not keys:
                continue
            expired.delete()
            count = release_states(
                campaign_ids, GIVEN_KEYS, {"keys": keys, "now": now},
                f"released: entry in {blacklist.name} expired",
            )  # fmt: skip
            details = {"devices": keys[:100], "count": len(keys), "released": count}
            audit(None, "blacklist.entries_expired", account=_account(), obj=blacklist,
                  details=details)  # fmt: skip
            released += count
    return released


def arriving_suppressed(sub_campaign_ids: Sequence[int] | None = None) -> int:
    """Newly created pending states whose device a list of their campaign holds are
    suppressed before anything can dial them (contacts imported after the entry)."""
    now = timezone.now()
    filters = "TRUE" if sub_campaign_ids is None else "s.id = ANY(%(subs)s)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE campaigns_dialstate d SET status = 'suppressed', next_attempt_at = NULL,
                last_reason = %(prefix)s || ' ' || b.name, updated_at = %(now)s
            FROM campaigns_subcampaign s, campaigns_campaign_blacklists cb,
                 campaigns_blacklistentry e, campaigns_blacklist b
            WHERE d.sub_campaign_id = s.id AND {filters}
              AND d.status = 'pending' AND d.attempts = 0 AND d.current_attempt_id IS NULL
              AND cb.campaign_id = s.campaign_id AND e.blacklist_id = cb.blacklist_id
              AND b.id = cb.blacklist_id AND e.device_key = d.device_key
              AND (e.expires_at IS NULL OR e.expires_at > %(now)s)
            """,  # noqa: S608 - fixed fragments
            {"now": now, "subs": list(sub_campaign_ids or []), "prefix": REASON_PREFIX},
        )
        return cursor.rowcount


def validation_message(exc: DeviceKeyError) -> str:
    return str(exc) or _("Enter a phone number or an extension of 2 to 8 digits.")
