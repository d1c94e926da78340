"""Opt-outs and opt-ins, whatever their channel, become enterprise device settings.

Revoking consent is legally per caller, not per campaign: a STOP reply, an agent's "do not
call", an email unsubscribe or a CRM's opt-out all block the device for every account of
the enterprise, through ``opt_out`` (and a START-style reply allows it again through
``opt_in``). Both call the same save as the Device Blocking page, with the device's lock
held until the caller's transaction commits.
"""

from __future__ import annotations

import re

from accounts import webhooks
from accounts.models import Enterprise
from devices.actions import save_device_setting
from devices.models import DeviceSetting

OPT_OUT_WORDS = {
    "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
    "PARE", "SAIR", "CANCELAR", "DESCADASTRAR",
}  # fmt: skip
OPT_IN_WORDS = {"START", "UNSTOP", "VOLTAR"}
_NOISE = re.compile(r"[\s.!?,;:'\"()\-]+")


def keyword_of(text: str) -> str:
    """ "Stop." and " pare " are STOP and PARE: case, spaces and punctuation ignored."""
    return _NOISE.sub("", text or "").upper()


def opt_out(enterprise: Enterprise, device_key: str, *, source: str, **options) -> DeviceSetting:
    """Blocks the device for the whole enterprise, in the caller's transaction."""
    return save_device_setting(
        enterprise, device_key, DeviceSetting.Action.BLOCK, source=source, **options
    )


def opt_in(enterprise: Enterprise, device_key: str, *, source: str, **options) -> DeviceSetting:
    """Allows the device again (consent given back), in the caller's transaction."""
    return save_device_setting(
        enterprise, device_key, DeviceSetting.Action.ALLOW, source=source, **options
    )


def opt_out_received(enterprise: Enterprise, device_key: str, *, channel: str, keyword: str):
    """The opt_out.received webhook, in the opt-out's transaction."""
    webhooks.emit(enterprise.pk, "opt_out.received",
                  [{"device": device_key, "channel": channel, "keyword": keyword}])  # fmt: skip


def honour_keyword(enterprise: Enterprise, device_key: str, text: str) -> DeviceSetting | None:
    """A reply that is an opt-out (STOP, PARE, …) or opt-in (START, VOLTAR) keyword
    changes the device's setting; any other text changes nothing (None)."""
    keyword = keyword_of(text)
    reason = f"“{(text or '').strip()[:200]}”"
    if keyword in OPT_OUT_WORDS:
        setting = opt_out(enterprise, device_key, source=DeviceSetting.Source.SMS_OPT_OUT,
                          reason=reason)  # fmt: skip
        opt_out_received(enterprise, device_key, channel="sms", keyword=keyword)
        return setting
    if keyword in OPT_IN_WORDS:
        return opt_in(enterprise, device_key, source=DeviceSetting.Source.SMS_OPT_IN,
                      reason=reason)  # fmt: skip
    return None
