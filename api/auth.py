"""Who is asking: an API key in ``Authorization: Bearer cpk_…``, its scopes, its rate."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from ninja.security import HttpBearer

from accounts.api_keys import active_account, authenticate
from accounts.models import Account, ApiKey
from api.problems import NUL_DETAIL, Problem, request_has_nul


class ApiKeyAuth(HttpBearer):
    def authenticate(self, request, token: str) -> ApiKey | None:
        key = authenticate(token)
        if key is not None:
            _throttle(key)
            if request_has_nul(request):  # PostgreSQL stores no NUL: say so, never a 500
                raise Problem(422, "nul-character", NUL_DETAIL)
        return key


def _throttle(key: ApiKey) -> None:
    """At most API_RATE_LIMIT requests a minute per key (a fixed window in the cache);
    past it, 429 with Retry-After: the seconds until the window ends."""
    limit = settings.API_RATE_LIMIT
    if limit <= 0:
        return
    now = time.time()
    window = int(now // 60)
    name = f"api-rate:{key.prefix}:{window}"
    cache.add(name, 0, timeout=90)
    try:
        used = cache.incr(name)
    except ValueError:  # expired between add and incr: a new window
        cache.add(name, 1, timeout=90)
        used = 1
    if used > limit:
        retry = max(1, int((window + 1) * 60 - now) + 1)
        raise Problem(429, "rate-limited",
                      f"This key made more than {limit} requests this minute; try again in "
                      f"{retry} s.", headers={"Retry-After": str(retry)})  # fmt: skip


def key_of(request) -> ApiKey:
    return request.auth


def require(request, scope: str) -> ApiKey:
    key = key_of(request)
    if scope not in key.scopes:
        raise Problem(403, "missing-scope", f"This key lacks the scope {scope}.")
    return key


def enterprise_key(request, scope: str) -> ApiKey:
    """A key of an enterprise (not one account's, not an operator's) with the scope."""
    key = require(request, scope)
    if key.enterprise_id is None or key.account_id is not None:
        raise Problem(
            403,
            "enterprise-key-required",
            "Device settings are the whole enterprise's: use an enterprise key.",
        )
    return key


def account_for(key: ApiKey, account: str | int | None) -> Account:
    """The account a request names (slug or id), if this key may act in it: an account
    key only in its own; an enterprise key in any of its enterprise's. Others are 404."""
    if account in (None, ""):
        if key.account_id is not None and key.account.is_active:
            return key.account
        if key.account_id is not None:
            raise Problem(404, "not-found", "No such account for this key.")
        raise Problem(422, "account-required", "Name the account (its slug or id).")
    match = active_account(key, str(account))
    if match is None or (key.account_id is not None and match.pk != key.account_id):
        raise Problem(404, "not-found", "No such account for this key.")
    return match
