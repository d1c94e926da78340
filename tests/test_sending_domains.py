"""Sending domains (issue 13, item 8): an enterprise's email is sent only from addresses
at the domains its enterprise admins list. Refused when a sub-campaign is saved or started,
and again just before each email is sent: a domain removed in between stops the email,
and the attempt is recorded with the reason."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django_tenants.utils import tenant_context

from accounts.models import AuditEvent, SendingDomain
from accounts.sending_domains import (
    DomainError,
    do_add_sending_domain,
    do_remove_sending_domain,
    normalise_domain,
)
from campaigns import dialer
from campaigns.actions import do_activate_sub_campaign, do_create_campaign
from campaigns.models import DialState, SubCampaign
from devices.models import Attempt
from tests import factories
from tests.helpers import client_for

EMAIL = "jane.doe@example.com"


def _page(personas) -> str:
    return f"/enterprises/{personas.ent_a.pk}/sending-domains/"


# --- the page --------------------------------------------------------------------------------


def test_an_enterprise_admin_adds_a_domain_idna_normalised_and_audited(personas):
    client = client_for(personas, "ent_admin")
    empty = client.get(_page(personas)).content.decode()
    assert 'data-testid="sending-domains-empty"' in empty
    assert "Email sub-campaigns can't be saved or started until a domain is added" in empty
    assert 'data-testid="menu-sending-domains"' in empty, "linked from the enterprise menu"
    response = client.post(_page(personas), {"domain": "  Exämple.COM. "}, follow=True)
    body = response.content.decode()
    assert "exämple.com added" in body and 'data-testid="sending-domain-row"' in body
    domain = SendingDomain.objects.get(enterprise=personas.ent_a)
    assert (domain.domain, domain.display_name) == ("xn--exmple-cua.com", "exämple.com")
    assert domain.created_by_label == "ent.admin@acme.test"
    event = AuditEvent.objects.get(action="sending_domain.add")
    assert (event.enterprise, event.actor, event.details) == (
        personas.ent_a, personas.ent_admin, {"domain": "xn--exmple-cua.com"},
    )  # fmt: skip
    # The same domain, however it is written, is refused with a message.
    for same in ("EXÄMPLE.com", "xn--exmple-cua.com"):
        again = client.post(_page(personas), {"domain": same})
        assert again.status_code == 200
        assert "exämple.com is already on the list." in again.content.decode()
    assert SendingDomain.objects.filter(enterprise=personas.ent_a).count() == 1


@pytest.mark.parametrize(
    "bad, says",
    [
        ("", "This field is required."),
        ("   ", "This field is required."),
        ("billing@acme.com", "Enter the domain only"),
        ("localhost", "It should have a period."),
        ("acme.test", "special-use or reserved name"),
        ("1.2.3.4", "not within a valid top-level domain"),
        ("acme corp.com", "The domain contains invalid characters: SPACE."),
        ("https://acme.com/", "The domain contains invalid characters"),
        ("-acme.com", "A domain cannot start with a hyphen."),
        ("acme..com", "The domain cannot have two periods in a row."),
        ("a" * 64 + ".com", "A label between periods has at most 63 characters"),
        ("a." * 130 + "com", "A domain name has at most 253 characters."),
        ("x" * 301, "Ensure this value has at most 300 characters"),
        ("acme\x00.com", "Null characters are not allowed."),
    ],
)
def test_what_is_not_a_domain_is_refused_with_a_message(personas, bad, says):
    response = client_for(personas, "ent_admin").post(_page(personas), {"domain": bad})
    assert response.status_code == 200
    assert says in response.content.decode()
    assert not SendingDomain.objects.exists()


def test_removal_asks_first_then_removes_and_is_audited(personas):
    domain = do_add_sending_domain(personas.ent_a, "acme.example.com")
    client = client_for(personas, "ent_admin")
    url = f"{_page(personas)}{domain.pk}/remove/"
    confirm = client.get(url)
    assert confirm.status_code == 200
    assert "Remove acme.example.com?" in confirm.content.decode()
    assert SendingDomain.objects.filter(pk=domain.pk).exists(), "a GET only asks"
    done = client.post(url, follow=True)
    assert "acme.example.com removed" in done.content.decode()
    assert not SendingDomain.objects.filter(pk=domain.pk).exists()
    event = AuditEvent.objects.get(action="sending_domain.remove")
    assert event.details == {"domain": "acme.example.com"} and event.actor == personas.ent_admin


def test_only_the_enterprises_admins_reach_the_page(personas):
    theirs = do_add_sending_domain(personas.ent_b, "borealis.example.com")
    page = _page(personas)
    assert client_for(personas, "anonymous").get(page).status_code == 302
    assert client_for(personas, "acct_admin").get(page).status_code == 403
    assert client_for(personas, "agent").post(page, {"domain": "x.com"}).status_code == 403
    assert client_for(personas, "other_ent_admin").get(page).status_code == 404
    mine = client_for(personas, "ent_admin")
    assert mine.get(f"{page}{theirs.pk}/remove/").status_code == 404
    assert mine.post(f"{page}{theirs.pk}/remove/").status_code == 404
    assert SendingDomain.objects.filter(pk=theirs.pk).exists()
    assert not SendingDomain.objects.filter(enterprise=personas.ent_a).exists()


def test_normalising_keeps_one_form_of_a_name():
    assert normalise_domain("Mail.Acme.Example.COM") == ("mail.acme.example.com",) * 2
    assert normalise_domain("bücher.example") == ("xn--bcher-kva.example", "bücher.example")
    with pytest.raises(DomainError):
        normalise_domain("acme..com")


# --- saving and starting a sub-campaign ------------------------------------------------------


def _email_form(**extra) -> dict:
    return {"name": "Statement", "channel": "email", "purpose": "collections",
            "email_subject": "Your statement", "message": "Hello {name}",
            "pacing_per_minute": 60, "max_attempts": 3, **extra}  # fmt: skip


def test_the_sub_campaign_form_refuses_a_from_address_at_another_domain(personas):
    with tenant_context(personas.acct_a1):
        campaign = do_create_campaign(name="Statements")
    url = f"/a/acme-one/campaigns/{campaign.pk}/sub-campaigns/new/"
    client = client_for(personas, "acct_admin")
    none_yet = client.post(url, _email_form(email_from="billing@acme.example.com"))
    assert none_yet.status_code == 200
    assert "This enterprise has no sending domains yet" in none_yet.content.decode()
    do_add_sending_domain(personas.ent_a, "acme.example.com")
    do_add_sending_domain(personas.ent_a, "exämple.com")
    for refused in ("ceo@bank.example.net", "billing@mail.acme.example.com",
                    "billing@example.com", "not an address"):  # fmt: skip
        response = client.post(url, _email_form(email_from=refused))
        assert response.status_code == 200, refused
        body = response.content.decode()
        assert 'id="error_1_id_email_from"' in body, refused
        if "@" in refused:
            domain = refused.split("@")[1]
            assert (f"{domain} is not one of this enterprise&#x27;s sending domains "
                    "(acme.example.com, exämple.com)") in body  # fmt: skip
    with tenant_context(personas.acct_a1):
        assert not SubCampaign.objects.filter(campaign=campaign).exists()
    for n, allowed in enumerate(("Billing@ACME.example.com", "contas@EXÄMPLE.com")):
        saved = client.post(url, _email_form(name=f"Ok {n}", email_from=allowed))
        assert saved.status_code == 302, saved.content.decode()
    with tenant_context(personas.acct_a1):
        assert SubCampaign.objects.filter(campaign=campaign).count() == 2


def test_a_sub_campaign_whose_domain_was_removed_cannot_start(personas):
    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(
            factories.contact_list([{"client_id": "E1", "email": EMAIL}]), channel="email",
            activate=False,
        )  # fmt: skip
    do_remove_sending_domain(SendingDomain.objects.get(enterprise=personas.ent_a))
    client = client_for(personas, "acct_admin")
    response = client.post(f"/a/acme-one/sub-campaigns/{sub.pk}/start/", follow=True)
    assert "This enterprise has no sending domains yet" in response.content.decode()
    with tenant_context(personas.acct_a1):
        assert SubCampaign.objects.get(pk=sub.pk).status == "draft"
        with pytest.raises(ValidationError):
            do_activate_sub_campaign(sub)


# --- sending ---------------------------------------------------------------------------------


def test_an_email_is_not_sent_once_its_domain_is_removed_and_the_reason_is_kept(
    personas, mailoutbox, tasks_held
):
    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(
            factories.contact_list([{"client_id": "E1", "name": "Jane", "email": EMAIL}]),
            channel="email",
        )
        dialer.dispatch_sub_campaign(sub.pk)
        state = DialState.objects.get(sub_campaign=sub)
        assert state.status == "dialing", "claimed while the domain was allowed"
    # Between the claim and the send, an enterprise admin removes the domain.
    do_remove_sending_domain(SendingDomain.objects.get(enterprise=personas.ent_a))
    with tenant_context(personas.acct_a1):
        dialer.perform_attempt(state.pk, str(state.claim_token))
        assert mailoutbox == [], "nothing is sent from a domain no longer allowed"
        rows = Attempt.objects.filter(account_id=personas.acct_a1.pk, sub_campaign_id=sub.pk)
        (row,) = rows
        assert (row.disposition, row.suppression_rule) == ("SUPPRESSED", "sending_domain")
        assert row.suppression_detail.startswith("This enterprise has no sending domains yet")
        state.refresh_from_db()
        assert (state.status, state.last_rule) == ("pending", "sending_domain")
        # While the domain is not allowed, the dispatcher claims nothing: no churn.
        dialer.dispatch_sub_campaign(sub.pk)
        assert DialState.objects.get(pk=state.pk).status == "pending"
        assert rows.count() == 1
    page = client_for(personas, "acct_admin").get(f"/a/acme-one/sub-campaigns/{sub.pk}/")
    body = page.content.decode()
    assert 'data-testid="sending-domain-banner"' in body
    assert "This enterprise has no sending domains yet" in body, "the attempt shows why"
    # Allowed again: the same contact is sent to, once.
    do_add_sending_domain(personas.ent_a, "acme.example.com")
    with tenant_context(personas.acct_a1):
        dialer.dispatch_sub_campaign(sub.pk)
        state.refresh_from_db()
        assert dialer.perform_attempt(state.pk, str(state.claim_token)) == "recorded"
    (message,) = mailoutbox
    assert message.to == [EMAIL] and message.from_email == "billing@acme.example.com"
    dispositions = rows.order_by("id")
    assert [a.disposition for a in dispositions] == ["SUPPRESSED", "SENT"]


def test_another_enterprises_domain_does_not_let_email_out(personas, mailoutbox, tasks_held):
    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(
            factories.contact_list([{"client_id": "E1", "email": EMAIL}]), channel="email"
        )
        dialer.dispatch_sub_campaign(sub.pk)
        state = DialState.objects.get(sub_campaign=sub)
    SendingDomain.objects.filter(enterprise=personas.ent_a).delete()
    do_add_sending_domain(personas.ent_b, "acme.example.com")  # the other enterprise's list
    with tenant_context(personas.acct_a1):
        dialer.perform_attempt(state.pk, str(state.claim_token))
    assert mailoutbox == []
    row = Attempt.objects.get(account_id=personas.acct_a1.pk, sub_campaign_id=sub.pk)
    assert row.suppression_rule == "sending_domain"


def test_the_demo_enterprise_sends_email_from_its_domain(personas, mailoutbox, tasks_held):
    from accounts.demo import DEMO_SENDING_DOMAIN, load_demo_people
    from campaigns.actions import do_save_sub_campaign

    people = load_demo_people()
    load_demo_people()  # loading twice changes nothing
    (domain,) = SendingDomain.objects.filter(enterprise=people.enterprise)
    assert domain.domain == DEMO_SENDING_DOMAIN
    with tenant_context(people.accounts["acme-east"]):
        sub = do_save_sub_campaign(
            SubCampaign(
                campaign=do_create_campaign(name="Demo statements"), name="Email",
                channel="email", purpose="collections", email_subject="Your statement",
                email_from=f"billing@{DEMO_SENDING_DOMAIN}", message="Hello {name}",
            ),
            lists=[factories.contact_list([{"client_id": "D1", "email": EMAIL}])],
        )  # fmt: skip
        do_activate_sub_campaign(sub)
        dialer.dispatch_sub_campaign(sub.pk)
        state = DialState.objects.get(sub_campaign=sub)
        assert dialer.perform_attempt(state.pk, str(state.claim_token)) == "recorded"
    assert [m.from_email for m in mailoutbox] == [f"billing@{DEMO_SENDING_DOMAIN}"]
