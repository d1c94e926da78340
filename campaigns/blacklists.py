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
from devices.keys import normalize_extension, normalize_phone

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
    if text.isascii() and text.isdigit():  # the usual shape of a file's line: fastest path
        if len(text) <= 8:
            return BlacklistEntry.Kind.EXTENSION, normalize_extension(text)
        key = _fast_e164(text, False, region)
        if key:
            return BlacklistEntry.Kind.PHONE, key
    elif _EXTENSION.match(text):
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

_RELEASE_SQL = """
UPDATE campaigns_dialstate d SET
    status = 'pending', next_attempt_at = %(now)s, last_reason = %(reason)s, updated_at = %(now)s
FROM campaigns_subcampaign s
WHERE d.sub_campaign_id = s.id AND s.campaign_id = ANY(%(campaigns)s)
  AND {keys}
  AND d.status = 'suppressed' AND d.last_reason LIKE %(prefix)s
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


@transaction.atomic
def do_set_campaign_blacklists(
    campaign: Campaign, wanted: set[int], *, rule_form=None, actor=None, request=None
) -> tuple[int, int]:
    """From the campaign's side: exactly these lists, and (a valid form) its auto-add
    rule, in one transaction. Only the lists that change are touched."""
    current = set(campaign.blacklists.values_list("pk", flat=True))
    suppressed = released = 0
    for blacklist in Blacklist.objects.filter(pk__in=current ^ wanted).order_by("pk"):
        using = set(_campaign_ids(blacklist))
        target = using | {campaign.pk} if blacklist.pk in wanted else using - {campaign.pk}
        s, r = do_set_blacklist_campaigns(
            blacklist, Campaign.objects.filter(pk__in=target), actor=actor, request=request
        )
        suppressed, released = suppressed + s, released + r
    if rule_form is not None:
        rule_form.save()
        details = {k: str(v) for k, v in rule_form.cleaned_data.items()}
        audit(actor, "campaign.auto_blacklist", account=_account(), obj=campaign,
              details=details, request=request)  # fmt: skip
    return suppressed, released


def add_entries(
    blacklist: Blacklist,
    entries: Sequence[tuple[str, ...]],
    *,
    reason: str,
    source: str,
    expires_at: dt.datetime | None,
    added_by: str,
    now: dt.datetime | None = None,
) -> tuple[list[str], int]:
    """Inserts entries (kind, key), skipping keys already listed; suppresses matching
    states. Call inside a transaction that holds the campaigns' locks.
    Returns (how many entries were added, states suppressed)."""
    now = now or timezone.now()
    if not entries:
        return [], 0
    kinds = [entry[0] for entry in entries]
    keys = [entry[1] for entry in entries]
    # An entry may carry its own reason (a file's reason column); else the shared one.
    reasons = [(entry[2] if len(entry) > 2 and entry[2] else reason)[:255] for entry in entries]
    with connection.cursor() as cursor:
        # COPY into a scratch table, then one INSERT … ON CONFLICT: the cheapest way in
        # for tens of thousands of rows (no parameter arrays to build and parse).
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS blacklist_import_rows "
            "(kind text, device_key text, reason text) ON COMMIT DELETE ROWS"
        )
        with cursor.cursor.copy(
            "COPY blacklist_import_rows (kind, device_key, reason) FROM STDIN"
        ) as copy:
            for row in zip(kinds, keys, reasons, strict=True):
                copy.write_row(row)
        cursor.execute("ANALYZE blacklist_import_rows")  # so the joins below hash it
        cursor.execute(
            """
            INSERT INTO campaigns_blacklistentry
                (blacklist_id, kind, device_key, reason, source, created_at, created_by_label,
                 expires_at)
            SELECT %s, kind, device_key, reason, %s, %s, %s, %s FROM blacklist_import_rows
            ON CONFLICT (blacklist_id, device_key) DO NOTHING
            """,
            [blacklist.pk, source, now, added_by[:254], expires_at],
        )
        added = cursor.rowcount
        # Every key of the chunk is on the list now (new or already there): their
        # pending states in the list's campaigns stop.
        suppressed = 0
        campaign_ids = _campaign_ids(blacklist) if added else []
        if campaign_ids:
            # The few keys that have dial states, found from the chunk's side (its table is
            # analysed; fresh states' statistics may not be), then suppressed by index.
            cursor.execute(
                "SELECT DISTINCT r.device_key FROM blacklist_import_rows r "
                "JOIN campaigns_dialstate d ON d.device_key = r.device_key "
                "WHERE d.status IN ('pending', 'dialing')"
            )
            matched = [row[0] for row in cursor.fetchall()]
            if matched:
                suppressed = suppress_states(
                    blacklist, campaign_ids, GIVEN_KEYS, {"keys": matched, "now": now}
                )
        cursor.execute("TRUNCATE blacklist_import_rows")
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


# --- auto-add rules and agent dispositions -----------------------------------------------

WRONG_NUMBER_RESULTS = {"WRONG_NUMBER", "SPAM"}


def apply_auto_rules(outcomes: Sequence[tuple[int, str, str]]) -> int:
    """(campaign, device, result) of finished attempts in the current account: numbers a
    campaign's rules catch join its chosen list (own transaction, campaign locks held).
    Returns how many entries were added."""
    campaign_ids = {campaign for campaign, _key, _result in outcomes if campaign}
    campaigns = {
        c.pk: c
        for c in Campaign.objects.filter(pk__in=campaign_ids, auto_blacklist__isnull=False)
        .exclude(auto_unanswered_after=0, auto_on_wrong_number=False)
        .select_related("auto_blacklist")
    }
    if not campaigns:
        return 0
    wanted: dict[tuple[int, str], str] = {}
    unanswered: set[tuple[int, str]] = set()
    for campaign_id, key, result in outcomes:
        campaign = campaigns.get(campaign_id)
        if campaign is None:
            continue
        if result in WRONG_NUMBER_RESULTS and campaign.auto_on_wrong_number:
            label = _("Wrong number") if result == "WRONG_NUMBER" else _("Marked as spam")
            wanted[(campaign_id, key)] = _("Auto-add rule: %(result)s") % {"result": label}
        elif result == "NO_ANSWER" and campaign.auto_unanswered_after:
            unanswered.add((campaign_id, key))
    for campaign_id, key in _consecutive_unanswered(campaigns, unanswered):
        count = campaigns[campaign_id].auto_unanswered_after
        wanted.setdefault(
            (campaign_id, key),
            _("Auto-add rule: %(count)s consecutive unanswered attempts") % {"count": count},
        )
    added = 0
    for (campaign_id, key), reason in sorted(wanted.items()):
        blacklist = campaigns[campaign_id].auto_blacklist
        added += int(_auto_add(blacklist, key, reason))
    return added


def _consecutive_unanswered(campaigns: dict, pairs: set[tuple[int, str]]) -> list:
    if not pairs:
        return []
    account = connection.tenant
    depth = max(campaigns[c].auto_unanswered_after for c, _k in pairs)
    since = timezone.now() - dt.timedelta(days=365)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT campaign_id, device_key, array_agg(disposition ORDER BY attempted_at DESC)
            FROM (
                SELECT campaign_id, device_key, disposition, attempted_at,
                       row_number() OVER (PARTITION BY campaign_id, device_key
                                          ORDER BY attempted_at DESC, id DESC) AS rn
                FROM public.devices_attempt
                WHERE enterprise_id = %s AND device_key = ANY(%s) AND account_id = %s
                  AND campaign_id = ANY(%s) AND attempted_at > %s
                  AND direction = 'outbound' AND disposition NOT IN ('SUPPRESSED', 'PENDING')
            ) recent
            WHERE rn <= %s
            GROUP BY campaign_id, device_key
            """,
            [account.enterprise_id, sorted({k for _c, k in pairs}), account.pk,
             sorted({c for c, _k in pairs}), since, depth],
        )  # fmt: skip
        found = []
        for campaign_id, key, results in cursor.fetchall():
            n = campaigns[campaign_id].auto_unanswered_after
            caught = len(results) >= n and all(r == "NO_ANSWER" for r in results[:n])
            if (campaign_id, key) in pairs and caught:
                found.append((campaign_id, key))
        return found


def _auto_add(blacklist: Blacklist, key: str, reason: str) -> bool:
    from devices.keys import EXTENSION, kind_of_key

    kind = (
        BlacklistEntry.Kind.EXTENSION
        if kind_of_key(key) == EXTENSION
        else BlacklistEntry.Kind.PHONE
    )
    if kind == BlacklistEntry.Kind.PHONE and not key.startswith("+"):
        return False  # an email address: blacklists hold numbers and extensions only
    added, _suppressed = do_add_entry(
        blacklist, kind, key, reason=reason, source=BlacklistEntry.Source.AUTO_RULE
    )
    return added


@transaction.atomic
def do_record_agent_disposition(contact, attempt, code: str, note: str = "", *, actor=None,
                                request=None):  # fmt: skip
    """An agent's word on an attempt. "Do not call" blocks the device for the whole
    enterprise (revoked consent is per caller); a wrong number or spam report feeds the
    campaign's auto-add rule."""
    from campaigns.models import AgentDisposition
    from devices.actions import do_save_device_setting
    from devices.models import DeviceSetting

    disposition = AgentDisposition.objects.create(
        attempt_id=attempt.pk,
        contact=contact,
        campaign_id=attempt.campaign_id,
        device_key=attempt.device_key,
        code=code,
        note=note[:255],
        created_by_label=getattr(actor, "email", ""),
    )
    audit(actor, "agent.disposition", account=_account(), obj=disposition,
          details={"attempt": attempt.pk, "device": attempt.device_key, "code": code,
                   "note": note}, request=request)  # fmt: skip
    if code == AgentDisposition.Code.DO_NOT_CALL:
        do_save_device_setting(
            _account().enterprise,
            attempt.device_key,
            DeviceSetting.Action.BLOCK,
            source=DeviceSetting.Source.AGENT_DNC,
            reason=note or str(AgentDisposition.Code.DO_NOT_CALL.label),
            actor=actor,
            request=request,
        )
    elif code in (AgentDisposition.Code.WRONG_NUMBER, AgentDisposition.Code.SPAM):
        result = "WRONG_NUMBER" if code == AgentDisposition.Code.WRONG_NUMBER else "SPAM"
        transaction.on_commit(lambda: apply_auto_rules([(attempt.campaign_id, attempt.device_key,
                                                         result)]))  # fmt: skip
    return disposition


def do_upload_blacklist(blacklist: Blacklist, uploaded_file, *, reason: str = "", actor=None,
                        request=None):  # fmt: skip
    """Stores an upload and imports it: small files at once, large ones in a worker."""
    import os
    import uuid

    from django.core.files.storage import default_storage

    from campaigns.blacklist_import import run_blacklist_import
    from campaigns.models import BlacklistImport
    from campaigns.tasks import import_blacklist
    from contacts.actions import SYNC_IMPORT_MAX_BYTES
    from contacts.importer import check_upload_size
    from enterprise_portal.queueing import send_on_commit

    size = uploaded_file.size
    check_upload_size(size)
    path = f"uploads/{connection.schema_name}/blacklist-{uuid.uuid4().hex}.txt"
    stored = default_storage.save(path, uploaded_file)
    now = size <= SYNC_IMPORT_MAX_BYTES
    try:
        with transaction.atomic():
            job = BlacklistImport.objects.create(
                blacklist=blacklist,
                file_name=os.path.basename(uploaded_file.name or "")[:255],
                upload_path=stored,
                reason=reason[:255],
                bytes_total=size,
                created_by_label=getattr(actor, "email", "")[:254],
            )
            audit(actor, "blacklist.import", account=_account(), obj=blacklist,
                  details={"file": job.file_name, "bytes": size,
                           "import": "now" if now else "queued"}, request=request)  # fmt: skip
            if not now:
                send_on_commit(import_blacklist, args=[job.pk])
    except BaseException:
        default_storage.delete(stored)
        raise
    if now:
        run_blacklist_import(job.pk)
        job.refresh_from_db()
    return job
