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
