from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.actions import do_create_enterprise


class Command(BaseCommand):
    help = "Creates an enterprise."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--time-zone", default="America/Chicago")
        parser.add_argument("--region", default="US", choices=["US", "BR"])
        parser.add_argument("--language", default="en", choices=["en", "pt-br"])

    def handle(self, *args, **options):
        try:
            enterprise = do_create_enterprise(
                options["name"],
                time_zone=options["time_zone"],
                default_region=options["region"],
                language=options["language"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(
            self.style.SUCCESS(f"Enterprise {enterprise.name} created (id {enterprise.pk}).")
        )
