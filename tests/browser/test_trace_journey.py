"""An enterprise admin traces a phone number, plays one recording, deletes another,
exports the CSV and clicks through to a sub-campaign's settings in its account."""

import datetime as dt
import io
import re
import wave
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from django_tenants.utils import tenant_context
from playwright.sync_api import expect

from accounts.models import Account, AuditEvent
from campaigns.models import Campaign
from devices.models import Attempt
from tests import factories
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser
PHONE = "+17135554177"


def _wav(seconds: int = 2) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x10" * 8000 * seconds)
    return buffer.getvalue()


@pytest.fixture
def traced(committed, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    one, two = Account.objects.get(slug="acme-one"), Account.objects.get(slug="acme-two")
    with tenant_context(one):
        sub = factories.sub_campaign(activate=False, campaign_name="Trace Journey")
    now = timezone.now()
    rows = []
    for n, (account, disposition, recorded) in enumerate(
        [(one, "ANSWERED", True), (two, "ANSWERED", True), (one, "NO_ANSWER", False)]
    ):
        path = (
            default_storage.save(f"recordings/journey/{n}.wav", ContentFile(_wav()))
            if recorded
            else ""
        )
        rows.append(
            Attempt.objects.create(
                attempted_at=now - dt.timedelta(days=n + 1),
                enterprise_id=account.enterprise_id,
                account_id=account.pk,
                account_name=account.name,
                campaign_id=sub.campaign_id,
                campaign_name="Trace Journey",
                sub_campaign_id=sub.pk if account == one else None,
                sub_campaign_name=sub.name if account == one else "",
                client_id="TJ-1",
                device_key=PHONE,
                channel="voice",
                direction="outbound",
                disposition=disposition,
                call_seconds=95 if recorded else 0,
                node="dialer-node-02",
                recording_state="stored" if recorded else "none",
                recording_file=path,
            )  # fmt: skip
        )
    yield sub, rows
    Attempt.objects.filter(device_key=PHONE).delete()
    AuditEvent.objects.filter(
        action__in=["trace.search", "trace.export", "recording.delete"]
    ).delete()
    with tenant_context(one):
        Campaign.objects.filter(name="Trace Journey").delete()


def test_enterprise_admin_traces_listens_deletes_exports_and_clicks_through(
    page, screenshot, traced
):
    sub, (kept, deleted, _plain) = traced
    sign_in(page, "ent.admin@acme.test", PASSWORD)
    page.get_by_role("link", name="Devices").click()
    page.get_by_label("Search Criteria").select_option("device")
    page.get_by_label("Value").fill("(713) 555-4177")
    page.get_by_role("button", name="Find Attempts").click()
    expect(page.get_by_test_id("trace-count")).to_contain_text("3 attempts to reach +17135554177")
    rows = page.get_by_test_id("trace-row")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("Acme One")
    expect(rows.nth(1)).to_contain_text("Acme Two")

    # Listen: the browser's player fetches the checked URL with a byte range.
    ranges = []
    page.on("response", lambda r: ranges.append(r.status) if ".wav" in r.url else None)
    page.get_by_test_id(f"listen-{kept.pk}").click()
    audio = page.locator(f'[data-testid="trace-row"] audio[src$="/recordings/{kept.pk}.wav"]')
    expect(audio).to_have_count(1)
    page.wait_for_function("(el) => el.readyState >= 1", arg=audio.element_handle(), timeout=10_000)
    assert 206 in ranges or 200 in ranges
    screenshot("trace-listening")

    # Delete another recording, after confirming.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id(f"delete-{deleted.pk}").click()
    expect(page.get_by_test_id(f"deleted-{deleted.pk}")).to_contain_text(
        "N/A (deleted by ent.admin@acme.test at"
    )
    assert not default_storage.exists(deleted.recording_file)
    assert AuditEvent.objects.filter(
        action="recording.delete", account_id=deleted.account_id
    ).exists()

    # Export CSV.
    with page.expect_download() as download:
        page.get_by_test_id("trace-export").click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert text.splitlines()[0].startswith("Date,Account,Client ID")
    assert text.count(PHONE) == 3
    screenshot("trace-after-delete")

    # Click through to the sub-campaign's settings, signed in to its account.
    rows.nth(0).get_by_role("link", name=sub.name).click()
    page.get_by_test_id("confirm-sign-in").click()
    expect(page).to_have_url(re.compile(rf"/a/acme-one/sub-campaigns/{sub.pk}/$"))
    expect(page.get_by_test_id("sub-campaign-title")).to_contain_text(sub.name)
    expect(page.get_by_test_id("current-account")).to_have_text("Acme One")
    screenshot("trace-click-through")


def test_the_trace_fits_a_phone_with_the_result_in_view(page, screenshot, traced):
    # Issue 14, item 9: on a phone the table scrolled sideways, the Result off-screen.
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, "ent.admin@acme.test", PASSWORD)
    enterprise = Account.objects.get(slug="acme-one").enterprise_id
    page.goto(f"/enterprises/{enterprise}/devices/")
    page.get_by_label("Value").fill("(713) 555-4177")
    page.get_by_role("button", name="Find Attempts").click()
    rows = page.get_by_test_id("trace-row")
    expect(rows).to_have_count(3)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the phone"
    first = rows.nth(0)
    expect(first).to_contain_text("Answered")
    box = first.get_by_text("Answered").bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390, box
    screenshot("trace-phone")
