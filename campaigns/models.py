"""Per-account campaigns, sub-campaigns and the dial state of each contact device."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import connection, models
from django.utils.translation import gettext_lazy as _

from accounts.sending_domains import sender_problem
from campaigns.sms_text import MAX_PARTS, longest, sms_parts
from contacts.models import Contact, ContactList
from devices.models import Channel, SourceType
from devices.policy import rule_label

DEFAULT_RETRY_MINUTES = {
    "NO_ANSWER": 60,
    "BUSY": 15,
    "VOICEMAIL": 240,
    "FAILED": 120,
    "ABANDONED": 30,
    "UNDELIVERED": 240,
}


TEMPLATE_FIELDS = ("name", "client_id")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def template_errors(text: str) -> str:
    """A message may use only {name} and {client_id}; anything else is refused here,
    not discovered by a worker in the middle of a campaign."""
    unknown = sorted({m for m in _PLACEHOLDER.findall(text or "") if m not in TEMPLATE_FIELDS})
    if unknown:
        return _("Unknown placeholder %(found)s: use {name} or {client_id}.") % {
            "found": ", ".join("{" + u + "}" for u in unknown)
        }
    return ""


def render_message(text: str, *, name: str, client_id: str) -> str:
    values = {"name": name, "client_id": client_id}
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text or "")


class Campaign(models.Model):
    name = models.CharField(_("name"), max_length=120, unique=True)
    description = models.TextField(_("description"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    created_by_label = models.CharField(max_length=254, blank=True)
    blacklists = models.ManyToManyField(
        "Blacklist", verbose_name=_("campaign blacklists"), blank=True, related_name="campaigns"
    )
    # Auto-add rules: numbers that keep not answering, or that a gateway or an agent
    # marks as spam or a wrong number, join the chosen blacklist.
    auto_blacklist = models.ForeignKey(
        "Blacklist",
        verbose_name=_("auto-add to"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    auto_unanswered_after = models.PositiveSmallIntegerField(
        _("after consecutive unanswered attempts"),
        default=0,
        help_text=_("0 turns this rule off."),
    )
    auto_on_wrong_number = models.BooleanField(
        _("when a number is reported as spam or a wrong number"), default=False
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")

    def __str__(self) -> str:
        return self.name


class Purpose(models.TextChoices):
    TELEMARKETING = "telemarketing", _("Telemarketing")
    INFORMATIONAL = "informational", _("Informational")
    COLLECTIONS = "collections", _("Collections")


class SubCampaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        ACTIVE = "active", _("Active")
        PAUSED = "paused", _("Paused")
        COMPLETED = "completed", _("Completed")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="sub_campaigns")
    name = models.CharField(_("name"), max_length=120)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    purpose = models.CharField(_("purpose"), max_length=16, choices=Purpose.choices)
    caller_id = models.CharField(_("caller ID"), max_length=20, blank=True)
    sms_source_address = models.CharField(_("SMS source address"), max_length=20, blank=True)
    sms_source_type = models.CharField(
        _("SMS source type"), max_length=12, choices=SourceType.choices, blank=True
    )
    email_from = models.CharField(_("email From"), max_length=254, blank=True)
    message = models.TextField(
        _("message"),
        blank=True,
        help_text=_("SMS text, or the email body. {name} and {client_id} are filled in."),
    )
    email_subject = models.CharField(_("email subject"), max_length=200, blank=True)
    record_calls = models.BooleanField(_("record calls"), default=False)
    # Voice: the message played on answer (campaigns.voice_messages), in private storage.
    voice_message_file = models.CharField(max_length=255, blank=True)
    voice_message_name = models.CharField(_("message to play"), max_length=120, blank=True)
    voice_message_seconds = models.FloatField(default=0)
    pacing_per_minute = models.PositiveIntegerField(_("pacing (attempts per minute)"), default=60)
    max_attempts = models.PositiveSmallIntegerField(_("max attempts per number"), default=3)
    retry_minutes = models.JSONField(
        _("wait before retry (minutes, per result)"), default=dict, blank=True
    )
    start_date = models.DateField(_("start date"), null=True, blank=True)
    end_date = models.DateField(_("end date"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.DRAFT
    )
    contact_lists = models.ManyToManyField(
        ContactList, verbose_name=_("contact lists"), related_name="sub_campaigns", blank=True
    )
    dispatch_credit = models.FloatField(default=0)
    last_dispatch_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign__name", "name"]
        verbose_name = _("sub-campaign")
        verbose_name_plural = _("sub-campaigns")
        constraints = [
            models.UniqueConstraint(fields=["campaign", "name"], name="sub_campaign_name_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign.name} / {self.name}"

    def sending_problem(self) -> str:
        """Why this email sub-campaign may not send from its From address now ("" if it
        may): its domain must be one of the enterprise's sending domains."""
        return sender_problem(connection.tenant.enterprise_id, self.email_from)

    def retry_wait_minutes(self, disposition: str) -> int | None:
        """Minutes before the next try after this result; None means no retry."""
        waits = {**DEFAULT_RETRY_MINUTES, **(self.retry_minutes or {})}
        value = waits.get(disposition)
        return None if value is None else int(value)

    def clean(self) -> None:
        errors = {}
        if self.start_date and self.end_date and self.start_date > self.end_date:
            errors["end_date"] = _("The end date must be on or after the start date.")
        if self.channel == Channel.SMS and not self.sms_source_address:
            errors["sms_source_address"] = _("An SMS sub-campaign needs a source address.")
        if self.channel == Channel.SMS and not self.sms_source_type:
            errors["sms_source_type"] = _("Choose the type of the source address.")
        if self.channel == Channel.EMAIL and not self.email_from:
            errors["email_from"] = _("An email sub-campaign needs a From address.")
        elif self.channel == Channel.EMAIL and (problem := self.sending_problem()):
            errors["email_from"] = problem
        if self.channel in (Channel.SMS, Channel.EMAIL) and not self.message.strip():
            errors["message"] = _("Write the message to send.")
        if self.channel == Channel.EMAIL and not self.email_subject.strip():
            errors["email_subject"] = _("Write the email subject.")
        bad = template_errors(self.message)
        if bad:
            errors["message"] = bad
        elif self.channel == Channel.SMS and sms_parts(self.message) > MAX_PARTS:
            errors["message"] = _(
                "This text takes %(parts)s SMS parts; carriers deliver at most %(most)s. "
                "Shorten it to %(longest)s characters or fewer (names filled in count too)."
            ) % {"parts": sms_parts(self.message), "most": MAX_PARTS,
                 "longest": longest(self.message)}  # fmt: skip
        for key, value in (self.retry_minutes or {}).items():
            if value is not None and (not isinstance(value, int) or value < 0):
                errors["retry_minutes"] = _("Waits must be whole minutes, 0 or more (%(key)s).") % {
                    "key": key
                }
        if errors:
            raise ValidationError(errors)


class DialState(models.Model):
    """One device (phone or email) of one contact, as one sub-campaign works through it."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DIALING = "dialing", _("Dialing")
        DONE = "done", _("Done")
        SUPPRESSED = "suppressed", _("Suppressed")

    sub_campaign = models.ForeignKey(
        SubCampaign, on_delete=models.CASCADE, related_name="dial_states"
    )
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="dial_states")
    device_key = models.CharField(max_length=254)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True)
    # Set when the dispatcher claims the state; the attempt task must present it.
    claim_token = models.UUIDField(null=True)
    claimed_at = models.DateTimeField(null=True)
    # The ledger row of the attempt authorised and not yet finished (crash recovery).
    current_attempt_id = models.BigIntegerField(null=True)
    last_disposition = models.CharField(max_length=16, blank=True)
    # The gate rule that last suppressed or deferred the state (devices.policy RULE_*), its
    # source (a device setting's source, a blacklist's id, a registry's code) and the
    # words shown for it. Written only by campaigns.dial_states.
    last_rule = models.CharField(max_length=32, blank=True)
    last_rule_source = models.CharField(max_length=64, blank=True)
    last_reason = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["sub_campaign", "contact", "device_key"], name="one_state_per_device"
            )
        ]
        indexes = [
            models.Index(
                fields=["sub_campaign", "status", "next_attempt_at"], name="dialstate_due"
            ),
            models.Index(fields=["device_key"], name="dialstate_device"),
        ]

    def __str__(self) -> str:
        return f"{self.device_key} ({self.status})"

    @property
    def reason_text(self) -> str:
        """Why the state is where it is, in words: "Device block: Manual: dispute"."""
        if not self.last_rule:
            return self.last_reason
        label = rule_label(self.last_rule)
        return f"{label}: {self.last_reason}" if self.last_reason else label


class Blacklist(models.Model):
    """Numbers and extensions the campaigns using this list must never dial."""

    name = models.CharField(_("name"), max_length=120, unique=True)
    description = models.TextField(_("description"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    created_by_label = models.CharField(_("created by"), max_length=254, blank=True)
    # Kept by the dialer in the transaction that suppresses, so monitoring is one read.
    suppressed_count = models.BigIntegerField(_("attempts suppressed"), default=0)
    last_suppressed_at = models.DateTimeField(_("last suppressed"), null=True, blank=True)
    # Kept by campaigns.blacklists in the transaction of each change (entries added or
    # removed, campaigns attached or detached), so no page counts a list's entries.
    entry_count = models.BigIntegerField(_("entries"), default=0)
    campaign_count = models.PositiveIntegerField(_("campaigns"), default=0)

    class Meta:
        ordering = ["name"]
        verbose_name = _("campaign blacklist")
        verbose_name_plural = _("campaign blacklists")

    def __str__(self) -> str:
        return self.name


class BlacklistEntry(models.Model):
    class Kind(models.TextChoices):
        PHONE = "phone", _("Phone number")
        EXTENSION = "extension", _("Extension")

    class Source(models.TextChoices):
        MANUAL = "manual", _("Manual")
        IMPORT = "import", _("Import")
        OPT_OUT = "opt_out", _("Opt-out")
        AUTO_RULE = "auto_rule", _("Auto-add rule")
        API = "api", _("API")

    blacklist = models.ForeignKey(Blacklist, on_delete=models.CASCADE, related_name="entries")
    kind = models.CharField(_("type"), max_length=10, choices=Kind.choices)
    device_key = models.CharField(_("number or extension"), max_length=20)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    source = models.CharField(_("source"), max_length=10, choices=Source.choices)
    created_at = models.DateTimeField(_("added"), auto_now_add=True)
    created_by_label = models.CharField(_("added by"), max_length=254, blank=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("blacklist entry")
        verbose_name_plural = _("blacklist entries")
        constraints = [
            models.UniqueConstraint(fields=["blacklist", "device_key"], name="one_entry_per_key")
        ]
        # The unique (blacklist, device_key) index answers the gate, which asks by list;
        # no index on the key alone: bulk imports maintain one index less.

    def __str__(self) -> str:
        return self.device_key


class BlacklistImport(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Importing")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    blacklist = models.ForeignKey(Blacklist, on_delete=models.CASCADE, related_name="imports")
    file_name = models.CharField(_("file"), max_length=255)
    upload_path = models.CharField(max_length=255)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.QUEUED
    )
    bytes_total = models.BigIntegerField(default=0)
    bytes_read = models.BigIntegerField(default=0)
    lines_read = models.PositiveIntegerField(_("lines read"), default=0)
    added = models.PositiveIntegerField(_("added"), default=0)
    duplicates = models.PositiveIntegerField(_("duplicates ignored"), default=0)
    rejected = models.PositiveIntegerField(_("lines rejected"), default=0)
    # The first rejected lines with their numbers and reasons: [[line, reason, raw], ...]
    issues = models.JSONField(default=list, blank=True)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("uploaded"), auto_now_add=True)
    created_by_label = models.CharField(_("uploaded by"), max_length=254, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.file_name

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.bytes_total:
            return 0
        return min(99, int(self.bytes_read * 100 / self.bytes_total))


class AgentDisposition(models.Model):
    """What an agent recorded about one attempt, beyond the call's own result."""

    class Code(models.TextChoices):
        DO_NOT_CALL = "do_not_call", _("Do not call")
        WRONG_NUMBER = "wrong_number", _("Wrong number")
        SPAM = "spam", _("Spam")
        CALLBACK = "callback", _("Call back later")
        NOT_INTERESTED = "not_interested", _("Not interested")

    attempt_id = models.BigIntegerField()
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="dispositions")
    campaign_id = models.BigIntegerField(null=True)
    device_key = models.CharField(_("device"), max_length=254)
    code = models.CharField(_("disposition"), max_length=16, choices=Code.choices)
    note = models.CharField(_("note"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("when"), auto_now_add=True)
    created_by_label = models.CharField(_("agent"), max_length=254, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.device_key}: {self.code}"
