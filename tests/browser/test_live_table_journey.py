"""The live attempts table of a sub-campaign holds still while someone works in it (issue
14, item 5): new attempts are offered, not swapped in under the pointer or a playing
recording; left alone, the table refreshes by itself."""

import pytest
from django_tenants.utils import tenant_context
from playwright.sync_api import expect

from accounts.models import Account
from campaigns import dial_states
from campaigns.models import Campaign, DialState
from devices.models import Attempt
from tests import factories
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def live_sub(committed):
    account = Account.objects.get(slug="acme-one")
    with tenant_context(account):
        sub = factories.sub_campaign(
            factories.contact_list([{"client_id": f"L{n}", "phones": [f"+1713555{n:04d}"]}
                                    for n in range(4201, 4205)]),
            activate=False, campaign_name="Live Table",
        )  # fmt: skip
        states = list(DialState.objects.filter(sub_campaign=sub).order_by("pk"))
        dial_states.ledger_row(sub, states[0], disposition="ANSWERED", attempt_number=1).save()
    yield account, sub, states
    Attempt.objects.filter(sub_campaign_name=sub.name, campaign_name="Live Table").delete()
    with tenant_context(account):
        Campaign.objects.filter(name="Live Table").delete()


def _attempt(account, sub, state):
    with tenant_context(account):
        dial_states.ledger_row(sub, state, disposition="NO_ANSWER", attempt_number=1).save()


def test_new_attempts_wait_while_the_pointer_is_on_the_table(page, screenshot, live_sub):
    account, sub, states = live_sub
    sign_in(page, "acct.admin@acme.test", PASSWORD)
    page.goto(f"/a/{account.slug}/sub-campaigns/{sub.pk}/")
    rows = page.get_by_test_id("attempts-table").locator("tbody tr")
    expect(rows).to_have_count(1)

    # The pointer rests on the table: a new attempt is offered, the rows stay put.
    rows.first.hover()
    _attempt(account, sub, states[1])
    notice = page.get_by_test_id("new-rows")
    expect(notice).to_be_visible(timeout=12_000)
    expect(notice).to_contain_text("New attempts arrived.")
    expect(rows).to_have_count(1)
    screenshot("live-table-new-attempts-offered")
    notice.get_by_role("button", name="Show them").click()
    expect(rows).to_have_count(2)
    expect(notice).to_be_hidden()

    # Left alone, the table takes new attempts by itself.
    page.mouse.move(5, 5)
    page.locator("body").focus()
    _attempt(account, sub, states[2])
    expect(rows).to_have_count(3, timeout=12_000)
    expect(notice).to_be_hidden()
