"""Contact Trace: every attempt to reach one person, across every account of an enterprise.

One indexed query on the shared ledger (device key or client ID within the enterprise,
last 12 months, newest first). It never loops over account schemas.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from devices.keys import DeviceKey, parse_device_for_lookup
from devices.ledger import retention_start
from devices.models import Attempt

BY_DEVICE = "device"
BY_CLIENT_ID = "client_id"
MAX_CLIENT_ID = 100


@dataclass(frozen=True)
class TraceQuery:
    kind: str  # BY_DEVICE or BY_CLIENT_ID
    key: str  # E.164, lower-case email, or the client ID exactly as entered

    @classmethod
    def parse(cls, kind: str, value: str, region: str) -> TraceQuery:
        """Raises devices.keys.DeviceKeyError (or ValueError) with a message for the user."""
        if kind == BY_CLIENT_ID:
            text = (value or "").strip()
            if not text:
                raise ValueError("empty")
            if len(text) > MAX_CLIENT_ID:
                raise ValueError("too long")
            return cls(BY_CLIENT_ID, text)
        device: DeviceKey = parse_device_for_lookup(value, region)
        return cls(BY_DEVICE, device.key)


def trace_attempts(enterprise_id: int, query: TraceQuery, *, now=None) -> QuerySet[Attempt]:
    """The enterprise's attempts for one device or client ID, newest first."""
    attempts = Attempt.objects.filter(
        enterprise_id=enterprise_id, attempted_at__gte=retention_start(now)
    )
    if query.kind == BY_CLIENT_ID:
        attempts = attempts.filter(client_id=query.key)  # exact and whole: A430 is not A4307
    else:
        attempts = attempts.filter(device_key=query.key)
    return attempts.order_by("-attempted_at", "-id")


def trace_many(
    enterprise_id: int, device_keys: list[str], client_ids: list[str], *, now=None
) -> QuerySet[Attempt]:
    """Every attempt for any of these devices or client IDs (a litigation hold, a
    subject-access request), newest first; the same indexes as one trace, asked at once."""
    attempts = Attempt.objects.filter(
        enterprise_id=enterprise_id, attempted_at__gte=retention_start(now)
    )
    return attempts.filter(Q(device_key__in=device_keys) | Q(client_id__in=client_ids)).order_by(
        "-attempted_at", "-id"
    )
