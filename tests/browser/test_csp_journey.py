"""Under the strict Content-Security-Policy (no inline code or style), what used to be
inline still works from static/js: the API's Swagger page renders, a removal asks before
it removes, the language switcher switches, a progress bar shows its width; the platform
admin renders. The ``page`` fixture fails any journey during which the browser refused
something."""

import datetime as dt
import uuid

import pytest
from django_tenants.utils import tenant_context
from playwright.sync_api import expect

from accounts.actions import do_add_membership
from accounts.models import Role, User
from contacts.models import ContactList
from devices.models import Holiday
from tests.browser.conftest import csp_violations, sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_the_api_docs_page_renders_under_the_policy(page, browser, live_server_url, committed):
    page.goto("/api/v1/docs")
    expect(page.get_by_role("heading", name="Compliance Portal API")).to_be_visible()
    expect(page.locator(".opblock").first).to_be_visible()  # the operations, from the schema
    assert page.locator(".opblock").count() >= 5

    # The listener does see refusals: inline style is refused on our pages.
    other = browser.new_context(base_url=live_server_url)
    probe = other.new_page()
    refused = csp_violations(probe)
    probe.goto("/login/")
    probe.evaluate("document.body.setAttribute('style', 'background: red')")
    probe.wait_for_timeout(200)
    other.close()
    assert any("style-src" in message for message in refused), refused


@pytest.fixture
def people(open_all_day_account):
    account = open_all_day_account
    enterprise, tag = account.enterprise, uuid.uuid4().hex[:8]
    admin = User.objects.create_user(f"csp.admin.{tag}@acme.test", PASSWORD)
    do_add_membership(admin, enterprise, Role.ENTERPRISE_ADMIN)
    clerk = User.objects.create_user(f"csp.clerk.{tag}@acme.test", PASSWORD)
    do_add_membership(clerk, enterprise, Role.ACCOUNT_ADMIN, account=account)
    holiday = Holiday.objects.create(
        enterprise=enterprise, date=dt.date(2031, 12, 25), name=f"Holiday {tag}"
    )
    with tenant_context(account):
        importing = ContactList.objects.create(
            name=f"Importing {tag}", status=ContactList.Status.IMPORTING,
            bytes_total=100, bytes_read=40,
        )  # fmt: skip
    yield account, admin, clerk, holiday, importing
    Holiday.objects.filter(pk=holiday.pk).delete()
    with tenant_context(account):
        ContactList.objects.filter(pk=importing.pk).delete()
    User.objects.filter(pk__in=[admin.pk, clerk.pk]).delete()


def test_confirmations_language_switch_and_progress_bars_work_from_static_js(page, people):
    account, admin, clerk, holiday, importing = people
    sign_in(page, admin.email, PASSWORD)
    page.goto(f"/enterprises/{account.enterprise_id}/calling-rules/")
    holidays = page.get_by_test_id("holidays-table")
    expect(holidays).to_contain_text(holiday.name)

    # data-confirm: Cancel keeps the holiday, OK removes it.
    questions = []
    page.once("dialog", lambda d: (questions.append(d.message), d.dismiss()))
    holidays.get_by_role("button", name="Remove").click()
    page.wait_for_timeout(300)
    expect(holidays).to_contain_text(holiday.name)
    assert questions == ["Remove this holiday?"]
    assert Holiday.objects.filter(pk=holiday.pk).exists()
    page.once("dialog", lambda d: d.accept())
    holidays.get_by_role("button", name="Remove").click()
    expect(page.get_by_text("No holidays listed.")).to_be_visible()
    assert not Holiday.objects.filter(pk=holiday.pk).exists()

    # data-autosubmit: choosing a language reloads the page in it.
    page.get_by_label("Language").select_option("pt-br")
    expect(page.get_by_role("heading", name="Regras de chamada")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "pt-br")
    page.get_by_label("Idioma").select_option("en")
    expect(page.get_by_role("heading", name="Calling rules")).to_be_visible()

    # data-percent: the progress bar of a list being imported is 40% wide.
    page.context.clear_cookies()
    sign_in(page, clerk.email, PASSWORD)
    page.goto(f"/a/{account.slug}/lists/{importing.pk}/")
    bar = page.locator("[data-progress-bar]")
    expect(bar).to_have_text("40%")
    assert bar.evaluate("el => el.style.width") == "40%"
    box = page.locator(".progress").bounding_box()
    width = bar.bounding_box()["width"]
    assert abs(width - 0.4 * box["width"]) < 2, (width, box["width"])


def test_the_platform_admin_renders_under_its_policy(page, committed):
    sign_in(page, "operator@platform.test", PASSWORD)
    page.goto("/admin/")
    expect(page.get_by_role("link", name="Enterprises", exact=True)).to_be_visible()
    page.goto("/admin/accounts/enterprise/")
    expect(page.locator("#result_list")).to_contain_text("Acme Test")
    page.get_by_role("link", name="Acme Test").click()
    expect(page.locator("input[name=name]")).to_have_value("Acme Test")
