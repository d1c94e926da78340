from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts.actions import ensure_public_tenant
from accounts.schemas import ensure_template_schema


class Command(BaseCommand):
    help = "Migrates the shared schema, the account template schema and every account schema."

    def handle(self, *args, **options):
        verbosity = options["verbosity"]
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=verbosity)
        ensure_public_tenant()
        ensure_template_schema(verbosity=verbosity)
        call_command("migrate_schemas", tenant=True, interactive=False, verbosity=verbosity)
        self.stdout.write(self.style.SUCCESS("Shared, template and account schemas are migrated."))
