"""Inbound SMS: a reply from a handset, recorded in the ledger against the right campaign."""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import DialState
from devices.actions import OPT_IN_WORDS, OPT_OUT_WORDS, do_save_device_setting, keyword_of
from devices.models import Attempt, Channel, DeviceSetting, Direction, Disposition


@transaction.atomic
def record_inbound_sms(
    *, device_key: str, to_address: str, text: str, received_at: dt.datetime | None = None
) -> Attempt:
    """Records a mobile-originated text in the current account.

    It is attributed to the most recent SMS sub-campaign that texted this device from
    the address it replied to (or, failing that, from any address).
    """
    account = connection.tenant
    states = (
        DialState.objects.filter(device_key=device_key, sub_campaign__channel=Channel.SMS)
        .select_related("sub_campaign__campaign", "contact")
        .order_by("-updated_at")
    )
    state = states.filter(sub_campaign__sms_source_address=to_address).first() or states.first()
    sub = state.sub_campaign if state else None
    attempt = Attempt.objects.create(
        attempted_at=received_at or timezone.now(),
        completed_at=received_at or timezone.now(),
        enterprise_id=account.enterprise_id,
        account_id=account.pk,
        account_name=account.name,
        campaign_id=sub.campaign_id if sub else None,
        campaign_name=sub.campaign.name if sub else "",
        sub_campaign_id=sub.pk if sub else None,
        sub_campaign_name=sub.name if sub else "",
        contact_id=state.contact_id if state else None,
        dial_state_id=state.pk if state else None,
        client_id=state.contact.client_id if state else "",
        device_key=device_key,
        channel=Channel.SMS,
        direction=Direction.INBOUND,
        disposition=Disposition.RECEIVED,
        message=text[:2000],
        source_address=to_address,
        source_type=sub.sms_source_type if sub else "",
    )
    _honour_keywords(account, device_key, text)
    return attempt


def _honour_keywords(account, device_key: str, text: str) -> None:
    """STOP-style replies block the device for the whole enterprise before the next
    attempt (revoking consent is per caller, not per campaign); START-style allow it."""
    keyword = keyword_of(text)
    if keyword in OPT_OUT_WORDS:
        action, source = DeviceSetting.Action.BLOCK, DeviceSetting.Source.SMS_OPT_OUT
    elif keyword in OPT_IN_WORDS:
        action, source = DeviceSetting.Action.ALLOW, DeviceSetting.Source.SMS_OPT_IN
    else:
        return
    do_save_device_setting(
        account.enterprise, device_key, action, source=source, reason=f"“{text.strip()[:200]}”"
    )
