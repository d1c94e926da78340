from pathlib import Path

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.backups import BackupError, create_backup


class Command(BaseCommand):
    help = (
        "Backs up the whole portal into OUTPUT/portal-<UTC time>/: database.dump, one pg_dump "
        "(custom format, one snapshot) of every schema (public with the ledger, recordings "
        "index, device settings and calling rules; the account template; every account's "
        "campaigns, blacklists, contacts and dial states), and media.tar, the private files "
        "(recording WAVs, uploads, voice messages) when storage is the local disk. With S3 "
        "storage the files are not copied: the bucket's versioning keeps them. Redis (queues "
        "and cache) is not backed up. Prints the backup's path last."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--output",
            type=Path,
            default=None,
            help="Directory the backup folder is written in (default: PORTAL_VAR_DIR/backups)",
        )
        parser.add_argument(
            "--no-media", action="store_true", help="Leave the private files out (database only)"
        )
        parser.add_argument(
            "--keep",
            type=int,
            default=0,
            metavar="N",
            help="Then remove all but the N newest backups in OUTPUT (default: keep all)",
        )

    def handle(self, *args, **options):
        if options["keep"] < 0:
            raise CommandError("--keep must be 0 (keep all) or more.")
        directory = options["output"] or Path(settings.VAR_DIR) / "backups"
        try:
            report = create_backup(
                directory, include_media=not options["no_media"], keep=options["keep"]
            )
        except (BackupError, OSError, psycopg.Error) as exc:
            raise CommandError(str(exc)) from None
        media = report.media
        if media["included"]:
            files = f"{media['files']} private files ({media['bytes'] / 1e6:.1f} MB) in media.tar"
        elif media["storage"] != "local":
            files = f"no files: storage is {media['storage']} (the bucket keeps them)"
        else:
            files = "no files (--no-media)"
        accounts = len(report.schemas) - 1 - (settings.TENANT_BASE_SCHEMA in report.schemas)
        self.stdout.write(
            f"{len(report.schemas)} schemas (public, template, {accounts} accounts), dump "
            f"{report.dump_bytes / 1e6:.1f} MB; {files}; {report.seconds:.1f} s."
        )
        for path in report.removed:
            self.stdout.write(f"Removed old backup {path}")
        self.stdout.write(str(report.path))
