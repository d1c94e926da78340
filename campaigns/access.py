"""Campaigns, sub-campaigns and blacklists of the current account, for the person asking
(built on accounts.access)."""

from __future__ import annotations

from django.http import Http404

from accounts.access import AccountAccess, in_current_account, pk_or_404
from campaigns.models import Blacklist, BlacklistEntry, BlacklistImport, Campaign, SubCampaign


def _found(obj):
    if obj is None:
        raise Http404
    return obj


def get_campaign_for(access: AccountAccess, campaign_id) -> Campaign:
    in_current_account(access)
    return _found(Campaign.objects.filter(pk=pk_or_404(campaign_id)).first())


def get_sub_campaign_for(access: AccountAccess, sub_campaign_id) -> SubCampaign:
    in_current_account(access)
    return _found(
        SubCampaign.objects.select_related("campaign").filter(pk=pk_or_404(sub_campaign_id)).first()
    )


def get_blacklist_for(access: AccountAccess, blacklist_id) -> Blacklist:
    in_current_account(access)
    return _found(Blacklist.objects.filter(pk=pk_or_404(blacklist_id)).first())


def get_entry_for(access: AccountAccess, blacklist: Blacklist, entry_id) -> BlacklistEntry:
    in_current_account(access)
    return _found(
        BlacklistEntry.objects.filter(blacklist=blacklist, pk=pk_or_404(entry_id)).first()
    )


def get_import_for(access: AccountAccess, blacklist: Blacklist, import_id) -> BlacklistImport:
    in_current_account(access)
    return _found(
        BlacklistImport.objects.filter(blacklist=blacklist, pk=pk_or_404(import_id)).first()
    )
