"""Voice and SMS through real carriers, as users click them: an account admin turns on
recording and uploads the message a voice sub-campaign plays, starts it, and the calls go
through real call engines to SIPp (tests/carriers/sip/carrier.xml: a number ending in 1
answers, plays audio and hangs up). The enterprise admin finds the answered call in the
Contact Trace and listens to its recording. Then the same person is texted through Kannel,
replies STOP from the handset, and Device Blocking shows the number blocked as an SMS
opt-out."""

from __future__ import annotations

import re
import uuid

import pytest
from django.conf import settings
from django.test import override_settings
from django_tenants.utils import tenant_context
from playwright.sync_api import expect

from accounts.actions import do_add_membership
from accounts.models import Role, User
from campaigns import sip
from devices.models import Attempt, DeviceSetting, SmsRoute
from tests import factories
from tests.browser.conftest import sign_in
from tests.carriers import kannel as kannel_carrier
from tests.carriers import sipp
from tests.conftest import PASSWORD, _test_database_url
from tests.helpers import run_dialer, tone_wav, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.carrier]

SECRET = "kannel-callbacks-journey-secret"
CALLER = "+17135550000"


@pytest.fixture(scope="module")
def trunk(tmp_path_factory):
    if not sipp.installed():
        pytest.skip("missing program: sipp (apt-get install sip-tester; .ci/run does)")
    peer = sipp.Sipp(tmp_path_factory.mktemp("sipp"), pause_ms=3000).start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def kannel(tmp_path_factory, live_server_url):
    if not kannel_carrier.installed():
        pytest.skip("missing program: bearerbox/smsbox (apt-get install kannel; .ci/run does)")
    stack = kannel_carrier.for_portal(tmp_path_factory.mktemp("kannel"), live_server_url, SECRET)
    yield stack
    stack.stop()


@pytest.fixture
def carriers(committed, trunk, kannel, live_server_url, tasks_held, tmp_path):
    """Voice through call engines on the SIPp trunk, SMS through Kannel; uploads and
    recordings in one private media folder that the live server and the engines share.
    The dialer's tasks run in this process (``tasks_held``), with these settings."""
    media = tmp_path / "media"
    media.mkdir()
    gateways = {
        **settings.DIALER_GATEWAYS,
        "voice": "campaigns.sip.SipGateway",
        "sms": "campaigns.kannel.KannelGateway",
    }
    with override_settings(
        MEDIA_ROOT=media, DIALER_GATEWAYS=gateways,
        PORTAL_BASE_URL=live_server_url.replace("localhost", "127.0.0.1"),
        KANNEL_SENDSMS_URL=kannel.sendsms_url, KANNEL_USERNAME=kannel_carrier.SENDSMS_USER,
        KANNEL_PASSWORD=kannel_carrier.SENDSMS_PASSWORD, KANNEL_CALLBACK_SECRET=SECRET,
    ):  # fmt: skip
        engines = sipp.CallEngines(tmp_path, trunk.uri, _test_database_url(), MEDIA_ROOT=str(media))
        try:
            engines.start(1)  # stopped below even if it never came up
            yield media
        finally:
            engines.stop()
            client = sip.redis_client()
            client.delete(sip.queue_key(), sip.inflight_key(), sip.slots_key(), sip.engines_key())


@pytest.fixture
def people(open_all_day_account):
    """The account's admin, its enterprise's admin, and one person to reach: a number
    that answers on the trunk (last digit 1) and takes texts (the SMSC delivers it)."""
    account = open_all_day_account
    admin = User.objects.create_user(f"admin@{account.slug}.test", PASSWORD, full_name="Alex Admin")
    do_add_membership(admin, account.enterprise, Role.ACCOUNT_ADMIN, account=account)
    boss = User.objects.create_user(
        f"boss@{account.slug}.test", PASSWORD, full_name="Erin Enterprise"
    )
    do_add_membership(boss, account.enterprise, Role.ENTERPRISE_ADMIN)
    number = f"+17135558{int(uuid.uuid4().hex[:4], 16) % 100:02d}1"
    yield account, admin, boss, number
    Attempt.objects.filter(device_key=number).delete()
    DeviceSetting.objects.filter(device_key=number).delete()
    SmsRoute.objects.filter(device_key=number).delete()


def _notice(folder) -> str:
    path = folder / "notice.wav"
    path.write_bytes(tone_wav(2.0))
    return path


def test_voice_message_call_recording_and_sms_stop_through_real_carriers(
    page, screenshot, carriers, trunk, kannel, people, tmp_path
):
    account, admin, boss, number = people
    with tenant_context(account):
        listing = factories.contact_list(
            [{"client_id": "CH-1", "name": "Carmen Lopes", "phones": [number]}],
            name="Spring callers",
        )
        voice = factories.sub_campaign(
            listing, activate=False, campaign_name="Spring notices", name="Voice reminder",
            caller_id=CALLER, max_attempts=1, record_calls=False,
        )  # fmt: skip

    # The account admin opens the voice sub-campaign, turns recording on, uploads the message.
    sign_in(page, admin.email, PASSWORD)
    expect(page).to_have_url(re.compile(rf"/a/{account.slug}/$"))
    page.get_by_role("link", name="Campaigns").click()
    page.get_by_role("link", name="Voice reminder").click()
    expect(page.get_by_test_id("sub-campaign-title")).to_contain_text(
        "Spring notices / Voice reminder"
    )
    page.get_by_role("tab", name="Settings").click()
    page.get_by_label("Record calls").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("alert")).to_contain_text("Settings saved.")

    # Saving brings the admin back to the Settings tab, where the message is set.
    expect(page.get_by_role("tab", name="Settings")).to_have_attribute("aria-selected", "true")
    section = page.get_by_test_id("voice-message")
    expect(section.get_by_test_id("voice-message-empty")).to_be_visible()
    expect(page.get_by_label("Record calls")).to_be_checked()
    section.get_by_label("Upload a WAV").set_input_files(str(_notice(tmp_path)))
    section.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text(
        "Message saved: notice.wav (2.0 s) plays when the person answers."
    )
    expect(section).to_contain_text("notice.wav (2.0 s) plays when the person answers.")
    player = section.get_by_test_id("voice-message-player")
    expect(player).to_be_visible()
    heard = page.request.get(player.get_attribute("src"))
    assert heard.status == 200 and heard.headers["content-type"] == "audio/wav"
    assert heard.body().startswith(b"RIFF")
    section.scroll_into_view_if_needed()
    screenshot("channels-voice-message")

    # Start it; the dialer hands the call to the call engine, which dials the trunk.
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_test_id("sub-status")).to_have_text("Active")
    rows = run_dialer(account, voice)
    call = rows[number]
    assert call.disposition == "ANSWERED", call.carrier_answer
    assert 1 <= call.call_seconds <= 4 and call.node == "engine-1"
    assert call.recording_state == "stored" and call.recording_file
    assert (carriers / call.recording_file).exists(), "the engine stored it in private media"
    assert CALLER in trunk.invites(number)[0].header("P-Asserted-Identity")
    attempts = page.get_by_test_id("attempts-table")
    expect(attempts.locator("tbody tr")).to_have_count(1, timeout=15_000)
    expect(attempts).to_contain_text("Answered")

    # The enterprise admin traces the number and listens to the call.
    page.get_by_test_id("user-menu").click()
    page.get_by_role("button", name="Log out").click()
    sign_in(page, boss.email, PASSWORD)
    page.get_by_role("link", name="Devices").click()
    page.get_by_label("Search Criteria").select_option("device")
    page.get_by_label("Value").fill(number)
    page.get_by_role("button", name="Find Attempts").click()
    expect(page.get_by_test_id("trace-count")).to_contain_text(f"1 attempt to reach {number}")
    row = page.get_by_test_id("trace-row")
    expect(row).to_contain_text("Spring notices / Voice reminder")
    expect(row.locator("td").nth(4)).to_have_text(re.compile(r"^Answered"))
    expect(row.get_by_test_id("carrier-answer")).to_have_text("Carrier's answer: 200 OK")
    expect(row.locator("td").nth(5)).to_have_text(str(call.call_seconds))
    expect(row.locator("td").nth(6)).to_have_text("engine-1")
    row.get_by_test_id(f"listen-{call.pk}").click()
    audio = row.locator(".recording-player audio")
    expect(audio).to_have_count(1)
    expect(audio).to_be_visible()
    page.wait_for_function(
        "(el) => el.readyState >= 1 && el.duration > 0", arg=audio.element_handle(), timeout=10_000
    )
    duration = audio.evaluate("(el) => el.duration")
    assert 1 <= duration <= 5, duration
    recording = page.request.get(audio.get_attribute("src"))
    assert recording.status == 200 and recording.headers["content-type"] == "audio/wav"
    assert recording.body().startswith(b"RIFF")
    screenshot("channels-trace-listen")

    # An SMS sub-campaign texts the same person through Kannel; the handset replies STOP.
    with tenant_context(account):
        texts = factories.sub_campaign(
            listing, channel="sms", campaign_name="Spring texts", name="SMS reminder",
            message="Hi {name}, reply STOP to opt out.", max_attempts=1,
        )  # fmt: skip
    sent = run_dialer(account, texts, seconds=30)
    assert number in sent, sent
    assert wait_for(lambda: Attempt.objects.get(pk=sent[number].pk).disposition == "DELIVERED"), (
        Attempt.objects.get(pk=sent[number].pk).carrier_answer
    )
    kannel.reply(number.lstrip("+"), "STOP")  # TON 1: Kannel adds the +
    setting = wait_for(
        lambda: DeviceSetting.objects.filter(
            enterprise_id=account.enterprise_id, device_key=number
        ).first()
    )
    assert setting is not None and (setting.action, setting.source) == ("block", "sms_opt_out")

    page.get_by_test_id("tab-blocking").click()
    page.get_by_label("Find a device").fill(number)
    page.get_by_role("button", name="Search").click()
    blocked = page.get_by_test_id("setting-row")
    expect(blocked).to_have_count(1)
    expect(blocked.locator("td").nth(0)).to_have_text(number)
    expect(blocked.locator("td").nth(1)).to_have_text("Block")
    expect(blocked.locator("td").nth(2)).to_contain_text("STOP")
    expect(blocked.locator("td").nth(3)).to_have_text("SMS opt-out")
    screenshot("channels-sms-stop-block")

    # The trace now tells the whole story: the call, the text, and the reply.
    page.get_by_role("link", name="Contact Trace").click()
    page.get_by_label("Value").fill(number)
    page.get_by_role("button", name="Find Attempts").click()
    expect(page.get_by_test_id("trace-count")).to_contain_text(f"3 attempts to reach {number}")
    sms = page.get_by_test_id("trace-sms")
    expect(sms.filter(has_text="Mobile Originated")).to_contain_text("“STOP”")
    expect(sms.filter(has_text="Mobile Terminated")).to_contain_text(
        "“Hi Carmen Lopes, reply STOP to opt out.”"
    )
    screenshot("channels-trace-after-stop")
