"""Campaign blacklists over the API, in one account: list and create blacklists; add and
remove numbers and extensions singly or in bulk, with the same immediate suppression and
release as the Campaign Blacklists pages (campaigns.blacklists)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from django.core.exceptions import ValidationError
from django.utils import timezone
from django_tenants.utils import tenant_context
from ninja import Field, Query, Router, Schema

from accounts.models import ApiKey
from api.auth import account_for, require
from api.idempotency import once
from api.problems import Problem
from campaigns.blacklists import (
    do_add_entries,
    do_create_blacklist,
    do_remove_entries,
)
from campaigns.models import Blacklist, BlacklistEntry
from devices.keys import DeviceKeyError, parse_phone_or_extension

router = Router(tags=["Campaign blacklists"])
SCOPE = ApiKey.Scope.BLACKLISTS_WRITE
MAX_ITEMS = 10_000


class AccountQuery(Schema):
    account: str | None = Field(None, max_length=80,
                                description="Slug or id; an account key: its own.")  # fmt: skip


class BlacklistOut(Schema):
    id: int
    name: str
    description: str
    entries: int
    campaigns: list[int]
    suppressed_count: int = Field(description="Attempts this list has stopped so far.")
    created_at: dt.datetime


class BlacklistIn(Schema):
    name: str = Field(min_length=1, max_length=120)
    description: str = Field("", max_length=2000)


class EntryOut(Schema):
    number: str = Field(description="E.164 phone or digits of an extension.")
    kind: Literal["phone", "extension"]
    reason: str
    source: str
    added_at: dt.datetime
    added_by: str
    expires_at: dt.datetime | None


class EntriesOut(Schema):
    items: list[EntryOut]
    next_cursor: str | None


class EntryIn(Schema):
    number: str = Field(max_length=60, description="A phone number in any usual format, or "
                        "an extension of 2 to 8 digits.")  # fmt: skip
    reason: str = Field("", max_length=255)


class EntriesIn(Schema):
    items: list[EntryIn] = Field(min_length=1, max_length=MAX_ITEMS)
    expires_at: dt.datetime | None = Field(None, description="For every entry of the request.")


class EntryResult(Schema):
    line: int
    number: str
    key: str | None
    status: Literal["added", "listed", "error"] = Field(
        description="listed: it was on the list already (nothing changed)."
    )
    error: str | None = None


class EntriesResult(Schema):
    added: int
    suppressed: int = Field(description="Pending contacts stopped at once.")
    errors: int
    results: list[EntryResult]


class RemoveIn(Schema):
    numbers: list[str] = Field(min_length=1, max_length=MAX_ITEMS)


class RemoveOut(Schema):
    removed: int
    released: int = Field(description="Contacts that only these entries held, queued again.")
    not_listed: list[str]


class EntryFilters(AccountQuery):
    cursor: int | None = Field(None, ge=1, description="From next_cursor.")
    limit: int = Field(100, ge=1, le=1000)


def _account(request, account: str | None):
    key = require(request, SCOPE)
    return key, account_for(key, account)


def _blacklist(blacklist_id: int) -> Blacklist:
    found = Blacklist.objects.filter(pk=blacklist_id).first()
    if found is None:
        raise Problem(404, "not-found", "No such blacklist in this account.")
    return found


def _out(blacklist: Blacklist, entries: int) -> dict:
    return {
        "id": blacklist.pk, "name": blacklist.name, "description": blacklist.description,
        "entries": entries, "campaigns": sorted(c.pk for c in blacklist.campaigns.all()),
        "suppressed_count": blacklist.suppressed_count,
        "created_at": blacklist.created_at.isoformat(),
    }  # fmt: skip


@router.get("/blacklists", response=list[BlacklistOut], summary="The account's blacklists")
def list_blacklists(request, query: Query[AccountQuery]):
    _key, account = _account(request, query.account)
    with tenant_context(account):
        # Counters kept by campaigns.blacklists; the campaigns in one more query.
        lists = Blacklist.objects.prefetch_related("campaigns").order_by("name")
        return [_out(b, b.entry_count) for b in lists]


@router.post("/blacklists", response={201: BlacklistOut}, summary="Create a blacklist")
def create_blacklist(request, body: BlacklistIn, query: Query[AccountQuery]):
    key, account = _account(request, query.account)

    def write():
        with tenant_context(account):
            try:
                blacklist = do_create_blacklist(name=body.name.strip(),
                                                description=body.description, actor=key,
                                                request=request)  # fmt: skip
            except ValidationError as exc:
                raise Problem(422, "invalid-blacklist", " ".join(exc.messages)) from None
            return 201, _out(blacklist, 0)

    return once(request, key, write)


@router.get("/blacklists/{blacklist_id}/entries", response=EntriesOut,
            summary="A blacklist's entries, newest first")  # fmt: skip
def list_entries(request, blacklist_id: int, filters: Query[EntryFilters]):
    _key, account = _account(request, filters.account)
    with tenant_context(account):
        blacklist = _blacklist(blacklist_id)
        entries = BlacklistEntry.objects.filter(blacklist=blacklist).order_by("-id")
        if filters.cursor:
            entries = entries.filter(pk__lt=filters.cursor)
        rows = list(entries[: filters.limit + 1])
    more = len(rows) > filters.limit
    rows = rows[: filters.limit]
    return {
        "items": [
            {
                "number": e.device_key,
                "kind": e.kind,
                "reason": e.reason,
                "source": e.source,
                "added_at": e.created_at,
                "added_by": e.created_by_label,
                "expires_at": e.expires_at,
            }
            for e in rows
        ],  # fmt: skip
        "next_cursor": str(rows[-1].pk) if more and rows else None,
    }


@router.post("/blacklists/{blacklist_id}/entries", response={200: EntriesResult},
             summary="Add numbers or extensions (one or up to 10,000)")  # fmt: skip
def add_entries(request, blacklist_id: int, body: EntriesIn, query: Query[AccountQuery]):
    key, account = _account(request, query.account)
    expires_at = body.expires_at
    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= timezone.now()):
        raise Problem(422, "invalid-expiry", "expires_at must be in the future, with a zone.")

    def write():
        with tenant_context(account):
            blacklist = _blacklist(blacklist_id)
            region = account.enterprise.default_region
            results, entries = [], {}
            for line, item in enumerate(body.items, start=1):
                try:
                    device = parse_phone_or_extension(item.number, region)
                except DeviceKeyError as exc:
                    results.append({"line": line, "number": item.number, "key": None,
                                    "status": "error", "error": str(exc)})  # fmt: skip
                    continue
                entries[device.key] = (device.kind, device.key, item.reason)
                results.append({"line": line, "number": item.number, "key": device.key,
                                "status": "added", "error": None})  # fmt: skip
            listed = set(
                BlacklistEntry.objects.filter(blacklist=blacklist, device_key__in=list(entries))
                .values_list("device_key", flat=True)
            )  # fmt: skip
            added, suppressed = 0, 0
            if entries:
                added, suppressed = do_add_entries(
                    blacklist, list(entries.values()), source=BlacklistEntry.Source.API,
                    expires_at=expires_at, actor=key, request=request,
                )  # fmt: skip
            for result in results:
                if result["key"] in listed:
                    result["status"] = "listed"
        errors = sum(1 for r in results if r["status"] == "error")
        return 200, {"added": added, "suppressed": suppressed, "errors": errors,
                     "results": results}  # fmt: skip

    return once(request, key, write)


@router.post("/blacklists/{blacklist_id}/entries/remove", response={200: RemoveOut},
             summary="Remove numbers or extensions (one or up to 10,000)")  # fmt: skip
def remove_entries(request, blacklist_id: int, body: RemoveIn, query: Query[AccountQuery]):
    key, account = _account(request, query.account)

    def write():
        with tenant_context(account):
            blacklist = _blacklist(blacklist_id)
            region = account.enterprise.default_region
            keys = {}
            for text in body.numbers:
                try:
                    keys[parse_phone_or_extension(text, region).key] = text
                except DeviceKeyError:
                    keys[text.strip()] = text
            removed, released = do_remove_entries(blacklist, keys, actor=key, request=request)
        missing = [sent for k, sent in keys.items() if k not in set(removed)]
        return 200, {"removed": len(removed), "released": released, "not_listed": missing}

    return once(request, key, write)


@router.delete("/blacklists/{blacklist_id}/entries/{number}", response={200: RemoveOut},
               summary="Remove one number or extension")  # fmt: skip
def remove_entry(request, blacklist_id: int, number: str, query: Query[AccountQuery]):
    key, account = _account(request, query.account)
    with tenant_context(account):
        blacklist = _blacklist(blacklist_id)
        try:
            device_key = parse_phone_or_extension(number, account.enterprise.default_region).key
        except DeviceKeyError as exc:
            raise Problem(422, "invalid-number", str(exc)) from None
        removed, released = do_remove_entries(blacklist, [device_key], actor=key,
                                              request=request)  # fmt: skip
    if not removed:
        raise Problem(404, "not-listed", f"{device_key} is not on this blacklist.")
    return {"removed": 1, "released": released, "not_listed": []}
