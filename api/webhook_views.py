"""Webhooks pages (enterprise admins): subscribe URLs to events, see each subscription's
deliveries, send a test event, delete a subscription."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from accounts import webhooks
from accounts.access import enterprise_view, pk_or_404
from accounts.models import WebhookSubscription

SHOWN_ONCE = "webhook-secret-shown-once"


class SubscriptionForm(forms.Form):
    url = forms.URLField(
        label=gettext_lazy("URL"),
        max_length=500,
        assume_scheme="https",
        help_text=gettext_lazy("Where we POST each event (https://…)."),
    )
    events = forms.MultipleChoiceField(
        label=gettext_lazy("Events"), choices=WebhookSubscription.Event.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": gettext_lazy("Choose at least one event.")},
    )  # fmt: skip


def _subscription(enterprise, subscription_id) -> WebhookSubscription:
    found = WebhookSubscription.objects.filter(
        enterprise=enterprise, pk=pk_or_404(subscription_id)
    ).first()
    if found is None:
        raise Http404
    return found


@enterprise_view
@require_http_methods(["GET", "POST"])
def webhooks_page(request, enterprise):
    here = f"/enterprises/{enterprise.pk}/webhooks/"
    form = SubscriptionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            subscription = webhooks.do_subscribe(
                enterprise, form.cleaned_data["url"], form.cleaned_data["events"],
                actor=request.user, request=request,
            )  # fmt: skip
        except ValidationError as exc:
            form.add_error("url", exc.messages)
        else:
            request.session[SHOWN_ONCE] = {"id": subscription.pk, "secret": subscription.secret}
            return HttpResponseRedirect(f"{here}{subscription.pk}/")
    subscriptions = WebhookSubscription.objects.filter(enterprise=enterprise)
    context = {"form": form, "subscriptions": subscriptions, "enterprise": enterprise,
               "nav": "webhooks"}  # fmt: skip
    return render(request, "api/webhooks.html", context)


@enterprise_view
@require_http_methods(["GET"])
def webhook_detail(request, enterprise, subscription_id):
    subscription = _subscription(enterprise, subscription_id)
    shown = request.session.pop(SHOWN_ONCE, None)
    if shown and shown.get("id") != subscription.pk:
        shown = None
    deliveries = Paginator(subscription.deliveries.order_by("-created_at", "-id"), 50)
    page = deliveries.get_page(request.GET.get("page"))
    return render(request, "api/webhook_detail.html", {
        "subscription": subscription, "page": page, "shown": shown, "enterprise": enterprise,
        "nav": "webhooks",
    })  # fmt: skip


@enterprise_view
@require_POST
def webhook_test(request, enterprise, subscription_id):
    subscription = _subscription(enterprise, subscription_id)
    webhooks.do_send_test(subscription, actor=request.user, request=request)
    messages.success(request, _("Test event queued: it appears below once sent."))
    return HttpResponseRedirect(f"/enterprises/{enterprise.pk}/webhooks/{subscription.pk}/")


@enterprise_view
@require_http_methods(["GET", "POST"])
def webhook_delete(request, enterprise, subscription_id):
    subscription = _subscription(enterprise, subscription_id)
    if request.method == "POST":
        webhooks.do_unsubscribe(subscription, actor=request.user, request=request)
        messages.success(request, _("Subscription deleted: %(url)s hears nothing more.")
                         % {"url": subscription.url})  # fmt: skip
        return HttpResponseRedirect(f"/enterprises/{enterprise.pk}/webhooks/")
    return render(request, "api/webhook_delete.html", {"subscription": subscription,
                                                       "enterprise": enterprise,
                                                       "nav": "webhooks"})  # fmt: skip
