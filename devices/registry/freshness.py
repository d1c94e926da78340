"""When a national registry is stale, and what that holds back."""

from __future__ import annotations

import datetime as dt

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import webhooks
from devices.models import Registry

TELEMARKETING = "telemarketing"  # campaigns.models.Purpose.TELEMARKETING
STALE_RETRY = dt.timedelta(hours=1)


def is_stale(registry: Registry, now: dt.datetime | None = None) -> bool:
    if registry.last_imported_at is None:
        return False
    now = now or timezone.now()
    return now - registry.last_imported_at > dt.timedelta(days=registry.max_age_days)


def age_days(registry: Registry, now: dt.datetime | None = None) -> int | None:
    if registry.last_imported_at is None:
        return None
    return ((now or timezone.now()) - registry.last_imported_at).days


def stale_detail(registry: Registry) -> str:
    """The reason written on deferred attempts: which registry, since when (stored text)."""
    return (
        f"{registry.name} last imported {registry.last_imported_at:%Y-%m-%d}, "
        f"more than {registry.max_age_days} days ago"
    )


def refuse_stale_start(purpose: str, region: str, now: dt.datetime | None = None) -> None:
    """ValidationError if a telemarketing sub-campaign must not start: the registry of the
    enterprise's country is stale."""
    if purpose != TELEMARKETING:
        return
    registry = Registry.objects.filter(country=region).first()
    if registry is None or not is_stale(registry, now):
        return
    raise ValidationError(
        _(
            "Telemarketing cannot start: the %(registry)s registry was last imported on "
            "%(date)s, more than %(days)s days ago. Calls to numbers on it could break the "
            "law. A platform operator must import a current copy first; informational and "
            "collections sub-campaigns are not affected."
        )
        % {
            "registry": registry.name,
            "date": timezone.localtime(registry.last_imported_at).date().isoformat(),
            "days": registry.max_age_days,
        },
        code="registry_stale",
    )


def announce_stale(now: dt.datetime | None = None) -> list[str]:
    """The registry.stale webhook for each registry stale now, once per snapshot."""
    announced = []
    for registry in Registry.objects.all():
        if not is_stale(registry, now):
            continue
        mark = f"registry-stale:{registry.code}:{registry.last_imported_at.isoformat()}"
        if not cache.add(mark, 1, timeout=400 * 86400):
            continue
        with transaction.atomic(durable=True):
            webhooks.emit(None, "registry.stale", [{
                "registry": registry.code, "name": registry.name, "country": registry.country,
                "last_full_import_at": registry.last_full_import_at.isoformat()
                if registry.last_full_import_at else None,
                "age_days": age_days(registry, now), "max_age_days": registry.max_age_days,
            }])  # fmt: skip
        announced.append(registry.code)
    return announced
