"""Builders for account-side objects, run inside the account's schema (tenant_context)."""

from __future__ import annotations

import itertools

from django.db import connection

from accounts.models import SendingDomain
from accounts.sending_domains import DomainError, address_domain, do_add_sending_domain
from campaigns.actions import do_activate_sub_campaign, do_create_campaign, do_save_sub_campaign
from campaigns.models import Purpose, SubCampaign
from contacts.models import Contact, ContactList
from devices.models import Channel

_seq = itertools.count(1)


def contact_list(people: list[dict], name: str | None = None) -> ContactList:
    """A ready list; each person: client_id, phones (E.164 list), email, name."""
    listing = ContactList.objects.create(
        name=name or f"List {next(_seq)}", status=ContactList.Status.READY
    )
    for n, person in enumerate(people, start=2):
        phones = person.get("phones", [])
        Contact.objects.create(
            contact_list=listing,
            client_id=person.get("client_id", ""),
            name=person.get("name", ""),
            phones=phones,
            email=person.get("email", ""),
            merge_key=person.get("client_id") or (phones[0] if phones else person.get("email")),
            line_number=n,
        )
    listing.rows_imported = len(people)
    listing.save(update_fields=["rows_imported"])
    return listing


def sub_campaign(
    listing: ContactList | None = None,
    *,
    channel: str = Channel.VOICE,
    purpose: str = Purpose.COLLECTIONS,
    activate: bool = True,
    campaign_name: str | None = None,
    **fields,
) -> SubCampaign:
    campaign = do_create_campaign(name=campaign_name or f"Campaign {next(_seq)}")
    defaults = {
        "name": f"Sub {next(_seq)}",
        "channel": channel,
        "purpose": purpose,
        "caller_id": "+17135550000",
        "pacing_per_minute": 6000,
        "max_attempts": 3,
    }
    if channel == Channel.SMS:
        defaults.update(
            sms_source_address="55123", sms_source_type="short_code", message="Hi {name}"
        )
    if channel == Channel.EMAIL:
        defaults.update(
            email_from="billing@acme.example.com", email_subject="Your account",
            message="Hello {name}",
        )  # fmt: skip
    defaults.update(fields)
    if channel == Channel.EMAIL:
        allow_sending_domain(defaults["email_from"])
    sub = do_save_sub_campaign(
        SubCampaign(campaign=campaign, **defaults), lists=[listing] if listing else None
    )
    if activate:
        sub = do_activate_sub_campaign(sub)
    return sub


def allow_sending_domain(address: str) -> None:
    """The From address's domain on the current account's enterprise's sending domains
    (an enterprise admin's step), so email sub-campaigns can be saved and send."""
    enterprise = connection.tenant.enterprise
    try:
        domain = address_domain(address)
    except DomainError:
        return  # not an address: saving the sub-campaign says so
    if not SendingDomain.objects.filter(enterprise=enterprise, domain=domain).exists():
        do_add_sending_domain(enterprise, domain)
