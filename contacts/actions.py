"""Writes to contact lists: one transaction, the audit row inside it, work enqueued on commit."""

from __future__ import annotations

from django.db import connection

from accounts.actions import audit
from contacts.importer import run_import, upload_limit_bytes
from contacts.models import ContactList
from devices import uploads


def do_upload_contact_list(*, name: str, uploaded_file, actor, request=None) -> ContactList:
    """Stores an uploaded CSV and creates its contact list, then imports it.

    Goes through the upload pipeline (devices.uploads): files over ``MAX_UPLOAD_MB`` are
    refused (``ValidationError``) before anything is stored; small files are imported
    before this returns; larger ones by ``contacts.tasks.import_contact_list``, sent when
    the transaction commits, in the current account's schema.
    """

    def create_job(path: str, file_name: str, size: int) -> ContactList:
        contact_list = ContactList.objects.create(
            name=name,
            source_file=file_name,
            upload_path=path,
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
                "import": "now" if size <= uploads.SYNC_IMPORT_MAX_BYTES else "queued",
            },
            request=request,
        )
        return contact_list

    contact_list, ran_now = uploads.start_import(
        uploaded_file,
        kind="contacts",
        limit_bytes=upload_limit_bytes(),
        create_job=create_job,
        task="contacts.tasks.import_contact_list",
        run_now=run_import,
    )
    if ran_now:
        contact_list.refresh_from_db()
    return contact_list
