"""While PostgreSQL is unavailable (a restart, a failover): which errors say so, and what
the portal does about them.

- Pages answer 503 with Retry-After and a page that says to come back; the API answers
  the same as a problem (enterprise_portal.middleware.server_error, api.problems).
- A Celery task that cannot reach the database is sent again later, in the account it was
  sent from (``retry_while_down``), rather than failed: a failed task is acknowledged and
  gone, acks_late or not.

tests/test_postgres_restart.py stops PostgreSQL for 30 s in the middle of dispatch.
"""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError, connection
from tenant_schemas_celery.app import get_schema_name_from_task

logger = logging.getLogger(__name__)

# PostgreSQL refused or cut the connection (stopped, restarting, unreachable) or gave up on
# the statement (a timeout): the caller should come back later, not report a bug.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 30  # what pages and the API tell clients
# A task is tried again after 2, 4, 8, then every 10 s (so work resumes within seconds of
# the database's return), for about five minutes; after that, work that a beat sweep
# watches (claimed attempts: requeue_stale_claims) is sent again by the sweep.
TASK_RETRY_MAX_SECONDS = 10
TASK_RETRIES = 32


def enter_sent_schema(task) -> None:
    """The schema of the account the task was sent from, entered here if it was not already.

    tenant-schemas-celery switches schema in a task_prerun signal handler, whose errors
    Celery only logs: with the database down the account cannot be read, and the task
    would run on in the public schema (and, once the database is back, fail there for
    good). Called first thing in the task, a failure is the task's own, and is retried."""
    schema = get_schema_name_from_task(task, None)
    if schema and connection.schema_name != schema:
        connection.set_tenant(task.get_tenant_for_schema(schema))


def retry_while_down(task, exc: Exception):
    """Sends the task again later (``raise retry_while_down(self, exc)``); once the retries
    are spent, ``exc`` is raised. Only for tasks that are safe to run twice.

    The retry names the schema it was sent to in its headers: the connection may still be
    in the public schema (see ``enter_sent_schema``), which the retry would carry instead."""
    retries = task.request.retries
    logger.warning("Database unavailable (%s); %s retried (%d so far)", exc, task.name, retries)
    return task.retry(
        exc=exc,
        countdown=min(2 ** (retries + 1), TASK_RETRY_MAX_SECONDS),
        max_retries=TASK_RETRIES,
        headers={"_schema_name": get_schema_name_from_task(task, None)},
    )
