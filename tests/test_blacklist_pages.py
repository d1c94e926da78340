"""Dialer › Campaign Blacklists pages: what admins and agents see and may do."""

import csv
import io

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from accounts.models import AuditEvent
from campaigns.blacklists import do_add_entry, do_create_blacklist, do_set_blacklist_campaigns
from campaigns.models import Blacklist, BlacklistEntry, Campaign, DialState
from devices.models import Attempt, DeviceSetting
from tests import factories
from tests.helpers import client_for

BASE = "/a/acme-one/blacklists/"
NUMBER = "+17135554301"


def _list(name="Opt-outs"):
    return do_create_blacklist(name=name)


def test_an_admin_creates_a_list_and_adds_a_number_in_any_format(personas):
    client = client_for(personas, "acct_admin")
    response = client.post(BASE, {"name": "Opt-outs", "description": "asked not to be called"})
    assert response.status_code == 302
    with tenant_context(personas.acct_a1):
        blacklist = Blacklist.objects.get(name="Opt-outs")
        sub = factories.sub_campaign(factories.contact_list([{"phones": [NUMBER]}]))
        do_set_blacklist_campaigns(blacklist, [sub.campaign])
    form = {"action": "add", "value": "(713) 555-4301", "reason": "called the hotline"}
    response = client.post(f"{BASE}{blacklist.pk}/", form, follow=True)
    body = response.content.decode()
    assert "+1 713-555-4301 added. 1 pending contact removed" in body
    with tenant_context(personas.acct_a1):
        entry = BlacklistEntry.objects.get(blacklist=blacklist)
        assert (entry.device_key, entry.created_by_label) == (NUMBER, "acct.admin@acme.test")
        assert DialState.objects.get(sub_campaign=sub).status == "suppressed"
    actions = AuditEvent.objects.filter(account=personas.acct_a1).values_list("action", flat=True)
    assert {"blacklist.create", "blacklist.entry_add"} <= set(actions)


def test_a_bad_value_says_what_is_wrong_and_adds_nothing(personas):
    with tenant_context(personas.acct_a1):
        blacklist = _list()
    response = client_for(personas, "acct_admin").post(
        f"{BASE}{blacklist.pk}/", {"action": "add", "value": "713 555", "expires": "2001-01-01"}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "too short to be a complete phone number" in body
    assert "Choose today or a later date." in body
    with tenant_context(personas.acct_a1):
        assert not BlacklistEntry.objects.exists()


def test_agents_see_lists_but_cannot_change_them(personas):
    with tenant_context(personas.acct_a1):
        blacklist = _list()
        do_add_entry(blacklist, "phone", NUMBER)
    agent = client_for(personas, "agent")
    page = agent.get(f"{BASE}{blacklist.pk}/")
    assert page.status_code == 200 and "+1 713-555-4301" in page.content.decode()
    assert 'name="action" value="add"' not in page.content.decode()
    assert (
        agent.post(f"{BASE}{blacklist.pk}/", {"action": "add", "value": OTHER}).status_code == 403
    )
    assert agent.post(BASE, {"name": "Mine"}).status_code == 403
    with tenant_context(personas.acct_a1):
        assert BlacklistEntry.objects.count() == 1 and Blacklist.objects.count() == 1


OTHER = "+17135554302"


def test_removing_asks_first_then_releases(personas):
    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(factories.contact_list([{"phones": [NUMBER]}]))
        blacklist = _list()
        do_set_blacklist_campaigns(blacklist, [sub.campaign])
        do_add_entry(blacklist, "phone", NUMBER)
        entry = BlacklistEntry.objects.get()
    client = client_for(personas, "acct_admin")
    url = f"{BASE}{blacklist.pk}/entries/{entry.pk}/remove/"
    confirm = client.get(url)
    assert "Remove +1 713-555-4301 from Opt-outs?" in confirm.content.decode()
    with tenant_context(personas.acct_a1):
        assert BlacklistEntry.objects.exists(), "a GET changes nothing"
    response = client.post(url, follow=True)
    assert "1 contact released" in response.content.decode()
    with tenant_context(personas.acct_a1):
        assert DialState.objects.get(sub_campaign=sub).status == "pending"


def test_deleting_a_list_asks_first(personas):
    with tenant_context(personas.acct_a1):
        blacklist = _list()
        do_add_entry(blacklist, "phone", NUMBER)
    client = client_for(personas, "acct_admin")
    assert "1 entries go with it" in client.get(f"{BASE}{blacklist.pk}/delete/").content.decode()
    assert client.post(f"{BASE}{blacklist.pk}/delete/").status_code == 302
    with tenant_context(personas.acct_a1):
        assert not Blacklist.objects.exists()


def test_search_finds_a_number_typed_any_way_and_the_page_is_paginated(personas):
    with tenant_context(personas.acct_a1):
        blacklist = _list()
        for n in range(120):
            do_add_entry(blacklist, "phone", f"+1713555{n + 4000:04d}", reason="bulk")
    client = client_for(personas, "agent")

    def search(q: str) -> str:  # POSTed by anyone who may see the list; opens at ?search=
        posted = client.post(f"{BASE}{blacklist.pk}/", {"action": "search", "q": q})
        assert posted.status_code == 303 and "555" not in posted["Location"]
        return client.get(posted["Location"]).content.decode()

    found = search("(713) 555-4007")
    assert found.count('data-testid="entry-row"') == 1 and "+1 713-555-4007" in found
    partial = search("555-41")
    assert partial.count('data-testid="entry-row"') == 20  # +1713555 41xx: 4100–4119
    first = client.get(f"{BASE}{blacklist.pk}/").content.decode()
    assert first.count('data-testid="entry-row"') == 50 and "page=2" in first
    nothing = search("999")
    assert "No entry matches this search." in nothing


def test_the_list_page_query_count_does_not_grow_with_entries(personas):
    with tenant_context(personas.acct_a1):
        blacklist = _list()
        do_add_entry(blacklist, "phone", NUMBER)
    client = client_for(personas, "acct_admin")
    client.get(f"{BASE}{blacklist.pk}/")
    with CaptureQueriesContext(connection) as few:
        client.get(f"{BASE}{blacklist.pk}/")
    with tenant_context(personas.acct_a1):
        for n in range(60):
            do_add_entry(blacklist, "phone", f"+1713555{n + 5000:04d}")
        for n in range(3):
            _list(f"List {n}")
    with CaptureQueriesContext(connection) as many:
        client.get(f"{BASE}{blacklist.pk}/")
    assert len(many) == len(few)
    with CaptureQueriesContext(connection) as index:
        client.get(BASE)
    assert len(index) < 20


def test_export_is_a_csv_with_formulas_neutralised(personas):
    with tenant_context(personas.acct_a1):
        blacklist = _list()
        do_add_entry(blacklist, "phone", NUMBER, reason='=HYPERLINK("x")')
        do_add_entry(blacklist, "extension", "4321")
    response = client_for(personas, "acct_admin").get(f"{BASE}{blacklist.pk}/export.csv")
    body = b"".join(response.streaming_content).decode()
    assert response["Content-Type"].startswith("text/csv")
    assert body.startswith("\ufeff")  # Excel reads the UTF-8 correctly
    rows = list(csv.reader(io.StringIO(body[1:])))
    assert rows[0][:3] == ["Number or extension", "Type", "Reason"]
    assert [NUMBER, "Phone number", '\'=HYPERLINK("x")'] in [r[:3] for r in rows]
    assert ["4321", "Extension"] in [r[:2] for r in rows]


def test_an_upload_through_the_page_shows_rejected_lines(personas):
    with tenant_context(personas.acct_a1):
        blacklist = _list()
    client = client_for(personas, "acct_admin")
    data = b"number\n7135554301\nbanana\n7135554302\n"
    response = client.post(f"{BASE}{blacklist.pk}/", {"action": "upload", "reason": "complaints",
                           "file": SimpleUploadedFile("n.csv", data)}, follow=True)  # fmt: skip
    assert "Imported: 2 added, 0 duplicates ignored, 1 lines rejected." in response.content.decode()
    with tenant_context(personas.acct_a1):
        job = blacklist.imports.get()
    page = client.get(f"{BASE}{blacklist.pk}/imports/{job.pk}/").content.decode()
    assert "banana" in page and "<td>3</td>" in page
    empty = client.post(f"{BASE}{blacklist.pk}/", {"action": "upload",
                        "file": SimpleUploadedFile("e.csv", b"")})  # fmt: skip
    assert "The submitted file is empty." in empty.content.decode()


def test_the_campaign_page_attaches_lists_and_sets_the_auto_add_rule(personas):
    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(factories.contact_list([{"phones": [NUMBER]}]))
        blacklist = _list()
        do_add_entry(blacklist, "phone", NUMBER)
    client = client_for(personas, "acct_admin")
    url = f"/a/acme-one/campaigns/{sub.campaign_id}/blacklists/"
    bad = client.post(url, {"blacklists": [blacklist.pk], "auto_unanswered_after": 3,
                            "auto_blacklist": ""}, follow=True)  # fmt: skip
    assert "Choose the blacklist numbers are added to." in bad.content.decode()
    ok = client.post(url, {"blacklists": [blacklist.pk], "auto_unanswered_after": 3,
                           "auto_blacklist": blacklist.pk}, follow=True)  # fmt: skip
    assert "1 pending contact removed" in ok.content.decode()
    with tenant_context(personas.acct_a1):
        campaign = Campaign.objects.get(pk=sub.campaign_id)
        assert list(campaign.blacklists.all()) == [blacklist]
        assert (campaign.auto_blacklist_id, campaign.auto_unanswered_after) == (blacklist.pk, 3)
        assert DialState.objects.get(sub_campaign=sub).status == "suppressed"


def test_an_agent_marks_do_not_call_and_the_device_is_blocked(personas):
    from campaigns import dial_states

    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(
            factories.contact_list([{"client_id": "D", "phones": [NUMBER]}])
        )
        state = DialState.objects.get(sub_campaign=sub)
        attempt = dial_states.ledger_row(sub, state, disposition="ANSWERED", attempt_number=1)
        attempt.save()
    client = client_for(personas, "agent")
    page = client.get(f"/a/acme-one/contacts/{state.contact_id}/").content.decode()
    assert 'data-testid="agent-disposition"' in page
    response = client.post(f"/a/acme-one/contacts/{state.contact_id}/disposition/",
                           {"attempt": attempt.pk, "code": "do_not_call"}, follow=True)  # fmt: skip
    assert "Disposition recorded." in response.content.decode()
    setting = DeviceSetting.objects.get(enterprise=personas.ent_a, device_key=NUMBER)
    assert (setting.action, setting.source, setting.created_by_label) == (
        "block", "agent_dnc", "agent@acme.test",
    )  # fmt: skip
    foreign = client.post(f"/a/acme-one/contacts/{state.contact_id}/disposition/",
                          {"attempt": 123456789, "code": "spam"}, follow=True)  # fmt: skip
    assert "Choose one of the contact" in foreign.content.decode()
    assert Attempt.objects.filter(device_key=NUMBER, disposition="ANSWERED").count() == 1


def test_malformed_list_ids_on_the_campaign_page_are_ignored_not_a_500(personas):
    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(factories.contact_list([{"phones": [NUMBER]}]))
    url = f"/a/acme-one/campaigns/{sub.campaign_id}/blacklists/"
    response = client_for(personas, "acct_admin").post(
        url, {"blacklists": ["abc", "99999999", "²", "9" * 40], "auto_unanswered_after": 0}
    )
    assert response.status_code == 302
    with tenant_context(personas.acct_a1):
        assert not Campaign.objects.get(pk=sub.campaign_id).blacklists.exists()


def test_the_contact_page_says_the_last_result_in_words(personas):
    # Issue 14, item 2: "Voicemail", not VOICEMAIL; in Portuguese for a Portuguese reader.
    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(
            factories.contact_list([{"client_id": "V", "phones": [NUMBER]}])
        )
        state = DialState.objects.get(sub_campaign=sub)
        DialState.objects.filter(pk=state.pk).update(last_disposition="VOICEMAIL")
    client = client_for(personas, "acct_admin")
    page = client.get(f"/a/acme-one/contacts/{state.contact_id}/").content.decode()
    table = page.split('data-testid="dial-states"')[1].split("</table>")[0]
    assert "Voicemail" in table and "VOICEMAIL" not in table
    assert 'data-label="Last result"' in table  # a line of its own on a phone
    client.cookies["django_language"] = "pt-br"
    page = client.get(f"/a/acme-one/contacts/{state.contact_id}/").content.decode()
    assert "Caixa postal" in page.split('data-testid="dial-states"')[1].split("</table>")[0]
