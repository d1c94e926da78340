"""Enterprise › Sending domains: the domains the enterprise's email may be sent from.

Enterprise admins only (``enterprise_view``); the list, the rules and the actions are in
``accounts.sending_domains``."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from accounts.access import enterprise_view, get_sending_domain_for
from accounts.sending_domains import (
    DomainError,
    allowed_domains,
    do_add_sending_domain,
    do_remove_sending_domain,
)


class SendingDomainForm(forms.Form):
    domain = forms.CharField(
        label=gettext_lazy("Domain"),
        max_length=300,
        help_text=gettext_lazy(
            "The part of the From address after the @, e.g. example.com. A subdomain "
            "(mail.example.com) is another sender: add it on its own."
        ),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


def _here(enterprise) -> str:
    return reverse("accounts:sending_domains", args=[enterprise.pk])


@enterprise_view
@require_http_methods(["GET", "POST"])
def sending_domains(request, enterprise):
    form = SendingDomainForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            domain = do_add_sending_domain(
                enterprise, form.cleaned_data["domain"], actor=request.user, request=request
            )
        except DomainError as exc:
            form.add_error("domain", str(exc))
        else:
            messages.success(
                request,
                _("%(domain)s added: email sub-campaigns may send from addresses at it.")
                % {"domain": domain.display_name},
            )
            return HttpResponseRedirect(_here(enterprise))
    return render(
        request,
        "accounts/sending_domains.html",
        {
            "enterprise": enterprise,
            "form": form,
            "domains": allowed_domains(enterprise.pk),
            "nav": "sending-domains",
        },
    )


@enterprise_view
@require_http_methods(["GET", "POST"])
def sending_domain_remove(request, enterprise, domain_id):
    """Confirm, then remove: email from addresses at the domain stops at once."""
    domain = get_sending_domain_for(enterprise, domain_id)
    if request.method == "POST":
        do_remove_sending_domain(domain, actor=request.user, request=request)
        messages.success(
            request,
            _("%(domain)s removed: email from addresses at it is no longer sent.")
            % {"domain": domain.display_name},
        )
        return HttpResponseRedirect(_here(enterprise))
    return render(
        request,
        "accounts/sending_domain_remove.html",
        {"enterprise": enterprise, "domain": domain, "nav": "sending-domains"},
    )
