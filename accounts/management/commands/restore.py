from pathlib import Path

import psycopg
from django.core.management.base import BaseCommand, CommandError

from accounts.backups import BackupError, restore_backup


class Command(BaseCommand):
    help = (
        "Restores a folder written by `manage.py backup`: every schema (public, the account "
        "template, every account) into the configured database, or --dbname NAME on the same "
        "server, and the private files of media.tar (recordings, uploads) into MEDIA_ROOT. "
        "Refuses a database that is not empty, and files that already exist, unless --force, "
        "which DROPS EVERY SCHEMA of that database first and overwrites the files. Stop the "
        "web server, workers, beat and call engines before restoring over a live database."
    )
    # The target may be empty or missing: nothing may touch the database before handle().
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("backup", type=Path, help="The backup's folder (portal-<time>)")
        parser.add_argument(
            "--dbname",
            help="Database to restore into (default: DATABASE_URL's); files still go to "
            "MEDIA_ROOT, so add --no-media for a side copy",
        )
        parser.add_argument(
            "--create", action="store_true", help="Create the database if it does not exist"
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Drop everything in a non-empty database first, and overwrite existing files",
        )
        parser.add_argument(
            "--no-media", action="store_true", help="Restore the database only, not the files"
        )

    def handle(self, *args, **options):
        try:
            report = restore_backup(
                options["backup"],
                dbname=options["dbname"],
                create=options["create"],
                force=options["force"],
                include_media=not options["no_media"],
            )
        except (BackupError, OSError, psycopg.Error) as exc:
            raise CommandError(str(exc)) from None
        if report.created:
            self.stdout.write(f"Created database {report.database}.")
        if report.emptied:
            self.stdout.write(f"Dropped {len(report.emptied)} schemas of {report.database} first.")
        files = (
            f"{report.media_files} files into {report.media_root}"
            if report.media_root
            else "no files"
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {len(report.schemas)} schemas into {report.database} and {files} "
                f"in {report.seconds:.1f} s."
            )
        )
