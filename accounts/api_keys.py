"""API keys: created (shown once), checked on every API request, revoked. Audited.

A key reads ``cpk_<prefix>_<secret>``. The prefix finds the row; the secret is checked
against its SHA-256 (a 256-bit random secret needs no slow hash: nobody can guess it, and
the hash only keeps a database dump from being a list of working keys).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.actions import audit
from accounts.models import Account, ApiKey, Enterprise, User

PREFIX = "cpk_"
# What each kind of key may be given. Operators' keys read the national registries only.
ENTERPRISE_SCOPES = [
    ApiKey.Scope.TRACE_READ,
    ApiKey.Scope.DEVICES_WRITE,
    ApiKey.Scope.BLACKLISTS_WRITE,
    ApiKey.Scope.DECISIONS_READ,
]
ACCOUNT_SCOPES = [
    ApiKey.Scope.TRACE_READ,
    ApiKey.Scope.BLACKLISTS_WRITE,
    ApiKey.Scope.DECISIONS_READ,
]
OPERATOR_SCOPES = [ApiKey.Scope.REGISTRIES_READ]
_PREFIX_SHAPE = re.compile(r"[0-9a-f]{1,16}")  # what token_hex makes; anything else is no key
LAST_USED_EVERY = dt.timedelta(minutes=1)  # "last used" is written at most this often


def allowed_scopes(enterprise: Enterprise | None, account: Account | None) -> list[str]:
    if enterprise is None:
        return list(OPERATOR_SCOPES)
    return list(ACCOUNT_SCOPES if account is not None else ENTERPRISE_SCOPES)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic(durable=True)
def do_create_api_key(
    *,
    name: str,
    scopes: list[str],
    created_by: User,
    enterprise: Enterprise | None = None,
    account: Account | None = None,
    expires_at: dt.datetime | None = None,
    request=None,
) -> tuple[ApiKey, str]:
    """The new key and its full text, which is never available again."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": _("Give the key a name that says what uses it.")})
    if account is not None and enterprise is None:
        enterprise = account.enterprise
    allowed = allowed_scopes(enterprise, account)
    unknown = sorted(set(scopes) - set(allowed))
    if unknown or not scopes:
        raise ValidationError(
            {"scopes": _("Choose one or more of: %(allowed)s.") % {"allowed": ", ".join(allowed)}}
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": _("The expiry must be in the future.")})
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        name=name[:80],
        enterprise=enterprise,
        account=account,
        prefix=prefix,
        secret_hash=_hash(secret),
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
        created_by=created_by,
    )
    audit(created_by, "api_key.create", enterprise=enterprise, account=account, obj=key,
          details={"name": key.name, "scopes": key.scopes, "prefix": prefix,
                   "expires_at": expires_at.isoformat() if expires_at else ""},
          request=request)  # fmt: skip
    return key, f"{PREFIX}{prefix}_{secret}"


@transaction.atomic(durable=True)
def do_revoke_api_key(key: ApiKey, *, actor: User, request=None) -> ApiKey:
    key = ApiKey.objects.select_for_update().get(pk=key.pk)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.revoked_by_label = actor.email
        key.save(update_fields=["revoked_at", "revoked_by_label"])
        audit(actor, "api_key.revoke", enterprise=key.enterprise, account=key.account, obj=key,
              details={"name": key.name, "prefix": key.prefix}, request=request)  # fmt: skip
    return key


def _columns(model, alias: str) -> str:
    return ", ".join(f'{alias}."{field.column}"' for field in model._meta.concrete_fields)


def _load(model, row, start: int):
    """A model instance from ``row[start:]``, its concrete fields in order; None for the
    NULLs of an outer join."""
    fields = model._meta.concrete_fields
    values = row[start : start + len(fields)]
    if values[0] is None:
        return None
    # The fields' own conversions, as the ORM applies them (a JSONField arrives as text).
    values = [
        field.from_db_value(value, None, connection) if hasattr(field, "from_db_value") else value
        for field, value in zip(fields, values, strict=True)
    ]
    return model.from_db(connection.alias, [field.attname for field in fields], values)


# Every API request reads its key, its enterprise and, for an account key, its account:
# one statement written once, rather than an ORM query compiled again on every request
# (which cost more than running it).
# Only the models' own table and column names are formatted in; values are bound.
_KEY_SQL = (
    f"SELECT {_columns(ApiKey, 'k')}, {_columns(Enterprise, 'e')}, {_columns(Account, 'a')} "  # noqa: S608
    f"FROM public.{ApiKey._meta.db_table} k "
    f"LEFT JOIN public.{Enterprise._meta.db_table} e ON e.id = k.enterprise_id "
    f"LEFT JOIN public.{Account._meta.db_table} a ON a.id = k.account_id "
    "WHERE k.prefix = %s"
)


def _key_by_prefix(prefix: str) -> ApiKey | None:
    with connection.cursor() as cursor:
        cursor.execute(_KEY_SQL, [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    key = _load(ApiKey, row, 0)
    enterprise = _load(Enterprise, row, len(ApiKey._meta.concrete_fields))
    account = _load(Account, row, len(ApiKey._meta.concrete_fields)
                    + len(Enterprise._meta.concrete_fields))  # fmt: skip
    key.enterprise = enterprise
    key.account = account
    if account is not None:
        account.enterprise = enterprise
    return key


_ACCOUNT_SQL = (
    f"SELECT {_columns(Account, 'a')} FROM public.{Account._meta.db_table} a "  # noqa: S608
    "WHERE a.enterprise_id = %s AND a.is_active AND a.schema_name <> 'public' AND "
)


def active_account(key: ApiKey, name: str) -> Account | None:
    """The active account of the key's enterprise that ``name`` (its slug or id) names,
    for an API request (one statement, like the key's)."""
    if key.enterprise_id is None:
        return None
    if name.isascii() and name.isdigit() and len(name) < 12:
        where, value = "a.id = %s", int(name)
    else:
        where, value = "a.slug = %s", name[:80]
    with connection.cursor() as cursor:
        cursor.execute(_ACCOUNT_SQL + where, [key.enterprise_id, value])
        row = cursor.fetchone()
    if row is None:
        return None
    account = _load(Account, row, 0)
    account.enterprise = key.enterprise
    return account


def authenticate(text: str, now: dt.datetime | None = None) -> ApiKey | None:
    """The key this text is, if it is one and may be used now (not revoked, not expired),
    with its enterprise and account (its creator is read when an audit row needs it)."""
    text = (text or "").strip()
    if not text.startswith(PREFIX) or len(text) > 120:
        return None
    prefix, _sep, secret = text[len(PREFIX) :].partition("_")
    if not secret or not _PREFIX_SHAPE.fullmatch(prefix):
        return None
    key = _key_by_prefix(prefix)
    if key is None or not hmac.compare_digest(key.secret_hash, _hash(secret)):
        return None
    now = now or timezone.now()
    if not key.usable_at(now):
        return None
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_EVERY:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def keys_for(enterprise: Enterprise, account: Account | None = None):
    """The keys an admin manages here: the enterprise's own, or one account's."""
    keys = ApiKey.objects.select_related("created_by", "account").filter(enterprise=enterprise)
    return keys.filter(account=account) if account is not None else keys.filter(account=None)
