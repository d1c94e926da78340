"""Registry import jobs: an operator's upload, or files on the server's disk (the
import_registry command), parsed and written in a worker (``devices.tasks``)."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import zipfile
from dataclasses import dataclass

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.actions import audit
from devices import uploads
from devices.models import Registry, RegistryImport
from devices.registry.parsing import (
    SCHEMES,
    FileProblem,
    ParseResult,
    Scheme,
    Source,
    encoded_blocks,
    parse_lines,
    sources_for,
)
from devices.registry.store import merge_numbers, replace_numbers

logger = logging.getLogger(__name__)

MAX_UPLOAD_MB = 500


def upload_hint() -> str:
    return _("Split it, or import it on the server with the import_registry command.")


def do_upload_registry_file(
    registry: Registry, kind: str, uploaded_file, *, actor, request=None
) -> RegistryImport:
    """Stores an upload privately and queues its import (a Celery task, sent on commit)."""

    def create_job(path: str, name: str, size: int) -> RegistryImport:
        job = RegistryImport.objects.create(
            registry=registry,
            kind=kind,
            source_name=name or "upload",
            upload_path=path,
            bytes_total=size,
            created_by=actor if actor is not None and actor.pk else None,
            created_by_label=getattr(actor, "email", "")[:254],
        )
        audit(actor, "registry.upload", obj=job,
              details={"registry": registry.code, "kind": kind, "file": name, "bytes": size},
              request=request)  # fmt: skip
        return job

    job, _ran = uploads.start_import(
        uploaded_file,
        kind="registry",
        limit_bytes=uploads.megabytes(MAX_UPLOAD_MB),
        hint=upload_hint(),
        create_job=create_job,
        task="devices.tasks.import_registry_file",
    )
    return job


def do_create_path_import(
    registry: Registry, kind: str, paths: list[str], *, actor=None
) -> RegistryImport:
    """An import of files on the server's disk (the import_registry command)."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileProblem(_("No such file: %(path)s") % {"path": ", ".join(missing)})
    with transaction.atomic(durable=True):
        job = RegistryImport.objects.create(
            registry=registry,
            kind=kind,
            source_name=", ".join(os.path.basename(p) for p in paths)[:255],
            local_path="\n".join(os.path.abspath(p) for p in paths),
            bytes_total=sum(os.path.getsize(p) for p in paths),
            created_by=actor if actor is not None and actor.pk else None,
            created_by_label=getattr(actor, "email", "") or "import_registry command",
        )
        audit(
            actor,
            "registry.upload",
            obj=job,
            details={"registry": registry.code, "kind": kind, "paths": paths},
        )
    return job


def _job_sources(job: RegistryImport, stack: contextlib.ExitStack) -> list[Source]:
    if job.local_path:
        sources: list[Source] = []
        for path in job.local_path.split("\n"):
            sources += sources_for(
                lambda path=path: open(path, "rb"),  # noqa: SIM115 - closed by its user
                os.path.basename(path),
                os.path.getsize(path),
                stack,
            )
        return sources
    if not job.upload_path or not default_storage.exists(job.upload_path):
        raise FileProblem(_("The uploaded file is no longer available; upload it again."))
    return sources_for(
        lambda: default_storage.open(job.upload_path, "rb"),
        job.source_name,
        job.bytes_total,
        stack,
    )


@dataclass
class ImportOutcome:
    status: str
    lines_read: int = 0
    accepted: int = 0
    rejected: int = 0
    added: int = 0
    removed: int = 0
    size_after: int = 0
    error: str = ""
    seconds: float = 0.0
    parse_seconds: float = 0.0
    write_seconds: float = 0.0


def run_import(import_id: int, *, progress_out=None) -> ImportOutcome | None:
    """Imports one queued RegistryImport. Safe to run twice: a finished import is left alone,
    and one found ``importing`` (its worker died) starts again; nothing half-written can be
    left behind, since the registry changes in one transaction at the end."""
    with uploads.run_once(f"registry-import:{import_id}") as mine:
        if not mine:
            logger.info("Registry import %s is running in another worker", import_id)
            return None
        job = RegistryImport.objects.select_related("registry").filter(pk=import_id).first()
        if job is None or job.finished:
            return None
        return _run(job, progress_out)


def _run(job: RegistryImport, progress_out=None) -> ImportOutcome:
    started = time.perf_counter()
    registry = job.registry
    scheme = SCHEMES[registry.country]
    RegistryImport.objects.filter(pk=job.pk).update(
        status=RegistryImport.Status.IMPORTING, started_at=timezone.now(), error=""
    )
    result = ParseResult()
    clock = uploads.ProgressClock()

    def progress(current: ParseResult, force: bool = False) -> None:
        if not clock.due(force):
            return
        RegistryImport.objects.filter(pk=job.pk).update(
            bytes_read=current.bytes_read,
            lines_read=current.lines_read,
            numbers_accepted=current.accepted,
            lines_rejected=current.rejected_count,
        )
        if progress_out is not None:
            progress_out(current)

    outcome = ImportOutcome(status=RegistryImport.Status.FAILED)
    try:
        with contextlib.ExitStack() as stack:
            sources = _job_sources(job, stack)
            total = sum(s.size for s in sources)
            if total != job.bytes_total:  # a zip: progress counts the files inside
                RegistryImport.objects.filter(pk=job.pk).update(bytes_total=total)
            for source in sources:
                with source.open() as handle:
                    parse_lines(handle, scheme, result, name=source.name, progress=progress)
        progress(result, force=True)
        outcome.parse_seconds = time.perf_counter() - started
        if result.accepted == 0:
            raise FileProblem(
                _("No %(registry)s numbers found in the file: nothing was imported.")
                % {"registry": registry.name}
            )
        writing = time.perf_counter()
        outcome = _apply(job, registry, scheme, result, outcome)
        outcome.write_seconds = time.perf_counter() - writing
    except Exception as exc:
        if isinstance(exc, FileProblem):
            message = str(exc)
        elif isinstance(exc, (zipfile.BadZipFile, OSError, EOFError)):
            message = _("The file could not be read: %(error)s") % {"error": exc}
        else:
            logger.exception("Registry import %s failed", job.pk)
            message = _("The import stopped on an unexpected error; nothing was changed.")
        RegistryImport.objects.filter(pk=job.pk).update(
            status=RegistryImport.Status.FAILED,
            error=message,
            finished_at=timezone.now(),
            bytes_read=result.bytes_read,
            lines_read=result.lines_read,
            numbers_accepted=result.accepted,
            lines_rejected=result.rejected_count,
            rejected=result.rejected,
        )
        outcome.error = message
    finally:
        uploads.discard(job.upload_path)
    outcome.lines_read = result.lines_read
    outcome.accepted = result.accepted
    outcome.rejected = result.rejected_count
    outcome.seconds = time.perf_counter() - started
    logger.info(
        "Registry import %s (%s %s): %s, %s lines, %s numbers, %s rejected in %.1f s",
        job.pk, registry.code, job.kind, outcome.status, outcome.lines_read,
        outcome.accepted, outcome.rejected, outcome.seconds,
    )  # fmt: skip
    return outcome


def _apply(
    job: RegistryImport, registry: Registry, scheme: Scheme, result: ParseResult, outcome
) -> ImportOutcome:
    """Writes the parsed numbers and finishes the import row, in one transaction."""
    now = timezone.now()
    with transaction.atomic():
        if job.kind == RegistryImport.Kind.FULL:
            before, after = replace_numbers(
                registry, job.pk, encoded_blocks(scheme, result.blocks), now=now
            )
            # Numbers present before and after are neither: the difference is reported.
            added, removed = max(0, after - before), max(0, before - after)
        else:
            code = scheme.country_code.encode()
            changes = {
                int(code + key): sorted(set(values)) for key, values in result.blocks.items()
            }
            added, removed = merge_numbers(
                registry, changes, remove=job.kind == RegistryImport.Kind.REMOVE, now=now
            )
        RegistryImport.objects.filter(pk=job.pk).update(
            status=RegistryImport.Status.READY,
            finished_at=now,
            bytes_read=result.bytes_read,
            bytes_total=result.bytes_read,
            lines_read=result.lines_read,
            numbers_accepted=result.accepted,
            lines_rejected=result.rejected_count,
            rejected=result.rejected,
            numbers_added=added,
            numbers_removed=removed,
            size_after=registry.size,
        )
        audit(
            job.created_by,
            "registry.import",
            obj=job,
            details={"registry": registry.code, "kind": job.kind, "numbers": result.accepted,
                     "rejected": result.rejected_count, "size": registry.size},
        )  # fmt: skip
    outcome.status = RegistryImport.Status.READY
    outcome.added, outcome.removed, outcome.size_after = added, removed, registry.size
    return outcome
