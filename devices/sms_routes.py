"""Which account a reply belongs to, when replies come through one shared gateway.

A carrier delivers replies (MO) to our short code or long number, not to an account. When
an account's text is handed to the gateway, the route (source address, device) → account
is remembered; the reply endpoint reads it back. The latest text wins: a device texted
from the same address by two accounts replies to the one that texted it last.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db import connection

from accounts.models import Account
from devices.models import SmsRoute


def remember(account_id: int, sends: Iterable[tuple[str, str]], now: dt.datetime) -> None:
    """(source address, device key) pairs just texted by the account: one statement."""
    pairs = sorted({(source, key) for source, key in sends if source and key})
    if not pairs:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO public.devices_smsroute (source_address, device_key, account_id,
                                                 last_sent_at)
            SELECT s, k, %s, %s FROM unnest(%s::text[], %s::text[]) AS t(s, k)
            ON CONFLICT (source_address, device_key) DO UPDATE
               SET account_id = EXCLUDED.account_id, last_sent_at = EXCLUDED.last_sent_at
               WHERE devices_smsroute.last_sent_at <= EXCLUDED.last_sent_at
            """,
            [account_id, now, [s for s, _k in pairs], [k for _s, k in pairs]],
        )


def account_for(source_address: str, device_keys: Iterable[str]) -> tuple[Account, str] | None:
    """The account that last texted one of these spellings of a device from this address,
    with the spelling that matched; None if no account did."""
    keys = [k for k in dict.fromkeys(device_keys) if k]
    route = (
        SmsRoute.objects.select_related("account__enterprise")
        .filter(source_address=source_address, device_key__in=keys, account__is_active=True)
        .order_by("-last_sent_at")
        .first()
    )
    return (route.account, route.device_key) if route is not None else None
