"""Contact-list work for Celery workers (run in the sending account's schema)."""

from __future__ import annotations

from celery import shared_task

from contacts.importer import run_import


@shared_task
def import_contact_list(contact_list_id: int) -> dict | None:
    """Imports an uploaded list; a repeated delivery of a finished import does nothing."""
    summary = run_import(contact_list_id)
    return summary.as_dict() if summary is not None else None
