from celery.exceptions import TimeoutError as CeleryTimeout
from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from accounts.models import Account
from accounts.tasks import worker_schema_check


class Command(BaseCommand):
    help = "Sends a check task from each account's context and verifies a worker runs it there."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=20.0)
        parser.add_argument("--limit", type=int, default=5, help="How many accounts to check")

    def handle(self, *args, **options):
        accounts = list(
            Account.objects.exclude(schema_name="public").order_by("pk")[: options["limit"]]
        )
        if not accounts:
            raise CommandError("There are no accounts to check.")
        for account in accounts:
            with tenant_context(account):
                result = worker_schema_check.delay()
            try:
                answer = result.get(timeout=options["timeout"])
            except CeleryTimeout:
                raise CommandError(
                    f"No worker answered within {options['timeout']} s. Is a worker running?"
                ) from None
            if answer["current_schema"] != account.schema_name:
                raise CommandError(
                    f"Task for {account.schema_name} ran in {answer['current_schema']}."
                )
            self.stdout.write(f"{account.name}: worker ran in schema {answer['current_schema']}.")
        self.stdout.write(self.style.SUCCESS("Workers run tasks in the right account schema."))
