from celery import shared_task
from django.core.management import call_command
from django.db import connection

from accounts import searches, webhooks


@shared_task
def clear_expired_sessions() -> None:
    call_command("clearsessions")


@shared_task
def purge_expired_searches() -> int:
    return searches.purge_expired()


@shared_task
def worker_schema_check() -> dict:
    """Reports the schema a worker runs this task in, as PostgreSQL sees it.

    ``manage.py check_workers`` sends it from each account's context: a healthy
    deployment answers with that account's schema, proving tenant routing works.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        (current,) = cursor.fetchone()
    return {"schema_name": connection.schema_name, "current_schema": current}


@shared_task(ignore_result=True)
def deliver_webhook(delivery_id: int) -> str | None:
    return webhooks.deliver(delivery_id)


@shared_task(ignore_result=True)
def send_due_webhooks() -> int:
    """Beat: deliveries whose task was lost, or written in bulk, are sent again."""
    return webhooks.send_due()
