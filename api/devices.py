"""Device settings over the API: one device's setting and history; block, allow or clear
one device or up to 10,000; the current settings, filtered, by cursor. Through the same
normaliser, actions, locks and audit as the Device Blocking pages (devices.actions)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Annotated, Literal, NotRequired

from django.utils import timezone
from ninja import Field, Query, Router, Schema
from pydantic import BaseModel
from typing_extensions import TypedDict

from accounts.models import ApiKey
from api.auth import enterprise_key
from api.idempotency import once
from api.problems import Problem
from devices.actions import SettingInput, do_save_device_setting, do_save_device_settings
from devices.blocking import CurrentSettings, device_history, saved_by, setting_in_force
from devices.keys import DeviceKeyError, kind_of_key, parse_device
from devices.models import DeviceSetting

router = Router(tags=["Device settings"])
SCOPE = ApiKey.Scope.DEVICES_WRITE
MAX_BULK = 10_000


class SettingOut(Schema):
    action: Literal["block", "allow", "clear"]
    source: str = Field(description="manual, import, api, sms_opt_out, agent_dnc, …")
    source_label: str
    reason: str
    expires_at: dt.datetime | None
    saved_at: dt.datetime
    saved_by: str


class DeviceOut(Schema):
    device: str = Field(description="The normalised device: E.164 phone or lower-case email.")
    kind: Literal["phone", "email", "extension"]
    setting: SettingOut | None = Field(description="The setting in force now, if any.")
    history: list[SettingOut] = Field(description="Every saved setting, newest first.")


class DeviceWrite(Schema):
    action: Literal["block", "allow", "clear"]
    reason: str = Field("", max_length=255)
    expires_at: dt.datetime | None = Field(None, description="When the setting stops applying.")


class WriteOut(Schema):
    device: str
    setting: SettingOut
    cancelled: int = Field(description="Queued attempts cancelled by a block, every account.")
    released: int = Field(description="Attempts a lifted block had stopped, queued again.")


class BulkItem(TypedDict):
    # A TypedDict: ninja's Schema runs a Django-aware root validator per item, and a
    # pydantic model builds an instance per item; 10,000 of either cost 17-90 ms.
    device: Annotated[str, Field(max_length=320)]
    reason: NotRequired[Annotated[str, Field(max_length=255)]]
    expires_at: NotRequired[dt.datetime | None]


class BulkIn(BaseModel):
    action: Literal["block", "allow"]
    items: list[BulkItem] = Field(min_length=1, max_length=MAX_BULK)


class BulkResultItem(Schema):
    line: int = Field(description="The item's position in the request, from 1.")
    device: str = Field(description="As sent.")
    key: str | None = Field(description="Normalised, when valid.")
    status: Literal["saved", "error"]
    error: str | None = None


class BulkOut(Schema):
    saved: int
    blocks: int
    allows: int
    errors: int
    cancelled: int
    released: int
    results: list[BulkResultItem]


class ListItem(Schema):
    device: str
    setting: SettingOut


class ListOut(Schema):
    items: list[ListItem]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page.")


class ListFilters(Schema):
    action: Literal["block", "allow"] | None = None
    source: str | None = Field(None, max_length=16)
    cursor: str | None = Field(None, max_length=200)
    limit: int = Field(100, ge=1, le=1000)


def setting_out(row: DeviceSetting) -> dict:
    return {
        "action": row.action,
        "source": row.source,
        "source_label": str(row.get_source_display()),
        "reason": row.reason,
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        "saved_at": row.created_at.isoformat(),
        "saved_by": str(saved_by(row)),
    }


def _key(text: str, region: str) -> str:
    try:
        return parse_device(text, region).key
    except DeviceKeyError as exc:
        raise Problem(422, "invalid-device", str(exc)) from None


def _future(expires_at: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise Problem(422, "invalid-expiry", "expires_at needs a time zone (…Z or …+00:00).")
    if expires_at <= now:
        raise Problem(422, "invalid-expiry", "expires_at must be in the future.")
    return expires_at


# Before /devices/{device}: paths match in the order they are declared.
@router.post(
    "/devices/bulk",
    response={200: BulkOut},
    summary="Block or allow up to 10,000 devices",
    description="Each item is checked on its own: the valid ones are saved, the others "
    "come back with their line and the reason. A device sent twice keeps its last item.",
)
def bulk_devices(request, body: BulkIn):
    key = enterprise_key(request, SCOPE)
    region = key.enterprise.default_region
    now = timezone.now()

    def write():
        results, inputs = [], []
        for line, item in enumerate(body.items, start=1):
            device = item["device"]
            try:
                device_key = parse_device(device, region).key
                expires_at = _future(item.get("expires_at"), now)
            except DeviceKeyError as exc:
                results.append({"line": line, "device": device, "key": None,
                                "status": "error", "error": str(exc)})  # fmt: skip
                continue
            except Problem as exc:
                results.append({"line": line, "device": device, "key": None,
                                "status": "error", "error": exc.detail})  # fmt: skip
                continue
            inputs.append(SettingInput(device_key, body.action, item.get("reason", ""), expires_at))
            results.append({"line": line, "device": device, "key": device_key,
                            "status": "saved", "error": None})  # fmt: skip
        outcome = do_save_device_settings(
            key.enterprise, inputs, source=DeviceSetting.Source.API, actor=key,
            request=request, audit_details={"via": "api", "items": len(body.items)},
        )  # fmt: skip
        errors = sum(1 for r in results if r["status"] == "error")
        return 200, {"saved": outcome.saved, "blocks": outcome.blocks, "allows": outcome.allows,
                     "errors": errors, "cancelled": outcome.cancelled,
                     "released": outcome.released, "results": results}  # fmt: skip

    return once(request, key, write)


@router.get("/devices/{device}", response=DeviceOut, summary="One device's setting and history")
def get_device(request, device: str):
    key = enterprise_key(request, SCOPE)
    device_key = _key(device, key.enterprise.default_region)
    history = list(device_history(key.enterprise, device_key))
    current = setting_in_force(history, timezone.now())
    return {
        "device": device_key,
        "kind": kind_of_key(device_key),
        "setting": setting_out(current) if current else None,
        "history": [setting_out(row) for row in history],
    }


@router.put(
    "/devices/{device}",
    response={200: WriteOut},
    summary="Block, allow or clear one device",
    description="Saved for the whole enterprise, as on the Device Blocking page: a block "
    "cancels queued attempts in every account at once. Send an Idempotency-Key to retry "
    "safely.",
)
def put_device(request, device: str, body: DeviceWrite):
    key = enterprise_key(request, SCOPE)
    device_key = _key(device, key.enterprise.default_region)
    expires_at = _future(body.expires_at, timezone.now())
    if body.action == "clear" and expires_at is not None:
        raise Problem(422, "invalid-expiry", "A clear has no expiry.")

    def write():
        row = do_save_device_setting(
            key.enterprise, device_key, body.action, source=DeviceSetting.Source.API,
            reason=body.reason, expires_at=expires_at, actor=key, request=request,
        )  # fmt: skip
        return 200, {"device": device_key, "setting": setting_out(row),
                     "cancelled": row.cancelled, "released": row.released}  # fmt: skip

    return once(request, key, write)


def _cursor(row: DeviceSetting) -> str:
    text = f"{row.created_at.isoformat()}|{row.pk}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _after(cursor: str) -> tuple[dt.datetime, int]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _sep, pk = text.partition("|")
        return dt.datetime.fromisoformat(at), int(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Problem(400, "bad-cursor", "This cursor is not one the API gave.") from None


@router.get("/devices", response=ListOut, summary="Current settings, newest first")
def list_devices(request, filters: Query[ListFilters]):
    key = enterprise_key(request, SCOPE)
    if filters.source and filters.source not in DeviceSetting.Source.values:
        raise Problem(422, "invalid-source",
                      f"source is one of: {', '.join(DeviceSetting.Source.values)}.")  # fmt: skip
    rows = CurrentSettings(
        key.enterprise, action=filters.action or "", source=filters.source or "",
        before=_after(filters.cursor) if filters.cursor else None,
    )[: filters.limit + 1]  # fmt: skip
    more = len(rows) > filters.limit
    rows = rows[: filters.limit]
    return {
        "items": [{"device": row.device_key, "setting": setting_out(row)} for row in rows],
        "next_cursor": _cursor(rows[-1]) if more and rows else None,
    }
