"""Campaign list and campaign page (issue 13, item 7): both are paginated, a bad page
number gives a sensible page, and the list's query count does not grow with campaigns."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from campaigns.actions import do_create_campaign, do_save_sub_campaign
from campaigns.models import Purpose, SubCampaign
from campaigns.views import CAMPAIGNS_PAGE_SIZE, SUB_CAMPAIGNS_PAGE_SIZE, SUBS_PER_CAMPAIGN
from tests.helpers import client_for

LIST = "/a/acme-one/campaigns/"
BAD_PAGES = ("x", "²", "1.5", "0", "-3", "999", "9" * 5000, "")


def _subs(campaign, count: int) -> None:
    for n in range(count):
        do_save_sub_campaign(SubCampaign(
            campaign=campaign, name=f"Sub {n:03d}", channel="voice",
            purpose=Purpose.COLLECTIONS, caller_id="+17135550000",
        ))  # fmt: skip


def _rows(body: str, testid: str) -> int:
    return body.count(f'data-testid="{testid}"')


def test_the_campaign_list_is_paginated(personas):
    with tenant_context(personas.acct_a1):
        for n in range(CAMPAIGNS_PAGE_SIZE + 2):
            do_create_campaign(name=f"Campaign {n:03d}")
    client = client_for(personas, "agent")
    first = client.get(LIST).content.decode()
    assert _rows(first, "campaign-row") == CAMPAIGNS_PAGE_SIZE
    assert "?page=2" in first and "Campaign 000" in first
    assert f"Campaign {CAMPAIGNS_PAGE_SIZE:03d}" not in first
    second = client.get(LIST, {"page": 2}).content.decode()
    assert _rows(second, "campaign-row") == 2
    assert f"Campaign {CAMPAIGNS_PAGE_SIZE + 1:03d}" in second


def test_a_bad_page_number_gives_a_page_not_an_error(personas):
    with tenant_context(personas.acct_a1):
        campaign = do_create_campaign(name="Big one")
        _subs(campaign, SUB_CAMPAIGNS_PAGE_SIZE + 1)
        for n in range(CAMPAIGNS_PAGE_SIZE):
            do_create_campaign(name=f"Campaign {n:03d}")
    client = client_for(personas, "agent")
    detail = f"/a/acme-one/campaigns/{campaign.pk}/"
    for bad in BAD_PAGES:
        last = bad in ("999", "0", "-3")  # past either end: the last page
        listing = client.get(LIST, {"page": bad})
        assert listing.status_code == 200, bad
        assert _rows(listing.content.decode(), "campaign-row") == (
            1 if last else CAMPAIGNS_PAGE_SIZE
        ), bad
        page = client.get(detail, {"page": bad})
        assert page.status_code == 200, bad
        expected = 1 if last else SUB_CAMPAIGNS_PAGE_SIZE
        assert _rows(page.content.decode(), "sub-campaign-row") == expected, bad


def test_the_campaign_page_paginates_its_sub_campaigns(personas):
    with tenant_context(personas.acct_a1):
        campaign = do_create_campaign(name="Many subs")
        _subs(campaign, SUB_CAMPAIGNS_PAGE_SIZE + 3)
    client = client_for(personas, "agent")
    url = f"/a/acme-one/campaigns/{campaign.pk}/"
    first = client.get(url).content.decode()
    assert _rows(first, "sub-campaign-row") == SUB_CAMPAIGNS_PAGE_SIZE
    assert "?page=2" in first and "Sub 000" in first
    second = client.get(url, {"page": "2"}).content.decode()
    assert _rows(second, "sub-campaign-row") == 3 and "Sub 027" in second


def test_the_list_shows_a_campaigns_first_subs_and_links_to_the_rest(personas):
    with tenant_context(personas.acct_a1):
        campaign = do_create_campaign(name="Wide")
        _subs(campaign, SUBS_PER_CAMPAIGN + 4)
    body = client_for(personas, "agent").get(LIST).content.decode()
    assert f"Sub {SUBS_PER_CAMPAIGN - 1:03d}" in body
    assert f"Sub {SUBS_PER_CAMPAIGN:03d}" not in body
    assert "and 4 more sub-campaigns" in body
    assert f'href="/a/acme-one/campaigns/{campaign.pk}/" data-testid="more-subs"' in body


def test_the_list_query_count_does_not_grow_with_campaigns(personas):
    with tenant_context(personas.acct_a1):
        _subs(do_create_campaign(name="Only one"), 2)
    client = client_for(personas, "agent")
    client.get(LIST)
    with CaptureQueriesContext(connection) as few:
        client.get(LIST)
    with tenant_context(personas.acct_a1):
        for n in range(CAMPAIGNS_PAGE_SIZE + 5):
            _subs(do_create_campaign(name=f"Campaign {n:03d}"), 3)
    with CaptureQueriesContext(connection) as many:
        body = client.get(LIST).content.decode()
    assert _rows(body, "campaign-row") == CAMPAIGNS_PAGE_SIZE
    assert len(many) == len(few)
