"""Objects of the current account, for the user asking (see accounts.access)."""

from __future__ import annotations

from django.http import Http404

from accounts.access import AccountAccess, pk_or_404
from accounts.models import Role
from campaigns.models import Blacklist, BlacklistEntry, BlacklistImport, Campaign, SubCampaign

ADMIN_ROLES = (Role.ENTERPRISE_ADMIN, Role.ACCOUNT_ADMIN)
ALL_ROLES = (Role.ENTERPRISE_ADMIN, Role.ACCOUNT_ADMIN, Role.AGENT)


def get_campaign_for(access: AccountAccess, campaign_id) -> Campaign:
    """A campaign of the account the request is in; the schema itself scopes the query."""
    campaign = Campaign.objects.filter(pk=pk_or_404(campaign_id)).first()
    if campaign is None:
        raise Http404
    return campaign


def get_sub_campaign_for(access: AccountAccess, sub_campaign_id) -> SubCampaign:
    sub = (
        SubCampaign.objects.select_related("campaign").filter(pk=pk_or_404(sub_campaign_id)).first()
    )
    if sub is None:
        raise Http404
    return sub


def get_blacklist_for(access: AccountAccess, blacklist_id) -> Blacklist:
    blacklist = Blacklist.objects.filter(pk=pk_or_404(blacklist_id)).first()
    if blacklist is None:
        raise Http404
    return blacklist


def get_entry_for(access: AccountAccess, blacklist: Blacklist, entry_id) -> BlacklistEntry:
    entry = BlacklistEntry.objects.filter(blacklist=blacklist, pk=pk_or_404(entry_id)).first()
    if entry is None:
        raise Http404
    return entry


def get_import_for(access: AccountAccess, blacklist: Blacklist, import_id) -> BlacklistImport:
    job = BlacklistImport.objects.filter(blacklist=blacklist, pk=pk_or_404(import_id)).first()
    if job is None:
        raise Http404
    return job
