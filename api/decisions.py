"""``POST /api/v1/decisions``: what the dialer's gate would decide for these devices now
(or at a given time). Computed by the gate itself (devices.policy.PolicyGate), in the
account's schema, so a campaign's blacklists count when a campaign is named."""

from __future__ import annotations

import datetime as dt
from contextlib import nullcontext
from typing import Literal

from django.utils import timezone
from django_tenants.utils import tenant_context
from ninja import Field, Router, Schema

from accounts.models import ApiKey
from api.answers import built
from api.auth import account_for, require
from api.problems import Problem
from campaigns.models import Campaign
from devices.keys import DeviceKeyError, parse_device
from devices.policy import DialRequest, PolicyGate, rule_label

router = Router(tags=["Decisions"])
MAX_DEVICES = 1000


class DecisionIn(Schema):
    devices: list[str] = Field(min_length=1, max_length=MAX_DEVICES,
                               description="Phones or emails, as you have them.")  # fmt: skip
    channel: Literal["voice", "sms", "email"]
    purpose: Literal["collections", "telemarketing", "informational"]
    account: str | None = Field(None, max_length=80,
                                description="The account's slug or id (an account key: "
                                "its own, by default).")  # fmt: skip
    campaign: int | None = Field(None, ge=1, description="Its blacklists then apply too.")
    at: dt.datetime | None = Field(None, description="When the contact would be made; now "
                                   "by default.")  # fmt: skip


class DecisionOut(Schema):
    device: str = Field(description="As sent.")
    key: str | None = Field(description="Normalised, when valid.")
    decision: Literal["dial", "suppress", "defer", "invalid"]
    rule: str = Field(description="The rule that suppressed or deferred: device_block, "
                      "campaign_blacklist, national_registry, registry_stale, calling_window, "
                      "holiday, attempt_cap.")  # fmt: skip
    rule_label: str
    source: str = Field(description="Where the rule came from: a setting's source, a "
                        "blacklist's id, a registry's code.")  # fmt: skip
    detail: str
    retry_at: dt.datetime | None = Field(description="For a deferral: the next lawful time.")


class DecisionsOut(Schema):
    at: dt.datetime
    account: str
    results: list[DecisionOut]


@router.post("/decisions", response=DecisionsOut, summary="May these devices be contacted?")
def decisions(request, body: DecisionIn):
    key = require(request, ApiKey.Scope.DECISIONS_READ)
    account = account_for(key, body.account)
    at = body.at or timezone.now()
    if at.tzinfo is None:
        raise Problem(422, "invalid-time", "at needs a time zone (…Z or …+00:00).")
    region = account.enterprise.default_region
    results, requests, slots = [], [], []
    # The gate reads the shared tables; the account's own only for a campaign's blacklists.
    with tenant_context(account) if body.campaign is not None else nullcontext():
        if body.campaign is not None and not Campaign.objects.filter(pk=body.campaign).exists():
            raise Problem(404, "not-found", "No such campaign in this account.")
        for text in body.devices:
            try:
                device_key = parse_device(text, region).key
            except DeviceKeyError as exc:
                results.append({"device": text, "key": None, "decision": "invalid", "rule": "",
                                "rule_label": "", "source": "", "detail": str(exc),
                                "retry_at": None})  # fmt: skip
                continue
            slots.append(len(results))
            results.append({"device": text, "key": device_key})
            requests.append(DialRequest(
                account_id=account.pk, campaign_id=body.campaign or 0, sub_campaign_id=0,
                purpose=body.purpose, channel=body.channel, device_key=device_key,
            ))  # fmt: skip
        answers = PolicyGate(account.enterprise, at).decide(requests) if requests else []
    labels = {}
    for slot, answer in zip(slots, answers, strict=True):
        if answer.rule and answer.rule not in labels:
            labels[answer.rule] = rule_label(answer.rule)
        results[slot].update(
            decision=answer.action, rule=answer.rule, rule_label=labels.get(answer.rule, ""),
            source=answer.source, detail=answer.detail, retry_at=answer.retry_at,
        )  # fmt: skip
    return built({"at": at, "account": account.slug, "results": results})
