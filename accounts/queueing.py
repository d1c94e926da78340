"""Sending Celery tasks to the current account's schema, after commit, without letting a
broker outage break the request.

Tasks are named by their registered name ("campaigns.tasks.perform_attempts"): the
modules that send work never import the task modules that call back into them, so there
are no import cycles and the layers stay one-way (docs/architecture.md).
"""

from __future__ import annotations

import logging

from celery import current_app
from django.db import connection, transaction

logger = logging.getLogger(__name__)


def send(task: str, *, args=(), kwargs=None, schema: str | None = None, **options) -> bool:
    """Sends the task now, to ``schema`` (default: the current one). False, logged, if the
    broker is unreachable: callers keep the work recorded in the database (a queued
    import, a claimed attempt) and a beat sweep sends it again."""
    schema = schema or connection.schema_name
    try:
        current_app.send_task(
            task, args=list(args), kwargs=kwargs or {}, headers={"_schema_name": schema}, **options
        )
    except Exception:  # noqa: BLE001 - kombu/redis raise many kinds
        logger.warning("Broker unavailable: %s for %s will be sent by the sweep", task, schema)
        return False
    return True


def send_on_commit(task: str, *, args=(), kwargs=None, **options) -> None:
    """Sends ``task`` to the current account's schema once the transaction commits."""
    schema = connection.schema_name
    transaction.on_commit(lambda: send(task, args=args, kwargs=kwargs, schema=schema, **options))
