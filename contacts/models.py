"""Per-account contact lists (tenant schema)."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.translation import gettext_lazy as _


class ContactList(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        IMPORTING = "importing", _("Importing")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    name = models.CharField(_("name"), max_length=120)
    source_file = models.CharField(_("file"), max_length=255, blank=True)
    upload_path = models.CharField(max_length=255, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.QUEUED
    )
    bytes_total = models.BigIntegerField(default=0)
    bytes_read = models.BigIntegerField(default=0)
    rows_read = models.PositiveIntegerField(_("rows read"), default=0)
    rows_imported = models.PositiveIntegerField(_("rows kept"), default=0)
    rows_rejected = models.PositiveIntegerField(_("rows rejected"), default=0)
    rows_merged = models.PositiveIntegerField(_("duplicates merged"), default=0)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("uploaded"), auto_now_add=True)
    created_by_id = models.BigIntegerField(null=True)
    created_by_label = models.CharField(max_length=254, blank=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("contact list")
        verbose_name_plural = _("contact lists")

    def __str__(self) -> str:
        return self.name

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.READY:
            return 100
        if not self.bytes_total:
            return 0
        return min(99, int(self.bytes_read * 100 / self.bytes_total))


class Contact(models.Model):
    contact_list = models.ForeignKey(ContactList, on_delete=models.CASCADE, related_name="contacts")
    client_id = models.CharField(_("client ID"), max_length=100, blank=True)
    name = models.CharField(_("name"), max_length=200, blank=True)
    phones = ArrayField(models.CharField(max_length=20), default=list, blank=True)
    email = models.CharField(_("email"), max_length=254, blank=True)
    time_zone = models.CharField(_("time zone"), max_length=64, blank=True)
    extra = models.JSONField(default=dict, blank=True)
    # What identifies a person in the list: the client ID, else the first phone or email.
    merge_key = models.CharField(max_length=254)
    line_number = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        constraints = [
            models.UniqueConstraint(
                fields=["contact_list", "merge_key"], name="contact_unique_in_list"
            )
        ]
        indexes = [models.Index(fields=["client_id"], name="contact_client_id")]

    def __str__(self) -> str:
        return self.name or self.client_id or self.merge_key


class ContactImportIssue(models.Model):
    contact_list = models.ForeignKey(ContactList, on_delete=models.CASCADE, related_name="issues")
    line_number = models.PositiveIntegerField(_("line"))
    reason = models.CharField(_("reason"), max_length=300)
    raw = models.CharField(_("content"), max_length=300, blank=True)

    class Meta:
        ordering = ["line_number", "id"]

    def __str__(self) -> str:
        return f"{self.line_number}: {self.reason}"
