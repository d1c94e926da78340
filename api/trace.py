"""Contact Trace over the API: the attempts to reach one phone, email or client ID (the
fields of the page), by cursor; and a streamed export, NDJSON or CSV, for up to 10,000
keys at once. Searches and exports are audited like the page's."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Iterator
from typing import Literal

from django.db import transaction
from django.http import StreamingHttpResponse
from django.utils import timezone, translation
from ninja import Field, Query, Router, Schema

from accounts.actions import audit
from accounts.models import ApiKey
from api.auth import account_for, require
from api.problems import Problem
from devices.keys import DeviceKeyError, parse_device_for_lookup
from devices.models import Attempt, RecordingState
from devices.policy import rule_label
from devices.trace import BY_CLIENT_ID, MAX_CLIENT_ID, TraceQuery, trace_attempts, trace_many
from devices.trace_csv import trace_csv_rows

router = Router(tags=["Contact Trace"])
SCOPE = ApiKey.Scope.TRACE_READ
MAX_EXPORT_KEYS = 10_000


class AttemptOut(Schema):
    id: int
    attempted_at: dt.datetime
    account_id: int
    account: str
    client_id: str
    campaign: str
    sub_campaign: str
    channel: Literal["voice", "sms", "email"]
    direction: str
    device: str
    result: str = Field(description="ANSWERED, BUSY, DELIVERED, SUPPRESSED, …")
    result_label: str
    call_seconds: int | None = Field(description="Calls only.")
    node: str
    recording: Literal["stored", "deleted", "none"]
    message: str
    carrier: str
    carrier_answer: str
    source_address: str
    source_type: str
    stopped_by: str = Field(description="The rule that suppressed it, if one did.")
    stopped_by_label: str


class TraceOut(Schema):
    query: str = Field(description="The normalised key searched.")
    items: list[AttemptOut]
    next_cursor: str | None


class TraceFilters(Schema):
    phone: str | None = Field(None, max_length=60)
    email: str | None = Field(None, max_length=320)
    client_id: str | None = Field(None, max_length=MAX_CLIENT_ID)
    account: str | None = Field(None, max_length=80, description="Only this account's.")
    cursor: str | None = Field(None, max_length=200)
    limit: int = Field(50, ge=1, le=500)


class ExportIn(Schema):
    devices: list[str] = Field([], max_length=MAX_EXPORT_KEYS, description="Phones, emails.")
    client_ids: list[str] = Field([], max_length=MAX_EXPORT_KEYS)
    format: Literal["ndjson", "csv"] = "ndjson"
    account: str | None = Field(None, max_length=80)


def attempt_out(a: Attempt) -> dict:
    recording = {RecordingState.STORED: "stored", RecordingState.DELETED: "deleted"}
    return {
        "id": a.pk, "attempted_at": a.attempted_at.isoformat(), "account_id": a.account_id,
        "account": a.account_name, "client_id": a.client_id, "campaign": a.campaign_name,
        "sub_campaign": a.sub_campaign_name, "channel": a.channel, "direction": a.direction,
        "device": a.device_key, "result": a.disposition,
        "result_label": str(a.get_disposition_display()),
        "call_seconds": a.call_seconds if a.channel == "voice" else None, "node": a.node,
        "recording": recording.get(a.recording_state, "none"), "message": a.message,
        "carrier": a.carrier_code, "carrier_answer": a.carrier_answer,
        "source_address": a.source_address, "source_type": a.source_type,
        "stopped_by": a.suppression_rule,
        "stopped_by_label": rule_label(a.suppression_rule) if a.suppression_rule else "",
    }  # fmt: skip


def _scope(key: ApiKey, account: str | None) -> int | None:
    """The account the answer is limited to: an account key's own, or the one named."""
    if key.account_id is not None or account:
        return account_for(key, account).pk
    return None


def _cursor(a: Attempt) -> str:
    return base64.urlsafe_b64encode(f"{a.attempted_at.isoformat()}|{a.pk}".encode()).decode()


def _after(cursor: str) -> tuple[dt.datetime, int]:
    try:
        at, _sep, pk = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return dt.datetime.fromisoformat(at), int(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Problem(400, "bad-cursor", "This cursor is not one the API gave.") from None


@router.get("/trace", response=TraceOut, summary="Attempts to reach one person")
def trace(request, filters: Query[TraceFilters]):
    key = require(request, SCOPE)
    given = [(kind, value) for kind, value in (("phone", filters.phone),
             ("email", filters.email), ("client_id", filters.client_id)) if value]  # fmt: skip
    if len(given) != 1:
        raise Problem(422, "one-criterion", "Give exactly one of phone, email or client_id.")
    kind, value = given[0]
    region = key.enterprise.default_region
    try:
        query = TraceQuery.parse(BY_CLIENT_ID if kind == "client_id" else "device", value, region)
    except (DeviceKeyError, ValueError) as exc:
        raise Problem(422, "invalid-query", str(exc)) from None
    if kind == "email" and "@" not in query.key or kind == "phone" and "@" in query.key:
        raise Problem(422, "invalid-query", f"That is not a {kind.replace('_', ' ')}.")
    attempts = trace_attempts(key.enterprise_id, query)
    account_id = _scope(key, filters.account)
    if account_id is not None:
        attempts = attempts.filter(account_id=account_id)
    if filters.cursor:
        at, pk = _after(filters.cursor)
        attempts = attempts.filter(attempted_at__lte=at).exclude(attempted_at=at, id__gte=pk)
    rows = list(attempts[: filters.limit + 1])
    more = len(rows) > filters.limit
    rows = rows[: filters.limit]
    if not filters.cursor:
        with transaction.atomic(durable=True):
            audit(key, "trace.search", enterprise=key.enterprise,
                  details={"criteria": query.kind, "value": query.key, "via": "api"},
                  request=request)  # fmt: skip
    return {"query": query.key, "items": [attempt_out(a) for a in rows],
            "next_cursor": _cursor(rows[-1]) if more and rows else None}  # fmt: skip


@router.post("/trace/export", summary="Every attempt for up to 10,000 keys, streamed",
             response={200: None}, description="NDJSON (one attempt per line, the fields of "
             "GET /trace) or CSV (the columns of the page's export).")  # fmt: skip
def export(request, body: ExportIn):
    key = require(request, SCOPE)
    if not body.devices and not body.client_ids:
        raise Problem(422, "no-keys", "Give devices, client_ids or both.")
    if len(body.devices) + len(body.client_ids) > MAX_EXPORT_KEYS:
        raise Problem(422, "too-many-keys", f"At most {MAX_EXPORT_KEYS} keys in all.")
    region = key.enterprise.default_region
    devices, bad = [], []
    for text in body.devices:
        try:
            devices.append(parse_device_for_lookup(text, region).key)
        except DeviceKeyError as exc:
            bad.append(f"{text[:60]}: {exc}")
    if bad:
        raise Problem(422, "invalid-devices", "; ".join(bad[:20]), invalid=len(bad))
    client_ids = [c.strip() for c in body.client_ids if c.strip()]
    attempts = trace_many(key.enterprise_id, devices, client_ids)
    account_id = _scope(key, body.account)
    if account_id is not None:
        attempts = attempts.filter(account_id=account_id)
    with transaction.atomic(durable=True):
        audit(key, "trace.export", enterprise=key.enterprise,
              details={"devices": len(devices), "client_ids": len(client_ids),
                       "format": body.format, "via": "api"}, request=request)  # fmt: skip
    stamp = f"{timezone.now():%Y%m%d-%H%M%S}"
    if body.format == "csv":
        rows = trace_csv_rows(attempts, time_zone=key.enterprise.time_zone,
                              language=translation.get_language())  # fmt: skip
        response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="contact-trace-{stamp}.csv"'
        return response
    response = StreamingHttpResponse(_ndjson(attempts), content_type="application/x-ndjson")
    response["Content-Disposition"] = f'attachment; filename="contact-trace-{stamp}.ndjson"'
    return response


def _ndjson(attempts) -> Iterator[str]:
    for attempt in attempts.iterator(chunk_size=2000):
        yield json.dumps(attempt_out(attempt), ensure_ascii=False) + "\n"
