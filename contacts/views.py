from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import connection
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts.access import account_view, pk_or_404
from accounts.urls_helpers import account_url
from campaigns.access import ADMIN_ROLES, ALL_ROLES
from contacts.actions import do_upload_contact_list
from contacts.forms import UploadForm
from contacts.models import Contact, ContactList
from devices.models import Attempt

PAGE_SIZE = 50


def get_list_for(access, list_id) -> ContactList:
    found = ContactList.objects.filter(pk=pk_or_404(list_id)).first()
    if found is None:
        raise Http404
    return found


def get_contact_for(access, contact_id) -> Contact:
    found = Contact.objects.select_related("contact_list").filter(pk=pk_or_404(contact_id)).first()
    if found is None:
        raise Http404
    return found


@account_view(roles=ALL_ROLES)
@require_http_methods(["GET", "POST"])
def list_index(request):
    form = None
    if request.account_access.is_admin:
        form = UploadForm()
        if request.method == "POST":
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
            if declared > (settings.MAX_UPLOAD_MB + 1) * 1024 * 1024:
                # Refuse before Django reads the body to disk.
                messages.error(
                    request,
                    _(
                        "The upload is larger than %(limit)s MB. "
                        "Split the file and upload the parts."
                    )
                    % {"limit": settings.MAX_UPLOAD_MB},
                )
                return HttpResponseRedirect(account_url(connection.tenant, "account:lists"))
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


@account_view(roles=ALL_ROLES)
@require_GET
def contact_detail(request, contact_id):
    """A contact's attempt history in this account, from the shared ledger."""
    contact = get_contact_for(request.account_access, contact_id)
    attempts = Attempt.objects.filter(
        account_id=connection.tenant.pk, contact_id=contact.pk
    ).order_by("-attempted_at", "-id")
    page = Paginator(attempts, PAGE_SIZE).get_page(request.GET.get("page"))
    states = contact.dial_states.select_related("sub_campaign__campaign").order_by("id")
    from campaigns.blacklist_forms import AgentDispositionForm

    dialled = list(attempts.filter(direction="outbound").exclude(disposition="SUPPRESSED")[:20])
    return render(
        request,
        "contacts/contact_detail.html",
        {
            "contact": contact,
            "page": page,
            "states": states,
            "disposition_form": AgentDispositionForm(attempts=dialled) if dialled else None,
            "dispositions": contact.dispositions.all()[:20],
            "nav": "lists",
        },
    )
