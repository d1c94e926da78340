"""Failed-login throttling, counted in the shared cache (Redis).

After LOGIN_FAILURE_LIMIT failures for one email (or four times that from one
address) sign-in is refused for LOGIN_LOCKOUT_SECONDS, with the same generic
message whether or not the password was right.
"""

from __future__ import annotations

import logging
import unicodedata

from django.conf import settings
from django.core.cache import cache

from accounts.models import User

logger = logging.getLogger(__name__)


def _identity(email: str) -> str:
    """Who the failures count against: the user the sign-in would find (the lookup is
    case-insensitive in PostgreSQL's sense, where "admın" with a dotless ı is "ADMIN"), so
    no spelling of one address gets a fresh counter; an unknown address by one canonical
    form (NFKC, case-folded)."""
    text = email.strip()
    try:
        user_id = User.objects.filter(email__iexact=text).values_list("pk", flat=True).first()
    except Exception:  # noqa: BLE001 - no database now: count by the address's form
        logger.warning("Login throttle: user lookup failed; counting by address")
        user_id = None
    if user_id is not None:
        return f"user:{user_id}"
    return "email:" + unicodedata.normalize("NFKC", text).casefold()


def _keys(email: str, ip: str | None) -> list[tuple[str, int]]:
    limit = settings.LOGIN_FAILURE_LIMIT
    keys = [(f"login-failures:{_identity(email)}", limit)]
    if ip:
        keys.append((f"login-failures:ip:{ip}", limit * 4))
    return keys


# The counters live in Redis. If it is unreachable, sign-in keeps working (fails open):
# refusing every user because the cache is down would be the worse outage.


def is_locked_out(email: str, ip: str | None) -> bool:
    try:
        return any((cache.get(key) or 0) >= limit for key, limit in _keys(email, ip))
    except Exception:  # noqa: BLE001 - redis-py raises several kinds
        logger.warning("Login throttle unavailable (cache down); not enforcing it")
        return False


def record_failure(email: str, ip: str | None) -> None:
    try:
        _record_failure(email, ip)
    except Exception:  # noqa: BLE001
        logger.warning("Login throttle unavailable (cache down); failure not counted")


def _record_failure(email: str, ip: str | None) -> None:
    for key, _limit in _keys(email, ip):
        _count(key, settings.LOGIN_LOCKOUT_SECONDS)


def _count(key: str, seconds: int) -> int:
    """One more in a counter that lives ``seconds`` from its first count; the new total."""
    if cache.add(key, 1, timeout=seconds):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=seconds)
        return 1


def reset(email: str, ip: str | None = None) -> None:
    """A successful sign-in or a completed reset: that user's counts start again, the
    reset requests' included (and the client's, if given)."""
    keys = [key for key, _limit in _keys(email, ip)] + [f"reset-requests:{_identity(email)}"]
    if ip:
        keys.append(f"reset-requests:ip:{ip}")
    try:
        cache.delete_many(keys)
    except Exception:  # noqa: BLE001
        logger.warning("Login throttle unavailable (cache down); counters not reset")


# Password-reset requests: each sends an email, so an address (or a client) cannot ask
# for more than a few an hour. Over the address's limit the request is answered as usual
# and nothing is sent (whether an address has a user is not told); over the client's
# limit the form says to wait.


def reset_request_allowed(email: str, ip: str | None) -> tuple[bool, bool]:
    """Counts one reset request; (this address may get an email, this client may ask)."""
    window = settings.PASSWORD_RESET_WINDOW_SECONDS
    try:
        by_email = _count(f"reset-requests:{_identity(email)}", window)
        by_ip = _count(f"reset-requests:ip:{ip}", window) if ip else 0
    except Exception:  # noqa: BLE001 - as sign-in: a cache outage does not stop resets
        logger.warning("Reset throttle unavailable (cache down); not enforcing it")
        return True, True
    return (
        by_email <= settings.PASSWORD_RESET_EMAIL_LIMIT,
        by_ip <= settings.PASSWORD_RESET_IP_LIMIT,
    )
