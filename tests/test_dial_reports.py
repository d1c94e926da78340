"""A carrier's delivery report can come back before the sender has recorded what it sent
(Kannel answers a send, the SMSC delivers, the report arrives, and only then does the
sender's chunk commit). The report must stand."""

from __future__ import annotations

import threading

from django.conf import settings
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import tenant_context

from campaigns import dial_states, dialer
from campaigns.gateways import DeliveryJob, DeliveryResult, IdempotentGateway
from campaigns.models import DialState
from devices.ledger import from_stamp
from devices.models import Attempt, Disposition
from tests import factories

NUMBER = "+17135554101"


class ReportFirstGateway(IdempotentGateway):
    """Hands the text on (SENT), but the carrier's report is recorded, on its own
    connection and committed, before perform returns."""

    account = None

    def perform(self, job: DeliveryJob) -> DeliveryResult:
        def report():
            with tenant_context(type(self).account), transaction.atomic(durable=True):
                dial_states.record_report(
                    job.attempt_id, from_stamp(job.attempted_at_us), Disposition.UNDELIVERED,
                    carrier_answer="stat:UNDELIV err:001", now=timezone.now(),
                )  # fmt: skip
            connection.close()

        thread = threading.Thread(target=report)
        thread.start()
        thread.join()
        return DeliveryResult(Disposition.SENT, source_address=job.sms_source_address)


def test_a_report_that_came_first_is_not_overwritten_by_the_senders_record(
    committed, open_all_day_account, tasks_held
):
    account = open_all_day_account
    ReportFirstGateway.account = account
    gateways = {**settings.DIALER_GATEWAYS, "sms": "tests.test_dial_reports.ReportFirstGateway"}
    with override_settings(DIALER_GATEWAYS=gateways), tenant_context(account):
        sub = factories.sub_campaign(
            factories.contact_list([{"client_id": "R1", "phones": [NUMBER]}]),
            channel="sms", max_attempts=2,
        )  # fmt: skip
        dialer.dispatch_sub_campaign(sub.pk)
        state = DialState.objects.get(sub_campaign=sub)
        dialer.perform_attempt(state.pk, str(state.claim_token))
        state.refresh_from_db()
    row = Attempt.objects.get(account_id=account.pk, sub_campaign_id=sub.pk)
    assert row.disposition == "UNDELIVERED", "the report stands, not the sender's SENT"
    assert row.carrier_answer == "stat:UNDELIV err:001"
    assert state.last_disposition == "UNDELIVERED"
    assert state.status == "pending", "an undeliverable text is retried by the rules"
