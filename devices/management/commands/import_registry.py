"""Import a national registry file that is on the server's disk (too big to upload).

    manage.py import_registry us full /data/dnc/*.txt
    manage.py import_registry br add nmp-changes-2026-11-21.csv

Runs in this process (no worker needed), with the same import record, progress and
history as an upload, shown on the operator page while it runs.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from devices.models import Registry, RegistryImport
from devices.registry.imports import do_create_path_import, run_import
from devices.registry.parsing import FileProblem, reason_text


class Command(BaseCommand):
    help = "Import a Não Me Perturbe (br) or US National DNC (us) file from disk."

    def add_arguments(self, parser):
        parser.add_argument("registry", help="br or us (or the registry code)")
        parser.add_argument("kind", choices=[k.value for k in RegistryImport.Kind])
        parser.add_argument("paths", nargs="+", help="text, CSV or zip files")

    def handle(self, *args, registry, kind, paths, **options):
        connection.set_schema_to_public()
        found = Registry.objects.filter(country=registry.upper()).first() or (
            Registry.objects.filter(code=registry.lower()).first()
        )
        if found is None:
            raise CommandError(f"Unknown registry {registry!r}: use br or us.")
        try:
            job = do_create_path_import(found, kind, paths)
        except FileProblem as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Import #{job.pk}: {found.name}, {job.get_kind_display()}")

        def progress(result) -> None:
            if sys.stdout.isatty():
                self.stdout.write(
                    f"\r{result.lines_read:,} lines, {result.accepted:,} numbers, "
                    f"{result.rejected_count:,} rejected",
                    ending="",
                )

        outcome = run_import(job.pk, progress_out=progress)
        if sys.stdout.isatty():
            self.stdout.write("")
        job.refresh_from_db()
        for name, line, text, code in job.rejected[:20]:
            self.stdout.write(f"  {name} line {line}: {reason_text(code)}: {text}")
        if job.lines_rejected > 20:
            self.stdout.write(f"  ... {job.lines_rejected - 20:,} more rejected lines")
        if outcome is None or job.status != RegistryImport.Status.READY:
            raise CommandError(job.error or "The import did not run.")
        self.stdout.write(
            self.style.SUCCESS(
                f"{found.name}: {job.lines_read:,} lines read, {job.numbers_accepted:,} "
                f"numbers accepted, {job.lines_rejected:,} rejected; the registry holds "
                f"{job.size_after:,} numbers ({outcome.seconds:.1f} s)."
            )
        )
