"""Schema housekeeping: the template schema new accounts are cloned from."""

from __future__ import annotations

from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_exists


def ensure_template_schema(verbosity: int = 0) -> None:
    """Creates (if missing) and migrates the schema that new accounts are cloned from.

    Cloning a migrated schema takes a fraction of a second; replaying every tenant
    migration for each new account would take longer with every migration we add.
    """
    name = settings.TENANT_BASE_SCHEMA
    if not schema_exists(name):
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{name}"')
    call_command(
        "migrate_schemas", tenant=True, schema_name=name, interactive=False, verbosity=verbosity
    )
    connection.set_schema_to_public()
