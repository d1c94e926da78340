"""An enterprise admin signs in, sees the accounts, signs in to one (a POST), opens another's
page directly and is asked to sign in first; the audit log shows both sign-ins."""

import re

import pytest
from playwright.sync_api import expect

from accounts import throttle
from accounts.models import AuditEvent
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_enterprise_admin_signs_in_to_accounts_with_a_post_and_the_audit_shows_it(
    page, screenshot, committed
):
    before = set(AuditEvent.objects.filter(action="account.sign_in").values_list("pk", flat=True))

    sign_in(page, "ent.admin@acme.test", PASSWORD)
    expect(page.get_by_role("heading", name="Acme Test")).to_be_visible()
    accounts = page.get_by_test_id("accounts-table")
    expect(accounts.get_by_role("link", name="Acme One")).to_be_visible()
    expect(accounts.get_by_role("link", name="Acme Two")).to_be_visible()
    expect(accounts).not_to_contain_text("Borealis")
    screenshot("enterprise-home")

    # The row's button signs in with one click: a POST with the page's CSRF token.
    accounts.get_by_role("row", name="Acme Two").get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/a/acme-two/$"))
    expect(page.get_by_test_id("account-title")).to_have_text("Acme Two")
    expect(page.get_by_test_id("where-am-i")).to_contain_text("Acme Test")
    expect(page.get_by_test_id("current-account")).to_have_text("Acme Two")
    expect(page.get_by_test_id("user-menu")).to_contain_text("ent.admin@acme.test")
    screenshot("signed-in-to-account")

    # An account's page opened directly asks to sign in first, then opens that page.
    page.goto("/a/acme-one/lists/")
    expect(page).to_have_url(re.compile(r"/sign-in/\?next="))
    expect(page.get_by_role("heading", name="Sign in to Acme One?")).to_be_visible()
    screenshot("account-sign-in-confirm")
    page.get_by_test_id("confirm-sign-in").click()
    expect(page).to_have_url(re.compile(r"/a/acme-one/lists/$"))
    expect(page.get_by_test_id("current-account")).to_have_text("Acme One")

    new_events = AuditEvent.objects.filter(action="account.sign_in").exclude(pk__in=before)
    assert sorted((e.actor.email, e.account.slug) for e in new_events) == [
        ("ent.admin@acme.test", "acme-one"),
        ("ent.admin@acme.test", "acme-two"),
    ]
    # The enterprise's audit log shows both sign-ins.
    page.goto(f"/enterprises/{new_events[0].enterprise_id}/audit/")
    page.get_by_label("Action").fill("account.sign_in")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/audit/\?search="))
    log = page.locator("table").first
    expect(log).to_contain_text("Acme One")
    expect(log).to_contain_text("Acme Two")
    screenshot("audit-log-sign-ins")
    new_events.delete()


def test_wrong_password_in_the_browser_shows_a_generic_error(page, committed):
    sign_in(page, "ent.admin@acme.test", "not-the-password")
    expect(page.get_by_text("The email address or password is not correct.")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/login/$"))
    throttle.reset("ent.admin@acme.test", "127.0.0.1")
