from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.access import enterprise_view
from accounts.actions import audit
from accounts.models import Account
from accounts.urls_helpers import account_url
from devices.forms import AttemptCapForm, CallingWindowForm, HolidayForm, TraceForm
from devices.models import CallingWindow, Holiday
from devices.policy import DEFAULT_WINDOW
from devices.recordings import do_delete_recording, get_recording_for_user, recording_response
from devices.trace import trace_attempts
from devices.trace_csv import trace_csv_rows

TRACE_PAGE_SIZE = 50


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


def _trace_form(request, enterprise) -> TraceForm:
    return TraceForm(
        request.GET if "value" in request.GET else None, region=enterprise.default_region
    )


@enterprise_view
@require_GET
def contact_trace(request, enterprise):
    """Enterprise › Devices › Contact Trace."""
    form = _trace_form(request, enterprise)
    page = None
    if form.is_bound and form.is_valid():
        attempts = trace_attempts(enterprise.pk, form.query)
        page = Paginator(attempts, TRACE_PAGE_SIZE).get_page(request.GET.get("page"))
        _attach_links(enterprise, page.object_list)
        audit(request.user, "trace.search", enterprise=enterprise,
              details={"criteria": form.query.kind, "value": form.query.key,
                       "results": page.paginator.count}, request=request)  # fmt: skip
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "devices/contact_trace.html",
        {"enterprise": enterprise, "form": form, "page": page, "searched": page is not None,
         "query": query.urlencode(), "nav": "devices", "tab": "trace"},
    )  # fmt: skip


def _attach_links(enterprise, attempts) -> None:
    """Accounts and links for one page of results: one query, each URL reversed once."""
    attempts = list(attempts)
    ids = {a.account_id for a in attempts}
    accounts = {a.pk: a for a in Account.objects.filter(enterprise=enterprise, pk__in=ids)}
    sign_in = {pk: reverse("accounts:account_sign_in", args=[pk]) for pk in accounts}
    recordings = reverse("devices:recording", args=[enterprise.pk, 1]).removesuffix("1.wav")
    sub_links: dict[tuple[int, int], str] = {}
    for attempt in attempts:
        account = accounts.get(attempt.account_id)
        attempt.account = account
        attempt.sign_in_url = sign_in.get(attempt.account_id, "")
        attempt.listen_url = f"{recordings}{attempt.pk}.wav"
        attempt.delete_url = f"{recordings}{attempt.pk}/delete/"
        key = (attempt.account_id, attempt.sub_campaign_id)
        if account is not None and attempt.sub_campaign_id and key not in sub_links:
            target = account_url(account, "account:sub_campaign", attempt.sub_campaign_id)
            sub_links[key] = f"{attempt.sign_in_url}?{urlencode({'next': target})}"
        attempt.sub_campaign_url = sub_links.get(key, "")


@enterprise_view
@require_GET
def contact_trace_export(request, enterprise):
    form = _trace_form(request, enterprise)
    if not (form.is_bound and form.is_valid()):
        messages.error(request, _("Run a valid search before exporting."))
        return HttpResponseRedirect(reverse("devices:contact_trace", args=[enterprise.pk]))
    attempts = trace_attempts(enterprise.pk, form.query)
    details = {"criteria": form.query.kind, "value": form.query.key}
    audit(request.user, "trace.export", enterprise=enterprise, details=details, request=request)
    name = f"contact-trace-{timezone.localdate():%Y%m%d}.csv"
    rows = trace_csv_rows(
        attempts, time_zone=enterprise.time_zone, language=translation.get_language()
    )
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@enterprise_view
@require_GET
def enterprise_recording(request, enterprise, attempt_id: int):
    return recording_response(request, get_recording_for_user(attempt_id, enterprise=enterprise))


@enterprise_view
@require_POST
def enterprise_recording_delete(request, enterprise, attempt_id: int):
    attempt = get_recording_for_user(attempt_id, enterprise=enterprise)
    do_delete_recording(attempt, actor=request.user, request=request)
    messages.success(request, _("Recording deleted."))
    return HttpResponseRedirect(
        _safe_back(request, reverse("devices:contact_trace", args=[enterprise.pk]))
    )


def _safe_back(request, fallback: str) -> str:
    target = request.POST.get("next", "")
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}
    ):
        return target
    return fallback
