"""Objects of the current account, for the user asking (see accounts.access)."""

from __future__ import annotations

from django.http import Http404

from accounts.access import AccountAccess
from accounts.models import Role
from campaigns.models import Campaign, SubCampaign

ADMIN_ROLES = (Role.ENTERPRISE_ADMIN, Role.ACCOUNT_ADMIN)
ALL_ROLES = (Role.ENTERPRISE_ADMIN, Role.ACCOUNT_ADMIN, Role.AGENT)


def _pk(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Http404 from None


def get_campaign_for(access: AccountAccess, campaign_id) -> Campaign:
    """A campaign of the account the request is in; the schema itself scopes the query."""
    campaign = Campaign.objects.filter(pk=_pk(campaign_id)).first()
    if campaign is None:
        raise Http404
    return campaign


def get_sub_campaign_for(access: AccountAccess, sub_campaign_id) -> SubCampaign:
    sub = SubCampaign.objects.select_related("campaign").filter(pk=_pk(sub_campaign_id)).first()
    if sub is None:
        raise Http404
    return sub
