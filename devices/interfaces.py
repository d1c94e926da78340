"""What the compliance core asks of the tenant apps, and how they answer.

The core (this app: device keys, settings, the gate, registries, the trace) is shared and
sits below the tenant apps (docs/architecture.md): it never imports them, not even inside
a function; import-linter enforces that. Where it must act on tenant data it calls an
implementation that a tenant app registered when it loaded (``campaigns/apps.py``):

* ``DialQueue``: cancel the queued attempts of devices a block stops, put them back when
  the block lifts, and count what a setting would change (the Device Blocking preview).
* ``BlacklistLookup``: which campaign blacklists hold a device (the gate's rule 2).

Calls are synchronous and run in the caller's transaction, schema and locks, so the
promise "no dial is authorised after a block commits" does not depend on who implements
them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class Stop:
    """Why a device must not be reached: the gate's rule, the source of that rule (a
    device setting's source, a blacklist's id, a registry's code) and the words an
    attempt it stops shows."""

    rule: str
    source: str = ""
    detail: str = ""


@dataclass(frozen=True)
class BlacklistHit:
    blacklist_id: int
    blacklist_name: str
    reason: str


@dataclass
class QueueImpact:
    """One running sub-campaign's share of what a device setting changes."""

    sub_campaign_id: int
    name: str
    campaign_name: str
    channel: str
    contact_ids: set[int] = field(default_factory=set)
    attempts: int = 0


class DialQueue(Protocol):
    """The dial queue of the current account (schema)."""

    def cancel(self, stops: Mapping[str, Stop], *, now: dt.datetime) -> int:
        """Queued attempts of these devices (pending, or claimed and not yet authorised)
        become suppressed, each with a ledger row naming its Stop. Returns how many."""
        ...

    def release(self, keys: Sequence[str], rule: str, *, now: dt.datetime) -> int:
        """Devices that ``rule`` had suppressed go back to the queue, due now (the gate
        still decides each attempt). Returns how many."""
        ...

    def impact(
        self, device_key: str, sub_campaign_ids: Iterable[int], *, block: bool
    ) -> list[QueueImpact]:
        """What a Block (``block``) or an Allow/removal would change for the device in
        these sub-campaigns, without changing anything."""
        ...


class BlacklistLookup(Protocol):
    def hits(
        self, campaign_ids: Iterable[int], keys: Iterable[str], now: dt.datetime
    ) -> dict[tuple[int, str], BlacklistHit]:
        """Applying entries per (campaign, device) in the current account."""
        ...


_registry: dict[str, object] = {}


def register(*, dial_queue: DialQueue | None = None, blacklists: BlacklistLookup | None = None):
    """Called by tenant apps from their AppConfig.ready()."""
    if dial_queue is not None:
        _registry["dial_queue"] = dial_queue
    if blacklists is not None:
        _registry["blacklists"] = blacklists


def dial_queue() -> DialQueue:
    queue = _registry.get("dial_queue")
    if queue is None:
        raise ImproperlyConfigured("No dial queue is registered (is the campaigns app installed?)")
    return queue  # type: ignore[return-value]


def blacklists() -> BlacklistLookup | None:
    """The registered lookup, or None where no tenant app keeps blacklists."""
    return _registry.get("blacklists")  # type: ignore[return-value]
