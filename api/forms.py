from __future__ import annotations

import datetime as dt

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import ApiKey


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label=_("Name"), max_length=80,
        help_text=_("What uses it, e.g. “CRM do-not-call sync”."),
    )  # fmt: skip
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"), widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one scope.")},
    )  # fmt: skip
    expires_on = forms.DateField(
        label=_("Expires on"), required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("Optional. The key stops working at the start of that day."),
    )  # fmt: skip

    def __init__(self, *args, scopes: list[str], time_zone: str, **kwargs):
        super().__init__(*args, **kwargs)
        labels = dict(ApiKey.Scope.choices)
        self.fields["scopes"].choices = [(s, f"{s} — {labels[s]}") for s in scopes]
        self.time_zone = time_zone

    def clean_expires_on(self):
        day = self.cleaned_data.get("expires_on")
        if day is None:
            return None
        zone = timezone.zoneinfo.ZoneInfo(self.time_zone)
        expires_at = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
        if expires_at <= timezone.now():
            raise forms.ValidationError(_("Choose a day after today."))
        return expires_at
