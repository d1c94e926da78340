"""API keys pages: an enterprise admin manages the enterprise's keys, an account admin the
account's. A new key is shown once, on the page the creation lands on."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from accounts.access import ADMIN_ROLES, account_view, enterprise_view, operator_view, pk_or_404
from accounts.api_keys import (
    allowed_scopes,
    do_create_api_key,
    do_revoke_api_key,
    keys_for,
)
from accounts.models import ApiKey
from api.forms import ApiKeyForm

SHOWN_ONCE = "api-key-shown-once"


def _page(request, *, enterprise, account, here: str, revoke_base: str):
    form = ApiKeyForm(
        request.POST or None,
        scopes=allowed_scopes(enterprise, account),
        time_zone=enterprise.time_zone if enterprise is not None else settings.TIME_ZONE,
    )
    if request.method == "POST" and form.is_valid():
        try:
            key, secret = do_create_api_key(
                name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"],
                created_by=request.user, enterprise=enterprise, account=account,
                expires_at=form.cleaned_data["expires_on"], request=request,
            )  # fmt: skip
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            request.session[SHOWN_ONCE] = {"id": key.pk, "secret": secret}
            return HttpResponseRedirect(here)
    shown = request.session.pop(SHOWN_ONCE, None)
    keys = list(keys_for(enterprise, account))
    now = timezone.now()
    for key in keys:
        key.state = key.status(now)
    return render(request, "api/keys.html", {
        "form": form, "keys": keys, "shown": shown, "account": account,
        "enterprise": enterprise, "revoke_base": revoke_base,
        "nav": "account" if account else "operator-keys" if enterprise is None else "api-keys",
        "operator": enterprise is None,
    })  # fmt: skip


def _revoke(request, key: ApiKey, back: str):
    if request.method == "POST":
        do_revoke_api_key(key, actor=request.user, request=request)
        messages.success(request, _("Key “%(name)s” revoked: it no longer works.") % {
            "name": key.name})  # fmt: skip
        return HttpResponseRedirect(back)
    return render(request, "api/key_revoke.html", {"key": key, "back": back,
                                                   "nav": "api-keys"})  # fmt: skip


@enterprise_view
@require_http_methods(["GET", "POST"])
def enterprise_keys(request, enterprise):
    here = f"/enterprises/{enterprise.pk}/api-keys/"
    return _page(request, enterprise=enterprise, account=None, here=here, revoke_base=here)


@enterprise_view
@require_http_methods(["GET", "POST"])
def enterprise_key_revoke(request, enterprise, key_id):
    key = keys_for(enterprise).filter(pk=pk_or_404(key_id)).first()
    if key is None:
        raise Http404
    return _revoke(request, key, f"/enterprises/{enterprise.pk}/api-keys/")


@account_view(roles=ADMIN_ROLES)
@require_http_methods(["GET", "POST"])
def account_keys(request):
    account = request.account_access.account
    here = f"{account.url_prefix}api-keys/"
    return _page(request, enterprise=account.enterprise, account=account, here=here,
                 revoke_base=here)  # fmt: skip


@account_view(roles=ADMIN_ROLES)
@require_http_methods(["GET", "POST"])
def account_key_revoke(request, key_id):
    account = request.account_access.account
    key = keys_for(account.enterprise, account).filter(pk=pk_or_404(key_id)).first()
    if key is None:
        raise Http404
    return _revoke(request, key, f"{account.url_prefix}api-keys/")


@operator_view
@require_http_methods(["GET", "POST"])
def operator_keys(request):
    """Platform operators' keys: they read the national registries."""
    here = "/platform/api-keys/"
    return _page(request, enterprise=None, account=None, here=here, revoke_base=here)


@operator_view
@require_http_methods(["GET", "POST"])
def operator_key_revoke(request, key_id):
    key = ApiKey.objects.filter(enterprise=None, pk=pk_or_404(key_id)).first()
    if key is None:
        raise Http404
    return _revoke(request, key, "/platform/api-keys/")
