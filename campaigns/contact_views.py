"""A contact as the dialler sees it (account pages): its dial states in each sub-campaign,
its attempt history from the ledger, and the dispositions agents record on it."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.access import ALL_ROLES, account_view
from accounts.urls_helpers import account_url
from campaigns.blacklist_forms import AgentDispositionForm
from campaigns.dispositions import do_record_agent_disposition
from contacts.access import get_contact_for
from devices.models import Attempt

PAGE_SIZE = 50
DISPOSITION_CHOICES = 20


def _dialled(contact):
    """The contact's attempts an agent may record a disposition on: outbound, dialled."""
    return (
        Attempt.objects.filter(
            account_id=connection.tenant.pk, contact_id=contact.pk, direction="outbound"
        )
        .exclude(disposition="SUPPRESSED")
        .order_by("-attempted_at", "-id")
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
    dialled = list(_dialled(contact)[:DISPOSITION_CHOICES])
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


@account_view(roles=ALL_ROLES)
@require_POST
def contact_disposition(request, contact_id):
    """An agent records a disposition on one of the contact's attempts."""
    contact = get_contact_for(request.account_access, contact_id)
    form = AgentDispositionForm(
        request.POST, attempts=list(_dialled(contact)[:DISPOSITION_CHOICES])
    )
    if form.is_valid():
        do_record_agent_disposition(
            contact, form.cleaned_data["attempt"], form.cleaned_data["code"],
            form.cleaned_data["note"], actor=request.user, request=request,
        )  # fmt: skip
        messages.success(request, _("Disposition recorded."))
    else:
        messages.error(request, _("Choose one of the contact's attempts and a disposition."))
    return HttpResponseRedirect(
        account_url(connection.tenant, "account:contact_detail", contact.pk)
    )
