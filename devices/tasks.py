"""Celery tasks of the compliance core (public schema)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from celery import shared_task
from django.utils import timezone

from accounts.queueing import send
from devices.actions import do_release_expired_blocks
from devices.ledger import drop_expired_partitions, ensure_partitions
from devices.models import RegistryImport
from devices.registry.freshness import announce_stale
from devices.registry.imports import run_import


@shared_task(ignore_result=True)
def maintain_ledger_partitions() -> dict:
    """Beat, daily: create the coming months' partitions, drop those past retention."""
    return {"created": ensure_partitions(), "dropped": drop_expired_partitions()}


@shared_task
def import_registry_file(import_id: int) -> dict | None:
    """Imports an uploaded registry file (public schema). A repeated delivery of a finished
    import does nothing; one whose worker died starts again from the stored file."""
    outcome = run_import(import_id)
    return dataclasses.asdict(outcome) if outcome is not None else None


@shared_task(ignore_result=True)
def resume_queued_registry_imports() -> int:
    """For beat (every few minutes): uploads queued while the broker was down are still
    ``queued``; send them now. A second delivery of one already running does nothing."""
    cutoff = timezone.now() - dt.timedelta(minutes=2)
    queued = RegistryImport.objects.filter(
        status=RegistryImport.Status.QUEUED, created_at__lt=cutoff
    ).exclude(upload_path="")
    sent = 0
    for pk in queued.values_list("pk", flat=True):
        sent += send("devices.tasks.import_registry_file", args=[pk], schema="public")
    return sent


@shared_task(ignore_result=True)
def release_expired_blocks() -> int:
    """Beat: contacts a block stopped go back to their queues once the block expires.

    Looks back a day, so a beat that was down for a while still catches up; releasing is
    idempotent (only suppressed states move)."""
    now = timezone.now()
    return sum(do_release_expired_blocks(since=now - dt.timedelta(days=1), now=now).values())


@shared_task(ignore_result=True)
def announce_stale_registries() -> list[str]:
    """Beat: a registry that went out of date is announced once (registry.stale) to every
    enterprise subscribed, per snapshot it goes stale on."""
    return announce_stale()
