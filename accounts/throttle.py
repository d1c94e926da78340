"""Failed-login throttling, counted in the shared cache (Redis).

After LOGIN_FAILURE_LIMIT failures for one email (or four times that from one
address) sign-in is refused for LOGIN_LOCKOUT_SECONDS, with the same generic
message whether or not the password was right.
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache


def _keys(email: str, ip: str | None) -> list[tuple[str, int]]:
    limit = settings.LOGIN_FAILURE_LIMIT
    keys = [(f"login-failures:email:{email.strip().lower()}", limit)]
    if ip:
        keys.append((f"login-failures:ip:{ip}", limit * 4))
    return keys


def is_locked_out(email: str, ip: str | None) -> bool:
    return any((cache.get(key) or 0) >= limit for key, limit in _keys(email, ip))


def record_failure(email: str, ip: str | None) -> None:
    for key, _limit in _keys(email, ip):
        if cache.add(key, 1, timeout=settings.LOGIN_LOCKOUT_SECONDS):
            continue
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=settings.LOGIN_LOCKOUT_SECONDS)


def reset(email: str, ip: str | None = None) -> None:
    cache.delete_many([key for key, _limit in _keys(email, ip)])
