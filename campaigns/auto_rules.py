"""Auto-add rules: numbers a campaign's rules catch join its chosen blacklist.

Two rules per campaign (``Campaign.auto_blacklist`` and its settings): N consecutive
unanswered attempts, counted from the ledger; or a gateway result or an agent's
disposition of wrong number or spam. They run after the outcome that triggers them
commits, each addition in its own transaction with the list's campaign locks
(``campaigns.blacklists.do_add_entry``), so they suppress like any other entry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.blacklists import do_add_entry
from campaigns.models import Blacklist, BlacklistEntry, Campaign
from devices.keys import EMAIL, kind_of_key

# Results that can feed a rule: the dialer hands these outcomes over after they commit.
AUTO_RULE_RESULTS = {"NO_ANSWER", "WRONG_NUMBER", "SPAM"}
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
    kind = kind_of_key(key)
    if kind == EMAIL:
        return False  # blacklists hold numbers and extensions only
    added, _suppressed = do_add_entry(
        blacklist, kind, key, reason=reason, source=BlacklistEntry.Source.AUTO_RULE
    )
    return added
