"""Heavy account pages, paginated (issue 13, item 7): the campaign list, a campaign's
sub-campaigns and the Campaign Blacklists index show a page at a time, a bad page number
gives a sensible page (never a 500), and the list's query count does not grow."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from campaigns.actions import do_create_campaign, do_save_sub_campaign
from campaigns.blacklist_views import BLACKLISTS_PAGE_SIZE
from campaigns.blacklists import do_create_blacklist
from campaigns.models import Purpose, SubCampaign
from campaigns.views import CAMPAIGNS_PAGE_SIZE, SUB_CAMPAIGNS_PAGE_SIZE, SUBS_PER_CAMPAIGN
from tests.helpers import client_for

LIST = "/a/acme-one/campaigns/"
# Not a number, a Unicode digit, not whole, past either end, too long to be a number, empty.
FIRST_PAGE = ("x", "²", "1.5", "9" * 5000, "")
LAST_PAGE = ("999", "0", "-3")


def _subs(campaign, count: int) -> None:
    for n in range(count):
        do_save_sub_campaign(SubCampaign(
            campaign=campaign, name=f"Sub {n:03d}", channel="voice",
            purpose=Purpose.COLLECTIONS, caller_id="+17135550000",
        ))  # fmt: skip


def _rows(body: str, testid: str) -> int:
    return body.count(f'data-testid="{testid}"')


def _check_pages(
    client, url: str, testid: str, *, size: int, last: int, first_name: str, last_name: str
) -> None:
    """Page 1 has ``size`` rows and links to page 2; the last page has ``last`` rows; a
    bad page number gives page 1 or the last page."""
    first = client.get(url).content.decode()
    assert _rows(first, testid) == size
    assert "?page=2" in first and first_name in first and last_name not in first
    second = client.get(url, {"page": "2"}).content.decode()
    assert _rows(second, testid) == last and last_name in second
    for bad in FIRST_PAGE + LAST_PAGE:
        response = client.get(url, {"page": bad})
        assert response.status_code == 200, bad
        assert _rows(response.content.decode(), testid) == (last if bad in LAST_PAGE else size)


def test_the_campaign_list_is_paginated(personas):
    with tenant_context(personas.acct_a1):
        for n in range(CAMPAIGNS_PAGE_SIZE + 2):
            do_create_campaign(name=f"Campaign {n:03d}")
    _check_pages(
        client_for(personas, "agent"),
        LIST,
        "campaign-row",
        size=CAMPAIGNS_PAGE_SIZE,
        last=2,
        first_name="Campaign 000",
        last_name=f"Campaign {CAMPAIGNS_PAGE_SIZE + 1:03d}",
    )


def test_the_campaign_page_paginates_its_sub_campaigns(personas):
    with tenant_context(personas.acct_a1):
        campaign = do_create_campaign(name="Many subs")
        _subs(campaign, SUB_CAMPAIGNS_PAGE_SIZE + 3)
    _check_pages(
        client_for(personas, "agent"),
        f"/a/acme-one/campaigns/{campaign.pk}/",
        "sub-campaign-row",
        size=SUB_CAMPAIGNS_PAGE_SIZE,
        last=3,
        first_name="Sub 000",
        last_name=f"Sub {SUB_CAMPAIGNS_PAGE_SIZE + 2:03d}",
    )


def test_the_blacklist_index_is_paginated(personas):
    with tenant_context(personas.acct_a1):
        for n in range(BLACKLISTS_PAGE_SIZE + 3):
            do_create_blacklist(name=f"List {n:03d}")
    _check_pages(
        client_for(personas, "agent"),
        "/a/acme-one/blacklists/",
        "blacklist-row",
        size=BLACKLISTS_PAGE_SIZE,
        last=3,
        first_name="List 000",
        last_name=f"List {BLACKLISTS_PAGE_SIZE + 2:03d}",
    )


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


# --- the sub-campaign form: each channel its own fields (issue 14, item 7) ------------------


def _form(**extra) -> dict:
    return {"name": "Wave", "purpose": "collections", "pacing_per_minute": 60,
            "max_attempts": 3, "retry_NO_ANSWER": 60, "retry_BUSY": 15, "retry_VOICEMAIL": 240,
            "retry_FAILED": 120, "retry_ABANDONED": 30, "retry_UNDELIVERED": 240,
            **extra}  # fmt: skip


def test_a_voice_caller_id_must_be_a_phone_number_and_is_kept_in_e164(personas):
    with tenant_context(personas.acct_a1):
        campaign = do_create_campaign(name="Calls")
    url = f"/a/acme-one/campaigns/{campaign.pk}/sub-campaigns/new/"
    client = client_for(personas, "acct_admin")
    refused = client.post(url, _form(channel="voice", caller_id="12"))
    assert refused.status_code == 200
    assert "The caller ID must be a phone number the callee can call back." in (
        refused.content.decode()
    )
    saved = client.post(url, _form(channel="voice", caller_id="(713) 555-0100", name="Ok"))
    assert saved.status_code == 302, saved.content.decode()
    with tenant_context(personas.acct_a1):
        sub = SubCampaign.objects.get(campaign=campaign)
        assert sub.caller_id == "+17135550100"
        assert sub.retry_wait_minutes("BUSY") == 15
        assert sub.retry_wait_minutes("UNDELIVERED") is None


def test_another_channels_fields_are_not_kept(personas):
    # The form hides them (portal.js, data-channels); whatever they held is dropped on save.
    from accounts.sending_domains import do_add_sending_domain

    do_add_sending_domain(personas.ent_a, "acme.example.com")
    with tenant_context(personas.acct_a1):
        campaign = do_create_campaign(name="Mail")
    url = f"/a/acme-one/campaigns/{campaign.pk}/sub-campaigns/new/"
    client = client_for(personas, "acct_admin")
    page = client.get(url).content.decode()
    assert 'data-channel-select=""' in page and 'data-channels="voice"' in page
    saved = client.post(url, _form(
        channel="email", caller_id="12", record_calls="on", sms_source_address="55123",
        email_from="billing@acme.example.com", email_subject="Statement", message="Hi {name}",
    ))  # fmt: skip
    assert saved.status_code == 302, saved.content.decode()
    with tenant_context(personas.acct_a1):
        sub = SubCampaign.objects.get(campaign=campaign)
    assert (sub.caller_id, sub.record_calls, sub.sms_source_address) == ("", False, "")
    assert sub.email_from == "billing@acme.example.com"
    for voice_only in ("BUSY", "VOICEMAIL", "NO_ANSWER", "ABANDONED"):
        assert sub.retry_wait_minutes(voice_only) is None, voice_only
    assert sub.retry_wait_minutes("FAILED") == 120
