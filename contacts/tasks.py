"""Contact-list work for Celery workers (run in the sending account's schema)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.models import Account
from accounts.queueing import send
from contacts.importer import run_import
from contacts.models import ContactList


@shared_task
def import_contact_list(contact_list_id: int) -> dict | None:
    """Imports an uploaded list; a repeated delivery of a finished import does nothing."""
    summary = run_import(contact_list_id)
    return summary.as_dict() if summary is not None else None


@shared_task(ignore_result=True)
def resume_queued_imports() -> int:
    """Beat: lists uploaded while the broker was down are still queued; send them now."""
    cutoff = timezone.now() - dt.timedelta(minutes=2)
    sent = 0
    for account in Account.objects.exclude(schema_name="public").filter(is_active=True):
        with tenant_context(account):
            for pk in ContactList.objects.filter(
                status=ContactList.Status.QUEUED, created_at__lt=cutoff
            ).values_list("pk", flat=True):
                sent += send("contacts.tasks.import_contact_list", args=[pk])
    return sent
