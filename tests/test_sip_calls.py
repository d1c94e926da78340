"""Calls over SIP, end to end: the dialer hands calls to real call engines (``manage.py
call_engine``, PJSIP), which dial SIPp playing a trunk and the phones behind it
(tests/carriers/sip/carrier.xml: the last digit picks the far end's answer). Outcomes,
call seconds, recordings and the SIP messages themselves are checked."""

from __future__ import annotations

import array
import math
import time
import wave

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django_tenants.utils import tenant_context

from campaigns import sip
from campaigns.models import DialState
from campaigns.voice_messages import do_set_voice_message
from tests import factories
from tests.carriers import sipp
from tests.conftest import _test_database_url
from tests.helpers import run_dialer, tone_wav

pytestmark = pytest.mark.carrier

CALLER = "+17135550000"


@pytest.fixture(scope="module")
def trunk(tmp_path_factory):
    if not sipp.installed():
        pytest.skip("missing program: sipp (apt-get install sip-tester; .ci/run does)")
    peer = sipp.Sipp(tmp_path_factory.mktemp("sipp"), pause_ms=3000).start()
    yield peer
    peer.stop()


@pytest.fixture
def engines(tmp_path, tasks_held):
    started: list[sipp.CallEngines] = []

    def start(trunk: sipp.Sipp, count: int = 1, channels: int = 4) -> sipp.CallEngines:
        group = sipp.CallEngines(tmp_path, trunk.uri, _test_database_url()).start(count, channels)
        started.append(group)
        return group

    with override_settings(
        DIALER_GATEWAYS={**settings.DIALER_GATEWAYS, "voice": "campaigns.sip.SipGateway"}
    ):
        yield start
    for group in started:
        group.stop()
    client = sip.redis_client()
    client.delete(sip.queue_key(), sip.inflight_key(), sip.slots_key(), sip.engines_key())


def _voice(account, phones: list[str], **fields):
    people = [{"client_id": f"V{n}", "name": f"Person {n}", "phones": [p]}
              for n, p in enumerate(phones)]  # fmt: skip
    with tenant_context(account):
        return factories.sub_campaign(
            factories.contact_list(people), **{"caller_id": CALLER, "max_attempts": 1, **fields}
        )


def _loudness(path: str) -> float:
    with default_storage.open(path, "rb") as raw, wave.open(raw) as audio:
        assert (audio.getnchannels(), audio.getsampwidth()) == (1, 2)
        samples = array.array("h", audio.readframes(audio.getnframes()))
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


def test_an_answered_call_is_recorded_with_its_seconds_and_our_identity(
    trunk, engines, open_all_day_account
):
    account = open_all_day_account
    engines(trunk)
    number = "+17135557011"  # answers, plays the sample, hangs up after 3 s
    sub = _voice(account, [number], record_calls=True)
    rows = run_dialer(account, sub)
    row = rows[number]
    assert row.disposition == "ANSWERED", row.carrier_answer
    assert 2 <= row.call_seconds <= 4
    assert row.node == "engine-1"
    assert row.recording_file and _loudness(row.recording_file) > 300, "far-end audio recorded"
    invite = trunk.invites(number)[0]
    assert CALLER in invite.header("From")
    assert CALLER in invite.header("P-Asserted-Identity")
    assert "m=audio" in invite.text and "PCMA/8000" in invite.text
    # SIPp's own checks (check_it in the scenario) passed too: it answers no INVITE that
    # lacks a P-Asserted-Identity or a G.711 offer.


def test_each_final_answer_maps_to_its_result(trunk, engines, open_all_day_account):
    account = open_all_day_account
    engines(trunk, count=2)
    expected = {
        "+17135557012": ("BUSY", "486"),
        "+17135557013": ("NO_ANSWER", "487"),  # rang past SIP_RING_SECONDS: our CANCEL
        "+17135557014": ("INVALID_NUMBER", "404"),
        "+17135557015": ("DECLINED", "603"),
        "+17135557016": ("NO_ANSWER", "480"),
        "+17135557017": ("NO_ANSWER", ""),  # a trunk that never says anything
        "+17135557018": ("FAILED", "500"),
    }
    sub = _voice(account, list(expected))
    rows = run_dialer(account, sub, seconds=90)
    got = {number: (row.disposition, row.carrier_code) for number, row in rows.items()}
    assert got == expected
    assert "neither rang nor answered" in rows["+17135557017"].carrier_answer
    assert "486 Busy Here" in rows["+17135557012"].carrier_answer
    cancels = [m for m in trunk.messages() if m.received and m.first_line.startswith("CANCEL ")]
    assert any("+17135557013@" in m.first_line for m in cancels), "the ring timeout sent CANCEL"


def test_the_message_is_played_to_the_callee_and_comes_back_in_the_recording(
    engines, open_all_day_account, tmp_path
):
    if not sipp.installed():
        pytest.skip("missing program: sipp (apt-get install sip-tester; .ci/run does)")
    echo = sipp.Sipp(tmp_path / "echo", rtp_echo=True).start()  # sends our audio back
    try:
        account = open_all_day_account
        engines(echo)
        number = "+17135557019"  # answers and listens until we hang up
        sub = _voice(account, [number], record_calls=True)
        with tenant_context(account):
            do_set_voice_message(sub, SimpleUploadedFile("notice.wav", tone_wav(2.0)))
        rows = run_dialer(account, sub)
        row = rows[number]
        assert row.disposition == "ANSWERED", row.carrier_answer
        assert 2 <= row.call_seconds <= 4, "we hung up once the message was played"
        assert _loudness(row.recording_file) > 2000, "the 440 Hz message came back"
        byes = [m for m in echo.messages() if m.received and m.first_line.startswith("BYE ")]
        assert len(byes) == 1
    finally:
        echo.stop()


def test_an_engine_killed_mid_call_is_never_redialled_and_says_outcome_unknown(
    trunk, engines, open_all_day_account
):
    account = open_all_day_account
    group = engines(trunk)
    number = "+17135557010"  # answers and stays until we hang up
    sub = _voice(account, [number], max_attempts=3)
    run_dialer(account, sub, seconds=20, until=lambda rows: any(
        m.first_line.startswith("ACK ") for m in trunk.messages()
        if m.call_id in {i.call_id for i in trunk.invites(number)}
    ))  # fmt: skip
    group.kill("engine-1")
    deadline = time.monotonic() + sip.ENGINE_TTL_SECONDS + 10
    while sip.sweep_lost_calls() == (0, 0):
        assert time.monotonic() < deadline, "the sweep never found the lost call"
        time.sleep(0.5)
    group.start(1)  # a live engine again: nothing may be dialled twice
    rows = run_dialer(account, sub, seconds=5, until=lambda rows: False)
    row = rows[number]
    assert (row.disposition, row.node) == ("UNKNOWN", "engine-1")
    assert "stopped during the call" in row.carrier_answer
    with tenant_context(account):
        state = DialState.objects.get(sub_campaign=sub)
    assert state.status == "done" and state.attempts == 1
    assert len(trunk.calls_by_number()[number]) == 1, "dialled once"
    assert not sip.redis_client().hlen(sip.inflight_key())


def test_two_hundred_devices_through_two_engines_each_once_never_over_the_channels(
    engines, open_all_day_account, tmp_path
):
    if not sipp.installed():
        pytest.skip("missing program: sipp (apt-get install sip-tester; .ci/run does)")
    quick = sipp.Sipp(tmp_path / "quick", pause_ms=300).start()
    try:
        account = open_all_day_account
        engines(quick, count=2, channels=3)
        numbers = [f"+1713556{n:03d}1" for n in range(200)]
        sub = _voice(account, numbers)
        rows = run_dialer(account, sub, seconds=240)
        assert len(rows) == 200
        assert {row.disposition for row in rows.values()} == {"ANSWERED"}
        assert {row.node for row in rows.values()} == {"engine-1", "engine-2"}
        calls = quick.calls_by_number()
        assert len(calls) == 200 and {len(ids) for ids in calls.values()} == {1}, "each once"
        assert quick.most_calls_at_once() <= 6, "never more calls than 2 engines × 3 channels"
    finally:
        quick.stop()
