from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.actions import do_create_account
from accounts.models import Enterprise


class Command(BaseCommand):
    help = "Creates an account (and its schema, cloned from the template) in an enterprise."

    def add_arguments(self, parser):
        parser.add_argument("enterprise", help="Enterprise name or id")
        parser.add_argument("name")
        parser.add_argument("--slug", help="URL name under /a/ (default: from the name)")

    def handle(self, *args, **options):
        ref = options["enterprise"]
        query = (
            Enterprise.objects.filter(pk=int(ref))
            if ref.isdigit()
            else Enterprise.objects.filter(name=ref)
        )
        enterprise = query.first()
        if enterprise is None:
            raise CommandError(f"No enterprise named or numbered {ref!r}.")
        try:
            account = do_create_account(enterprise, options["name"], slug=options["slug"])
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Account {account.name} created at {account.url_prefix} "
                f"(schema {account.schema_name}) in {account.creation_seconds:.2f} s."
            )
        )
