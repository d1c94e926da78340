"""An account admin creates a campaign and an SMS sub-campaign, uploads a list, starts it,
and watches attempts arrive (real worker, real beat)."""

import re

import pytest
from playwright.sync_api import expect

from accounts.actions import do_add_membership
from accounts.models import Role, User
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.worker]

CSV = """client_id,name,phone,email,notes
K100,Ana Souza,(713) 555-4101,ana@example.com,vip
K101,Bruno Lima,713.555.4102,,
K102,Carla Dias,not-a-number,,bad row
K103,Diego Reis,+1 212 555 0143,diego@example.com,
"""


def test_account_admin_runs_an_sms_campaign(
    page, screenshot, open_all_day_account, celery_beat, tmp_path
):
    account = open_all_day_account
    admin = User.objects.create_user(f"admin@{account.slug}.test", PASSWORD, full_name="Alex Admin")
    do_add_membership(admin, account.enterprise, Role.ACCOUNT_ADMIN, account=account)
    csv_path = tmp_path / "portfolio.csv"
    csv_path.write_text(CSV)

    sign_in(page, admin.email, PASSWORD)
    expect(page).to_have_url(re.compile(rf"/a/{account.slug}/$"))

    # Upload the list: three good rows kept, the bad one reported with its line.
    page.get_by_role("link", name="Contact lists").click()
    page.get_by_label("List name").fill("November portfolio")
    page.get_by_label("CSV file").set_input_files(str(csv_path))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_test_id("list-status")).to_have_text("Ready")
    expect(page.get_by_test_id("issues-table")).to_contain_text("not-a-number")
    expect(page.get_by_test_id("issues-table").locator("tbody tr td").first).to_have_text("4")
    expect(page.get_by_test_id("contacts-table")).to_contain_text("+17135554101")
    screenshot("contact-list-imported")

    # Campaign, then an SMS sub-campaign using the list.
    page.get_by_role("link", name="Campaigns").click()
    page.get_by_role("link", name="Create the first campaign").click()
    page.get_by_label("Name").fill("Winter reminders")
    page.get_by_role("button", name="Create campaign").click()
    page.get_by_role("link", name="New sub-campaign").click()
    page.get_by_label("Name").fill("SMS wave 1")
    # Each channel shows its own fields: a voice sub-campaign a caller ID, a text its source.
    expect(page.get_by_label("Caller ID")).to_be_hidden()  # no channel chosen yet
    page.get_by_label("Channel").select_option("voice")
    expect(page.get_by_label("Caller ID")).to_be_visible()
    expect(page.get_by_label("SMS source address")).to_be_hidden()
    expect(page.get_by_label("Busy")).to_be_visible()
    page.get_by_label("Channel").select_option("sms")
    expect(page.get_by_label("Caller ID")).to_be_hidden()
    expect(page.get_by_label("Busy")).to_be_hidden()
    expect(page.get_by_label("Undelivered")).to_be_visible()
    expect(page.get_by_label("Email From")).to_be_hidden()
    page.get_by_label("Purpose").select_option("collections")
    page.get_by_label("SMS source address").fill("55123")
    page.get_by_label("SMS source type").select_option("short_code")
    page.get_by_label("Message").fill("Hi {name}, your payment is due.")
    page.get_by_label("Max attempts per number").fill("1")
    page.get_by_label("November portfolio").check()
    page.get_by_role("button", name="Create sub-campaign").click()
    expect(page.get_by_test_id("sub-campaign-title")).to_contain_text(
        "Winter reminders / SMS wave 1"
    )
    expect(page.locator('[data-count="pending"]')).to_have_text("3")

    page.get_by_role("button", name="Start").click()
    expect(page.get_by_test_id("sub-status")).to_have_text("Active")
    # Beat ticks, the worker texts; the page's live counts and attempts table update.
    expect(page.locator('[data-count="done"]')).to_have_text("3", timeout=45_000)
    table = page.get_by_test_id("attempts-table")
    expect(table.locator("tbody tr")).to_have_count(3, timeout=15_000)
    expect(table).to_contain_text("TEXT_SENT")
    expect(table).to_contain_text("55123 (Short code)")
    expect(table).to_contain_text("Hi Ana Souza, your payment is due.")
    screenshot("sms-campaign-running")
