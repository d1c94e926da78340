"""The policy gate: the one place that decides whether a device may be reached now.

Callers ask in batches (the dispatcher) or one at a time (the attempt task, inside the
transaction that authorises the dial). Each answer is DIAL, SUPPRESS (with the rule
that stopped it) or DEFER (with when to try again). The rules, in order of precedence
(docs/architecture.md), are: enterprise device settings, campaign blacklists, national
registries, calling windows and holidays, attempt caps. Campaign blacklists live in a
tenant app: the gate asks them through ``devices.interfaces.BlacklistLookup``.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import NamedTuple

import psycopg
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext_lazy

from accounts.models import Enterprise
from devices import interfaces
from devices.keys import PHONE, kind_of_key, phone_facts
from devices.models import Channel, DeviceSetting, Registry
from devices.registry.freshness import STALE_RETRY, TELEMARKETING, is_stale
from devices.registry.freshness import stale_detail as registry_stale_detail
from devices.registry.lookup import listed, registry_country

DIAL = "dial"
SUPPRESS = "suppress"
DEFER = "defer"

RULE_DEVICE_BLOCK = "device_block"
RULE_CAMPAIGN_BLACKLIST = "campaign_blacklist"
RULE_REGISTRY_STALE = "registry_stale"
RULE_NATIONAL_REGISTRY = "national_registry"
RULE_CALLING_WINDOW = "calling_window"
RULE_HOLIDAY = "holiday"
RULE_ATTEMPT_CAP = "attempt_cap"
# Not the gate's: the sender's. The dialer holds an email whose From domain is not one of
# the enterprise's sending domains (accounts.sending_domains), and records why.
RULE_SENDING_DOMAIN = "sending_domain"

# The words pages show for a rule (the codes stay in the data).
RULE_LABELS = {
    RULE_DEVICE_BLOCK: gettext_lazy("Device block"),
    RULE_CAMPAIGN_BLACKLIST: gettext_lazy("Campaign blacklist"),
    RULE_REGISTRY_STALE: gettext_lazy("National registry out of date"),
    RULE_NATIONAL_REGISTRY: gettext_lazy("National registry"),
    RULE_CALLING_WINDOW: gettext_lazy("Calling window"),
    RULE_HOLIDAY: gettext_lazy("Holiday"),
    RULE_ATTEMPT_CAP: gettext_lazy("Attempt cap"),
    RULE_SENDING_DOMAIN: gettext_lazy("Sending domain not allowed"),
}


def rule_label(rule: str) -> str:
    return str(RULE_LABELS.get(rule, rule))


DEFAULT_WINDOW = (dt.time(8, 0), dt.time(21, 0))
# Channels whose timing is regulated: calls and texts, not email.
WINDOWED_CHANNELS = {Channel.VOICE, Channel.SMS}
SEARCH_DAYS = 21


@dataclass(frozen=True)
class DialRequest:
    account_id: int
    campaign_id: int
    sub_campaign_id: int
    purpose: str
    channel: str
    device_key: str
    time_zone: str = ""  # the contact's own zone, when the list gave one


@dataclass(frozen=True)
class Decision:
    action: str
    rule: str = ""
    detail: str = ""
    retry_at: dt.datetime | None = None
    ref: int | None = None  # the campaign blacklist that suppressed, for its counters
    # Where the rule came from: a device setting's source, a blacklist's id, a registry's
    # code. Stored with the dial state, so a lifted block releases only what it stopped.
    source: str = ""

    @property
    def dial(self) -> bool:
        return self.action == DIAL


@lru_cache(maxsize=200_000)
def _phone_facts(e164: str) -> tuple[str, tuple[str, ...]]:
    """A number's country and time zones: ~25 µs for a new number, and the same numbers
    come back attempt after attempt (a bounded cache; numbers never change country)."""
    return phone_facts(e164)


class SettingRow(NamedTuple):
    """A device's latest setting as the gate reads it: the fields its rules use, without
    building a model instance per device (half the time of a 1,000-device batch)."""

    device_key: str
    action: str
    source: str
    reason: str
    expires_at: dt.datetime | None

    Action = DeviceSetting.Action  # DeviceSetting.applies_at reads self.Action


def _prepared(sql: str, params: dict) -> list[tuple]:
    """The gate's own statement, bound and prepared on the server for this connection.
    Django binds on the client, so PostgreSQL planned it on every call: over the ledger's
    monthly partitions and their indexes, the planning took longer than the execution
    (1.2 ms against about 0.4). Prepared, each connection plans it once."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall()


@lru_cache(maxsize=512)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


class PolicyGate:
    """Decisions for one enterprise at one instant; load once, ask for many devices."""

    def __init__(self, enterprise: Enterprise, now: dt.datetime | None = None):
        self.enterprise = enterprise
        self.now = now or timezone.now()
        # Calling windows and the coming holidays, read with the devices' settings (one
        # round trip for a decision; see _settings_and_attempts).
        self.windows: dict[str, tuple[dt.time, dt.time]] = {}
        self.holidays: dict[str, set[dt.date]] = {}

    # National registries by country (two rows), with their staleness at this instant:
    # read only by gates that meet a telemarketing request.
    @cached_property
    def registries(self) -> dict[str, Registry]:
        return {r.country: r for r in Registry.objects.all()}

    @cached_property
    def stale_registries(self) -> set[str]:
        return {c for c, r in self.registries.items() if is_stale(r, self.now)}

    @cached_property
    def source_labels(self) -> dict[str, str]:
        """A setting's source in words (get_source_display took ~150 µs a call: Django
        hashes the lazy labels to look one up)."""
        return {value: str(label) for value, label in DeviceSetting.Source.choices}

    # --- the batch API -------------------------------------------------------------

    def decide(self, requests: Sequence[DialRequest]) -> list[Decision]:
        keys = {r.device_key for r in requests}
        settings, counts = self._settings_and_attempts(keys)
        blacklisted = self._blacklist_hits(requests)
        on_registry = self._registry_hits(requests, settings)
        decisions = []
        for request in requests:
            decision = self._decide_one(request, counts, settings, blacklisted, on_registry)
            if decision.dial:  # later requests in this batch count this one
                counts.setdefault(request.device_key, []).append(self.now)
            decisions.append(decision)
        return decisions

    def decide_one(self, request: DialRequest) -> Decision:
        return self.decide([request])[0]

    # --- rules -------------------------------------------------------------------------

    def _decide_one(
        self,
        request: DialRequest,
        counts: dict[str, list[dt.datetime]],
        settings: dict[str, SettingRow],
        blacklisted: dict,
        on_registry: dict[str, Registry] | None = None,
    ) -> Decision:
        # 1. The enterprise's own setting for the device: a Block stops every account.
        setting = settings.get(request.device_key)
        if setting is not None and setting.action == DeviceSetting.Action.BLOCK:
            source = self.source_labels.get(setting.source, setting.source)
            detail = f"{source}: {setting.reason}".rstrip(": ")
            return Decision(SUPPRESS, RULE_DEVICE_BLOCK, detail[:255], source=setting.source)
        # 2. Campaign blacklists: an enterprise Allow does not override them.
        hit = blacklisted.get((request.campaign_id, request.device_key))
        if hit is not None:
            detail = f"{hit.blacklist_name}: {hit.reason}".rstrip(": ")
            return Decision(
                SUPPRESS,
                RULE_CAMPAIGN_BLACKLIST,
                detail[:255],
                ref=hit.blacklist_id,
                source=str(hit.blacklist_id),
            )
        # 3. National registries, for telemarketing only; an Allow (consent on file)
        #    exempts the device from them, stale or not.
        if self._screened(request, settings):
            country = registry_country(request.device_key)
            if country in self.stale_registries:
                registry = self.registries[country]
                return Decision(
                    DEFER,
                    RULE_REGISTRY_STALE,
                    registry_stale_detail(registry)[:255],
                    retry_at=self.now + STALE_RETRY,
                    source=registry.code,
                )
            registry = (on_registry or {}).get(request.device_key)
            if registry is not None:
                return Decision(
                    SUPPRESS, RULE_NATIONAL_REGISTRY, registry.name, source=registry.code
                )
        if request.channel in WINDOWED_CHANNELS and kind_of_key(request.device_key) == PHONE:
            decision = self._window(request.device_key, request.time_zone)
            if decision is not None:
                return decision
        return self._cap(request.device_key, counts.get(request.device_key, []))

    def _window(self, e164: str, contact_zone: str = "") -> Decision | None:
        region, number_zones = _phone_facts(e164)
        names = set(number_zones) or {self.enterprise.time_zone}
        if contact_zone:  # where the person says they live counts too
            names.add(contact_zone)
        zones = [_zone(z) for z in sorted(names)]
        start, end = self.windows.get(region) or self.windows.get("") or DEFAULT_WINDOW
        holidays = self.holidays.get("", set()) | self.holidays.get(region, set())

        def open_in(zone: zoneinfo.ZoneInfo, instant: dt.datetime) -> bool:
            local = instant.astimezone(zone)
            return local.date() not in holidays and start <= local.time() < end

        def next_open(zone: zoneinfo.ZoneInfo, instant: dt.datetime) -> dt.datetime:
            local = instant.astimezone(zone)
            day = local.date() if local.time() < start else local.date() + dt.timedelta(days=1)
            while day in holidays:
                day += dt.timedelta(days=1)
            return dt.datetime.combine(day, start, tzinfo=zone)

        # Ambiguous numbers span several zones: the window must be open in all of them.
        instant = self.now
        for _ in range(SEARCH_DAYS * max(1, len(zones))):
            closed = [zone for zone in zones if not open_in(zone, instant)]
            if not closed:
                break
            instant = max(next_open(zone, instant) for zone in closed)
        else:
            return Decision(SUPPRESS, RULE_CALLING_WINDOW, "no common calling window")
        if instant == self.now:
            return None
        on_holiday = any(self.now.astimezone(zone).date() in holidays for zone in zones)
        rule = RULE_HOLIDAY if on_holiday else RULE_CALLING_WINDOW
        local_hours = f"{start:%H:%M}–{end:%H:%M}"
        return Decision(DEFER, rule, f"outside {local_hours} local time", retry_at=instant)

    def _cap(self, device_key: str, recent: list[dt.datetime]) -> Decision:
        cap = self.enterprise.attempt_cap
        if cap and len(recent) >= cap:
            # Try again when the oldest counted attempt leaves the period.
            oldest = sorted(recent)[len(recent) - cap]
            retry_at = oldest + dt.timedelta(days=self.enterprise.attempt_cap_days)
            detail = f"{len(recent)} attempts in {self.enterprise.attempt_cap_days} days"
            return Decision(DEFER, RULE_ATTEMPT_CAP, detail, retry_at=retry_at)
        return Decision(DIAL)

    def _screened(self, request: DialRequest, settings: dict[str, SettingRow]) -> bool:
        """Whether the registry rule applies: telemarketing to a phone, without an Allow."""
        if request.purpose != TELEMARKETING or kind_of_key(request.device_key) != PHONE:
            return False
        setting = settings.get(request.device_key)
        return setting is None or setting.action != DeviceSetting.Action.ALLOW

    def _registry_hits(
        self, requests: Sequence[DialRequest], settings: dict[str, SettingRow]
    ) -> dict[str, Registry]:
        """The registry each screened device is on, for the whole batch in one query.
        Registries never imported, or stale (their rule defers anyway), are not read."""
        pairs = {}
        for request in requests:
            if request.device_key in pairs or not self._screened(request, settings):
                continue
            registry = self.registries.get(registry_country(request.device_key))
            if registry is None or not registry.generation:
                continue
            if registry.country in self.stale_registries:
                continue
            pairs[request.device_key] = registry
        found = listed((registry.pk, key) for key, registry in pairs.items())
        return {key: registry for key, registry in pairs.items() if (registry.pk, key) in found}

    def _settings_and_attempts(
        self, keys: set[str]
    ) -> tuple[dict[str, SettingRow], dict[str, list[dt.datetime]]]:
        """Rules 1 and 5, and the calling rules of rule 4, in one round trip: the setting in
        force per device (the latest saved, unless cleared or expired), its outbound attempts
        in the cap period across every account, and the enterprise's calling windows and
        coming holidays (times and dates as text, so they share the columns)."""
        if not keys:
            return {}, {}
        cap_days = self.enterprise.attempt_cap_days if self.enterprise.attempt_cap else 0
        since = self.now - dt.timedelta(days=cap_days)
        settings: dict[str, SettingRow] = {}
        counts: dict[str, list[dt.datetime]] = {}
        rows = _prepared(
            """
            SELECT * FROM (
                SELECT DISTINCT ON (device_key) 's', device_key, action, source, reason,
                       expires_at, NULL::timestamptz[]
                FROM public.devices_devicesetting
                WHERE enterprise_id = %(enterprise)s AND device_key = ANY(%(keys)s)
                ORDER BY device_key, created_at DESC, id DESC
            ) latest
            UNION ALL
            SELECT 'a', device_key, NULL, NULL, NULL, NULL, array_agg(attempted_at)
            FROM public.devices_attempt
            WHERE %(cap)s AND enterprise_id = %(enterprise)s AND device_key = ANY(%(keys)s)
              AND attempted_at > %(since)s AND attempted_at <= %(now)s
              AND direction = 'outbound' AND disposition <> 'SUPPRESSED'
            GROUP BY device_key
            UNION ALL
            SELECT 'w', region, NULL, start::text, "end"::text, NULL, NULL
            FROM public.devices_callingwindow WHERE enterprise_id = %(enterprise)s
            UNION ALL
            SELECT 'h', region, NULL, date::text, NULL, NULL, NULL
            FROM public.devices_holiday
            WHERE enterprise_id = %(enterprise)s AND date BETWEEN %(first)s AND %(last)s
            """,
            {"enterprise": self.enterprise.pk, "keys": list(keys), "cap": bool(cap_days),
             "since": since, "now": self.now,
             "first": self.now.date() - dt.timedelta(days=2),
             "last": self.now.date() + dt.timedelta(days=SEARCH_DAYS + 2)},
        )  # fmt: skip
        for kind, key, action, source, reason, expires_at, stamps in rows:
            if kind == "a":
                counts[key] = list(stamps)
            elif kind == "w":
                self.windows[key] = (dt.time.fromisoformat(source),
                                     dt.time.fromisoformat(reason))  # fmt: skip
            elif kind == "h":
                self.holidays.setdefault(key, set()).add(dt.date.fromisoformat(source))
            else:
                setting = SettingRow(key, action, source, reason, expires_at)
                if DeviceSetting.applies_at(setting, self.now):  # the model's own rule
                    settings[key] = setting
        return settings, counts

    def _blacklist_hits(self, requests: Sequence[DialRequest]) -> dict:
        """Entries of the lists the requests' campaigns use, in the current account."""
        lookup = interfaces.blacklists()
        if not requests or lookup is None:
            return {}
        return lookup.hits(
            {r.campaign_id for r in requests}, {r.device_key for r in requests}, self.now
        )
