"""Campaign blacklists: numbers and extensions the campaigns using a list must never dial.

Every change takes the exclusive advisory lock of each campaign using the list
(``campaigns.locks``); the dialler takes the same locks, shared, around the decision that
authorises a dial. So an entry (or an attached list) either commits before a dial is
decided, and the gate sees it, or waits until that dial's authorisation has committed: no
dial is authorised after the change commits. Adding suppresses the matching dial states of
those campaigns and cancels their queued attempts in the same transaction; removing
releases them (``campaigns.dial_states`` writes both).

Related modules: ``blacklist_import`` (bulk files), ``auto_rules`` (numbers added by a
campaign's rules), ``dispositions`` (an agent's wrong number or spam report).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts import webhooks
from accounts.actions import audit
from campaigns import dial_states
from campaigns.dial_states import ENTRY_KEYS, GIVEN_KEYS
from campaigns.locks import lock_campaigns
from campaigns.models import Blacklist, BlacklistEntry, Campaign
from devices.interfaces import BlacklistHit

# --- the gate's question (devices.interfaces.BlacklistLookup) -------------------------------


def blacklist_hits(
    campaign_ids: Iterable[int], keys: Iterable[str], now: dt.datetime
) -> dict[tuple[int, str], BlacklistHit]:
    """Applying entries per (campaign, device) in the current account: one query, none
    when no campaign is named (0: a decision asked for the account as a whole)."""
    campaign_ids, keys = sorted({c for c in campaign_ids if c > 0}), sorted(set(keys))
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
        return {
            (c, k): BlacklistHit(b, name, reason) for c, k, b, name, reason in cursor.fetchall()
        }


class AccountBlacklists:
    """``devices.interfaces.BlacklistLookup`` for the current account (see apps.py)."""

    def hits(
        self, campaign_ids: Iterable[int], keys: Iterable[str], now: dt.datetime
    ) -> dict[tuple[int, str], BlacklistHit]:
        return blacklist_hits(campaign_ids, keys, now)


def campaign_ids_of(blacklist: Blacklist) -> list[int]:
    return list(blacklist.campaigns.values_list("pk", flat=True))


# --- the list's counters ----------------------------------------------------------------
# Every change of entries or campaigns below updates them in its own transaction, so the
# index pages read them instead of counting entries × campaigns on every load.


def _count_entries(blacklist_id: int, delta: int) -> None:
    """Entries added (+) or removed (-): the numbers the statements themselves reported
    (INSERT … RETURNING, DELETE's count), so concurrent changes add up exactly."""
    if delta:
        Blacklist.objects.filter(pk=blacklist_id).update(entry_count=F("entry_count") + delta)


def _count_campaigns(blacklist_id: int) -> None:
    """Campaigns attached, counted from the link table (a few rows per list)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE campaigns_blacklist SET campaign_count = (SELECT count(*) FROM "
            "campaigns_campaign_blacklists WHERE blacklist_id = %s) WHERE id = %s",
            [blacklist_id, blacklist_id],
        )


# --- actions -----------------------------------------------------------------------------


def _account():
    return connection.tenant


@transaction.atomic(durable=True)
def do_create_blacklist(*, name: str, description: str = "", actor=None, request=None):
    blacklist = Blacklist(
        name=name, description=description, created_by_label=getattr(actor, "email", "")
    )
    blacklist.full_clean()
    blacklist.save()
    audit(actor, "blacklist.create", account=_account(), obj=blacklist, request=request)
    return blacklist


@transaction.atomic(durable=True)
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


@transaction.atomic(durable=True)
def do_delete_blacklist(blacklist: Blacklist, *, actor=None, request=None) -> int:
    """Deleting a list releases what only it held."""
    campaign_ids = campaign_ids_of(blacklist)
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
    dial_states.release_unlisted(
        campaign_ids, GIVEN_KEYS, params, f"released: list {blacklist.name} deleted"
    )
    return entries


@transaction.atomic(durable=True)
def do_set_blacklist_campaigns(
    blacklist: Blacklist, campaigns: Iterable[Campaign], *, actor=None, request=None
) -> tuple[int, int]:
    """Attach the list to exactly these campaigns: newly attached campaigns stop dialling
    its numbers at once; detached ones get back what only this list held.
    Returns (suppressed, released)."""
    return _set_blacklist_campaigns(blacklist, campaigns, actor=actor, request=request)


def _set_blacklist_campaigns(
    blacklist: Blacklist, campaigns: Iterable[Campaign], *, actor=None, request=None
) -> tuple[int, int]:
    wanted = {c.pk for c in campaigns}
    current = set(campaign_ids_of(blacklist))
    lock_campaigns(wanted | current, shared=False)
    added, removed = sorted(wanted - current), sorted(current - wanted)
    blacklist.campaigns.set(sorted(wanted))
    _count_campaigns(blacklist.pk)
    params = {"blacklist": blacklist.pk, "now": timezone.now()}
    suppressed = dial_states.suppress_listed(blacklist, added, ENTRY_KEYS, params)
    released = dial_states.release_unlisted(
        removed, ENTRY_KEYS, params, f"released: list {blacklist.name} detached"
    )
    audit(actor, "blacklist.campaigns", account=_account(), obj=blacklist,
          details={"attached": added, "detached": removed, "suppressed": suppressed,
                   "released": released}, request=request)  # fmt: skip
    return suppressed, released


@transaction.atomic(durable=True)
def do_set_campaign_blacklists(
    campaign: Campaign, wanted: set[int], *, rule_form=None, actor=None, request=None
) -> tuple[int, int]:
    """From the campaign's side: exactly these lists, and (a valid form) its auto-add
    rule, in one transaction. Only the lists that change are touched."""
    current = set(campaign.blacklists.values_list("pk", flat=True))
    suppressed = released = 0
    for blacklist in Blacklist.objects.filter(pk__in=current ^ wanted).order_by("pk"):
        using = set(campaign_ids_of(blacklist))
        target = using | {campaign.pk} if blacklist.pk in wanted else using - {campaign.pk}
        s, r = _set_blacklist_campaigns(
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
            RETURNING device_key, kind, reason
            """,
            [blacklist.pk, source, now, added_by[:254], expires_at],
        )
        inserted = cursor.fetchall()
        added = len(inserted)
        _count_entries(blacklist.pk, added)
        if inserted:
            account = _account()
            webhooks.emit(account.enterprise_id, "blacklist.entry_added", (
                {"account_id": account.pk, "account": account.slug, "blacklist_id": blacklist.pk,
                 "blacklist": blacklist.name, "number": key, "kind": kind, "reason": reason,
                 "source": source, "expires_at": expires_at.isoformat() if expires_at else None}
                for key, kind, reason in inserted
            ))  # fmt: skip
        # Every key of the chunk is on the list now (new or already there): their
        # pending states in the list's campaigns stop.
        suppressed = 0
        campaign_ids = campaign_ids_of(blacklist) if added else []
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
                suppressed = dial_states.suppress_listed(
                    blacklist, campaign_ids, GIVEN_KEYS, {"keys": matched, "now": now}
                )
        cursor.execute("TRUNCATE blacklist_import_rows")
    return added, suppressed


@transaction.atomic(durable=True)
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
    lock_campaigns(campaign_ids_of(blacklist), shared=False)
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


@transaction.atomic(durable=True)
def do_remove_entry(entry: BlacklistEntry, *, actor=None, request=None) -> int:
    """Removes one entry and releases the states only it held; returns how many."""
    blacklist = entry.blacklist
    campaign_ids = campaign_ids_of(blacklist)
    lock_campaigns(campaign_ids, shared=False)
    key = entry.device_key
    deleted, _by_model = entry.delete()
    _count_entries(blacklist.pk, -deleted)
    released = dial_states.release_unlisted(
        campaign_ids, GIVEN_KEYS, {"keys": [key]}, f"released: removed from {blacklist.name}"
    )
    audit(actor, "blacklist.entry_remove", account=_account(), obj=blacklist,
          details={"device": key, "released": released}, request=request)  # fmt: skip
    return released


@transaction.atomic(durable=True)
def do_add_entries(
    blacklist: Blacklist,
    entries: Sequence[tuple[str, str, str]],
    *,
    source: str,
    expires_at: dt.datetime | None = None,
    actor=None,
    request=None,
) -> tuple[int, int]:
    """Many (kind, key, reason) at once, as ``do_add_entry`` does one: listed keys stay as
    they are; matching pending contacts stop at once. Returns (added, suppressed)."""
    lock_campaigns(campaign_ids_of(blacklist), shared=False)
    added, suppressed = add_entries(
        blacklist, list(entries), reason="", source=source, expires_at=expires_at,
        added_by=getattr(actor, "email", "") or source,
    )  # fmt: skip
    audit(actor, "blacklist.entries_add", account=_account(), obj=blacklist,
          details={"items": len(entries), "added": added, "suppressed": suppressed,
                   "source": source}, request=request)  # fmt: skip
    return added, suppressed


@transaction.atomic(durable=True)
def do_remove_entries(
    blacklist: Blacklist, keys: Iterable[str], *, actor=None, request=None
) -> tuple[list[str], int]:
    """Removes the listed ones of these keys and releases what only they held. Returns
    (the keys removed, states released)."""
    campaign_ids = campaign_ids_of(blacklist)
    lock_campaigns(campaign_ids, shared=False)
    entries = BlacklistEntry.objects.filter(blacklist=blacklist, device_key__in=set(keys))
    removed = sorted(entries.values_list("device_key", flat=True))
    deleted, _by_model = entries.delete()
    _count_entries(blacklist.pk, -deleted)
    released = 0
    if removed:
        released = dial_states.release_unlisted(
            campaign_ids, GIVEN_KEYS, {"keys": removed},
            f"released: removed from {blacklist.name}",
        )  # fmt: skip
        audit(actor, "blacklist.entries_remove", account=_account(), obj=blacklist,
              details={"removed": len(removed), "released": released}, request=request)  # fmt: skip
    return removed, released


def release_expired(now: dt.datetime | None = None) -> int:
    """Entries past their expiry stop applying in the gate at once; this also puts the
    states they held back to pending and removes them from the list (audited)."""
    now = now or timezone.now()
    released = 0
    for blacklist in Blacklist.objects.filter(entries__expires_at__lte=now).distinct():
        with transaction.atomic(durable=True):
            campaign_ids = campaign_ids_of(blacklist)
            lock_campaigns(campaign_ids, shared=False)
            expired = BlacklistEntry.objects.filter(blacklist=blacklist, expires_at__lte=now)
            keys = list(expired.values_list("device_key", flat=True))
            if not keys:
                continue
            deleted, _by_model = expired.delete()
            _count_entries(blacklist.pk, -deleted)
            count = dial_states.release_unlisted(
                campaign_ids, GIVEN_KEYS, {"keys": keys, "now": now},
                f"released: entry in {blacklist.name} expired",
            )  # fmt: skip
            details = {"devices": keys[:100], "count": len(keys), "released": count}
            audit(None, "blacklist.entries_expired", account=_account(), obj=blacklist,
                  details=details)  # fmt: skip
            released += count
    return released
