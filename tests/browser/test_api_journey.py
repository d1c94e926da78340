"""An enterprise admin creates an API key, sees it once, uses it and revokes it; then
subscribes a receiver to webhooks, sends a test event and watches it arrive, signed, in the
delivery log (real worker)."""

import datetime as dt
import hashlib
import hmac
import json
import re
import time

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.actions import do_add_membership
from accounts.models import ApiKey, Role, User, WebhookSubscription
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD
from tests.helpers import WebhookReceiver

pytestmark = [pytest.mark.browser, pytest.mark.worker]

HOUSTON = "+17135554101"


@pytest.fixture
def admin(open_all_day_account):
    """A fresh enterprise admin of a fresh enterprise; its keys and subscriptions go after."""
    enterprise = open_all_day_account.enterprise
    user = User.objects.create_user(
        f"api.admin@{open_all_day_account.slug}.test", PASSWORD, full_name="Ines Integrator"
    )
    do_add_membership(user, enterprise, Role.ENTERPRISE_ADMIN)
    yield user, enterprise
    ApiKey.objects.filter(enterprise=enterprise).delete()
    WebhookSubscription.objects.filter(enterprise=enterprise).delete()


@pytest.fixture
def receiver(settings):
    # The live server runs in this process; the worker has the setting in its environment.
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    found = WebhookReceiver("/portal-events")
    yield found
    found.stop()


def test_admin_creates_uses_and_revokes_a_key_and_sees_a_webhook_test_delivered(
    page, screenshot, celery_worker, admin, receiver
):
    user, enterprise = admin
    sign_in(page, user.email, PASSWORD)

    # --- API keys: create one, shown once -------------------------------------------------
    page.get_by_role("link", name="API keys", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/enterprises/{enterprise.pk}/api-keys/$"))
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    expect(page.get_by_test_id("no-keys")).to_be_visible()

    form = page.get_by_test_id("key-form")
    form.get_by_label("Name").fill("CRM do-not-call sync")
    form.get_by_label("devices:write").check()
    form.get_by_label("decisions:read").check()
    until = timezone.localdate() + dt.timedelta(days=90)
    form.get_by_label("Expires on").fill(until.isoformat())
    form.get_by_role("button", name="Create the key").click()

    shown = page.get_by_test_id("new-key")
    expect(shown).to_contain_text("it is shown only this once")
    secret = shown.get_by_label("New API key").input_value()
    match = re.fullmatch(r"cpk_([A-Za-z0-9]+)_\S+", secret)
    assert match, secret
    prefix = match.group(1)
    row = page.get_by_test_id("key-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("CRM do-not-call sync")
    expect(row).to_contain_text(f"cpk_{prefix}_…")
    expect(row).to_contain_text("Active")
    expect(row).to_contain_text("until")
    expect(row).to_contain_text("Never")  # not used yet
    screenshot("api-key-shown-once")

    key = ApiKey.objects.get(enterprise=enterprise, prefix=prefix)
    assert sorted(key.scopes) == ["decisions:read", "devices:write"]
    assert key.account_id is None and key.revoked_at is None
    assert secret not in key.secret_hash, "only a fingerprint is kept"

    # The key works.
    bearer = {"Authorization": f"Bearer {secret}"}
    answer = page.request.get(f"/api/v1/devices/{HOUSTON}", headers=bearer)
    assert answer.status == 200, answer.text()
    assert answer.json()["device"] == HOUSTON

    # Shown once: a reload lists it by prefix only, now used.
    page.reload()
    expect(page.get_by_test_id("new-key")).to_have_count(0)
    assert secret not in page.content()
    expect(row).to_contain_text(f"cpk_{prefix}_…")
    expect(row).to_contain_text("Active")
    expect(row).not_to_contain_text("Never")

    # --- revoke it ------------------------------------------------------------------------
    row.get_by_role("link", name="Revoke").click()
    expect(page.get_by_role("heading", name="Revoke “CRM do-not-call sync”?")).to_be_visible()
    expect(page.get_by_text(f"cpk_{prefix}_…")).to_be_visible()
    page.get_by_role("button", name="Revoke the key").click()
    expect(page).to_have_url(re.compile(rf"/enterprises/{enterprise.pk}/api-keys/$"))
    expect(page.get_by_role("alert").filter(has_text="revoked")).to_contain_text(
        "Key “CRM do-not-call sync” revoked: it no longer works."
    )
    expect(row).to_contain_text("Revoked")
    expect(row).not_to_contain_text("Active")
    expect(row.get_by_role("link", name="Revoke")).to_have_count(0)
    screenshot("api-key-revoked")

    refused = page.request.get(f"/api/v1/devices/{HOUSTON}", headers=bearer)
    assert refused.status == 401, refused.text()
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["status"] == 401

    # --- webhooks: subscribe the receiver, send a test event --------------------------------
    page.get_by_role("link", name="Webhooks", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/enterprises/{enterprise.pk}/webhooks/$"))
    expect(page.get_by_test_id("no-webhooks")).to_be_visible()
    form = page.get_by_test_id("webhook-form")
    form.get_by_label("URL").fill(receiver.url)
    form.get_by_label("A device was blocked").check()
    form.get_by_role("button", name="Subscribe").click()

    subscription = WebhookSubscription.objects.get(enterprise=enterprise)
    expect(page).to_have_url(
        re.compile(rf"/enterprises/{enterprise.pk}/webhooks/{subscription.pk}/$")
    )
    expect(page.get_by_role("heading", name=receiver.url)).to_be_visible()
    expect(page.get_by_test_id("new-secret")).to_contain_text("it is shown only this once")
    signing_secret = page.get_by_label("Signing secret").input_value()
    assert signing_secret == subscription.secret
    expect(page.get_by_test_id("no-deliveries")).to_be_visible()
    screenshot("webhook-secret-shown-once")

    page.get_by_role("button", name="Send test event").click()
    expect(page.get_by_role("alert").filter(has_text="Test event queued")).to_be_visible()
    expect(page.get_by_test_id("new-secret")).to_have_count(0)  # shown once only

    # The worker sends it; the log shows it once the page is reloaded.
    delivery = page.get_by_test_id("delivery-row")
    deadline = time.monotonic() + 30
    while True:
        if delivery.count() and "Delivered" in delivery.first.inner_text():
            break
        assert time.monotonic() < deadline, "the test event was not delivered within 30 s"
        time.sleep(0.5)
        page.reload()
    expect(delivery).to_have_count(1)
    cells = delivery.locator("td")
    expect(cells.nth(0)).to_have_text("test.ping")
    expect(cells.nth(2)).to_have_text("Delivered")
    expect(cells.nth(3)).to_have_text("1")
    expect(cells.nth(4)).to_have_text("200")
    expect(cells.nth(5)).to_have_text("—")
    screenshot("webhook-test-delivered")

    # The receiver got one POST, signed with the secret the page showed.
    (request,) = receiver.received
    headers = {name.lower(): value for name, value in request["headers"].items()}
    assert headers["x-portal-event"] == "test.ping"
    parts = dict(part.split("=", 1) for part in headers["x-portal-signature"].split(","))
    expected = hmac.new(
        signing_secret.encode(), f"{parts['t']}.".encode() + request["body"], hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert abs(int(parts["t"]) - time.time()) < 120
    event = json.loads(request["body"])
    assert event["type"] == "test.ping" and event["enterprise_id"] == enterprise.pk
    assert headers["x-portal-delivery"] == event["id"]

    # --- delete the subscription ------------------------------------------------------------
    page.get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", name="Delete this subscription?")).to_be_visible()
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("alert").filter(has_text="Subscription deleted")).to_contain_text(
        f"Subscription deleted: {receiver.url} hears nothing more."
    )
    expect(page.get_by_test_id("no-webhooks")).to_be_visible()
    assert not WebhookSubscription.objects.filter(enterprise=enterprise).exists()
