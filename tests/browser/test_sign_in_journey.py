"""An enterprise admin signs in, sees the accounts, clicks one, and arrives signed in to it."""

import re

import pytest
from playwright.sync_api import expect

from accounts import throttle
from accounts.models import AuditEvent
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_enterprise_admin_enters_an_account_with_one_click(page, screenshot, committed):
    before = set(AuditEvent.objects.filter(action="account.sign_in").values_list("pk", flat=True))

    sign_in(page, "ent.admin@acme.test", PASSWORD)
    expect(page.get_by_role("heading", name="Acme Test")).to_be_visible()
    accounts = page.get_by_test_id("accounts-table")
    expect(accounts.get_by_role("link", name="Acme One")).to_be_visible()
    expect(accounts.get_by_role("link", name="Acme Two")).to_be_visible()
    expect(accounts).not_to_contain_text("Borealis")
    screenshot("enterprise-home")

    accounts.get_by_role("link", name="Acme Two").click()
    expect(page).to_have_url(re.compile(r"/a/acme-two/$"))
    expect(page.get_by_test_id("account-title")).to_have_text("Acme Two")
    expect(page.get_by_test_id("where-am-i")).to_contain_text("Acme Test")
    expect(page.get_by_test_id("current-account")).to_have_text("Acme Two")
    expect(page.get_by_test_id("user-menu")).to_contain_text("ent.admin@acme.test")
    screenshot("signed-in-to-account")

    new_events = AuditEvent.objects.filter(action="account.sign_in").exclude(pk__in=before)
    assert [(e.actor.email, e.account.slug) for e in new_events] == [
        ("ent.admin@acme.test", "acme-two")
    ]
    new_events.delete()


def test_wrong_password_in_the_browser_shows_a_generic_error(page, committed):
    sign_in(page, "ent.admin@acme.test", "not-the-password")
    expect(page.get_by_text("The email address or password is not correct.")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/login/$"))
    throttle.reset("ent.admin@acme.test", "127.0.0.1")
