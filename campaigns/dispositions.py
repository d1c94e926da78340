"""An agent's dispositions: what an agent records about one attempt, beyond its result.

"Do not call" is an opt-out: it blocks the device for the whole enterprise
(``devices.opt_outs``), because revoked consent is per caller, not per campaign. A wrong
number or spam report feeds the campaign's auto-add rule (``campaigns.auto_rules``).
"""

from __future__ import annotations

from django.db import connection, transaction

from accounts.actions import audit
from campaigns.auto_rules import apply_auto_rules
from campaigns.models import AgentDisposition
from contacts.models import Contact
from devices.models import Attempt, DeviceSetting
from devices.opt_outs import opt_out, opt_out_received

WRONG_NUMBER_CODES = {
    AgentDisposition.Code.WRONG_NUMBER: "WRONG_NUMBER",
    AgentDisposition.Code.SPAM: "SPAM",
}


@transaction.atomic(durable=True)
def do_record_agent_disposition(
    contact: Contact, attempt: Attempt, code: str, note: str = "", *, actor=None, request=None
) -> AgentDisposition:
    account = connection.tenant
    disposition = AgentDisposition.objects.create(
        attempt_id=attempt.pk,
        contact=contact,
        campaign_id=attempt.campaign_id,
        device_key=attempt.device_key,
        code=code,
        note=note[:255],
        created_by_label=getattr(actor, "email", ""),
    )
    audit(actor, "agent.disposition", account=account, obj=disposition,
          details={"attempt": attempt.pk, "device": attempt.device_key, "code": code,
                   "note": note}, request=request)  # fmt: skip
    if code == AgentDisposition.Code.DO_NOT_CALL:
        opt_out(
            account.enterprise,
            attempt.device_key,
            source=DeviceSetting.Source.AGENT_DNC,
            reason=note or str(AgentDisposition.Code.DO_NOT_CALL.label),
            actor=actor,
            request=request,
        )
        opt_out_received(account.enterprise, attempt.device_key, channel=attempt.channel,
                         keyword="agent_do_not_call")  # fmt: skip
    elif code in WRONG_NUMBER_CODES:
        outcome = [(attempt.campaign_id, attempt.device_key, WRONG_NUMBER_CODES[code])]
        transaction.on_commit(lambda: apply_auto_rules(outcome))
    return disposition
