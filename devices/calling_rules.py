"""Calling rules of an enterprise: windows per country, holidays and the attempt cap.

The gate reads them (``devices.policy``); people change them on the enterprise's Calling
rules page, always through these actions: one transaction each, the audit row inside it.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from accounts.actions import audit
from accounts.models import Enterprise
from devices.models import CallingWindow, Holiday


@transaction.atomic(durable=True)
def do_save_calling_window(
    enterprise: Enterprise, *, region: str, start: dt.time, end: dt.time, actor=None,
    request=None,
) -> CallingWindow:  # fmt: skip
    """Sets the window for a country ("" for every other); one that exists is replaced."""
    before = CallingWindow.objects.filter(enterprise=enterprise, region=region).first()
    window, _created = CallingWindow.objects.update_or_create(
        enterprise=enterprise, region=region, defaults={"start": start, "end": end}
    )
    details = {"region": region, "start": f"{start:%H:%M}", "end": f"{end:%H:%M}"}
    if before is not None:
        details["before"] = f"{before.start:%H:%M}–{before.end:%H:%M}"
    audit(actor, "calling_rules.window", enterprise=enterprise, obj=window, details=details,
          request=request)  # fmt: skip
    return window


@transaction.atomic(durable=True)
def do_add_holiday(
    enterprise: Enterprise, *, date: dt.date, region: str = "", name: str = "", actor=None,
    request=None,
) -> Holiday:  # fmt: skip
    holiday = Holiday.objects.create(enterprise=enterprise, date=date, region=region, name=name)
    audit(actor, "calling_rules.holiday", enterprise=enterprise, obj=holiday,
          details={"date": date.isoformat(), "region": region, "name": name},
          request=request)  # fmt: skip
    return holiday


@transaction.atomic(durable=True)
def do_set_attempt_cap(
    enterprise: Enterprise, *, attempt_cap: int, attempt_cap_days: int, actor=None, request=None
) -> Enterprise:
    before = {
        "attempt_cap": enterprise.attempt_cap,
        "attempt_cap_days": enterprise.attempt_cap_days,
    }
    enterprise.attempt_cap, enterprise.attempt_cap_days = attempt_cap, attempt_cap_days
    enterprise.save(update_fields=["attempt_cap", "attempt_cap_days"])
    audit(actor, "calling_rules.cap", enterprise=enterprise, obj=enterprise,
          details={"attempt_cap": attempt_cap, "attempt_cap_days": attempt_cap_days,
                   "before": before}, request=request)  # fmt: skip
    return enterprise


@transaction.atomic(durable=True)
def do_delete_calling_window(window: CallingWindow, *, actor=None, request=None) -> None:
    audit(actor, "calling_rules.delete_window", enterprise=window.enterprise, obj=window,
          details={"region": window.region}, request=request)  # fmt: skip
    window.delete()


@transaction.atomic(durable=True)
def do_delete_holiday(holiday: Holiday, *, actor=None, request=None) -> None:
    audit(actor, "calling_rules.delete_holiday", enterprise=holiday.enterprise, obj=holiday,
          details={"date": holiday.date.isoformat(), "region": holiday.region},
          request=request)  # fmt: skip
    holiday.delete()
