from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import searches
from accounts.access import enterprise_view
from accounts.actions import audit, audit_once
from accounts.models import Account
from accounts.urls_helpers import account_url
from devices import uploads
from devices.access import (
    get_calling_window_for,
    get_holiday_for,
    get_recording_for_user,
    get_setting_for,
)
from devices.actions import do_save_device_setting, do_save_device_settings
from devices.blocking import RECENT_ATTEMPTS, build_preview, device_history, search_settings
from devices.calling_rules import (
    do_add_holiday,
    do_delete_calling_window,
    do_delete_holiday,
    do_save_calling_window,
    do_set_attempt_cap,
)
from devices.forms import (
    AttemptCapForm,
    CallingWindowForm,
    DeviceSettingForm,
    ExpiryForm,
    HolidayForm,
    RemoveSettingForm,
    SettingImportForm,
    SettingSearchForm,
    TraceForm,
)
from devices.models import DeviceSetting
from devices.policy import DEFAULT_WINDOW
from devices.recordings import do_delete_recording, recording_response
from devices.setting_csv import (
    MAX_IMPORT_BYTES,
    MAX_REPORTED_ERRORS,
    ImportFileError,
    parse_settings_csv,
    settings_csv_rows,
)
from devices.trace import BY_DEVICE, TraceQuery, trace_attempts
from devices.trace_csv import trace_csv_rows
from devices.unsubscribe import BadToken, do_unsubscribe, read_token

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
        data = form.cleaned_data
        who = {"actor": request.user, "request": request}
        if action == "window":
            do_save_calling_window(
                enterprise, region=data["region"], start=data["start"], end=data["end"], **who
            )
        elif action == "holiday":
            do_add_holiday(
                enterprise, date=data["date"], region=data["region"], name=data["name"], **who
            )
        else:
            do_set_attempt_cap(
                enterprise, attempt_cap=data["attempt_cap"],
                attempt_cap_days=data["attempt_cap_days"], **who,
            )  # fmt: skip
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
    if kind == "window":
        do_delete_calling_window(
            get_calling_window_for(enterprise, pk), actor=request.user, request=request
        )
    elif kind == "holiday":
        do_delete_holiday(get_holiday_for(enterprise, pk), actor=request.user, request=request)
    else:
        raise Http404
    messages.success(request, _("Removed."))
    return HttpResponseRedirect(_rules_url(enterprise))


TRACE = "trace"


@enterprise_view
@require_http_methods(["GET", "POST"])
def contact_trace(request, enterprise):
    """Enterprise › Devices › Contact Trace: the search. It is POSTed and its results open
    at an opaque URL (accounts.searches), so no phone number or email is in any URL."""
    form = TraceForm(
        request.POST if request.method == "POST" else None, region=enterprise.default_region
    )
    if form.is_bound and form.is_valid():
        search = searches.save(request, TRACE, {"criteria": form.query.kind,
                               "value": form.query.key}, enterprise=enterprise)  # fmt: skip
        return HttpResponseRedirect(
            reverse("devices:contact_trace_results", args=[enterprise.pk, search.pk]), status=303
        )
    return _render_trace(request, enterprise, form)


@enterprise_view
@require_GET
def contact_trace_results(request, enterprise, search_id: str):
    """One search's attempts: anyone of the enterprise may open, bookmark and share it
    until it expires; each person who opens it is audited with the normalised key."""
    try:
        search = searches.find(search_id, TRACE, enterprise=enterprise)
    except searches.Expired as exc:
        messages.warning(request, _expired_message(exc.search))
        form = TraceForm(initial=exc.search.params, region=enterprise.default_region)
        return _render_trace(request, enterprise, form, status=410)
    form = _search_form(search, enterprise)
    attempts = trace_attempts(enterprise.pk, form.query)
    page = Paginator(attempts, TRACE_PAGE_SIZE).get_page(request.GET.get("page"))
    _attach_links(enterprise, page.object_list)
    audit_once(request.user, "trace.search", enterprise=enterprise, obj=search,
               details={"criteria": form.query.kind, "value": form.query.key,
                        "results": page.paginator.count}, request=request)  # fmt: skip
    export = reverse("devices:contact_trace_export", args=[enterprise.pk, search.pk])
    return _render_trace(request, enterprise, form, page=page, search=search, export_url=export)


def _search_form(search, enterprise) -> TraceForm:
    form = TraceForm(search.params, region=enterprise.default_region)
    if not form.is_valid():  # a key saved by this form parses again: never expected
        raise Http404
    return form


def _expired_message(search) -> str:
    return _(
        "This search expired on %(date)s: search again to see the attempts as they are now."
    ) % {"date": date_format(timezone.localtime(search.expires_at), "SHORT_DATETIME_FORMAT")}


def _render_trace(request, enterprise, form, *, page=None, search=None, export_url="",
                  status=200):  # fmt: skip
    return render(
        request,
        "devices/contact_trace.html",
        {"enterprise": enterprise, "form": form, "page": page, "searched": page is not None,
         "search": search, "export_url": export_url, "query": "", "nav": "devices",
         "tab": "trace"},
        status=status,
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
def contact_trace_export(request, enterprise, search_id: str):
    try:
        search = searches.find(search_id, TRACE, enterprise=enterprise)
    except searches.Expired as exc:
        messages.warning(request, _expired_message(exc.search))
        return HttpResponseRedirect(reverse("devices:contact_trace", args=[enterprise.pk]))
    form = _search_form(search, enterprise)
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


# --- Device Blocking -------------------------------------------------------------------------

SETTINGS_PAGE_SIZE = 25
HISTORY_PAGE_SIZE = 50
IMPORT_REPORT = "device_import_report"


SETTINGS_SEARCH = "device_settings"


def _setting_from_query(request, enterprise) -> DeviceSetting | None:
    pk = request.GET.get("setting", "")
    if not (pk.isascii() and pk.isdigit() and len(pk) < 19):
        return None
    try:
        return get_setting_for(enterprise, int(pk))
    except Http404:
        return None


def _blocking_url(enterprise) -> str:
    return reverse("devices:device_blocking", args=[enterprise.pk])


def _saved_message(setting: DeviceSetting) -> str:
    if setting.action == DeviceSetting.Action.BLOCK:
        text = _("Saved: calls to %(device)s are blocked in every account.")
    elif setting.action == DeviceSetting.Action.ALLOW:
        text = _("Saved: calls to %(device)s are allowed.")
    else:
        text = _("Removed the setting for %(device)s.")
    text %= {"device": setting.device_key}
    if setting.cancelled:
        text += " " + ngettext(
            "%(n)s queued attempt cancelled.", "%(n)s queued attempts cancelled.",
            setting.cancelled,
        ) % {"n": setting.cancelled}  # fmt: skip
    if setting.released:
        text += " " + ngettext(
            "%(n)s attempt back in the queue.", "%(n)s attempts back in the queue.",
            setting.released,
        ) % {"n": setting.released}  # fmt: skip
    return text


@enterprise_view
@require_http_methods(["GET", "POST"])
def device_blocking(request, enterprise):
    """Enterprise › Devices › Device Blocking: the setting form with its preview (View
    Setting), saving it (Save Setting), and the list of current settings."""
    preview = None
    if request.method == "POST" and request.POST.get("op") == "search":
        # The settings search is POSTed too: a device in it must not be in the URL.
        search = SettingSearchForm(request.POST)
        terms = {key: value for key, value in search.data.items() if key in search.fields}
        saved = searches.save(request, SETTINGS_SEARCH, terms, enterprise=enterprise)
        return searches.open_at(_blocking_url(enterprise), saved)
    if request.method == "POST":
        form = DeviceSettingForm(request.POST, enterprise=enterprise)
        if form.is_valid() and request.POST.get("op") == "save":
            data = form.cleaned_data
            setting = do_save_device_setting(
                enterprise, data["device"], data["action"], source=DeviceSetting.Source.MANUAL,
                reason=data["reason"], expires_at=data["expires"], actor=request.user,
                request=request,
            )  # fmt: skip
            messages.success(request, _saved_message(setting))
            return HttpResponseRedirect(_blocking_url(enterprise))
    else:
        # "Change setting" on a device's page opens its preview, unsaved: by the setting's
        # id, so the device is not in the URL.
        current = _setting_from_query(request, enterprise)
        initial = {"action": "block"}
        form = DeviceSettingForm(
            {"device": current.device_key,
             "action": "allow" if current.action == DeviceSetting.Action.ALLOW else "block"}
            if current is not None else None,
            enterprise=enterprise,
            initial=initial,
        )  # fmt: skip
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        preview = build_preview(enterprise, data["device"], data["action"],
                                reason=data["reason"], expires_at=data["expires"])  # fmt: skip
        audit(request.user, "device.preview", enterprise=enterprise,
              details={"device": data["device"], "setting": data["action"],
                       "contacts": preview.contacts, "attempts": preview.attempts},
              request=request)  # fmt: skip
    terms = searches.from_query(request, SETTINGS_SEARCH, enterprise=enterprise)
    search = SettingSearchForm(terms)
    filters = search.filters()
    settings = search_settings(enterprise, **filters)
    page = Paginator(settings, SETTINGS_PAGE_SIZE).get_page(request.GET.get("page"))
    query = searches.page_query(request, terms)
    return render(
        request,
        "devices/device_blocking.html",
        {"enterprise": enterprise, "form": form, "preview": preview, "search": search,
         "filtered": any(filters.values()), "page": page, "query": query,
         "now": timezone.now(), "nav": "devices", "tab": "blocking"},
    )  # fmt: skip


@enterprise_view
@require_GET
def device_setting_detail(request, enterprise, pk: int):
    """One device: its setting now, every setting it has had, its latest attempts."""
    row = get_setting_for(enterprise, pk)
    now = timezone.now()
    history = device_history(enterprise, row.device_key)
    page = Paginator(history, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    latest = history.first()
    in_force = latest if latest is not None and latest.applies_at(now) else None
    recent = list(
        trace_attempts(enterprise.pk, TraceQuery(BY_DEVICE, row.device_key))[:RECENT_ATTEMPTS]
    )
    audit(request.user, "device.view", enterprise=enterprise, obj=row,
          details={"device": row.device_key}, request=request)  # fmt: skip
    return render(
        request,
        "devices/device_setting_detail.html",
        {"enterprise": enterprise, "device_key": row.device_key, "latest": latest,
         "in_force": in_force, "page": page, "recent": recent, "now": now,
         "nav": "devices", "tab": "blocking"},
    )  # fmt: skip


def _current_or_redirect(request, enterprise, row: DeviceSetting):
    """The device's latest setting, or a redirect saying it has none to change."""
    latest = device_history(enterprise, row.device_key).first()
    if latest is None or latest.action == DeviceSetting.Action.CLEAR:
        messages.info(
            request, _("%(device)s has no setting to change.") % {"device": row.device_key}
        )
        return None, HttpResponseRedirect(
            reverse("devices:device_setting", args=[enterprise.pk, row.pk])
        )
    return latest, None


@enterprise_view
@require_http_methods(["GET", "POST"])
def device_setting_remove(request, enterprise, pk: int):
    """Remove a device's setting (a Clear row: the history stays), after confirming."""
    current, redirect = _current_or_redirect(request, enterprise, get_setting_for(enterprise, pk))
    if redirect is not None:
        return redirect
    form = RemoveSettingForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        setting = do_save_device_setting(
            enterprise, current.device_key, DeviceSetting.Action.CLEAR,
            source=DeviceSetting.Source.MANUAL, reason=form.cleaned_data["reason"],
            actor=request.user, request=request,
        )  # fmt: skip
        messages.success(request, _saved_message(setting))
        return HttpResponseRedirect(_blocking_url(enterprise))
    preview = build_preview(enterprise, current.device_key, DeviceSetting.Action.CLEAR)
    return render(
        request,
        "devices/device_setting_remove.html",
        {"enterprise": enterprise, "current": current, "form": form, "preview": preview,
         "now": timezone.now(), "nav": "devices", "tab": "blocking"},
    )  # fmt: skip


@enterprise_view
@require_http_methods(["GET", "POST"])
def device_setting_expiry(request, enterprise, pk: int):
    """Set or change when a device's current setting stops applying: saved as a new row
    with the same setting and reason, so the history shows who changed it and when."""
    current, redirect = _current_or_redirect(request, enterprise, get_setting_for(enterprise, pk))
    if redirect is not None:
        return redirect
    if request.method == "POST":
        form = ExpiryForm(request.POST, enterprise=enterprise)
        if form.is_valid():
            setting = do_save_device_setting(
                enterprise, current.device_key, current.action,
                source=DeviceSetting.Source.MANUAL, reason=current.reason,
                expires_at=form.cleaned_data["expires"], actor=request.user, request=request,
            )  # fmt: skip
            if setting.expires_at:
                text = _("%(device)s: the setting now expires on %(when)s.") % {
                    "device": setting.device_key,
                    "when": timezone.localtime(setting.expires_at).strftime("%Y-%m-%d %H:%M"),
                }
            else:
                text = _("%(device)s: the setting no longer expires.") % {
                    "device": setting.device_key
                }
            messages.success(request, text)
            return HttpResponseRedirect(_blocking_url(enterprise))
    else:
        initial = {}
        if current.expires_at and current.applies_at(timezone.now()):
            initial["expires"] = timezone.localtime(current.expires_at).date().isoformat()
        form = ExpiryForm(initial=initial, enterprise=enterprise)
    return render(
        request,
        "devices/device_setting_expiry.html",
        {"enterprise": enterprise, "current": current, "form": form, "now": timezone.now(),
         "nav": "devices", "tab": "blocking"},
    )  # fmt: skip


@enterprise_view
@require_http_methods(["GET", "POST"])
@uploads.accepts_upload(MAX_IMPORT_BYTES)
def device_settings_import(request, enterprise):
    """Many blocks from a CSV file: bad lines reported by number, good lines saved."""
    posted = request.method == "POST"
    form = SettingImportForm(request.POST, request.FILES) if posted else SettingImportForm()
    if posted and form.is_valid():
        upload = form.cleaned_data["file"]
        name = (upload.name or "")[:120]
        try:
            parsed = parse_settings_csv(
                upload.read(MAX_IMPORT_BYTES + 1), region=enterprise.default_region,
                time_zone=enterprise.time_zone,
            )  # fmt: skip
        except ImportFileError as exc:
            form.add_error("file", str(exc))
        else:
            result = do_save_device_settings(
                enterprise, parsed.inputs, source=DeviceSetting.Source.IMPORT,
                actor=request.user, request=request,
                audit_details={"file": name, "lines": parsed.lines,
                               "errors": parsed.error_count, "duplicates": parsed.duplicates},
            ) if parsed.inputs else None  # fmt: skip
            if result is None:  # every line was wrong: still a record of the attempt
                audit(request.user, "device.import", enterprise=enterprise,
                      details={"file": name, "lines": parsed.lines, "saved": 0,
                               "errors": parsed.error_count}, request=request)  # fmt: skip
            request.session[IMPORT_REPORT] = {
                "file": name,
                "lines": parsed.lines,
                "saved": result.saved if result else 0,
                "blocks": result.blocks if result else 0,
                "allows": result.allows if result else 0,
                "cancelled": result.cancelled if result else 0,
                "released": result.released if result else 0,
                "duplicates": parsed.duplicates,
                "error_count": parsed.error_count,
                "errors": [[e.line, e.message] for e in parsed.errors],
            }
            saved = result.saved if result else 0
            summary = ngettext(
                "%(saved)s device setting saved from %(file)s.",
                "%(saved)s device settings saved from %(file)s.", saved,
            ) % {"saved": saved, "file": name or _("the file")}  # fmt: skip
            if parsed.error_count:
                summary += " " + ngettext(
                    "%(n)s line has an error and was skipped.",
                    "%(n)s lines have errors and were skipped.", parsed.error_count,
                ) % {"n": parsed.error_count}  # fmt: skip
                messages.warning(request, summary)
            else:
                messages.success(request, summary)
            return HttpResponseRedirect(reverse("devices:device_import", args=[enterprise.pk]))
    report = request.session.pop(IMPORT_REPORT, None) if request.method == "GET" else None
    return render(
        request,
        "devices/device_import.html",
        {"enterprise": enterprise, "form": form, "report": report,
         "max_errors": MAX_REPORTED_ERRORS, "nav": "devices", "tab": "blocking"},
    )  # fmt: skip


@enterprise_view
@require_GET
def device_settings_export(request, enterprise):
    """The current settings (as filtered on the list) as CSV, streamed."""
    terms = searches.from_query(request, SETTINGS_SEARCH, enterprise=enterprise)
    filters = SettingSearchForm(terms).filters()
    settings = search_settings(enterprise, **filters)
    audit(request.user, "device.export", enterprise=enterprise,
          details={k: v for k, v in filters.items() if v}, request=request)  # fmt: skip
    name = f"device-settings-{timezone.localdate():%Y%m%d}.csv"
    rows = settings_csv_rows(
        settings, time_zone=enterprise.time_zone, language=translation.get_language()
    )
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# --- Email unsubscribe (public) -------------------------------------------------------------


@csrf_exempt  # mail clients POST the one-click request with no session; the token decides
@require_http_methods(["GET", "POST"])
def email_unsubscribe(request, token: str):
    """GET asks to confirm (a link scanner changes nothing); POST unsubscribes, once."""
    context = {"token": token}
    try:
        if request.method == "POST":
            outcome = do_unsubscribe(token, request=request)
            context.update(unsubscribe=outcome.unsubscribe,
                           state="used" if outcome.already_used else "done")  # fmt: skip
            status = 409 if outcome.already_used else 200
        else:
            context.update(unsubscribe=read_token(token), state="confirm")
            status = 200
    except BadToken:
        context["state"] = "invalid"
        status = 400
    response = render(request, "devices/email_unsubscribe.html", context, status=status)
    response["Cache-Control"] = "no-store"
    response["X-Robots-Tag"] = "noindex"
    return response
