from celery import shared_task

from devices.ledger import drop_expired_partitions, ensure_partitions


@shared_task(ignore_result=True)
def maintain_ledger_partitions() -> dict:
    """Beat, daily: create the coming months' partitions, drop those past retention."""
    return {"created": ensure_partitions(), "dropped": drop_expired_partitions()}


@shared_task
def import_registry_file(import_id: int) -> dict | None:
    """Imports an uploaded registry file (public schema). A repeated delivery of a finished
    import does nothing; one whose worker died starts again from the stored file."""
    from dataclasses import asdict

    from devices.registry import run_import

    outcome = run_import(import_id)
    return asdict(outcome) if outcome is not None else None


@shared_task(ignore_result=True)
def resume_queued_registry_imports() -> int:
    """For beat (every few minutes): uploads queued while the broker was down are still
    ``queued``; send them now. A second delivery of one already running does nothing."""
    import datetime as dt

    from django.utils import timezone

    from devices.models import RegistryImport

    cutoff = timezone.now() - dt.timedelta(minutes=2)
    queued = RegistryImport.objects.filter(
        status=RegistryImport.Status.QUEUED, created_at__lt=cutoff
    ).exclude(upload_path="")
    sent = 0
    for pk in queued.values_list("pk", flat=True):
        import_registry_file.delay(pk)
        sent += 1
    return sent


@shared_task(ignore_result=True)
def release_expired_blocks() -> int:
    """Beat: contacts a block stopped go back to their queues once the block expires.

    Looks back a day, so a beat that was down for a while still catches up; releasing is
    idempotent (only suppressed states move)."""
    import datetime as dt

    from django.utils import timezone

    from devices.actions import do_release_expired_blocks

    now = timezone.now()
    return sum(do_release_expired_blocks(since=now - dt.timedelta(days=1), now=now).values())
