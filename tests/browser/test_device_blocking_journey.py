"""An enterprise admin opens Devices › Device Blocking, previews a block of a number queued in
two accounts, saves it; the next dispatch suppresses the number, and the Contact Trace
shows the suppressed attempts with the rule that stopped them."""

import uuid

import pytest
from django_tenants.utils import tenant_context
from playwright.sync_api import expect

from accounts.models import Account, AuditEvent
from campaigns import dialer
from campaigns.models import Campaign
from devices.models import ActiveSubCampaign, Attempt, DeviceSetting
from tests import factories
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def queued(committed):
    """A number queued in a running sub-campaign of Acme One and of Acme Two."""
    tag = uuid.uuid4().hex[:6]
    digits = f"{int(tag, 16) % 10000:04d}"
    while DeviceSetting.objects.filter(device_key=f"+1713555{digits}").exists():
        digits = f"{(int(digits) + 1) % 10000:04d}"  # a number no other test has set
    phone, typed = f"+1713555{digits}", f"(713) 555-{digits}"
    one, two = Account.objects.get(slug="acme-one"), Account.objects.get(slug="acme-two")
    names = {one: f"Collections {tag}", two: f"Reminders {tag}"}
    for account, name in names.items():
        with tenant_context(account):
            listing = factories.contact_list(
                [{"client_id": f"DB-{tag}", "name": "Dana Blake", "phones": [phone]}]
            )
            factories.sub_campaign(listing, campaign_name=name, name="Voice weekday")
    yield phone, typed, one, names
    Attempt.objects.filter(device_key=phone).delete()
    DeviceSetting.objects.filter(device_key=phone).delete()
    AuditEvent.objects.filter(details__device=phone).delete()
    for account in (one, two):
        with tenant_context(account):
            campaigns = Campaign.objects.filter(name__endswith=tag)
            ids = list(campaigns.values_list("sub_campaigns__id", flat=True))
            campaigns.delete()
        ActiveSubCampaign.objects.filter(account=account, sub_campaign_id__in=ids).delete()


def test_enterprise_admin_previews_and_saves_a_block_that_the_dialer_honours(
    page, screenshot, queued
):
    phone, typed, one, names = queued
    sign_in(page, "ent.admin@acme.test", PASSWORD)
    page.get_by_role("link", name="Devices").click()
    page.get_by_test_id("tab-blocking").click()
    expect(page.get_by_role("heading", name="Block or allow a device")).to_be_visible()

    form = page.get_by_test_id("setting-form")
    form.get_by_role("textbox", name="Device").fill(typed)
    form.get_by_label("Block all calls to this device").check()
    form.get_by_label("Reason").fill("Asked not to be called")
    page.get_by_role("button", name="View Setting").click()

    preview = page.get_by_test_id("preview")
    expect(page.get_by_test_id("preview-device")).to_have_text(phone)
    expect(page.get_by_test_id("preview-contacts")).to_have_text("2")
    expect(page.get_by_test_id("preview-attempts")).to_have_text("2")
    expect(page.get_by_test_id("preview-accounts")).to_have_text("2")
    expect(page.get_by_test_id("impact-row")).to_have_count(2)
    expect(preview).to_contain_text("Acme One")
    expect(preview).to_contain_text("Acme Two")
    expect(preview).to_contain_text("Not saved yet")
    assert not DeviceSetting.objects.filter(device_key=phone).exists()
    screenshot("device-blocking-preview")

    page.get_by_test_id("preview-save").click()
    expect(page.get_by_role("alert")).to_contain_text(
        f"Saved: calls to {phone} are blocked in every account. 2 queued attempts cancelled."
    )
    row = page.get_by_test_id("setting-row").filter(has_text=phone)
    expect(row).to_contain_text("Block")
    expect(row).to_contain_text("Asked not to be called")
    expect(row).to_contain_text("ent.admin@acme.test")
    setting = DeviceSetting.objects.get(device_key=phone)
    assert (setting.action, setting.source) == ("block", "manual")
    screenshot("device-blocking-saved")

    # A list attached after the block: the next dispatch suppresses the number.
    with tenant_context(one):
        listing = factories.contact_list(
            [{"client_id": "DB-late", "name": "Dana Blake", "phones": [phone]}]
        )
        late = factories.sub_campaign(listing, campaign_name=f"Late {names[one]}")
        report = dialer.dispatch_sub_campaign(late.pk)
    assert (report.suppressed, report.queued) == (1, 0)

    page.get_by_role("link", name="Contact Trace").click()
    page.get_by_label("Value").fill(typed)
    page.get_by_role("button", name="Find Attempts").click()
    expect(page.get_by_test_id("trace-count")).to_contain_text(f"3 attempts to reach {phone}")
    rows = page.get_by_test_id("trace-row")
    expect(rows).to_have_count(3)
    for n in range(3):
        expect(rows.nth(n)).to_contain_text("Suppressed")
        expect(rows.nth(n)).to_contain_text(
            "Stopped by: Device block (Manual: Asked not to be called)"
        )
    expect(rows.filter(has_text="Acme Two")).to_have_count(1)
    screenshot("device-blocking-trace")


@pytest.fixture
def imported(committed):
    tag = uuid.uuid4().hex[:6]
    keys = [f"+1832555{(int(tag, 16) + n) % 10000:04d}" for n in range(3)]
    yield tag, keys
    DeviceSetting.objects.filter(device_key__in=keys).delete()
    AuditEvent.objects.filter(action__startswith="device.", details__file__endswith=tag).delete()


def test_enterprise_admin_imports_blocks_reads_a_history_and_removes_one(
    page, screenshot, imported, tmp_path
):
    tag, keys = imported
    csv_file = tmp_path / f"blocks-{tag}.csv"
    csv_file.write_text(
        "device,action,reason,expires\n"
        f"{keys[0]},block,Disputed debt,\n"
        "713 555,block,too short,\n"
        f"{keys[1]},block,Cease and desist letter,2030-12-31\n"
        f"{keys[2]},allow,Consent on file,\n"
        "+17135550000,pause,,\n",
        encoding="utf-8",
    )
    sign_in(page, "ent.admin@acme.test", PASSWORD)
    page.get_by_role("link", name="Devices").click()
    page.get_by_test_id("tab-blocking").click()
    page.get_by_test_id("import-link").click()
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_test_id("import-submit").click()
    expect(page.get_by_role("alert")).to_contain_text(
        f"3 device settings saved from blocks-{tag}.csv. 2 lines have errors and were skipped."
    )
    errors = page.get_by_test_id("import-error")
    expect(errors).to_have_count(2)
    expect(errors.nth(0)).to_contain_text("3")
    expect(errors.nth(0)).to_contain_text("too short")
    expect(errors.nth(1)).to_contain_text("“pause” is not a setting")
    screenshot("device-blocking-import")

    page.get_by_role("link", name="Back to the device settings").click()
    page.get_by_label("Find a device").fill(keys[1])
    page.get_by_role("button", name="Search").click()
    row = page.get_by_test_id("setting-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Cease and desist letter")
    expect(row).to_contain_text("2030-12-31 23:59")
    row.get_by_test_id("remove-link").click()
    expect(page.get_by_test_id("preview")).to_contain_text("contacts released")
    screenshot("device-blocking-remove")
    page.get_by_label("Reason").fill("Letter withdrawn")
    page.get_by_test_id("confirm-remove").click()
    expect(page.get_by_role("alert")).to_contain_text(f"Removed the setting for {keys[1]}.")

    # Its history stays, on the device's own page.
    removed = DeviceSetting.objects.filter(device_key=keys[1]).first()
    assert (removed.action, removed.reason) == ("clear", "Letter withdrawn")
    page.goto(page.url.split("?")[0] + f"{removed.pk}/")
    expect(page.get_by_test_id("history-row")).to_have_count(2)
    expect(page.get_by_test_id("device-current")).to_contain_text("No setting")
    screenshot("device-blocking-history")
