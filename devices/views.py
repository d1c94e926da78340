from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import enterprise_view
from accounts.actions import audit
from devices.forms import AttemptCapForm, CallingWindowForm, HolidayForm
from devices.models import CallingWindow, Holiday
from devices.policy import DEFAULT_WINDOW


def _rules_url(enterprise) -> str:
    return reverse("devices:calling_rules", args=[enterprise.pk])


@enterprise_view
@require_http_methods(["GET", "POST"])
def calling_rules(request, enterprise):
    """Calling windows per country, holidays and the attempt cap, for the whole enterprise."""
    action = request.POST.get("action") if request.method == "POST" else None
    cap_form = AttemptCapForm(request.POST if action == "cap" else None, instance=enterprise)
    window_form = CallingWindowForm(
        request.POST if action == "window" else None, enterprise=enterprise
    )
    holiday_form = HolidayForm(request.POST if action == "holiday" else None, enterprise=enterprise)
    form = {"cap": cap_form, "window": window_form, "holiday": holiday_form}.get(action)
    if form is not None and form.is_valid():
        with transaction.atomic():
            if action == "window":
                data = form.cleaned_data
                obj, _created = CallingWindow.objects.update_or_create(
                    enterprise=enterprise,
                    region=data["region"],
                    defaults={"start": data["start"], "end": data["end"]},
                )
            else:
                obj = form.save()
            details = {k: str(v) for k, v in form.cleaned_data.items()}
            audit(request.user, f"calling_rules.{action}", enterprise=enterprise, obj=obj,
                  details=details, request=request)  # fmt: skip
        messages.success(request, _("Calling rules saved."))
        return HttpResponseRedirect(_rules_url(enterprise))
    return render(
        request,
        "devices/calling_rules.html",
        {
            "enterprise": enterprise,
            "cap_form": cap_form,
            "window_form": window_form,
            "holiday_form": holiday_form,
            "windows": enterprise.calling_windows.order_by("region"),
            "holidays": enterprise.holidays.order_by("date"),
            "default_window": DEFAULT_WINDOW,
            "nav": "rules",
        },
    )


@enterprise_view
@require_POST
def delete_calling_rule(request, enterprise, kind: str, pk: int):
    model = {"window": CallingWindow, "holiday": Holiday}.get(kind)
    obj = model.objects.filter(enterprise=enterprise, pk=pk).first() if model else None
    if obj is None:
        raise Http404
    with transaction.atomic():
        audit(request.user, f"calling_rules.delete_{kind}", enterprise=enterprise, obj=obj,
              request=request)  # fmt: skip
        obj.delete()
    messages.success(request, _("Removed."))
    return HttpResponseRedirect(_rules_url(enterprise))
