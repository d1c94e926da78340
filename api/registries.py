"""National registries over the API, for platform operators' keys: each registry's
status, and whether a number is on one (audited, as on the registries page)."""

from __future__ import annotations

import datetime as dt

from ninja import Field, Router, Schema

from accounts.models import ApiKey
from api.auth import require
from api.problems import Problem
from devices.keys import DeviceKeyError, normalize_phone
from devices.models import Registry
from devices.registry.freshness import age_days, is_stale
from devices.registry.lookup import do_lookup

router = Router(tags=["National registries"])


class RegistryOut(Schema):
    code: str
    name: str
    country: str
    numbers: int
    last_import_at: dt.datetime | None
    last_full_import_at: dt.datetime | None
    age_days: int | None = Field(description="Days since the last full snapshot.")
    stale: bool = Field(description="Past its maximum age: telemarketing to its country stops.")
    max_age_days: int


class LookupOut(Schema):
    registry: str
    number: str
    listed: bool


def _operator(request) -> ApiKey:
    key = require(request, ApiKey.Scope.REGISTRIES_READ)
    if not key.is_operator:
        raise Problem(403, "operator-key-required", "Registries are read with operators' keys.")
    return key


def _out(registry: Registry) -> dict:
    return {
        "code": registry.code, "name": registry.name, "country": registry.country,
        "numbers": registry.size, "last_import_at": registry.last_imported_at,
        "last_full_import_at": registry.last_full_import_at, "age_days": age_days(registry),
        "stale": is_stale(registry), "max_age_days": registry.max_age_days,
    }  # fmt: skip


@router.get("/registries", response=list[RegistryOut], summary="Every registry's status")
def registries(request):
    _operator(request)
    return [_out(r) for r in Registry.objects.order_by("code")]


@router.get("/registries/{code}/numbers/{number}", response=LookupOut,
            summary="Is a number on a registry?")  # fmt: skip
def lookup(request, code: str, number: str):
    key = _operator(request)
    registry = Registry.objects.filter(code=code[:16]).first()
    if registry is None:
        raise Problem(404, "not-found", "No such registry.")
    try:
        e164 = normalize_phone(number, registry.country)
    except DeviceKeyError as exc:
        raise Problem(422, "invalid-number", str(exc)) from None
    listed = do_lookup(registry, e164, actor=key, request=request)
    return {"registry": registry.code, "number": e164, "listed": listed}
