from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts.access import ADMIN_ROLES, ALL_ROLES, account_view
from accounts.urls_helpers import account_url
from contacts.access import get_list_for
from contacts.actions import do_upload_contact_list
from contacts.forms import UploadForm
from contacts.importer import upload_limit_bytes
from contacts.models import ContactList
from devices import uploads

PAGE_SIZE = 50


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
    return render(
        request,
        "contacts/list_detail.html",
        {"list": contact_list, "issues": issues, "contacts": contacts, "nav": "lists"},
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
