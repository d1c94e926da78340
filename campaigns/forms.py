from __future__ import annotations

from django import forms
from django.db import connection
from django.utils.translation import gettext_lazy as _

from campaigns.models import DEFAULT_RETRY_MINUTES, Campaign, SubCampaign
from contacts.models import ContactList
from devices.keys import DeviceKeyError, normalize_phone
from devices.models import Channel

RETRY_FIELDS = {
    "NO_ANSWER": _("No answer"),
    "BUSY": _("Busy"),
    "VOICEMAIL": _("Voicemail"),
    "FAILED": _("Failed"),
    "ABANDONED": _("Abandoned"),
    "UNDELIVERED": _("Undelivered"),
}
# The results each channel can have, so the retries that can apply to it.
RETRY_CHANNELS = {
    "NO_ANSWER": (Channel.VOICE,),
    "BUSY": (Channel.VOICE,),
    "VOICEMAIL": (Channel.VOICE,),
    "FAILED": (Channel.VOICE, Channel.SMS, Channel.EMAIL),
    "ABANDONED": (Channel.VOICE,),
    "UNDELIVERED": (Channel.SMS, Channel.EMAIL),
}
# A channel's own fields; another channel's are cleared on save (hidden in the form).
CHANNEL_FIELDS = {
    Channel.VOICE: ("caller_id", "record_calls"),
    Channel.SMS: ("sms_source_address", "sms_source_type"),
    Channel.EMAIL: ("email_from", "email_subject"),
}


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class SubCampaignForm(forms.ModelForm):
    """Manage Sub-Campaigns: identity, channel, sender, pacing, retries, schedule, lists."""

    contact_lists = forms.ModelMultipleChoiceField(
        label=_("Contact lists"),
        queryset=ContactList.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = SubCampaign
        fields = [
            "name", "channel", "purpose", "caller_id", "record_calls", "sms_source_address",
            "sms_source_type", "email_from", "email_subject", "message", "pacing_per_minute",
            "max_attempts", "start_date", "end_date",
        ]  # fmt: skip
        widgets = {
            "message": forms.Textarea(attrs={"rows": 3}),
            "start_date": forms.DateInput(attrs={"type": "date"}),
            "end_date": forms.DateInput(attrs={"type": "date"}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["contact_lists"].queryset = ContactList.objects.filter(
            status=ContactList.Status.READY
        ).order_by("-created_at")
        if self.instance.pk:
            self.fields["contact_lists"].initial = list(
                self.instance.contact_lists.values_list("pk", flat=True)
            )
        waits = {**DEFAULT_RETRY_MINUTES, **(self.instance.retry_minutes or {})}
        for key, label in RETRY_FIELDS.items():
            self.fields[f"retry_{key}"] = forms.IntegerField(
                label=label,
                min_value=0,
                max_value=60 * 24 * 30,
                required=False,
                initial=waits.get(key),
                help_text=_("minutes; empty: no retry"),
            )
        if self.instance.pk and self.instance.dial_states.exists():
            # Its dial states are phones or emails: the channel is fixed once it has any.
            self.fields["channel"].disabled = True
            self.fields["channel"].help_text = _(
                "Fixed once the sub-campaign has contacts; create another for another channel."
            )
        self.fields["channel"].widget.attrs["data-channel-select"] = ""  # portal.js
        self.fields["pacing_per_minute"].min_value = 1
        self.fields["pacing_per_minute"].widget.attrs["min"] = 1
        self.fields["max_attempts"].widget.attrs.update({"min": 1, "max": 20})

    def retry_fields_with_channels(self) -> list[tuple[str, str]]:
        """Each retry field with the channels it applies to (data-channels in the form)."""
        return [(f"retry_{key}", " ".join(RETRY_CHANNELS[key])) for key in RETRY_FIELDS]

    def _channel(self) -> str:
        return self.cleaned_data.get("channel") or self.instance.channel

    def clean_caller_id(self):
        value = (self.cleaned_data.get("caller_id") or "").strip()
        if not value or self._channel() != Channel.VOICE:
            return value
        region = getattr(getattr(connection.tenant, "enterprise", None), "default_region", "US")
        try:
            return normalize_phone(value, region)
        except DeviceKeyError as exc:
            raise forms.ValidationError(
                _("The caller ID must be a phone number the callee can call back. %(why)s")
                % {"why": exc}
            ) from None

    def clean(self):
        cleaned = super().clean()
        channel = self._channel()
        # Another channel's fields were hidden: what they hold (a default, a value typed
        # before the channel changed) is not this sub-campaign's.
        for other, names in CHANNEL_FIELDS.items():
            if other != channel:
                for name in names:
                    if name in cleaned:
                        cleaned[name] = False if name == "record_calls" else ""
        for key, channels in RETRY_CHANNELS.items():
            if channel not in channels:
                cleaned[f"retry_{key}"] = None
        return cleaned

    def clean_max_attempts(self):
        value = self.cleaned_data["max_attempts"]
        if not 1 <= value <= 20:
            raise forms.ValidationError(_("Between 1 and 20 attempts per number."))
        return value

    def clean_pacing_per_minute(self):
        value = self.cleaned_data["pacing_per_minute"]
        if not 1 <= value <= 100_000:
            raise forms.ValidationError(_("Between 1 and 100,000 attempts per minute."))
        return value

    def _post_clean(self):
        # Retry waits live in one JSON field; fill it before the model validates.
        self.instance.retry_minutes = {
            key: self.cleaned_data.get(f"retry_{key}")
            for key in RETRY_FIELDS
            if self.cleaned_data.get(f"retry_{key}") is not None
        }
        # A retry left empty means "no retry": record that explicitly over the defaults.
        for key in RETRY_FIELDS:
            if f"retry_{key}" in self.cleaned_data and self.cleaned_data[f"retry_{key}"] is None:
                self.instance.retry_minutes[key] = None
        super()._post_clean()
        # "campaign" is not a form field, so the unique (campaign, name) check is ours.
        if self.instance.campaign_id and self.cleaned_data.get("name"):
            clash = SubCampaign.objects.filter(
                campaign_id=self.instance.campaign_id, name=self.cleaned_data["name"]
            ).exclude(pk=self.instance.pk)
            if clash.exists():
                self.add_error("name", _("This campaign already has a sub-campaign of that name."))


class VoiceMessageForm(forms.Form):
    file = forms.FileField(
        label=_("Message to play on answer"),
        help_text=_(
            "WAV, 16-bit PCM, mono, 8,000 or 16,000 Hz, 1 second to 2 minutes, up to 5 MB."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".wav,audio/wav,audio/x-wav"}),
    )
