from __future__ import annotations

import re

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import Enterprise
from devices.models import CallingWindow, Holiday

_REGION = re.compile(r"^[A-Z]{2}$")


def _clean_region(value: str) -> str:
    value = (value or "").strip().upper()
    if value and not _REGION.match(value):
        raise forms.ValidationError(_("Use a two-letter country code such as US or BR."))
    return value


class AttemptCapForm(forms.ModelForm):
    class Meta:
        model = Enterprise
        fields = ["attempt_cap", "attempt_cap_days"]

    def clean_attempt_cap_days(self):
        value = self.cleaned_data["attempt_cap_days"]
        if not 1 <= value <= 90:
            raise forms.ValidationError(_("Between 1 and 90 days."))
        return value


def _region_field(help_text) -> forms.CharField:
    # Wider than the column: "USA" deserves the clear message below, not a length error.
    return forms.CharField(label=_("Country"), max_length=10, required=False, help_text=help_text)


class CallingWindowForm(forms.ModelForm):
    region = _region_field(_("US, BR, …; empty for every other country"))

    class Meta:
        model = CallingWindow
        fields = ["region", "start", "end"]
        widgets = {
            "start": forms.TimeInput(attrs={"type": "time"}),
            "end": forms.TimeInput(attrs={"type": "time"}),
        }

    def __init__(self, *args, enterprise: Enterprise, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.enterprise = enterprise

    def clean_region(self):
        return _clean_region(self.cleaned_data.get("region"))

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and start >= end:
            raise forms.ValidationError(_("The window must end after it starts."))
        return cleaned

    def validate_unique(self):
        # Saving a window for a country that has one replaces it (see the view).
        pass


class HolidayForm(forms.ModelForm):
    region = _region_field(_("empty for all countries"))

    class Meta:
        model = Holiday
        fields = ["date", "region", "name"]
        widgets = {"date": forms.DateInput(attrs={"type": "date"})}

    def __init__(self, *args, enterprise: Enterprise, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.enterprise = enterprise

    def clean_region(self):
        return _clean_region(self.cleaned_data.get("region"))

    def clean(self):
        cleaned = super().clean()
        date, region = cleaned.get("date"), cleaned.get("region", "")
        if (
            date
            and Holiday.objects.filter(
                enterprise=self.instance.enterprise, date=date, region=region
            ).exists()
        ):
            raise forms.ValidationError(_("That holiday is already listed."))
        return cleaned


class TraceForm(forms.Form):
    """Contact Trace search: Phone Number / Email Address, or Client ID."""

    criteria = forms.ChoiceField(
        label=_("Search Criteria"),
        choices=[("device", _("Phone Number / Email Address")), ("client_id", _("Client ID"))],
        initial="device",
    )
    value = forms.CharField(label=_("Value"), max_length=254, strip=True)

    def __init__(self, *args, region: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.region = region
        self.query = None

    def clean(self):
        from devices.keys import DeviceKeyError, phone_format_hint
        from devices.trace import MAX_CLIENT_ID, TraceQuery

        cleaned = super().clean()
        criteria, value = cleaned.get("criteria"), cleaned.get("value")
        if not criteria or value is None:
            return cleaned
        if "\x00" in value:
            self.add_error("value", _("The value contains characters that cannot be searched."))
            return cleaned
        try:
            self.query = TraceQuery.parse(criteria, value, self.region)
        except DeviceKeyError as exc:
            self.add_error("value", str(exc))
        except ValueError:
            if criteria == "client_id":
                self.add_error(
                    "value",
                    _("Enter the whole client ID (at most %(max)s characters).")
                    % {"max": MAX_CLIENT_ID},
                )
            else:
                self.add_error("value", phone_format_hint(self.region))
        return cleaned
