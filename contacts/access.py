"""Contact lists and contacts of the current account, for the person asking."""

from __future__ import annotations

from django.http import Http404

from accounts.access import AccountAccess, in_current_account, pk_or_404
from contacts.models import Contact, ContactList


def get_list_for(access: AccountAccess, list_id) -> ContactList:
    in_current_account(access)
    found = ContactList.objects.filter(pk=pk_or_404(list_id)).first()
    if found is None:
        raise Http404
    return found


def get_contact_for(access: AccountAccess, contact_id) -> Contact:
    in_current_account(access)
    found = Contact.objects.select_related("contact_list").filter(pk=pk_or_404(contact_id)).first()
    if found is None:
        raise Http404
    return found
