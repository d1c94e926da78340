"""Writes on campaigns: one transaction each, the audit row inside it."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils.translation import gettext as _

from accounts.actions import audit
from campaigns import dial_states
from campaigns.models import Campaign, SubCampaign
from devices.models import ActiveSubCampaign
from devices.registry.freshness import refuse_stale_start


def _account():
    return connection.tenant


@transaction.atomic(durable=True)
def do_create_campaign(*, name: str, description: str = "", actor=None, request=None) -> Campaign:
    campaign = Campaign(
        name=name, description=description, created_by_label=getattr(actor, "email", "")
    )
    campaign.full_clean()
    campaign.save()
    audit(actor, "campaign.create", account=_account(), obj=campaign, request=request)
    return campaign


@transaction.atomic(durable=True)
def do_save_sub_campaign(sub: SubCampaign, *, lists=None, actor=None, request=None) -> SubCampaign:
    """Creates or updates a sub-campaign; attaching lists creates their dial states."""
    creating = sub.pk is None
    sub.full_clean()
    sub.save()
    if lists is not None:
        sub.contact_lists.set(lists)
        dial_states.sync(sub_campaign_ids=[sub.pk])
        dial_states.retire_uncovered(sub)
    audit(
        actor,
        "sub_campaign.create" if creating else "sub_campaign.update",
        account=_account(),
        obj=sub,
        details={"campaign": sub.campaign.name, "channel": sub.channel, "status": sub.status},
        request=request,
    )
    return sub


def _register(sub: SubCampaign, active: bool) -> None:
    entry = ActiveSubCampaign.objects.filter(account=_account(), sub_campaign_id=sub.pk)
    if active:
        ActiveSubCampaign.objects.get_or_create(account=_account(), sub_campaign_id=sub.pk)
    else:
        entry.delete()


@transaction.atomic(durable=True)
def do_activate_sub_campaign(sub: SubCampaign, *, actor=None, request=None) -> SubCampaign:
    sub = SubCampaign.objects.select_for_update().get(pk=sub.pk)
    if not sub.contact_lists.exists():
        raise ValidationError(_("Attach at least one contact list before starting."))
    # Telemarketing waits for a current copy of the national registry of its country.
    refuse_stale_start(sub.purpose, _account().enterprise.default_region)
    sub.full_clean()
    previous = sub.status
    sub.status = SubCampaign.Status.ACTIVE
    sub.last_dispatch_at = None
    sub.dispatch_credit = 0
    sub.save(update_fields=["status", "last_dispatch_at", "dispatch_credit"])
    dial_states.sync(sub_campaign_ids=[sub.pk])
    _register(sub, True)
    audit(actor, "sub_campaign.start", account=_account(), obj=sub,
          details={"from": previous}, request=request)  # fmt: skip
    return sub


@transaction.atomic(durable=True)
def do_pause_sub_campaign(sub: SubCampaign, *, actor=None, request=None) -> SubCampaign:
    sub = SubCampaign.objects.select_for_update().get(pk=sub.pk)
    sub.status = SubCampaign.Status.PAUSED
    sub.save(update_fields=["status"])
    _register(sub, False)
    audit(actor, "sub_campaign.pause", account=_account(), obj=sub, request=request)
    return sub


def complete_sub_campaign(sub: SubCampaign) -> None:
    """The schedule ended: stop dispatching; claimed attempts still finish."""
    sub.status = SubCampaign.Status.COMPLETED
    sub.save(update_fields=["status"])
    _register(sub, False)
    dial_states.note_schedule_ended(sub)
    audit(None, "sub_campaign.complete", account=_account(), obj=sub)
