"""Writes to contact lists: one transaction, the audit row inside it, work enqueued on commit."""

from __future__ import annotations

import os
import uuid

from django.core.files.storage import default_storage
from django.db import connection, transaction

from accounts.actions import audit
from contacts.importer import check_upload_size, run_import
from contacts.models import ContactList
from contacts.tasks import import_contact_list
from enterprise_portal.queueing import send_on_commit

# Uploads up to this size are imported in the request itself (a few thousand rows, well under a
# second), so small lists are ready when the page loads; larger ones go to a Celery worker and
# the list page shows progress.
SYNC_IMPORT_MAX_BYTES = 256 * 1024


def upload_path() -> str:
    """A private storage path for an upload: per account, unguessable, never served."""
    return f"uploads/{connection.schema_name}/{uuid.uuid4().hex}.csv"


def do_upload_contact_list(*, name: str, uploaded_file, actor, request=None) -> ContactList:
    """Stores an uploaded CSV and creates its contact list, then imports it.

    Refuses files over ``settings.MAX_UPLOAD_MB`` (``ValidationError``) before storing
    anything. Files up to ``SYNC_IMPORT_MAX_BYTES`` are imported before this returns;
    larger ones are imported by ``contacts.tasks.import_contact_list``, sent when the
    transaction commits, in the current account's schema.
    """
    size = uploaded_file.size
    check_upload_size(size)
    stored = default_storage.save(upload_path(), uploaded_file)
    now = size <= SYNC_IMPORT_MAX_BYTES
    try:
        with transaction.atomic():
            contact_list = ContactList.objects.create(
                name=name,
                source_file=os.path.basename(uploaded_file.name or "")[:255],
                upload_path=stored,
                bytes_total=size,
                created_by_id=actor.pk if actor is not None else None,
                created_by_label=(actor.email if actor is not None else "")[:254],
            )
            audit(
                actor,
                "contact_list.upload",
                account=connection.tenant,
                obj=contact_list,
                details={
                    "file": contact_list.source_file,
                    "bytes": size,
                    "import": "now" if now else "queued",
                },
                request=request,
            )
            if not now:
                # The schema travels in the message headers; fixed here, not at commit time.
                send_on_commit(import_contact_list, args=[contact_list.pk])
    except BaseException:
        default_storage.delete(stored)
        raise
    if now:
        run_import(contact_list.pk)
        contact_list.refresh_from_db()
    return contact_list
