from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from accounts import throttle
from accounts.actions import audit_failed_sign_in, audit_sign_in, client_ip
from accounts.models import Account


class ThrottledLoginForm(AuthenticationForm):
    """Django's login form, with one generic error and a lock after repeated failures."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": _("The email address or password is not correct."),
        "locked_out": _(
            "Too many failed sign-in attempts. Wait a few minutes and try again, "
            "or reset your password."
        ),
    }

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = _("Email address")
        self.fields["username"].widget.attrs.update({"autocomplete": "email", "type": "email"})

    def clean(self):
        email = self.cleaned_data.get("username") or ""
        ip = client_ip(self.request)
        if email and throttle.is_locked_out(email, ip):
            audit_failed_sign_in(email, "locked_out", request=self.request)
            raise ValidationError(self.error_messages["locked_out"], code="locked_out")
        try:
            cleaned = super().clean()
        except ValidationError as exc:
            if email:
                throttle.record_failure(email, ip)
                reason = "inactive" if getattr(exc, "code", "") == "inactive" else "invalid_login"
                audit_failed_sign_in(email, reason, request=self.request)
            raise
        throttle.reset(email)
        audit_sign_in(self.get_user(), request=self.request)
        return cleaned


class AuditFilterForm(forms.Form):
    action = forms.CharField(label=_("Action"), required=False, max_length=64)
    who = forms.CharField(label=_("Who"), required=False, max_length=254)
    account = forms.ModelChoiceField(
        label=_("Account"), queryset=Account.objects.none(), required=False
    )
    date_from = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, enterprise, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = enterprise.accounts.all()

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        for name in ("date_from", "date_to"):
            value = cleaned.get(name)
            if value and not (dt.date(2000, 1, 1) <= value <= dt.date(2100, 12, 31)):
                self.add_error(name, _("Choose a date between 2000 and 2100."))
                cleaned[name] = None
                start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            raise ValidationError(_("The start date must be on or before the end date."))
        return cleaned

    def apply(self, queryset, tz):
        data = self.cleaned_data
        if data.get("action"):
            queryset = queryset.filter(action__icontains=data["action"])
        if data.get("who"):
            queryset = queryset.filter(actor_label__icontains=data["who"])
        if data.get("account"):
            queryset = queryset.filter(account=data["account"])
        if data.get("date_from"):
            start = dt.datetime.combine(data["date_from"], dt.time.min, tzinfo=tz)
            queryset = queryset.filter(occurred_at__gte=start)
        if data.get("date_to"):
            end = dt.datetime.combine(
                data["date_to"] + dt.timedelta(days=1), dt.time.min, tzinfo=tz
            )
            queryset = queryset.filter(occurred_at__lt=end)
        return queryset
