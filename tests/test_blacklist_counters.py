"""Campaign blacklist counters (issue 13, item 7): each list's entries and campaigns are
counted by campaigns.blacklists in the transaction of every change, so the Campaign
Blacklists page reads two columns instead of counting entries × campaigns on every load."""

from __future__ import annotations

import datetime as dt
import importlib

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from campaigns.blacklist_import import do_upload_blacklist
from campaigns.blacklists import (
    do_add_entries,
    do_add_entry,
    do_create_blacklist,
    do_delete_blacklist,
    do_remove_entries,
    do_remove_entry,
    do_set_blacklist_campaigns,
    do_set_campaign_blacklists,
    release_expired,
)
from campaigns.models import Blacklist, BlacklistEntry, Campaign
from tests import factories
from tests.helpers import client_for

BASE = "/a/acme-one/blacklists/"


def _numbers(start: int, count: int) -> list[tuple[str, str, str]]:
    return [("phone", f"+1713555{n:04d}", "") for n in range(start, start + count)]


def _counters(blacklist: Blacklist) -> tuple[int, int]:
    """The kept counters, checked against a real count of the rows they stand for."""
    blacklist.refresh_from_db()
    real = (
        BlacklistEntry.objects.filter(blacklist=blacklist).count(),
        blacklist.campaigns.count(),
    )
    assert (blacklist.entry_count, blacklist.campaign_count) == real
    return real


def test_counters_follow_adds_removes_imports_and_expiry(personas):
    with tenant_context(personas.acct_a1):
        blacklist = do_create_blacklist(name="Counted")
        assert _counters(blacklist) == (0, 0)
        assert do_add_entry(blacklist, "phone", "+17135550001")[0]
        assert not do_add_entry(blacklist, "phone", "+17135550001")[0], "already listed"
        do_add_entry(blacklist, "extension", "4021")
        assert _counters(blacklist) == (2, 0)
        # Many at once (the API's path): the ones listed already are not counted twice.
        added, _suppressed = do_add_entries(
            blacklist, _numbers(1, 10), source=BlacklistEntry.Source.API
        )
        assert added == 9 and _counters(blacklist) == (11, 0)
        # A file: 3 new numbers, one already listed, one repeated, one bad line.
        content = b"number\n7135550020\n7135550021\n(713) 555-0021\n7135550001\nnope\n7135550022\n"
        job = do_upload_blacklist(blacklist, SimpleUploadedFile("more.csv", content))
        assert (job.added, job.duplicates, job.rejected) == (3, 2, 1)
        assert _counters(blacklist) == (14, 0)
        entry = BlacklistEntry.objects.get(blacklist=blacklist, device_key="4021")
        do_remove_entry(entry)
        assert _counters(blacklist) == (13, 0)
        removed, _released = do_remove_entries(
            blacklist, ["+17135550002", "+17135550003", "+19999999999"]
        )
        assert len(removed) == 2 and _counters(blacklist) == (11, 0)
        expiry = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        do_add_entries(blacklist, _numbers(30, 4), source="manual", expires_at=expiry)
        assert _counters(blacklist) == (15, 0)
        release_expired(now=expiry + dt.timedelta(minutes=1))
        assert _counters(blacklist) == (11, 0)


def test_counters_follow_campaigns_attached_and_detached_and_lists_deleted(personas):
    with tenant_context(personas.acct_a1):
        first = factories.sub_campaign(activate=False).campaign
        second = factories.sub_campaign(activate=False).campaign
        third = factories.sub_campaign(activate=False).campaign
        kept = do_create_blacklist(name="Kept")
        doomed = do_create_blacklist(name="Doomed")
        do_add_entry(kept, "phone", "+17135550001")
        do_set_blacklist_campaigns(kept, [first, second])
        assert _counters(kept) == (1, 2)
        do_set_blacklist_campaigns(kept, [second, third])
        assert _counters(kept) == (1, 2)
        do_set_blacklist_campaigns(kept, [third])
        assert _counters(kept) == (1, 1)
        # From the campaign's page: attach both lists to the first campaign.
        do_set_campaign_blacklists(first, {kept.pk, doomed.pk})
        assert _counters(kept) == (1, 2) and _counters(doomed) == (0, 1)
        do_set_campaign_blacklists(first, {doomed.pk})
        assert _counters(kept) == (1, 1) and _counters(doomed) == (0, 1)
        do_set_blacklist_campaigns(doomed, [first, second, third])
        do_delete_blacklist(doomed)
        assert not Blacklist.objects.filter(pk=doomed.pk).exists()
        assert _counters(kept) == (1, 1), "another list's deletion leaves this one's counts"
        assert Campaign.objects.filter(blacklists=kept).count() == 1


def test_the_migration_backfills_the_counters(personas):
    backfill = importlib.import_module("campaigns.migrations.0006_blacklist_counters").BACKFILL
    with tenant_context(personas.acct_a1):
        campaign = factories.sub_campaign(activate=False).campaign
        blacklist = do_create_blacklist(name="Old list")
        do_add_entries(blacklist, _numbers(1, 7), source="manual")
        do_set_blacklist_campaigns(blacklist, [campaign])
        Blacklist.objects.update(entry_count=0, campaign_count=0)  # as before the migration
        with connection.cursor() as cursor:
            cursor.execute(backfill)
        assert _counters(blacklist) == (7, 1)


def test_the_index_page_reads_counters_not_entries(personas):
    with tenant_context(personas.acct_a1):
        small = do_create_blacklist(name="A small list")
        do_add_entry(small, "phone", "+17135550001")
    client = client_for(personas, "agent")
    client.get(BASE)
    with CaptureQueriesContext(connection) as few:
        assert client.get(BASE).status_code == 200
    with tenant_context(personas.acct_a1):
        campaigns = [factories.sub_campaign(activate=False).campaign for _ in range(4)]
        for n in range(12):
            blacklist = do_create_blacklist(name=f"List {n:02d}")
            do_add_entries(blacklist, _numbers(100 * n, 40 + n), source="manual")
            do_set_blacklist_campaigns(blacklist, campaigns[: n % 4 + 1])
    with CaptureQueriesContext(connection) as many:
        page = client.get(BASE).content.decode()
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]
    for query in many.captured_queries:
        assert "campaigns_blacklistentry" not in query["sql"]
        assert "campaigns_campaign_blacklists" not in query["sql"]
    assert page.count('data-testid="blacklist-row"') == 13
    row = page.split("List 11</a>")[1].split("</tr>")[0]
    assert '<td class="text-end">51</td><td class="text-end">4</td>' in row


def test_api_adds_and_removes_keep_the_counters_the_api_lists(personas):
    import json

    from django.test import Client

    from accounts.api_keys import do_create_api_key

    _key, secret = do_create_api_key(
        name="CRM", scopes=["blacklists:write"], created_by=personas.acct_admin,
        enterprise=personas.ent_a, account=personas.acct_a1,
    )  # fmt: skip
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")

    def post(path, body):
        return json.loads(client.post(path, json.dumps(body), content_type="application/json")
                          .content)  # fmt: skip

    blacklist_id = post("/api/v1/blacklists", {"name": "From the CRM"})["id"]
    items = [{"number": f"+1713555{n:04d}"} for n in range(5)] + [{"number": "+17135550000"}]
    assert post(f"/api/v1/blacklists/{blacklist_id}/entries", {"items": items})["added"] == 5
    client.delete(f"/api/v1/blacklists/{blacklist_id}/entries/+17135550004")
    post(f"/api/v1/blacklists/{blacklist_id}/entries/remove", {"numbers": ["+17135550003"]})
    with tenant_context(personas.acct_a1):
        campaign = factories.sub_campaign(activate=False).campaign
        blacklist = Blacklist.objects.get(pk=blacklist_id)
        do_set_blacklist_campaigns(blacklist, [campaign])
        assert _counters(blacklist) == (3, 1)
    (listed,) = json.loads(client.get("/api/v1/blacklists").content)
    assert (listed["entries"], listed["campaigns"]) == (3, [campaign.pk])
