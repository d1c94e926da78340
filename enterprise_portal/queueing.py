"""Sending Celery tasks after commit without letting a broker outage break the request."""

from __future__ import annotations

import logging

from django.db import connection, transaction

logger = logging.getLogger(__name__)


def send_on_commit(task, *, args=(), kwargs=None, **options) -> None:
    """Sends ``task`` to the current account's schema once the transaction commits.

    If the broker is unreachable the work stays recorded in the database (a queued
    list, a claimed attempt) and a beat sweep sends it again: the page still answers.
    """
    schema = connection.schema_name

    def send() -> None:
        try:
            task.apply_async(
                args=args, kwargs=kwargs or {}, headers={"_schema_name": schema}, **options
            )
        except Exception:  # noqa: BLE001 - kombu/redis raise many kinds
            logger.warning(
                "Broker unavailable: %s for %s will be sent by the sweep", task.name, schema
            )

    transaction.on_commit(send)
