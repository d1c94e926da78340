from celery import shared_task

from devices.ledger import drop_expired_partitions, ensure_partitions


@shared_task(ignore_result=True)
def maintain_ledger_partitions() -> dict:
    """Beat, daily: create the coming months' partitions, drop those past retention."""
    return {"created": ensure_partitions(), "dropped": drop_expired_partitions()}


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
