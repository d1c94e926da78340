"""Device Blocking (Enterprise › Devices): what a setting would do before it is saved, the
list of current settings, and expiry dates read in the enterprise's time zone.

The preview reads the shared tables (settings, the ledger) once, and each account with
running sub-campaigns (the ActiveSubCampaign registry) with one aggregate query in its
schema, so an enterprise with many idle accounts costs nothing extra.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass, field

from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from django_tenants.utils import tenant_context

from accounts.models import Account, Enterprise
from devices.actions import BLOCK_REASON_PREFIX
from devices.keys import DeviceKeyError, parse_device
from devices.models import ActiveSubCampaign, Attempt, Channel, DeviceSetting
from devices.trace import BY_DEVICE, TraceQuery, trace_attempts

RECENT_ATTEMPTS = 10
HISTORY_IN_PREVIEW = 20
MAX_EXPIRY_YEARS = 10
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?$")


# --- expiry --------------------------------------------------------------------------------


class ExpiryError(ValueError):
    """An expiry that is not a date, not in the future, or too far ahead; says which."""


def parse_expiry(text: str, time_zone: str, now: dt.datetime | None = None) -> dt.datetime | None:
    """``YYYY-MM-DD`` means until the end of that day, ``YYYY-MM-DD HH:MM`` until that
    minute, both in the enterprise's time zone; empty means no expiry."""
    value = (text or "").strip()
    if not value:
        return None
    now = now or timezone.now()
    zone = zoneinfo.ZoneInfo(time_zone)
    try:
        if _DATE.match(value):
            day = dt.date.fromisoformat(value)
            # The last instant of the day: applies_at() is "expires_at > now".
            expires = dt.datetime.combine(day, dt.time.max, tzinfo=zone)
        elif match := _DATETIME.match(value):
            day = dt.date.fromisoformat(match.group(1))
            expires = dt.datetime.combine(
                day, dt.time.fromisoformat(match.group(2) + (match.group(3) or "")), tzinfo=zone
            )
        else:
            raise ValueError(value)
    except ValueError:
        raise ExpiryError(
            _("“%(value)s” is not a date: use YYYY-MM-DD, e.g. %(example)s.")
            % {"value": value[:40], "example": f"{now.astimezone(zone).date():%Y-%m-%d}"}
        ) from None
    if expires <= now:
        raise ExpiryError(_("The expiry date must be in the future."))
    if expires.year - now.year > MAX_EXPIRY_YEARS:
        raise ExpiryError(
            _("The expiry date can be at most %(years)s years ahead; leave it empty for none.")
            % {"years": MAX_EXPIRY_YEARS}
        )
    return expires


# --- current settings ----------------------------------------------------------------------

IN_FORCE = "in_force"
EXPIRED = "expired"


def latest_settings(enterprise: Enterprise, key_contains: str = "") -> QuerySet[DeviceSetting]:
    """Each device's latest row (a Clear means no setting, so those are left out)."""
    rows = DeviceSetting.objects.filter(enterprise=enterprise)
    if key_contains:
        rows = rows.filter(device_key__contains=key_contains)
    latest = rows.order_by("device_key", "-created_at", "-id").distinct("device_key").values("id")
    return DeviceSetting.objects.filter(id__in=Subquery(latest)).exclude(
        action=DeviceSetting.Action.CLEAR
    )


def search_settings(
    enterprise: Enterprise,
    *,
    query: str = "",
    action: str = "",
    source: str = "",
    state: str = "",
    now: dt.datetime | None = None,
) -> QuerySet[DeviceSetting]:
    """The list on the Device Blocking tab: current settings, newest first, with how many
    rows each device's history has."""
    now = now or timezone.now()
    settings = latest_settings(enterprise, search_key(query, enterprise.default_region))
    if action:
        settings = settings.filter(action=action)
    if source:
        settings = settings.filter(source=source)
    if state == IN_FORCE:
        settings = settings.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
    elif state == EXPIRED:
        settings = settings.filter(expires_at__lte=now)
    history = (
        DeviceSetting.objects.filter(enterprise=enterprise, device_key=OuterRef("device_key"))
        .order_by()
        .values("device_key")
        .annotate(n=Count("id"))
        .values("n")
    )
    return settings.annotate(
        history_count=Coalesce(Subquery(history, output_field=IntegerField()), Value(0))
    ).order_by("-created_at", "-id")


def search_key(query: str, region: str) -> str:
    """What to look for in the keys: the normalised device when the query is a whole
    phone number or email address; otherwise the digits of a partial number, or the
    lower-cased text of a partial address."""
    text = (query or "").strip().replace("\x00", "")[:254]
    if not text:
        return ""
    try:
        return parse_device(text, region).key
    except DeviceKeyError:
        pass
    if "@" not in text and re.fullmatch(r"[\d\s().+\-/]+", text):
        digits = re.sub(r"\D", "", text)
        return ("+" + digits) if text.startswith("+") else digits
    return text.lower()


def device_history(enterprise: Enterprise, device_key: str) -> QuerySet[DeviceSetting]:
    return DeviceSetting.objects.filter(enterprise=enterprise, device_key=device_key).order_by(
        "-created_at", "-id"
    )


def setting_in_force(history: list[DeviceSetting], now: dt.datetime) -> DeviceSetting | None:
    """The latest row, if it still applies (not a Clear, not expired)."""
    latest = history[0] if history else None
    return latest if latest is not None and latest.applies_at(now) else None


# --- preview -------------------------------------------------------------------------------


@dataclass
class SubCampaignImpact:
    sub_campaign_id: int
    name: str
    campaign_name: str
    channel: str
    contacts: int  # contacts stopped (Block) or released (otherwise)
    attempts: int  # queued attempts cancelled (Block) or attempts re-queued (otherwise)

    @property
    def channel_label(self) -> str:
        return Channel(self.channel).label if self.channel in Channel.values else self.channel


@dataclass
class AccountImpact:
    account: Account
    contacts: int
    attempts: int
    sub_campaigns: list[SubCampaignImpact] = field(default_factory=list)


@dataclass
class Preview:
    device_key: str
    action: str
    reason: str
    expires_at: dt.datetime | None
    latest: DeviceSetting | None  # the device's latest row, whatever it is
    in_force: DeviceSetting | None  # that row, if it applies now
    history: list[DeviceSetting]
    history_count: int
    accounts: list[AccountImpact]
    recent: list[Attempt]

    @property
    def blocks(self) -> bool:
        return self.action == DeviceSetting.Action.BLOCK

    @property
    def contacts(self) -> int:
        return sum(a.contacts for a in self.accounts)

    @property
    def attempts(self) -> int:
        return sum(a.attempts for a in self.accounts)

    @property
    def sub_campaign_count(self) -> int:
        return sum(len(a.sub_campaigns) for a in self.accounts if a.contacts or a.attempts)

    @property
    def changes_nothing(self) -> bool:
        """Saving would leave the device where it is (same setting in force, same terms)."""
        current = self.in_force
        if current is None:
            return False
        return (
            current.action == self.action
            and current.expires_at == self.expires_at
            and current.reason == self.reason
        )


def build_preview(
    enterprise: Enterprise,
    device_key: str,
    action: str,
    *,
    reason: str = "",
    expires_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> Preview:
    """What saving ``action`` for the device would do now, without saving anything."""
    now = now or timezone.now()
    rows = list(device_history(enterprise, device_key)[: HISTORY_IN_PREVIEW + 1])
    count = len(rows)
    if count > HISTORY_IN_PREVIEW:
        count = device_history(enterprise, device_key).count()
    recent = list(
        trace_attempts(enterprise.pk, TraceQuery(BY_DEVICE, device_key), now=now)[:RECENT_ATTEMPTS]
    )
    return Preview(
        device_key=device_key,
        action=action,
        reason=reason,
        expires_at=expires_at,
        latest=rows[0] if rows else None,
        in_force=setting_in_force(rows, now),
        history=rows[:HISTORY_IN_PREVIEW],
        history_count=count,
        accounts=account_impact(enterprise, device_key, action == DeviceSetting.Action.BLOCK),
        recent=recent,
    )


def account_impact(enterprise: Enterprise, device_key: str, block: bool) -> list[AccountImpact]:
    """Per account with running sub-campaigns, the contacts the setting stops (Block) or
    releases (Allow, removal), and the queued attempts cancelled or re-queued: the same
    states that do_save_device_setting changes, counted within running sub-campaigns.

    One aggregate query per account that has running sub-campaigns; other accounts are
    not visited."""
    from campaigns.models import DialState

    running: dict[int, set[int]] = {}
    accounts: dict[int, Account] = {}
    for entry in ActiveSubCampaign.objects.filter(
        account__enterprise=enterprise, account__is_active=True
    ).select_related("account"):
        running.setdefault(entry.account_id, set()).add(entry.sub_campaign_id)
        accounts[entry.account_id] = entry.account
    queued = Q(status__in=[DialState.Status.PENDING, DialState.Status.DIALING])
    if block:
        # Every state still to be worked stops; those not yet handed to a gateway are
        # cancelled now (an attempt already authorised finishes, and is not retried).
        contacts = ArrayAgg("contact_id", distinct=True, filter=queued, default=[])
        attempts = Count("id", filter=queued & Q(current_attempt_id__isnull=True))
    else:
        lifted = Q(status=DialState.Status.SUPPRESSED, last_reason__startswith=BLOCK_REASON_PREFIX)
        contacts = ArrayAgg("contact_id", distinct=True, filter=lifted, default=[])
        attempts = Count("id", filter=lifted)
    impacts = []
    for account_id in sorted(running, key=lambda pk: (accounts[pk].name, pk)):
        account = accounts[account_id]
        with tenant_context(account):
            rows = list(
                DialState.objects.filter(
                    device_key=device_key, sub_campaign_id__in=running[account_id]
                )
                .values(
                    "sub_campaign_id",
                    "sub_campaign__name",
                    "sub_campaign__campaign__name",
                    "sub_campaign__channel",
                )
                .annotate(contacts=contacts, attempts=attempts)
                .order_by("sub_campaign__campaign__name", "sub_campaign__name")
            )
        subs = [
            SubCampaignImpact(
                sub_campaign_id=r["sub_campaign_id"],
                name=r["sub_campaign__name"],
                campaign_name=r["sub_campaign__campaign__name"],
                channel=r["sub_campaign__channel"],
                contacts=len(r["contacts"]),
                attempts=r["attempts"],
            )
            for r in rows
            if r["contacts"] or r["attempts"]
        ]
        if subs:
            people = set().union(*(set(r["contacts"]) for r in rows))
            impacts.append(
                AccountImpact(
                    account=account,
                    contacts=len(people),
                    attempts=sum(s.attempts for s in subs),
                    sub_campaigns=subs,
                )
            )
    return impacts
