"""What the API keeps of its own: the first answer to each idempotent write."""

from __future__ import annotations

from django.db import models

from accounts.models import ApiKey


class IdempotentRequest(models.Model):
    """A write sent with an ``Idempotency-Key``: claimed before it runs (so a second copy
    arriving at the same time waits for it), then its answer, returned to every retry."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)  # method, path and body, hashed
    status = models.PositiveSmallIntegerField(null=True)  # None while it runs
    body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "key"], name="one_request_per_key")
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotent_request_age")]

    def __str__(self) -> str:
        return f"{self.key} ({self.status or 'running'})"
