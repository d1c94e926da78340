"""Shared (public schema) models of the devices app: the attempt ledger, calling rules."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Account, Enterprise


class Channel(models.TextChoices):
    VOICE = "voice", _("Voice")
    SMS = "sms", _("SMS")
    EMAIL = "email", _("Email")


class Direction(models.TextChoices):
    OUTBOUND = "outbound", _("Outbound")
    INBOUND = "inbound", _("Inbound")


class Disposition(models.TextChoices):
    PENDING = "PENDING", _("In progress")
    ANSWERED = "ANSWERED", _("Answered")
    NO_ANSWER = "NO_ANSWER", _("No answer")
    BUSY = "BUSY", _("Busy")
    VOICEMAIL = "VOICEMAIL", _("Voicemail")
    FAILED = "FAILED", _("Failed")
    ABANDONED = "ABANDONED", _("Abandoned")
    WRONG_NUMBER = "WRONG_NUMBER", _("Wrong number")
    SPAM = "SPAM", _("Marked as spam")
    SENT = "SENT", _("Sent")
    DELIVERED = "DELIVERED", _("Delivered")
    UNDELIVERED = "UNDELIVERED", _("Undelivered")
    RECEIVED = "RECEIVED", _("Received")
    SUPPRESSED = "SUPPRESSED", _("Suppressed")
    # From real carriers: SIP final codes and SMPP delivery reports.
    INVALID_NUMBER = "INVALID_NUMBER", _("Invalid number")
    DECLINED = "DECLINED", _("Declined")
    REJECTED = "REJECTED", _("Rejected by the carrier")
    # A call whose engine died mid-call, a text whose submission went unanswered: it may or
    # may not have reached the person, and it is never tried again (at most once).
    UNKNOWN = "UNKNOWN", _("Outcome unknown")


class RecordingState(models.TextChoices):
    NONE = "none", _("N/A")
    STORED = "stored", _("Stored")
    DELETED = "deleted", _("Deleted")


class SourceType(models.TextChoices):
    SHORT_CODE = "short_code", _("Short code")
    LONG_CODE = "long_code", _("Long code")
    ALPHA = "alpha", _("Alphanumeric")


class Attempt(models.Model):
    """One row per attempt to reach a device, from any account of any enterprise.

    The table is partitioned by month on ``attempted_at`` (see migration 0001 and
    ``devices.ledger``); its real primary key is (id, attempted_at), and ``id`` is
    unique on its own because it comes from one identity sequence.
    """

    id = models.BigAutoField(primary_key=True)
    attempted_at = models.DateTimeField(_("date"))
    enterprise_id = models.BigIntegerField()
    account_id = models.BigIntegerField()
    account_name = models.CharField(_("account"), max_length=120)
    campaign_id = models.BigIntegerField(null=True)
    campaign_name = models.CharField(_("campaign"), max_length=120, blank=True)
    sub_campaign_id = models.BigIntegerField(null=True)
    sub_campaign_name = models.CharField(_("sub-campaign"), max_length=120, blank=True)
    contact_id = models.BigIntegerField(null=True)
    dial_state_id = models.BigIntegerField(null=True)
    attempt_number = models.PositiveIntegerField(default=0)
    client_id = models.CharField(_("client ID"), max_length=100, blank=True)
    device_key = models.CharField(_("device"), max_length=254)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    direction = models.CharField(_("direction"), max_length=8, choices=Direction.choices)
    disposition = models.CharField(_("result"), max_length=16, choices=Disposition.choices)
    completed_at = models.DateTimeField(null=True)
    call_seconds = models.PositiveIntegerField(_("call seconds"), default=0)
    node = models.CharField(_("node"), max_length=64, blank=True)
    recording_state = models.CharField(
        _("recording"), max_length=8, choices=RecordingState.choices, default=RecordingState.NONE
    )
    recording_file = models.CharField(max_length=255, blank=True)
    recording_deleted_by = models.CharField(max_length=254, blank=True)
    recording_deleted_at = models.DateTimeField(null=True)
    message = models.TextField(_("message content"), blank=True)
    carrier_code = models.CharField(_("carrier"), max_length=16, blank=True)
    # What the carrier said, in its words: a SIP reason phrase, an SMPP receipt's stat/err.
    carrier_answer = models.CharField(_("carrier's answer"), max_length=160, blank=True)
    source_address = models.CharField(_("source address"), max_length=64, blank=True)
    source_type = models.CharField(
        _("source type"), max_length=12, choices=SourceType.choices, blank=True
    )
    suppression_rule = models.CharField(_("stopped by"), max_length=64, blank=True)
    suppression_detail = models.CharField(max_length=255, blank=True)

    class Meta:
        managed = False
        db_table = "devices_attempt"
        ordering = ["-attempted_at", "-id"]
        verbose_name = _("attempt")
        verbose_name_plural = _("attempts")

    def __str__(self) -> str:
        return f"{self.attempted_at:%Y-%m-%d %H:%M} {self.device_key} {self.disposition}"

    @property
    def sms_direction(self) -> str:
        """The carrier's words: TEXT_SENT (mobile terminated) or TEXT_RECEIVED (originated).
        A suppressed text was not sent: it has neither (see ``was_sent``)."""
        if self.direction == Direction.INBOUND:
            return "TEXT_RECEIVED"
        return "TEXT_SENT" if self.was_sent else ""

    @property
    def was_sent(self) -> bool:
        """Whether anything went out: a suppressed attempt reached no one."""
        return self.disposition != Disposition.SUPPRESSED

    @property
    def was_a_call(self) -> bool:
        """Call seconds and a recording apply to calls that were made, nothing else."""
        return self.channel == Channel.VOICE and self.was_sent


class CallingWindow(models.Model):
    """When an enterprise may call, in the callee's local time; per country or the default."""

    enterprise = models.ForeignKey(
        Enterprise, on_delete=models.CASCADE, related_name="calling_windows"
    )
    region = models.CharField(
        _("country"),
        max_length=2,
        blank=True,
        help_text=_("Two-letter country code (US, BR); empty for every other country."),
    )
    start = models.TimeField(_("from"))
    end = models.TimeField(_("until"))

    class Meta:
        verbose_name = _("calling window")
        verbose_name_plural = _("calling windows")
        constraints = [
            models.UniqueConstraint(fields=["enterprise", "region"], name="one_window_per_region"),
            models.CheckConstraint(
                condition=models.Q(start__lt=models.F("end")), name="window_order"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.region or '*'} {self.start:%H:%M}–{self.end:%H:%M}"


class Holiday(models.Model):
    enterprise = models.ForeignKey(Enterprise, on_delete=models.CASCADE, related_name="holidays")
    date = models.DateField(_("date"))
    region = models.CharField(_("country"), max_length=2, blank=True)
    name = models.CharField(_("name"), max_length=80, blank=True)

    class Meta:
        ordering = ["date"]
        verbose_name = _("holiday")
        verbose_name_plural = _("holidays")
        constraints = [
            models.UniqueConstraint(fields=["enterprise", "date", "region"], name="one_holiday")
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.name}"


class ActiveSubCampaign(models.Model):
    """The sub-campaigns the dispatcher must visit, so a tick never loops over every schema."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    sub_campaign_id = models.BigIntegerField()
    activated_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "sub_campaign_id"], name="one_active_entry")
        ]

    def __str__(self) -> str:
        return f"{self.account_id}/{self.sub_campaign_id}"


class Installation(models.Model):
    """One row: this database's identity. Keys kept outside the database (Redis) are
    prefixed with it, so a re-created database never meets another one's attempt ids."""

    key = models.UUIDField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return str(self.key)


def installation_key() -> str:
    import uuid

    global _INSTALLATION_KEY
    if _INSTALLATION_KEY is None:
        # Created by migration 0002, committed before any process can ask.
        row = Installation.objects.filter(pk=1).first()
        if row is None:  # a database migrated before the row existed
            row, _ = Installation.objects.get_or_create(pk=1, defaults={"key": uuid.uuid4()})
        _INSTALLATION_KEY = row.key.hex[:12]
    return _INSTALLATION_KEY


_INSTALLATION_KEY: str | None = None


class DeviceSetting(models.Model):
    """Block or Allow one device for a whole enterprise. Each save is a new row: the
    latest row is the device's setting (a Clear row means none), the rest its history."""

    class Action(models.TextChoices):
        BLOCK = "block", _("Block all calls to this device")
        ALLOW = "allow", _("Allow calls to this device")
        CLEAR = "clear", _("Remove the setting")

    class Source(models.TextChoices):
        MANUAL = "manual", _("Manual")
        IMPORT = "import", _("Import")
        SMS_OPT_OUT = "sms_opt_out", _("SMS opt-out")
        SMS_OPT_IN = "sms_opt_in", _("SMS opt-in")
        AGENT_DNC = "agent_dnc", _("Agent: do not call")
        EMAIL_UNSUBSCRIBE = "email_unsub", _("Email unsubscribe")
        API = "api", _("API")

    enterprise = models.ForeignKey(Enterprise, on_delete=models.CASCADE, related_name="+")
    device_key = models.CharField(_("device"), max_length=254)
    action = models.CharField(_("setting"), max_length=8, choices=Action.choices)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    created_at = models.DateTimeField(_("saved"), auto_now_add=True)
    created_by_label = models.CharField(_("saved by"), max_length=254, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("device setting")
        verbose_name_plural = _("device settings")
        indexes = [
            models.Index(
                fields=["enterprise", "device_key", "-created_at", "-id"],
                name="device_setting_latest",
            )
        ]

    def __str__(self) -> str:
        return f"{self.device_key}: {self.action}"

    def applies_at(self, instant) -> bool:
        return self.action != self.Action.CLEAR and (
            self.expires_at is None or self.expires_at > instant
        )


class Registry(models.Model):
    """A national do-not-call registry (Não Me Perturbe, US National DNC), platform-wide.

    Its numbers live in ``RegistryBlock`` rows of its current ``generation``: a full
    snapshot builds a new generation and switches to it in one transaction, so the policy
    gate never sees a half-loaded registry. ``last_imported_at`` is when the last import
    (full or incremental) finished: older than ``max_age_days`` means stale.
    """

    code = models.CharField(max_length=16, unique=True)
    name = models.CharField(_("registry"), max_length=80)
    country = models.CharField(_("country"), max_length=2, unique=True)
    max_age_days = models.PositiveSmallIntegerField(_("stale after (days)"))
    generation = models.BigIntegerField(default=0)
    size = models.BigIntegerField(_("numbers"), default=0)
    last_imported_at = models.DateTimeField(_("last import"), null=True, blank=True)
    last_full_import_at = models.DateTimeField(_("last full snapshot"), null=True, blank=True)

    class Meta:
        ordering = ["country"]
        verbose_name = _("national registry")
        verbose_name_plural = _("national registries")

    def __str__(self) -> str:
        return self.name


class RegistryBlock(models.Model):
    """The numbers of one registry generation that share all digits but the last four.

    ``prefix`` is the E.164 number without its ``+`` and last four digits, as an integer;
    ``suffixes`` holds the last four digits of each number in the block, either as sorted
    little-endian uint16 values (2 bytes a number, under 625 numbers) or as a 10,000-bit
    bitmap (1,250 bytes, from 625 numbers on), whichever is smaller. Blocks therefore never
    exceed 1,250 bytes and stay inline in the heap: no TOAST, no compression, one page read
    per lookup. See ``devices.registry``.
    """

    pk = models.CompositePrimaryKey("registry_id", "generation", "prefix")
    # Columns in this order pack without alignment padding (8 + 8 + 2 + 2 bytes).
    generation = models.BigIntegerField()
    prefix = models.BigIntegerField()
    # A plain id, not a foreign key: COPY of a million blocks skips a trigger per row.
    registry_id = models.SmallIntegerField()
    count = models.SmallIntegerField()
    suffixes = models.BinaryField()

    class Meta:
        verbose_name = _("registry block")
        verbose_name_plural = _("registry blocks")

    def __str__(self) -> str:
        return f"{self.registry_id}/{self.generation}/{self.prefix}: {self.count}"


class RegistryImport(models.Model):
    """One file (or archive of files) imported into a registry, with its progress."""

    class Kind(models.TextChoices):
        FULL = "full", _("Full snapshot")
        ADD = "add", _("Add numbers")
        REMOVE = "remove", _("Remove numbers")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        IMPORTING = "importing", _("Importing")
        READY = "ready", _("Imported")
        FAILED = "failed", _("Failed")

    registry = models.ForeignKey(
        Registry, verbose_name=_("registry"), on_delete=models.CASCADE, related_name="imports"
    )
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.QUEUED
    )
    source_name = models.CharField(_("file"), max_length=255)
    # Exactly one of them: an upload in private storage (removed once imported), or a
    # path on the server's disk given to the import_registry command.
    upload_path = models.CharField(max_length=500, blank=True)
    local_path = models.CharField(max_length=1000, blank=True)
    bytes_total = models.BigIntegerField(default=0)
    bytes_read = models.BigIntegerField(default=0)
    lines_read = models.BigIntegerField(_("lines read"), default=0)
    numbers_accepted = models.BigIntegerField(_("numbers accepted"), default=0)
    lines_rejected = models.BigIntegerField(_("lines rejected"), default=0)
    # The first REJECTED_KEPT rejected lines: [file, line number, text, reason].
    rejected = models.JSONField(default=list, blank=True)
    numbers_added = models.BigIntegerField(_("added"), default=0)
    numbers_removed = models.BigIntegerField(_("removed"), default=0)
    size_after = models.BigIntegerField(_("registry size after"), null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(_("uploaded"), auto_now_add=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    created_by = models.ForeignKey(
        "accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by_label = models.CharField(_("by"), max_length=254, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("registry import")
        verbose_name_plural = _("registry imports")

    def __str__(self) -> str:
        return f"{self.registry_id} {self.kind} {self.source_name}"

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.READY:
            return 100
        if not self.bytes_total:
            return 0
        return min(99, int(self.bytes_read * 100 / self.bytes_total))

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.READY, self.Status.FAILED)


class InboundReceipt(models.Model):
    """What a carrier or a recipient sent us once, by its own id: a second delivery of the
    same message (Kannel resends an MO it thinks we missed; a mail client repeats a
    one-click unsubscribe) finds its receipt and changes nothing again."""

    class Source(models.TextChoices):
        KANNEL_MO = "kannel_mo", _("SMS reply (Kannel)")
        EMAIL_UNSUBSCRIBE = "email_unsub", _("Email unsubscribe")

    source = models.CharField(max_length=16, choices=Source.choices)
    external_id = models.CharField(max_length=128)
    received_at = models.DateTimeField(auto_now_add=True)
    enterprise_id = models.BigIntegerField(null=True)
    device_key = models.CharField(max_length=254, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="one_receipt")
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.external_id}"


class SmsRoute(models.Model):
    """Which account last texted a device from a source address (a short code, a long
    number): where a reply to that address from that device belongs. Written when a text
    is handed to the gateway; read by the carrier's reply endpoint, which is shared by
    every account."""

    source_address = models.CharField(max_length=64)
    device_key = models.CharField(max_length=254)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    last_sent_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source_address", "device_key"], name="one_route")
        ]

    def __str__(self) -> str:
        return f"{self.source_address} ← {self.device_key}"
