"""Dialer › Campaign Blacklists: lists, entries, imports, monitoring (account pages)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import searches
from accounts.access import ADMIN_ROLES, ALL_ROLES, account_view
from accounts.actions import audit
from accounts.models import AuditEvent
from accounts.urls_helpers import account_url
from campaigns.access import get_blacklist_for, get_campaign_for, get_entry_for, get_import_for
from campaigns.blacklist_forms import (
    AutoRuleForm,
    BlacklistCampaignsForm,
    BlacklistForm,
    BlacklistUploadForm,
    EntryForm,
)
from campaigns.blacklist_import import do_upload_blacklist
from campaigns.blacklists import (
    do_add_entry,
    do_create_blacklist,
    do_delete_blacklist,
    do_remove_entry,
    do_set_blacklist_campaigns,
    do_set_campaign_blacklists,
    do_update_blacklist,
)
from campaigns.models import Blacklist, BlacklistEntry, Campaign
from contacts.importer import upload_limit_bytes
from devices import uploads
from devices.keys import DeviceKeyError, parse_phone_or_extension
from devices.keys import display_phone as display_key
from devices.trace_csv import csv_download

ENTRIES_PAGE_SIZE = 50
HISTORY_PAGE_SIZE = 50
BLACKLISTS_PAGE_SIZE = 50
USED_BY_SHOWN = 10  # campaigns named on a list's page; the rest are counted


def _here(viewname: str, *args) -> str:
    return account_url(connection.tenant, viewname, *args)


def _region_and_zone() -> tuple[str, str]:
    enterprise = connection.tenant.enterprise
    return enterprise.default_region, enterprise.time_zone


@account_view(roles=ALL_ROLES)
@require_http_methods(["GET", "POST"])
def blacklist_index(request):
    """Dialer › Campaign Blacklists: every list with its size, use and effect."""
    can_manage = request.account_access.is_admin
    form = BlacklistForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied
        if form.is_valid():
            try:
                blacklist = do_create_blacklist(
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                    actor=request.user,
                    request=request,
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(
                    request, _("Blacklist created. Add numbers and attach it to campaigns.")
                )
                return HttpResponseRedirect(_here("account:blacklist", blacklist.pk))
    # The counters are kept by campaigns.blacklists: no entry or campaign is read here.
    blacklists = Blacklist.objects.order_by("name", "pk")
    page = Paginator(blacklists, BLACKLISTS_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "campaigns/blacklist_list.html",
        {"page": page, "form": form, "can_manage": can_manage, "nav": "blacklists"},
    )


def _entries(blacklist: Blacklist, query: str, region: str):
    entries = BlacklistEntry.objects.filter(blacklist=blacklist)
    query = query.strip()
    if query:
        try:  # a whole number, in any format, finds its entry exactly
            entries = entries.filter(device_key=parse_phone_or_extension(query, region).key)
        except DeviceKeyError:
            digits = "".join(ch for ch in query if ch.isdigit())
            entries = entries.filter(device_key__contains=digits) if digits else entries.none()
    return entries.order_by("-created_at", "-id")


ENTRY_SEARCH = "blacklist_entries"


@account_view(roles=ALL_ROLES)
@require_http_methods(["GET", "POST"])
@uploads.accepts_upload(
    upload_limit_bytes, back=lambda request, blacklist_id: request.path + "#imports"
)
def blacklist_detail(request, blacklist_id):
    blacklist = get_blacklist_for(request.account_access, blacklist_id)
    can_manage = request.account_access.is_admin
    region, zone = _region_and_zone()
    if request.method == "POST" and request.POST.get("action") == "search":
        # Anyone who may see the list may search it: POSTed, so a number stays out of URLs.
        terms = {"blacklist": blacklist.pk, "q": request.POST.get("q", "")}
        saved = searches.save(request, ENTRY_SEARCH, terms, account=connection.tenant)
        return searches.open_at(request.path, saved)
    if request.method == "POST" and not can_manage:
        raise PermissionDenied
    action = request.POST.get("action") if request.method == "POST" else None
    entry_form = EntryForm(request.POST if action == "add" else None, region=region, time_zone=zone)
    edit_form = BlacklistForm(request.POST if action == "edit" else None, instance=blacklist)
    campaigns_form = BlacklistCampaignsForm(
        request.POST if action == "campaigns" else None,
        initial={"campaigns": list(blacklist.campaigns.all())},
    )
    upload_form = BlacklistUploadForm(
        request.POST if action == "upload" else None,
        request.FILES if action == "upload" else None,
    )
    if action == "add" and entry_form.is_valid():
        kind, key = entry_form.cleaned_data["value"]
        added, suppressed = do_add_entry(
            blacklist, kind, key, reason=entry_form.cleaned_data["reason"],
            expires_at=entry_form.cleaned_data["expires"], actor=request.user, request=request,
        )  # fmt: skip
        if added:
            messages.success(
                request,
                ngettext(
                    "%(key)s added. %(count)s pending contact removed from campaigns at once.",
                    "%(key)s added. %(count)s pending contacts removed from campaigns at once.",
                    suppressed,
                )
                % {"key": display_key(key), "count": number_format(suppressed)},
            )
        else:
            messages.info(
                request, _("%(key)s is already on this list.") % {"key": display_key(key)}
            )
        return HttpResponseRedirect(_here("account:blacklist", blacklist.pk))
    if action == "edit" and edit_form.is_valid():
        do_update_blacklist(
            Blacklist.objects.get(pk=blacklist.pk),
            name=edit_form.cleaned_data["name"],
            description=edit_form.cleaned_data["description"],
            actor=request.user,
            request=request,
        )
        messages.success(request, _("Blacklist saved."))
        return HttpResponseRedirect(_here("account:blacklist", blacklist.pk))
    if action == "campaigns" and campaigns_form.is_valid():
        suppressed, released = do_set_blacklist_campaigns(
            blacklist, campaigns_form.cleaned_data["campaigns"], actor=request.user,
            request=request,
        )  # fmt: skip
        messages.success(
            request,
            _("Campaigns saved: %(removed)s, %(released)s.")
            % {"removed": _removed(suppressed), "released": _released(released)},
        )
        return HttpResponseRedirect(_here("account:blacklist", blacklist.pk))
    if action == "upload" and upload_form.is_valid():
        try:
            job = do_upload_blacklist(
                blacklist, upload_form.cleaned_data["file"],
                reason=upload_form.cleaned_data["reason"], actor=request.user, request=request,
            )  # fmt: skip
        except ValidationError as exc:
            upload_form.add_error("file", exc)
        else:
            if job.status == job.Status.DONE:
                messages.success(
                    request,
                    _("Imported: %(added)s added, %(duplicates)s duplicates ignored, "
                      "%(rejected)s lines rejected.")
                    % {"added": job.added, "duplicates": job.duplicates, "rejected": job.rejected},
                )  # fmt: skip
            else:
                messages.info(request, _("Import started: progress is shown below."))
            return HttpResponseRedirect(_here("account:blacklist", blacklist.pk) + "#imports")
    terms = searches.from_query(request, ENTRY_SEARCH, account=connection.tenant) or {}
    query = terms.get("q", "") if terms.get("blacklist") == str(blacklist.pk) else ""
    entries = _entries(blacklist, query, region)
    page = Paginator(entries, ENTRIES_PAGE_SIZE).get_page(request.GET.get("page"))
    for entry in page.object_list:
        entry.display = display_key(entry.device_key)
    imports = list(blacklist.imports.all()[:5])
    return render(
        request,
        "campaigns/blacklist_detail.html",
        {
            "blacklist": blacklist,
            "page": page,
            "q": query,
            "query": searches.page_query(request, terms) if query else "",
            "entry_count": blacklist.entry_count,
            "used_by": blacklist.campaigns.order_by("name")[:USED_BY_SHOWN],
            "used_by_more": max(0, blacklist.campaign_count - USED_BY_SHOWN),
            "imports": imports,
            "entry_form": entry_form,
            "edit_form": edit_form,
            "campaigns_form": campaigns_form,
            "upload_form": upload_form,
            "can_manage": can_manage,
            "has_campaigns": Campaign.objects.exists(),
            "open_panel": action or "",
            "nav": "blacklists",
        },
    )


@account_view(roles=ADMIN_ROLES)
@require_http_methods(["GET", "POST"])
def blacklist_entry_remove(request, blacklist_id, entry_id):
    """Confirm, then remove one entry; the contacts only it held go back to pending."""
    blacklist = get_blacklist_for(request.account_access, blacklist_id)
    entry = get_entry_for(request.account_access, blacklist, entry_id)
    if request.method == "POST":
        released = do_remove_entry(entry, actor=request.user, request=request)
        messages.success(
            request,
            ngettext(
                "%(key)s removed; %(count)s contact released to their campaigns.",
                "%(key)s removed; %(count)s contacts released to their campaigns.",
                released,
            )
            % {"key": display_key(entry.device_key), "count": number_format(released)},
        )
        return HttpResponseRedirect(_here("account:blacklist", blacklist.pk))
    return render(
        request,
        "campaigns/blacklist_confirm.html",
        {
            "blacklist": blacklist,
            "title": _("Remove %(key)s from %(list)s?")
            % {"key": display_key(entry.device_key), "list": blacklist.name},
            "body": _(
                "Contacts that only this entry held are released: campaigns using the "
                "list may dial them again."
            ),  # fmt: skip
            "confirm": _("Remove"),
            "nav": "blacklists",
        },
    )


@account_view(roles=ADMIN_ROLES)
@require_http_methods(["GET", "POST"])
def blacklist_delete(request, blacklist_id):
    blacklist = get_blacklist_for(request.account_access, blacklist_id)
    if request.method == "POST":
        name = blacklist.name
        do_delete_blacklist(blacklist, actor=request.user, request=request)
        messages.success(request, _("Blacklist %(name)s deleted.") % {"name": name})
        return HttpResponseRedirect(_here("account:blacklists"))
    count = blacklist.entry_count
    return render(
        request,
        "campaigns/blacklist_confirm.html",
        {
            "blacklist": blacklist,
            "title": _("Delete the blacklist %(name)s?") % {"name": blacklist.name},
            "body": _("Its %(count)s entries go with it, and campaigns using it may dial "
                      "those numbers again. This cannot be undone.") % {"count": count},
            "confirm": _("Delete"),
            "nav": "blacklists",
        },
    )  # fmt: skip


@account_view(roles=ALL_ROLES)
@require_GET
def blacklist_export(request, blacklist_id):
    blacklist = get_blacklist_for(request.account_access, blacklist_id)

    def rows():
        yield [_("Number or extension"), _("Type"), _("Reason"), _("Source"), _("Added by"),
               _("Added"), _("Expires")]  # fmt: skip
        entries = BlacklistEntry.objects.filter(blacklist=blacklist).order_by("id")
        for entry in entries.iterator(chunk_size=5000):
            yield [
                entry.device_key, entry.get_kind_display(), entry.reason,
                entry.get_source_display(), entry.created_by_label,
                timezone.localtime(entry.created_at).strftime("%Y-%m-%d %H:%M"),
                timezone.localtime(entry.expires_at).strftime("%Y-%m-%d %H:%M")
                if entry.expires_at else "",
            ]  # fmt: skip

    audit_export(request, blacklist)
    enterprise = connection.tenant.enterprise
    slug = "".join(ch if ch.isalnum() else "-" for ch in blacklist.name)[:60]
    return csv_download(
        rows(), f"blacklist-{slug}.csv", time_zone=enterprise.time_zone, language=get_language()
    )


def audit_export(request, blacklist: Blacklist) -> None:
    audit(request.user, "blacklist.export", account=connection.tenant, obj=blacklist,
          request=request)  # fmt: skip


@account_view(roles=ALL_ROLES)
@require_GET
def blacklist_import_progress(request, blacklist_id, import_id):
    blacklist = get_blacklist_for(request.account_access, blacklist_id)
    job = get_import_for(request.account_access, blacklist, import_id)
    return JsonResponse(
        {
            "status": job.status,
            "status_label": job.get_status_display(),
            "percent": job.progress_percent,
            "lines_read": job.lines_read,
            "added": job.added,
            "duplicates": job.duplicates,
            "rejected": job.rejected,
            "error": job.error,
        }
    )


@account_view(roles=ALL_ROLES)
@require_GET
def blacklist_import_detail(request, blacklist_id, import_id):
    blacklist = get_blacklist_for(request.account_access, blacklist_id)
    job = get_import_for(request.account_access, blacklist, import_id)
    return render(
        request,
        "campaigns/blacklist_import.html",
        {"blacklist": blacklist, "job": job, "nav": "blacklists"},
    )


@account_view(roles=ALL_ROLES)
@require_GET
def blacklist_history(request, blacklist_id):
    """Who changed the list, when, and what: the audit rows about it."""
    blacklist = get_blacklist_for(request.account_access, blacklist_id)
    events = AuditEvent.objects.filter(
        account=connection.tenant, object_type="blacklist", object_id=str(blacklist.pk)
    ).order_by("-occurred_at", "-id")
    page = Paginator(events, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "campaigns/blacklist_history.html",
        {"blacklist": blacklist, "page": page, "query": "", "nav": "blacklists"},
    )


@account_view(roles=ADMIN_ROLES)
@require_POST
def campaign_blacklists(request, campaign_id):
    """The lists a campaign uses and its auto-add rule, from the campaign page."""
    campaign = get_campaign_for(request.account_access, campaign_id)
    form = AutoRuleForm(request.POST, instance=campaign)
    # Unknown or malformed ids are ignored: only this account's lists can be chosen.
    chosen = [v for v in request.POST.getlist("blacklists") if v.isascii() and v.isdigit()
              and len(v) < 19]  # fmt: skip
    wanted = set(Blacklist.objects.filter(pk__in=chosen).values_list("pk", flat=True))
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, " ".join(errors))
        return HttpResponseRedirect(_here("account:campaign_detail", campaign.pk))
    suppressed, released = do_set_campaign_blacklists(
        campaign, wanted, rule_form=form, actor=request.user, request=request
    )
    messages.success(
        request,
        _("Blacklists saved: %(removed)s, %(released)s.")
        % {"removed": _removed(suppressed), "released": _released(released)},
    )
    return HttpResponseRedirect(_here("account:campaign_detail", campaign.pk))


def _removed(count: int) -> str:
    return ngettext("%(count)s pending contact removed", "%(count)s pending contacts removed",
                    count) % {"count": number_format(count)}  # fmt: skip


def _released(count: int) -> str:
    return ngettext("%(count)s released", "%(count)s released", count) % {
        "count": number_format(count)
    }
