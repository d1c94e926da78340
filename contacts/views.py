from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import CharField, Count, F, Func, Min, Value
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.access import ADMIN_ROLES, ALL_ROLES, account_view
from accounts.urls_helpers import account_url
from contacts.access import get_list_for
from contacts.actions import do_delete_contact_list, do_upload_contact_list
from contacts.forms import UploadForm
from contacts.importer import upload_limit_bytes
from contacts.models import ContactList
from devices import uploads
from devices.trace_csv import csv_download

PAGE_SIZE = 50
REASONS_SHOWN = 20  # the most frequent reasons a list's rejected rows share


@account_view(roles=ALL_ROLES)
@require_http_methods(["GET", "POST"])
@uploads.accepts_upload(upload_limit_bytes)
def list_index(request):
    form = None
    if request.account_access.is_admin:
        form = UploadForm()
        if request.method == "POST":
            form = UploadForm(request.POST, request.FILES)
            if form.is_valid():
                contact_list = do_upload_contact_list(
                    name=form.cleaned_data["name"],
                    uploaded_file=form.cleaned_data["file"],
                    actor=request.user,
                    request=request,
                )
                if contact_list.status == ContactList.Status.READY:
                    messages.success(
                        request,
                        _("Imported %(count)s contacts.") % {"count": contact_list.rows_imported},
                    )
                elif contact_list.status == ContactList.Status.FAILED:
                    messages.error(request, contact_list.error)
                else:
                    messages.success(request, _("Upload received; the import is running."))
                return HttpResponseRedirect(
                    account_url(connection.tenant, "account:list_detail", contact_list.pk)
                )
    elif request.method == "POST":
        request.account_access.require(ADMIN_ROLES)
    page = Paginator(ContactList.objects.order_by("-created_at"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "contacts/list_index.html", {"form": form, "page": page, "nav": "lists"})


@account_view(roles=ALL_ROLES)
@require_GET
def list_detail(request, list_id):
    contact_list = get_list_for(request.account_access, list_id)
    issues = Paginator(contact_list.issues.all(), PAGE_SIZE).get_page(request.GET.get("issues"))
    contacts = Paginator(contact_list.contacts.order_by("id"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    # One line per reason (516 rows may share one), then the rows themselves, page by page.
    # A reason quotes the row's value ("“555-0100” is too short…"): grouped without it.
    reasons = (
        contact_list.issues.annotate(kind=Func(
            F("reason"), Value("“[^”]*”"), Value("“…”"), Value("g"), function="regexp_replace",
            output_field=CharField(),
        ))
        .values("kind")
        .annotate(rows=Count("id"), first_line=Min("line_number"))
        .order_by("-rows", "first_line")[:REASONS_SHOWN]
    )  # fmt: skip
    return render(
        request,
        "contacts/list_detail.html",
        {"list": contact_list, "issues": issues, "contacts": contacts, "nav": "lists",
         "reasons": reasons},
    )  # fmt: skip


@account_view(roles=ALL_ROLES)
@require_GET
def list_rejects_csv(request, list_id):
    """The rejected rows of a list, with their line and reason, to fix and upload again."""
    contact_list = get_list_for(request.account_access, list_id)

    def rows():
        yield [_("Line"), _("Reason"), _("Content")]
        for issue in contact_list.issues.order_by("line_number", "id").iterator(chunk_size=2000):
            yield [issue.line_number, issue.reason, issue.raw]

    return csv_download(
        rows(),
        f"list-{contact_list.pk}-rejects.csv",
        time_zone=timezone.get_current_timezone_name(),
        language=get_language(),
    )


@account_view(roles=ALL_ROLES)
@require_GET
def list_progress(request, list_id):
    contact_list = get_list_for(request.account_access, list_id)
    return JsonResponse(
        {
            "status": contact_list.status,
            "status_label": contact_list.get_status_display(),
            "percent": contact_list.progress_percent,
            "rows_read": contact_list.rows_read,
            "rows_imported": contact_list.rows_imported,
            "rows_rejected": contact_list.rows_rejected,
            "rows_merged": contact_list.rows_merged,
            "error": contact_list.error,
        }
    )


@account_view(roles=ADMIN_ROLES)
@require_POST
def list_delete(request, list_id):
    contact_list = get_list_for(request.account_access, list_id)
    try:
        deleted = do_delete_contact_list(contact_list, actor=request.user, request=request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return HttpResponseRedirect(account_url(connection.tenant, "account:list_detail",
                                                contact_list.pk))  # fmt: skip
    done = ngettext("List “%(name)s” deleted with its %(count)s contact.",
                    "List “%(name)s” deleted with its %(count)s contacts.", deleted)  # fmt: skip
    messages.success(request, done % {"name": contact_list.name, "count": deleted})
    return HttpResponseRedirect(account_url(connection.tenant, "account:lists"))
