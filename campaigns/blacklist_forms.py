from __future__ import annotations

import datetime as dt
import zoneinfo

from django import forms
from django.conf import settings
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from campaigns.models import AgentDisposition, Blacklist, Campaign
from contacts.importer import upload_limit_bytes
from devices import uploads
from devices.keys import DeviceKeyError, parse_phone_or_extension


class BlacklistForm(forms.ModelForm):
    class Meta:
        model = Blacklist
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}


def end_of_day(day: dt.date, time_zone: str) -> dt.datetime:
    """An expiry date means "until the end of that day" in the enterprise's time zone."""
    return dt.datetime.combine(
        day + dt.timedelta(days=1), dt.time(0, 0), tzinfo=zoneinfo.ZoneInfo(time_zone)
    )


class EntryForm(forms.Form):
    value = forms.CharField(
        label=_("Phone number or extension"),
        max_length=60,
        help_text=_("A phone number (any usual format) or an extension of 2 to 8 digits."),
    )
    reason = forms.CharField(label=_("Reason"), max_length=255, required=False)
    expires = forms.DateField(
        label=_("Expires"),
        required=False,
        help_text=_("Optional: the entry stops applying at the end of this day."),
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def __init__(self, *args, region: str, time_zone: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.region, self.time_zone = region, time_zone

    def clean_value(self):
        try:
            device = parse_phone_or_extension(self.cleaned_data["value"], self.region)
        except DeviceKeyError as exc:
            raise forms.ValidationError(str(exc)) from None
        return device.kind, device.key

    def clean_expires(self):
        day = self.cleaned_data.get("expires")
        if day is None:
            return None
        expires_at = end_of_day(day, self.time_zone)
        if expires_at <= timezone.now():
            raise forms.ValidationError(_("Choose today or a later date."))
        return expires_at


class BlacklistCampaignsForm(forms.Form):
    campaigns = forms.ModelMultipleChoiceField(
        label=_("Campaigns using this list"),
        queryset=Campaign.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )


class BlacklistUploadForm(forms.Form):
    file = forms.FileField(
        label=_("File"),
        help_text=format_lazy(
            _(
                "CSV (a column named number, phone, telefone or ramal; optional reason) or "
                "plain text with one number or extension per line; up to 1,000,000 lines "
                "and {mb} MB."
            ),
            mb=settings.MAX_UPLOAD_MB,
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,text/csv,text/plain"}),
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=255,
        required=False,
        help_text=_("Used for lines without a reason of their own."),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        uploads.check_size(upload.size, upload_limit_bytes())
        return upload


class AutoRuleForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = ["auto_blacklist", "auto_unanswered_after", "auto_on_wrong_number"]

    def clean_auto_unanswered_after(self):
        value = self.cleaned_data["auto_unanswered_after"]
        if value and not 2 <= value <= 50:
            raise forms.ValidationError(_("Between 2 and 50, or 0 to turn the rule off."))
        return value

    def clean(self):
        cleaned = super().clean()
        rule_on = cleaned.get("auto_unanswered_after") or cleaned.get("auto_on_wrong_number")
        if rule_on and not cleaned.get("auto_blacklist"):
            self.add_error("auto_blacklist", _("Choose the blacklist numbers are added to."))
        return cleaned


class AgentDispositionForm(forms.Form):
    attempt = forms.TypedChoiceField(label=_("Attempt"), coerce=int)
    code = forms.ChoiceField(label=_("Disposition"), choices=AgentDisposition.Code.choices)
    note = forms.CharField(label=_("Note"), max_length=255, required=False)

    def __init__(self, *args, attempts, **kwargs):
        super().__init__(*args, **kwargs)
        self.attempts = {a.pk: a for a in attempts}
        self.fields["attempt"].choices = [
            (a.pk, f"{timezone.localtime(a.attempted_at):%Y-%m-%d %H:%M} · {a.device_key}")
            for a in attempts
        ]

    def clean_attempt(self):
        return self.attempts[self.cleaned_data["attempt"]]
