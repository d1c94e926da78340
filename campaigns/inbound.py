"""Inbound SMS: a reply from a handset, recorded in the ledger against the campaign that
texted last, and honoured when it is an opt-out or opt-in keyword."""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction

from campaigns import dial_states
from devices.models import Attempt
from devices.opt_outs import honour_keyword


@transaction.atomic(durable=True)
def record_inbound_sms(
    *, device_key: str, to_address: str, text: str, received_at: dt.datetime | None = None
) -> Attempt:
    """Records a mobile-originated text in the current account, in its own transaction."""
    return receive_sms(
        device_key=device_key, to_address=to_address, text=text, received_at=received_at
    )


def receive_sms(
    *, device_key: str, to_address: str, text: str, received_at: dt.datetime | None = None
) -> Attempt:
    """A reply, in the caller's transaction and account (see
    dial_states.record_inbound_sms for the attribution). STOP-style replies block the
    device for the whole enterprise before the next attempt, in the same transaction
    (revoking consent is per caller, not per campaign); START-style replies allow it."""
    attempt = dial_states.record_inbound_sms(
        device_key=device_key, to_address=to_address, text=text, received_at=received_at
    )
    honour_keyword(connection.tenant.enterprise, device_key, text)
    return attempt
