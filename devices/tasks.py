from celery import shared_task

from devices.ledger import drop_expired_partitions, ensure_partitions


@shared_task(ignore_result=True)
def maintain_ledger_partitions() -> dict:
    """Beat, daily: create the coming months' partitions, drop those past retention."""
    return {"created": ensure_partitions(), "dropped": drop_expired_partitions()}
