"""Typed settings from the environment.

Every helper fails loudly (ImproperlyConfigured naming the variable) on a value it
cannot read, so a typo in production stops the process at start-up instead of
silently falling back to a default.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

_UNSET = object()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str, default: object) -> str | object:
    value = os.environ.get(name)
    if value is None:
        if default is _UNSET:
            raise ImproperlyConfigured(f"Environment variable {name} is required but not set.")
        return default
    return value


def env_str(name: str, default: str | object = _UNSET) -> str:
    return _raw(name, default)  # type: ignore[return-value]


def env_bool(name: str, default: bool | object = _UNSET) -> bool:
    value = _raw(name, default)
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false).")


def env_int(name: str, default: int | object = _UNSET, *, minimum: int | None = None) -> int:
    value = _raw(name, default)
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} must be at least {minimum}.")
    return number


def env_list(name: str, default: list[str] | object = _UNSET) -> list[str]:
    value = _raw(name, default)
    if isinstance(value, list):
        return value
    return [item.strip() for item in str(value).split(",") if item.strip()]


def env_networks(name: str, default: list[str] | object = _UNSET) -> list:
    """Comma-separated addresses or networks (``10.0.0.0/8, 127.0.0.1``), parsed."""
    networks = []
    for item in env_list(name, default):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not an IP address or network (e.g. 10.0.0.0/8)."
            ) from None
    return networks


def env_code_map(name: str, default: str | object = _UNSET) -> dict[int, str]:
    """``code=RESULT`` pairs, comma-separated (``486=BUSY,503=FAILED``), as {486: "BUSY"}."""
    mapping = {}
    for item in env_list(name, default):
        code, _, result = item.partition("=")
        if not (code.strip().isdigit() and 100 <= int(code) <= 699 and result.strip()):
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not code=RESULT with a SIP code (e.g. 486=BUSY)."
            )
        mapping[int(code)] = result.strip().upper()
    return mapping


# A production secret key: as long as Django's deploy check asks, and none of the values
# that examples, templates and development set-ups ship with.
SECRET_KEY_MIN_LENGTH = 50
_PLACEHOLDER_KEYS = ("change-me", "changeme", "change_me", "replace-me", "your-secret-key")


def secret_key_problem(value: str | None) -> str | None:
    """Why ``value`` must not sign production sessions, or None when it is fit."""
    if not value:
        return "not set"
    if value.startswith("django-insecure-") or any(
        word in value.lower() for word in _PLACEHOLDER_KEYS
    ):
        return "a placeholder from an example or a template"
    if len(value) < SECRET_KEY_MIN_LENGTH:
        return f"{len(value)} characters long, fewer than {SECRET_KEY_MIN_LENGTH}"
    if len(set(value)) < 5:
        return "made of fewer than 5 different characters"
    return None


def env_secret_key(name: str = "SECRET_KEY", *, debug: bool) -> str:
    """The secret key; with DEBUG off, a missing, short or known one stops the process."""
    if debug:
        return env_str(name)
    value = os.environ.get(name)
    problem = secret_key_problem(value)
    if problem:
        raise ImproperlyConfigured(
            f"{name} is {problem}; with DEBUG=0 the portal refuses to start on it. Set {name} "
            f"to a random value of at least {SECRET_KEY_MIN_LENGTH} characters, e.g. the output "
            "of: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    return value  # type: ignore[return-value]


def env_choice(name: str, choices: tuple[str, ...], default: str | object = _UNSET) -> str:
    value = env_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of {', '.join(choices)}.")
    return value


@dataclass(frozen=True)
class DatabaseUrl:
    name: str
    user: str
    password: str
    host: str
    port: str
    options: dict[str, str]

    def as_django(self, engine: str) -> dict:
        return {
            "ENGINE": engine,
            "NAME": self.name,
            "USER": self.user,
            "PASSWORD": self.password,
            "HOST": self.host,
            "PORT": self.port,
            "OPTIONS": self.options,
        }


def parse_database_url(name: str, url: str) -> DatabaseUrl:
    """Reads postgresql://user:pass@host:port/db?host=/socket/dir&sslmode=...

    A ``host`` query parameter (a Unix socket directory) wins over the netloc host,
    which is how the embedded server is reached.
    """
    parsed = urlparse(url)
    if parsed.scheme not in {"postgres", "postgresql"}:
        raise ImproperlyConfigured(
            f"{name} must be a postgresql:// URL, got scheme {parsed.scheme!r}."
        )
    database = unquote(parsed.path.lstrip("/"))
    if not database:
        raise ImproperlyConfigured(f"{name} has no database name.")
    query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    host = query.pop("host", None) or unquote(parsed.hostname or "")
    try:
        port = str(parsed.port or "")
    except ValueError:
        raise ImproperlyConfigured(f"{name} has an invalid port.") from None
    return DatabaseUrl(
        name=database,
        user=unquote(parsed.username or ""),
        password=unquote(parsed.password or ""),
        host=host,
        port=port,
        options=query,
    )


def env_database(name: str = "DATABASE_URL") -> DatabaseUrl:
    return parse_database_url(name, env_str(name))


def redis_url_with_db(url: str, db: int) -> str:
    """The same Redis server, another logical database (cache apart from the broker)."""
    parsed = urlparse(url)
    if parsed.scheme not in {"redis", "rediss"}:
        raise ImproperlyConfigured(f"Redis URL must start with redis:// or rediss://, got {url!r}.")
    return parsed._replace(path=f"/{db}").geturl()
