"""A platform operator imports a Não Me Perturbe snapshot, watches the import finish, sees
the registry's size and date, and looks a number up (real worker)."""

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD
from tests.test_registries_worker import registries_put_back

pytestmark = [pytest.mark.browser, pytest.mark.worker]


@pytest.fixture
def restored(committed):
    with registries_put_back():
        yield


def test_operator_imports_a_snapshot_and_sees_size_and_date(
    page, screenshot, celery_worker, restored, tmp_path
):
    # 3,000 São Paulo mobiles and landlines, with two lines that are not numbers.
    lines = [f"(11) 9{8000 + n // 1000:04d}-{n % 1000:04d}" for n in range(2000)]
    lines += [f"11 3{100 + n // 1000:03d}-{n % 1000:04d}" for n in range(1000)]
    lines.insert(10, "ligar depois")
    lines.insert(2000, "+44 20 7946 0958")
    snapshot = tmp_path / "nao-me-perturbe-2026-11.csv"
    snapshot.write_text("telefone\n" + "\n".join(lines) + "\n", encoding="utf-8")

    sign_in(page, "operator@platform.test", PASSWORD)
    # The operator lands on cards for the administration and the registries.
    expect(page.get_by_test_id("operator-places")).to_be_visible()
    page.get_by_test_id("operator-places").get_by_role("link", name=re.compile("National")).click()
    nmp = page.get_by_test_id("registry-br_nmp")
    expect(nmp.get_by_test_id("registry-badge")).to_have_text("Never imported")
    expect(page.get_by_test_id("registry-warning").first).to_contain_text(
        "Não Me Perturbe has never been imported"
    )
    screenshot("registries-before-import")

    upload = page.get_by_test_id("upload-form")
    upload.get_by_label("Registry").select_option(label="Não Me Perturbe")
    upload.get_by_label("Full snapshot (replaces every number)").check()
    upload.locator('input[type="file"]').set_input_files(str(snapshot))
    upload.get_by_role("button", name="Upload and import").click()

    # The import page polls the worker's progress and shows the result when it is done.
    expect(page.get_by_test_id("import-done")).to_contain_text(
        "Não Me Perturbe now holds 3,000 numbers", timeout=60_000
    )
    expect(page.get_by_test_id("import-status")).to_have_text("Imported")
    rejected = page.get_by_test_id("rejected-table")
    expect(rejected.locator("tbody tr")).to_have_count(2)
    expect(rejected.locator("tbody tr").nth(0)).to_contain_text("12")  # the header is line 1
    expect(rejected.locator("tbody tr").nth(1)).to_contain_text("a number of another country")
    screenshot("registry-import-done")

    page.get_by_role("navigation", name="breadcrumb").get_by_role(
        "link", name="National registries"
    ).click()
    today = timezone.now().astimezone(dt.UTC).strftime("%Y-%m-%d")
    expect(nmp.get_by_test_id("registry-size")).to_have_text("3,000")
    expect(nmp.get_by_test_id("registry-date")).to_contain_text(today)
    expect(nmp.get_by_test_id("registry-badge")).to_have_text("Current")

    lookup = page.get_by_test_id("lookup-form")
    lookup.get_by_label("Registry").select_option(label="Não Me Perturbe")
    lookup.get_by_label("Phone number").fill("(11) 98001-0042")
    lookup.get_by_role("button", name="Look up").click()
    expect(page.get_by_test_id("lookup-answer")).to_have_text(
        "+5511980010042 is on Não Me Perturbe. As imported on " + today + "."
    )
    expect(page.get_by_test_id("imports-table")).to_contain_text("nao-me-perturbe-2026-11.csv")
    screenshot("registries-after-import")


@pytest.fixture
def stale_nmp_and_a_telemarketing_sub(restored):
    from django_tenants.utils import tenant_context

    from accounts.models import Account
    from campaigns.models import Campaign, Purpose
    from devices.models import Registry
    from tests import factories

    Registry.objects.filter(country="BR").update(
        last_imported_at=timezone.now() - dt.timedelta(days=40), size=2, generation=1
    )
    account = Account.objects.get(slug="bor-one")
    with tenant_context(account):
        listing = factories.contact_list([{"client_id": "TM1", "phones": ["+5511912345600"]}])
        sub = factories.sub_campaign(
            listing, purpose=Purpose.TELEMARKETING, activate=False,
            campaign_name="Oferta de Natal", name="Ligações",
        )  # fmt: skip
    yield sub
    with tenant_context(account):
        Campaign.objects.filter(name="Oferta de Natal").delete()
        listing.delete()


def test_telemarketing_start_is_refused_while_the_registry_is_stale(
    page, screenshot, stale_nmp_and_a_telemarketing_sub
):
    sub = stale_nmp_and_a_telemarketing_sub
    sign_in(page, "ent.admin@borealis.test", PASSWORD)
    page.goto(f"/a/bor-one/sub-campaigns/{sub.pk}/")
    page.get_by_test_id("confirm-sign-in").click()  # an enterprise admin signs in first
    page.get_by_role("button", name="Iniciar").click()
    expect(page.get_by_role("alert").first).to_contain_text("Não Me Perturbe")
    expect(page.get_by_test_id("registry-banner")).to_be_visible()
    expect(page.get_by_test_id("sub-campaign-title")).to_contain_text("Ligações")
    screenshot("registry-stale-sub-campaign")
