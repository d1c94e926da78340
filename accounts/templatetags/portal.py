from django import template
from django.conf import settings
from django.urls import reverse
from django.utils.formats import number_format

from accounts.urls_helpers import account_url as build_account_url

register = template.Library()


@register.simple_tag
def public_url(viewname: str, *args) -> str:
    """A shared page's path, also from inside an account's pages."""
    return reverse(viewname, urlconf=settings.PUBLIC_SCHEMA_URLCONF, args=args or None)


@register.simple_tag
def account_url(account, viewname: str = "account:home", *args) -> str:
    return build_account_url(account, viewname, *args)


@register.filter
def grouped(value) -> str:
    """A count with the reader's thousands separator: 12,345 or 12.345 (static/js/live.js
    writes live counts the same way)."""
    try:
        return number_format(int(value), use_l10n=True, force_grouping=True)
    except (TypeError, ValueError):
        return value
