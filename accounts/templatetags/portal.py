from django import template
from django.conf import settings
from django.urls import reverse

from accounts.urls_helpers import account_url as build_account_url

register = template.Library()


@register.simple_tag
def public_url(viewname: str, *args) -> str:
    """A shared page's path, also from inside an account's pages."""
    return reverse(viewname, urlconf=settings.PUBLIC_SCHEMA_URLCONF, args=args or None)


@register.simple_tag
def account_url(account, viewname: str = "account:home", *args) -> str:
    return build_account_url(account, viewname, *args)
