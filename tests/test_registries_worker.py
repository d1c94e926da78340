"""A registry upload imported by a real Celery worker: progress while it runs, then the
numbers in the gate. Committed data, so the registries are put back afterwards."""

from __future__ import annotations

import contextlib
import datetime as dt
import time

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEvent, Enterprise, User
from devices.models import Registry, RegistryBlock, RegistryImport
from devices.policy import SUPPRESS, DialRequest, PolicyGate

pytestmark = pytest.mark.worker
INDEX = "/platform/registries/"


@contextlib.contextmanager
def registries_put_back():
    """Registries as they were before (never imported), whatever a committed test did."""
    saved = list(Registry.objects.values())
    last_import = RegistryImport.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    last_event = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    try:
        yield
    finally:
        for row in saved:
            RegistryBlock.objects.filter(registry_id=row["id"]).exclude(
                generation=row["generation"]
            ).delete()
            Registry.objects.filter(pk=row["id"]).update(**row)
        RegistryImport.objects.filter(pk__gt=last_import).delete()
        AuditEvent.objects.filter(pk__gt=last_event, action__startswith="registry.").delete()


@pytest.fixture
def restored(committed):
    with registries_put_back():
        yield


def _operator_client() -> Client:
    client = Client()
    client.force_login(User.objects.get(email="operator@platform.test"))
    return client


def _wait(client, job_id: int, timeout: float = 90) -> list[dict]:
    """Polls the progress endpoint as the page does; returns every answer seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.get(f"/platform/registries/imports/{job_id}/progress.json").json()
        seen.append(answer)
        if answer["status"] in ("ready", "failed"):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"import {job_id} did not finish: {seen[-1]}")


def test_worker_imports_an_upload_with_progress_then_the_gate_uses_it(celery_worker, restored):
    client = _operator_client()
    us = Registry.objects.get(country="US")
    # 2.4 million lines (about 26 MB) in 8 area codes, and a few bad lines to report.
    lines = [f"{area}{n:07d}" for area in (713, 832, 281, 346, 214, 469, 972, 682)
             for n in range(2_000_000, 2_300_000)]  # fmt: skip
    lines[5] = "713-555-CALL"
    lines.append("12345")
    body = ("\n".join(lines) + "\n").encode()
    upload = SimpleUploadedFile("dnc-texas.txt", body, content_type="text/plain")
    response = client.post(INDEX, {"registry": us.pk, "kind": "full", "file": upload})
    assert response.status_code == 302
    job = RegistryImport.objects.get(source_name="dnc-texas.txt")

    seen = _wait(client, job.pk)
    final = seen[-1]
    assert final["status"] == "ready", final
    assert final["numbers_accepted"] == len(lines) - 2
    assert (final["lines_read"], final["lines_rejected"]) == (len(lines), 2)
    assert final["size_after"] == len(lines) - 2
    # The page saw the import move: some answers between start and end.
    running = [a for a in seen if a["status"] == "importing" and 0 < a["percent"] < 100]
    assert running, seen[:5]
    assert [a["lines_read"] for a in running] == sorted(a["lines_read"] for a in running)

    job.refresh_from_db()
    assert job.rejected == [
        ["dnc-texas.txt", 6, "713-555-CALL", "characters"],
        ["dnc-texas.txt", len(lines), "12345", "length"],
    ]
    assert not default_storage.exists(job.upload_path)  # the worker removed the upload
    us.refresh_from_db()
    assert (us.size, us.generation) == (len(lines) - 2, job.pk)

    enterprise = Enterprise.objects.get(name="Acme Test")
    listed = DialRequest(1, 1, 1, "telemarketing", "voice", "+17132000000")
    assert PolicyGate(enterprise).decide_one(listed).action == SUPPRESS
    page = client.get(f"/platform/registries/imports/{job.pk}/").content.decode()
    assert "US National DNC now holds 2,399,999 numbers" in page


def test_worker_reports_a_file_it_cannot_import(celery_worker, restored):
    client = _operator_client()
    br = Registry.objects.get(country="BR")
    upload = SimpleUploadedFile("nmp.csv", b"name,email\nAna,ana@example.com\n")
    client.post(INDEX, {"registry": br.pk, "kind": "full", "file": upload})
    job = RegistryImport.objects.get(source_name="nmp.csv")
    final = _wait(client, job.pk)[-1]
    assert final["status"] == "failed"
    assert final["error"] == "No Não Me Perturbe numbers found in the file: nothing was imported."
    br.refresh_from_db()
    assert (br.size, br.last_imported_at) == (0, None)


def test_an_upload_queued_while_the_broker_was_down_is_sent_by_the_sweep(celery_worker, restored):
    from devices.tasks import resume_queued_registry_imports

    us = Registry.objects.get(country="US")
    stored = default_storage.save("registries/sweep-test.txt", ContentFile(b"7135554101\n"))
    job = RegistryImport.objects.create(
        registry=us, kind="full", source_name="sweep.txt", upload_path=stored, bytes_total=11
    )
    RegistryImport.objects.filter(pk=job.pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=5)
    )
    fresh = RegistryImport.objects.create(registry=us, kind="full", source_name="new.txt",
                                          upload_path="registries/new.txt")  # fmt: skip
    assert resume_queued_registry_imports() == 1
    assert _wait(_operator_client(), job.pk)[-1]["status"] == "ready"
    assert RegistryImport.objects.get(pk=fresh.pk).status == "queued"  # not two minutes old
