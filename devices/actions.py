"""Device settings: saved race-free against the dialler, audited, queued attempts cancelled."""

from __future__ import annotations

import datetime as dt
import re

from django.db import transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.actions import audit
from accounts.models import Account, Enterprise
from devices.models import DeviceSetting
from devices.policy import RULE_DEVICE_BLOCK, lock_devices

OPT_OUT_WORDS = {
    "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
    "PARE", "SAIR", "CANCELAR", "DESCADASTRAR",
}  # fmt: skip
OPT_IN_WORDS = {"START", "UNSTOP", "VOLTAR"}
_NOISE = re.compile(r"[\s.!?,;:'\"()\-]+")


def keyword_of(text: str) -> str:
    """ "Stop." and " pare " are STOP and PARE: case, spaces and punctuation ignored."""
    return _NOISE.sub("", text or "").upper()


def do_save_device_setting(
    enterprise: Enterprise,
    device_key: str,
    action: str,
    *,
    source: str = DeviceSetting.Source.MANUAL,
    reason: str = "",
    expires_at: dt.datetime | None = None,
    actor=None,
    request=None,
) -> DeviceSetting:
    """Saves a setting. For a Block, the device's advisory lock is held while it commits,
    so no dial is authorised after the block commits; queued attempts to the device in
    every account of the enterprise are cancelled (suppressed, with the reason) with it."""
    with transaction.atomic():
        lock_devices([device_key])
        setting = DeviceSetting.objects.create(
            enterprise=enterprise,
            device_key=device_key,
            action=action,
            source=source,
            reason=reason[:255],
            expires_at=expires_at,
            created_by_label=getattr(actor, "email", "") or source,
        )
        cancelled = 0
        if action == DeviceSetting.Action.BLOCK:
            cancelled = _cancel_queued(enterprise, device_key, setting)
        audit(
            actor,
            f"device.{action}",
            enterprise=enterprise,
            obj=setting,
            details={"device": device_key, "source": source, "reason": reason,
                     "expires_at": expires_at.isoformat() if expires_at else "",
                     "cancelled": cancelled},
            request=request,
        )  # fmt: skip
    return setting


def _cancel_queued(enterprise: Enterprise, device_key: str, setting: DeviceSetting) -> int:
    """Pending and claimed-but-not-authorised states for the device become suppressed,
    each with a ledger row naming the block, in every account of the enterprise."""
    from campaigns.dialer import ledger_row
    from campaigns.models import DialState
    from devices.models import Attempt, Disposition

    now = timezone.now()
    detail = f"{setting.get_source_display()}: {setting.reason}".rstrip(": ")[:255]
    total = 0
    for account in Account.objects.filter(enterprise=enterprise, is_active=True):
        with tenant_context(account):
            states = list(
                DialState.objects.select_for_update(of=("self",))
                .select_related("contact", "sub_campaign__campaign")
                .filter(device_key=device_key, current_attempt_id__isnull=True)
                .filter(status__in=[DialState.Status.PENDING, DialState.Status.DIALING])
            )
            rows = []
            for state in states:
                state.status = DialState.Status.SUPPRESSED
                state.claim_token = None
                state.claimed_at = None
                state.next_attempt_at = None
                state.last_reason = f"{RULE_DEVICE_BLOCK}: {detail}"[:255]
                rows.append(
                    ledger_row(
                        state.sub_campaign,
                        state,
                        attempted_at=now,
                        completed_at=now,
                        disposition=Disposition.SUPPRESSED,
                        attempt_number=state.attempts + 1,
                        suppression_rule=RULE_DEVICE_BLOCK,
                        suppression_detail=detail,
                    )  # fmt: skip
                )
            DialState.objects.bulk_update(
                states, ["status", "claim_token", "claimed_at", "next_attempt_at", "last_reason"]
            )
            Attempt.objects.bulk_create(rows)
            total += len(states)
    return total
