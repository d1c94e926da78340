"""Writes to contact lists: one transaction, the audit row inside it, work enqueued on commit."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils.translation import gettext as _

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


@transaction.atomic(durable=True)
def do_delete_contact_list(contact_list: ContactList, *, actor, request=None) -> int:
    """Deletes a list that nothing dials: ready or failed, attached to no sub-campaign, none
    of its contacts with a dial state. Attempts already made stay in the ledger (the
    trace). Returns the contacts deleted. Raises ValidationError saying why it cannot."""
    contact_list = ContactList.objects.select_for_update().get(pk=contact_list.pk)
    if contact_list.status in (ContactList.Status.QUEUED, ContactList.Status.IMPORTING):
        raise ValidationError(_("The list is still being imported; delete it once it is done."))
    # The reverse relations of the campaigns app (a layer above), read by name only.
    if contact_list.sub_campaigns.exists():
        raise ValidationError(_("Sub-campaigns use this list: remove it from them first."))
    if contact_list.contacts.filter(dial_states__isnull=False).exists():
        raise ValidationError(
            _("Campaigns have dialled this list's contacts; it is kept with their history.")
        )
    contacts = contact_list.contacts.count()
    audit(actor, "contact_list.delete", account=connection.tenant, obj=contact_list,
          details={"name": contact_list.name, "status": contact_list.status,
                   "contacts": contacts, "rejected": contact_list.rows_rejected},
          request=request)  # fmt: skip
    path = contact_list.upload_path
    contact_list.delete()
    if path:
        transaction.on_commit(lambda: default_storage.exists(path) and default_storage.delete(path))
    return contacts
