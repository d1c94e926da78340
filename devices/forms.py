from __future__ import annotations

import datetime as dt
import re
import zoneinfo

import phonenumbers
from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Enterprise
from devices import uploads
from devices.blocking import ExpiryError, parse_expiry
from devices.keys import DeviceKeyError, parse_device, phone_format_hint
from devices.models import CallingWindow, DeviceSetting, Holiday
from devices.setting_csv import MAX_IMPORT_BYTES
from devices.trace import MAX_CLIENT_ID, TraceQuery

_REGION = re.compile(r"^[A-Z]{2}$")
HOLIDAY_YEARS_AHEAD = 5


def _clean_region(value: str) -> str:
    value = (value or "").strip().upper()
    if value and not _REGION.match(value):
        raise forms.ValidationError(_("Use a two-letter country code such as US or BR."))
    if value and value not in phonenumbers.SUPPORTED_REGIONS:
        raise forms.ValidationError(
            _("“%(code)s” is not a country code. Use a two-letter code such as US or BR.")
            % {"code": value}
        )
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
            # On the field: the model's own check (window_order) is then not run again, and
            # its words ("Constraint … is violated") are never shown.
            self.add_error("end", _("The window must end after it starts."))
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

    def clean_date(self):
        date = self.cleaned_data["date"]
        today = timezone.localdate(timezone=zoneinfo.ZoneInfo(self.instance.enterprise.time_zone))
        if date < today:
            raise forms.ValidationError(_("That date has passed: holidays count from today on."))
        if date > today + dt.timedelta(days=HOLIDAY_YEARS_AHEAD * 366):
            raise forms.ValidationError(
                _("Holidays can be listed up to %(years)s years ahead.")
                % {"years": HOLIDAY_YEARS_AHEAD}
            )
        return date

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


# --- Device Blocking ---------------------------------------------------------------------


def _expiry_field() -> forms.CharField:
    # A date (until the end of that day) or "YYYY-MM-DD HH:MM", in the enterprise's zone.
    return forms.CharField(
        label=_("Expires"),
        required=False,
        max_length=20,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("Optional. The setting stops applying at the end of this day."),
    )


class _ExpiryMixin:
    def clean_expires(self):
        try:
            return parse_expiry(
                self.cleaned_data.get("expires", ""), self.enterprise.time_zone, self.now
            )
        except ExpiryError as exc:
            raise forms.ValidationError(str(exc)) from None


class DeviceSettingForm(_ExpiryMixin, forms.Form):
    """Enterprise › Devices › Device Blocking: the Device field, Block or Allow, why, until."""

    device = forms.CharField(
        label=_("Device"),
        max_length=254,
        help_text=_("The contact's phone number or email address."),
    )
    action = forms.ChoiceField(
        label=_("Setting"),
        choices=[
            ("block", _("Block all calls to this device")),
            ("allow", _("Allow calls to this device")),
        ],
        widget=forms.RadioSelect,
        initial="block",
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=255,
        required=False,
        help_text=_("Optional. Shown in the history and on every attempt it stops."),
    )
    expires = _expiry_field()

    def __init__(self, *args, enterprise: Enterprise, now=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.enterprise = enterprise
        self.now = now
        self.fields["device"].widget.attrs.update(
            {"placeholder": _("713 555 4101 or jsmith@domain.com"), "autocomplete": "off"}
        )

    def clean_device(self):
        value = self.cleaned_data["device"]
        try:
            return parse_device(value, self.enterprise.default_region).key
        except DeviceKeyError as exc:
            raise forms.ValidationError(str(exc)) from None


class ExpiryForm(_ExpiryMixin, forms.Form):
    """Sets or changes the expiry of a device's current setting (empty: never expires)."""

    expires = _expiry_field()

    def __init__(self, *args, enterprise: Enterprise, now=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.enterprise = enterprise
        self.now = now
        self.fields["expires"].help_text = _(
            "The setting stops applying at the end of this day. Leave it empty for no expiry."
        )


class RemoveSettingForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=255,
        required=False,
        help_text=_("Optional. Kept in the device's history."),
    )


class SettingSearchForm(forms.Form):
    """The list of device settings: search by device, filter by setting, source, state."""

    q = forms.CharField(label=_("Find a device"), max_length=254, required=False)
    setting = forms.ChoiceField(
        label=_("Setting"),
        required=False,
        choices=[("", _("Any setting")), ("block", _("Block")), ("allow", _("Allow"))],
    )
    source = forms.ChoiceField(label=_("Source"), required=False)
    state = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[("", _("Any status")), ("in_force", _("In force")), ("expired", _("Expired"))],
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["source"].choices = [("", _("Any source")), *DeviceSetting.Source.choices]
        self.fields["q"].widget.attrs["placeholder"] = _("Phone number or email, or part of it")

    def filters(self) -> dict[str, str]:
        """Valid filters only: a bad value in the address bar widens the list, never fails."""
        if not self.is_bound:
            return {}
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {
            "query": data.get("q", ""),
            "action": data.get("setting", ""),
            "source": data.get("source", ""),
            "state": data.get("state", ""),
        }


class SettingImportForm(forms.Form):
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_(
            "Columns: device, action (block or allow; block when empty), reason, expires "
            "(YYYY-MM-DD, optional). A header line is optional. UTF-8, up to 5 MB and "
            "50,000 lines."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,text/csv"}),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        uploads.check_size(upload.size, MAX_IMPORT_BYTES)
        return upload
