"""Writes go through these functions: one transaction, the audit row inside it."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils.text import slugify

from accounts.models import (
    Account,
    ApiKey,
    AuditEvent,
    Domain,
    Enterprise,
    Membership,
    Role,
    User,
)


def client_ip(request) -> str | None:
    """The address of whoever sent the request: for throttles and the audit log alike.
    Behind TRUSTED_PROXY_COUNT proxies, each appending its peer to X-Forwarded-For, the
    client is the entry the outermost proxy wrote: that many from the right. Entries
    further left are the client's own claims; a header too short or not an address means
    the request did not come through the proxies, so REMOTE_ADDR stands."""
    if request is None:
        return None
    remote = request.META.get("REMOTE_ADDR") or None
    proxies = settings.TRUSTED_PROXY_COUNT
    if not proxies:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if len(forwarded) < proxies:
        return remote
    candidate = forwarded[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


def audit(
    actor: User | None,
    action: str,
    *,
    enterprise: Enterprise | None = None,
    account: Account | None = None,
    obj: Any = None,
    details: dict | None = None,
    request=None,
) -> AuditEvent:
    """Records an action. Call it inside the transaction of the action it records. The
    actor is a user, an API key (recorded under its name and creator), or None (system)."""
    if enterprise is None and account is not None:
        enterprise = account.enterprise
    label = actor.email if actor is not None and actor.pk else "system"
    if isinstance(actor, ApiKey):
        details = {**(details or {}), "api_key": actor.prefix}
        actor = actor.created_by
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.pk else None,
        actor_label=label,
        enterprise=enterprise,
        account=account if account is not None and not account.is_public else None,
        action=action,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        details=details or {},
        ip_address=client_ip(request),
    )


def audit_once(actor: User, action: str, *, obj: Any, enterprise: Enterprise | None,
               since=None, **kwargs) -> AuditEvent | None:  # fmt: skip
    """``audit``, unless this actor already has this action on this object (since ``since``,
    if given): what one person repeats while doing one thing (a player's range requests,
    paging through one search) is one row."""
    earlier = AuditEvent.objects.filter(
        enterprise=enterprise, action=action, actor=actor,
        object_type=obj._meta.model_name, object_id=str(obj.pk),
    )  # fmt: skip
    if since is not None:
        earlier = earlier.filter(occurred_at__gte=since)
    if earlier.exists():
        return None
    return audit(actor, action, enterprise=enterprise, obj=obj, **kwargs)


def ensure_public_tenant() -> Account:
    """The platform's own tenant row, which django-tenants routes shared pages to."""
    public, _ = Account.objects.get_or_create(
        schema_name="public", defaults={"name": "Platform", "slug": "platform"}
    )
    return public


@transaction.atomic
def do_create_enterprise(
    name: str,
    *,
    time_zone: str = "America/Chicago",
    default_region: str = "US",
    language: str = "en",
    actor: User | None = None,
) -> Enterprise:
    enterprise = Enterprise(
        name=name, time_zone=time_zone, default_region=default_region, language=language
    )
    enterprise.full_clean()
    enterprise.save()
    audit(actor, "enterprise.create", enterprise=enterprise, obj=enterprise)
    return enterprise


def unique_account_slug(name: str) -> str:
    base = (slugify(name) or "account")[:32].strip("-")
    slug, n = base, 2
    while Account.objects.filter(slug=slug).exists() or Domain.objects.filter(domain=slug).exists():
        slug = f"{base}-{n}"
        n += 1
    return slug


def do_create_account(
    enterprise: Enterprise, name: str, *, slug: str | None = None, actor: User | None = None
) -> Account:
    """Creates the account, its schema (cloned from the template) and its route.

    Returns the account with ``creation_seconds`` set, so callers can report it.
    """
    started = time.perf_counter()
    slug = slug or unique_account_slug(name)
    with transaction.atomic():
        account = Account(
            enterprise=enterprise,
            name=name,
            slug=slug,
            schema_name=f"acct_{slug.replace('-', '_')}"[:63],
        )
        account.full_clean()
        account.save(verbosity=0)
        Domain.objects.create(domain=slug, tenant=account, is_primary=True)
        audit(
            actor,
            "account.create",
            enterprise=enterprise,
            account=account,
            obj=account,
            details={"schema": account.schema_name},
        )
    account.creation_seconds = time.perf_counter() - started
    return account


@transaction.atomic
def do_add_membership(
    user: User,
    enterprise: Enterprise,
    role: str,
    *,
    account: Account | None = None,
    actor: User | None = None,
) -> Membership:
    membership = Membership(user=user, enterprise=enterprise, account=account, role=role)
    membership.full_clean()
    membership.save()
    audit(
        actor,
        "membership.add",
        enterprise=enterprise,
        account=account,
        obj=membership,
        details={"user": user.email, "role": role},
    )
    return membership


@transaction.atomic(durable=True)
def do_sign_in_to_account(user: User, account: Account, role: str, *, request=None) -> AuditEvent:
    return audit(
        user,
        "account.sign_in",
        account=account,
        obj=account,
        details={"role": role},
        request=request,
    )


def _enterprises_of(user: User | None) -> list[Enterprise | None]:
    if user is None:
        return [None]
    found = list(Enterprise.objects.filter(memberships__user=user).distinct().order_by("pk"))
    return found or [None]


def audit_sign_in(user: User, *, request) -> None:
    """A successful sign-in to the portal, in the audit log of each of the user's enterprises."""
    with transaction.atomic():
        for enterprise in _enterprises_of(user):
            audit(user, "auth.sign_in", enterprise=enterprise, obj=user, request=request)


def audit_failed_sign_in(email: str, reason: str, *, request) -> None:
    """A refused sign-in: the address as typed and why, never the password. Counted against
    the user it names, if any, in that user's enterprises' logs."""
    user = User.objects.filter(email__iexact=email.strip()).first() if email else None
    with transaction.atomic():
        for enterprise in _enterprises_of(user):
            audit(None, "auth.sign_in_failed", enterprise=enterprise, obj=user,
                  details={"email": email[:254], "reason": reason}, request=request)  # fmt: skip


__all__ = [
    "Role",
    "audit",
    "audit_once",
    "audit_failed_sign_in",
    "audit_sign_in",
    "do_add_membership",
    "do_create_account",
    "do_create_enterprise",
    "do_sign_in_to_account",
    "ensure_public_tenant",
]
