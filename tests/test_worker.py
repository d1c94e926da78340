"""A real Celery worker process, on the real Redis, runs tasks in the sending account's schema."""

import pytest
from django.core.management import call_command
from django_tenants.utils import tenant_context

from accounts.models import Account
from accounts.tasks import worker_schema_check

pytestmark = pytest.mark.worker


def test_task_runs_in_the_schema_of_the_account_that_sent_it(celery_worker, committed):
    results = {}
    for slug in ("acme-one", "bor-two"):
        account = Account.objects.get(slug=slug)
        with tenant_context(account):
            results[account.schema_name] = worker_schema_check.delay()
    for schema, result in results.items():
        answer = result.get(timeout=30)
        assert answer == {"schema_name": schema, "current_schema": schema}


def test_check_workers_command_reports_each_account(celery_worker, committed, capsys):
    call_command("check_workers", "--limit", "3", "--timeout", "30")
    out = capsys.readouterr().out
    assert "Workers run tasks in the right account schema." in out
    assert out.count("worker ran in schema acct_") == 3
