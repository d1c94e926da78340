"""Links between shared pages and an account's pages (/a/<slug>/...), from either side."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from accounts.models import Account


def account_url(account: Account, viewname: str = "account:home", *args, **kwargs) -> str:
    """Path of a page inside an account, from any context (shared or another account)."""
    path = reverse(
        viewname, urlconf=settings.ROOT_URLCONF, args=args or None, kwargs=kwargs or None
    )
    return account.url_prefix.rstrip("/") + path


def public_path(viewname: str, *args, **kwargs) -> str:
    """Path of a shared page (public schema), from any context, an account's included."""
    return reverse(
        viewname, urlconf=settings.PUBLIC_SCHEMA_URLCONF, args=args or None, kwargs=kwargs or None
    )
