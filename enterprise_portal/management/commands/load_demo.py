from django.core.management.base import BaseCommand

from enterprise_portal.demo import DEMO_PASSWORD, load_demo


class Command(BaseCommand):
    help = "Loads the demo enterprise, accounts, users and campaigns (idempotent); prints logins."

    def handle(self, *args, **options):
        logins = load_demo()
        self.stdout.write(self.style.SUCCESS(f"Demo logins (password for all: {DEMO_PASSWORD})"))
        for login in logins:
            self.stdout.write(f"  {login.email:<24} {login.role:<18} {login.where}")
