"""The one place that decides who may see what.

Every view asks here. "Not yours" is a 404 (we do not confirm that a thing
exists); "yours, but your role may not" is a 403.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import wraps
from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404, HttpResponseRedirect

from accounts.models import Account, Enterprise, Membership, Role, SendingDomain
from accounts.urls_helpers import public_path

# Who may do what in an account: admins manage, agents follow and work contacts.
ADMIN_ROLES = (Role.ENTERPRISE_ADMIN, Role.ACCOUNT_ADMIN)
ALL_ROLES = (Role.ENTERPRISE_ADMIN, Role.ACCOUNT_ADMIN, Role.AGENT)


@dataclass(frozen=True)
class AccountAccess:
    """What a user may do in one account: their effective role there."""

    account: Account
    role: str

    @property
    def enterprise(self) -> Enterprise:
        return self.account.enterprise

    @property
    def role_label(self) -> str:
        return Role(self.role).label

    @property
    def is_admin(self) -> bool:
        return self.role in (Role.ENTERPRISE_ADMIN, Role.ACCOUNT_ADMIN)

    def require(self, roles: Iterable[str]) -> None:
        if self.role not in set(roles):
            raise PermissionDenied


def pk_or_404(value) -> int:
    """An id a user typed or a URL carried: a whole number, or a 404."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Http404 from None


def in_current_account(access: AccountAccess) -> AccountAccess:
    """The access, if it was checked for the account whose schema the request is in. An
    account's objects are found by id in its own schema, so an id alone cannot reach
    another account; this makes sure the access in hand is for that schema too."""
    tenant = getattr(connection, "tenant", None)
    if access is None or tenant is None or tenant.pk != access.account.pk:
        raise Http404
    return access


def _memberships(user) -> list[Membership]:
    cached = getattr(user, "_portal_memberships", None)
    if cached is None:
        cached = list(Membership.objects.filter(user=user).select_related("enterprise", "account"))
        user._portal_memberships = cached
    return cached


def enterprises_for_user(user, *, any_role: bool = False) -> list[Enterprise]:
    """Enterprises where the user is an enterprise admin (or holds any role, if asked)."""
    if not user.is_authenticated:
        return []
    found: dict[int, Enterprise] = {}
    for m in _memberships(user):
        if any_role or m.role == Role.ENTERPRISE_ADMIN:
            found.setdefault(m.enterprise_id, m.enterprise)
    return sorted(found.values(), key=lambda e: e.name)


def accounts_for_user(user) -> list[AccountAccess]:
    """Every account the user may enter, with the role they hold there."""
    if not user.is_authenticated:
        return []
    places: dict[int, AccountAccess] = {}
    admin_of = [m.enterprise_id for m in _memberships(user) if m.role == Role.ENTERPRISE_ADMIN]
    if admin_of:
        for account in Account.objects.filter(
            enterprise_id__in=admin_of, is_active=True
        ).select_related("enterprise"):
            places[account.pk] = AccountAccess(account, Role.ENTERPRISE_ADMIN)
    for membership in _memberships(user):
        account = membership.account
        if account is not None and account.pk not in places and account.is_active:
            places[membership.account_id] = AccountAccess(membership.account, membership.role)
    return sorted(places.values(), key=lambda a: (a.account.enterprise.name, a.account.name))


def get_enterprise_for_user(user, enterprise_id: int, *, admin_only: bool = True) -> Enterprise:
    """The enterprise, if the user belongs to it; 403 if they belong but are not its admin."""
    if not user.is_authenticated:
        raise Http404
    roles = {m.role for m in _memberships(user) if m.enterprise_id == enterprise_id}
    if not roles:
        raise Http404
    if admin_only and Role.ENTERPRISE_ADMIN not in roles:
        raise PermissionDenied
    return next(m.enterprise for m in _memberships(user) if m.enterprise_id == enterprise_id)


def get_account_for_user(user, account: Account | int) -> AccountAccess:
    """A user's access to one account; 404 unless a member or the enterprise's admin."""
    if not user.is_authenticated:
        raise Http404
    account_id = account.pk if isinstance(account, Account) else account
    if not isinstance(account, Account):
        account = Account.objects.select_related("enterprise").filter(pk=account_id).first()
    if account is None or not account.is_active or account.enterprise_id is None:
        raise Http404
    memberships = _memberships(user)
    if any(
        m.role == Role.ENTERPRISE_ADMIN and m.enterprise_id == account.enterprise_id
        for m in memberships
    ):
        return AccountAccess(account, Role.ENTERPRISE_ADMIN)
    for m in memberships:
        if m.account_id == account.pk:
            return AccountAccess(account, m.role)
    raise Http404


# The accounts an enterprise admin has signed in to on this session (audited, by POST).
SIGNED_IN_SESSION_KEY = "portal_signed_in_accounts"


def mark_signed_in(request, account: Account) -> None:
    signed_in = set(request.session.get(SIGNED_IN_SESSION_KEY, []))
    signed_in.add(account.pk)
    request.session[SIGNED_IN_SESSION_KEY] = sorted(signed_in)


def needs_sign_in(request, access: AccountAccess) -> bool:
    """An enterprise admin reaches an account's data only after signing in to it on this
    session, which the audit log records; members enter their own account directly."""
    return access.role == Role.ENTERPRISE_ADMIN and access.account.pk not in request.session.get(
        SIGNED_IN_SESSION_KEY, []
    )


def sign_in_page(access: AccountAccess, next_path: str = "") -> str:
    path = public_path("accounts:account_sign_in", access.account.pk)
    return f"{path}?{urlencode({'next': next_path})}" if next_path else path


def account_view(*, roles: Iterable[str] | None = None):
    """Decorator for views under /a/<slug>/: login, membership of request.tenant, role; an
    enterprise admin who has not signed in to the account is sent to sign in first."""
    allowed = set(roles) if roles is not None else None

    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            tenant = getattr(request, "tenant", None)
            if tenant is None or tenant.is_public or not tenant.is_active:
                raise Http404
            access = get_account_for_user(request.user, tenant.pk)
            if needs_sign_in(request, access):
                next_path = request.get_full_path() if request.method == "GET" else ""
                return HttpResponseRedirect(sign_in_page(access, next_path))
            if allowed is not None:
                access.require(allowed)
            request.account_access = access
            request.enterprise = access.enterprise
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def enterprise_view(view):
    """Decorator for enterprise pages (public schema): login and enterprise-admin role."""

    @wraps(view)
    def wrapper(request, enterprise_id: int, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if connection.schema_name != "public":
            raise Http404
        request.enterprise = get_enterprise_for_user(request.user, enterprise_id)
        return view(request, request.enterprise, *args, **kwargs)

    return wrapper


def operator_view(view):
    """Decorator for platform pages (public schema): login, then platform operators
    (superusers) only: 404 for everyone else, 403 for platform staff who are not."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if connection.schema_name != "public":
            raise Http404
        if not request.user.is_superuser:
            if request.user.is_staff:
                raise PermissionDenied
            raise Http404
        return view(request, *args, **kwargs)

    return wrapper


def get_sending_domain_for(enterprise: Enterprise, domain_id) -> SendingDomain:
    """One of the enterprise's sending domains; 404 for any other id."""
    found = SendingDomain.objects.filter(enterprise=enterprise, pk=pk_or_404(domain_id)).first()
    if found is None:
        raise Http404
    return found
