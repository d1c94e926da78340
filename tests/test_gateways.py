"""Delivery gateways: realistic simulated outcomes, real WAV recordings, email through
Django's backend, and one physical delivery per attempt however often it is delivered.

Runs on the real Redis (settings.REDIS_URL); every test uses fresh random attempt ids
and deletes its keys afterwards.
"""

from __future__ import annotations

import multiprocessing
import socket
import statistics
import threading
import time
import uuid
import wave
from collections import Counter

import pytest
import redis
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage

from campaigns.gateways import (
    STOP_WORDS_EN,
    STOP_WORDS_PT,
    DeliveryJob,
    DeliveryResult,
    EmailGateway,
    GatewayBusy,
    SimulatorGateway,
    delivery_key,
    get_gateway,
    physical_delivery_count,
    physical_key,
    recording_path,
)

US_PHONE = "+17135554101"
BR_PHONE = "+5511912345678"


@pytest.fixture
def redis_conn() -> redis.Redis:
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def new_id(redis_conn):
    """A factory of attempt ids never used before; their Redis keys are removed afterwards."""
    used: list[int] = []

    def make() -> int:
        attempt_id = uuid.uuid4().int % 10**12
        used.append(attempt_id)
        return attempt_id

    yield make
    keys = [key for i in used for key in (delivery_key(i), physical_key(i))]
    for start in range(0, len(keys), 1000):
        redis_conn.delete(*keys[start : start + 1000])


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.SIMULATOR_CALL_DELAY_MS = 0
    settings.SIMULATOR_REPLY_PERCENT = 5
    settings.DIALER_NODES = ["node-a", "node-b", "node-c"]


def voice(attempt_id: int, *, record: bool = False, phone: str = US_PHONE) -> DeliveryJob:
    return DeliveryJob(
        attempt_id=attempt_id,
        channel="voice",
        device_key=phone,
        client_id="A430",
        contact_name="Maria Souza",
        caller_id="+17135550000",
        record_call=record,
    )


def sms(attempt_id: int, *, phone: str = US_PHONE) -> DeliveryJob:
    return DeliveryJob(
        attempt_id=attempt_id,
        channel="sms",
        device_key=phone,
        client_id="A430",
        contact_name="Maria Souza",
        sms_source_address="55123",
        sms_source_type="short_code",
        message="Maria, your invoice A430 is due. Reply STOP to opt out.",
    )


def email(attempt_id: int) -> DeliveryJob:
    return DeliveryJob(
        attempt_id=attempt_id,
        channel="email",
        device_key="maria.souza@example.com",
        client_id="A430",
        contact_name="Maria Souza",
        email_from="billing@acme.test",
        email_subject="Your invoice A430",
        message="Dear Maria, your invoice A430 is due on Friday.",
    )


def share(counts: Counter, key: str) -> float:
    return counts[key] / sum(counts.values())


# --- Simulated voice -------------------------------------------------------------------


def test_simulated_call_outcome_is_deterministic_per_attempt(new_id):
    ids = [new_id() for _ in range(50)]
    first = [SimulatorGateway().call(voice(i)) for i in ids]
    again = [SimulatorGateway().call(voice(i)) for i in ids]
    assert first == again
    assert len({r.disposition for r in first}) > 1, "outcomes must differ between attempts"


def test_voice_disposition_mix_durations_and_nodes_are_realistic(new_id):
    gateway = get_gateway("voice")
    results = [gateway.deliver(voice(new_id())) for _ in range(2000)]
    counts = Counter(r.disposition for r in results)

    assert 0.30 <= share(counts, "ANSWERED") <= 0.40
    assert 0.25 <= share(counts, "NO_ANSWER") <= 0.35
    assert 0.05 <= share(counts, "BUSY") <= 0.11
    assert 0.13 <= share(counts, "VOICEMAIL") <= 0.21
    assert 0.025 <= share(counts, "FAILED") <= 0.075
    assert 0.025 <= share(counts, "ABANDONED") <= 0.075
    assert set(counts) == {"ANSWERED", "NO_ANSWER", "BUSY", "VOICEMAIL", "FAILED", "ABANDONED"}

    seconds: dict[str, list[int]] = {}
    for r in results:
        seconds.setdefault(r.disposition, []).append(r.call_seconds)
    assert all(20 <= s <= 600 for s in seconds["ANSWERED"])
    assert 60 <= statistics.median(seconds["ANSWERED"]) <= 130
    assert max(seconds["ANSWERED"]) > 300, "a few conversations run long"
    assert all(15 <= s <= 45 for s in seconds["VOICEMAIL"])
    assert all(2 <= s <= 10 for s in seconds["ABANDONED"])
    assert all(s == 0 for d in ("NO_ANSWER", "BUSY", "FAILED") for s in seconds[d])

    assert {r.node for r in results} == {"node-a", "node-b", "node-c"}
    assert all(r.recording_file == "" for r in results), "nothing recorded unless asked"
    assert all(r.source_address == "+17135550000" for r in results)


def test_recorded_answered_calls_store_a_real_wav_in_private_storage(new_id, tmp_path):
    results = {
        i: get_gateway("voice").deliver(voice(i, record=True))
        for i in (new_id() for _ in range(30))
    }
    answered = {i: r for i, r in results.items() if r.disposition == "ANSWERED"}
    others = {i: r for i, r in results.items() if r.disposition != "ANSWERED"}
    assert answered and others

    for attempt_id, result in answered.items():
        assert result.recording_file == recording_path(attempt_id)
        assert result.recording_file.startswith(f"recordings/{attempt_id % 1000:03d}/")
        with default_storage.open(result.recording_file, "rb") as fh, wave.open(fh) as wav:
            assert wav.getframerate() == 8000
            assert wav.getnchannels() == 1
            assert wav.getsampwidth() == 2
            assert 0 < wav.getnframes() <= 8 * 8000
            frames = wav.readframes(wav.getnframes())
        assert frames.strip(b"\x00"), "the recording is not silence"
    assert all(r.recording_file == "" for r in others.values())
    stored = list((tmp_path / "recordings").rglob("*.wav"))
    assert len(stored) == len(answered), "only answered calls leave a file"


def test_answered_call_is_not_recorded_when_the_sub_campaign_does_not_record(new_id, tmp_path):
    gateway = get_gateway("voice")
    results = [gateway.deliver(voice(new_id())) for _ in range(30)]
    assert any(r.disposition == "ANSWERED" for r in results)
    assert all(r.recording_file == "" for r in results)
    assert not (tmp_path / "recordings").exists()


def test_call_delay_setting_is_honoured_and_a_repeat_does_not_wait(new_id, settings):
    settings.SIMULATOR_CALL_DELAY_MS = 300
    job = voice(new_id())
    started = time.monotonic()
    first = get_gateway("voice").deliver(job)
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert get_gateway("voice").deliver(job) == first
    assert time.monotonic() - started < 0.3


# --- Simulated SMS ----------------------------------------------------------------------


def test_sms_echoes_source_and_message_and_has_a_numeric_carrier_code(new_id):
    gateway = get_gateway("sms")
    for phone, mcc in ((US_PHONE, "31"), (BR_PHONE, "724")):
        results = [gateway.deliver(sms(new_id(), phone=phone)) for _ in range(100)]
        for result in results:
            assert result.carrier_code.isdigit() and len(result.carrier_code) in (5, 6)
            assert result.carrier_code.startswith(mcc)
            assert result.source_address == "55123"
            assert result.source_type == "short_code"
            assert result.message == sms(0).message
            assert result.node in django_settings.DIALER_NODES
            assert result.call_seconds == 0 and result.recording_file == ""
        assert len({r.carrier_code for r in results}) > 1


def test_sms_disposition_mix_is_realistic(new_id):
    gateway = get_gateway("sms")
    counts = Counter(gateway.deliver(sms(new_id())).disposition for _ in range(2000))
    assert set(counts) == {"DELIVERED", "UNDELIVERED", "FAILED"}
    assert 0.90 <= share(counts, "DELIVERED") <= 0.96
    assert 0.025 <= share(counts, "UNDELIVERED") <= 0.075
    assert 0.005 <= share(counts, "FAILED") <= 0.04


def test_sms_replies_include_noisy_stop_keywords_in_the_callees_language(new_id, settings):
    settings.SIMULATOR_REPLY_PERCENT = 100
    gateway = get_gateway("sms")
    for phone, words, other in ((US_PHONE, STOP_WORDS_EN, STOP_WORDS_PT),
                                (BR_PHONE, STOP_WORDS_PT, STOP_WORDS_EN)):  # fmt: skip
        results = [gateway.deliver(sms(new_id(), phone=phone)) for _ in range(400)]
        delivered = [r for r in results if r.disposition == "DELIVERED"]
        assert all(r.reply_text == "" for r in results if r.disposition != "DELIVERED")
        assert all(r.reply_text and 5 <= r.reply_delay_seconds <= 120 for r in delivered)

        keywords = [r.reply_text.strip().rstrip(".!").upper() for r in delivered]
        stops = [k for k in keywords if k in words]
        assert not [k for k in keywords if k in other and k not in words]
        assert 0.18 <= len(stops) / len(delivered) <= 0.42
        assert len(set(stops)) >= 4, "several keywords, not just STOP"
        noisy = [
            r.reply_text for r in delivered if r.reply_text.strip().rstrip(".!").upper() in words
        ]
        assert any(text != text.strip() or text.strip() != text.strip().upper() for text in noisy)
        ordinary = {r.reply_text for r in delivered} - set(noisy)
        assert len(ordinary) >= 3
    assert "Já paguei" in ordinary or "Vou pagar amanhã" in ordinary  # the last loop is +55


def test_sms_sends_no_replies_when_the_reply_share_is_zero(new_id, settings):
    settings.SIMULATOR_REPLY_PERCENT = 0
    results = [get_gateway("sms").deliver(sms(new_id())) for _ in range(200)]
    assert all(r.reply_text == "" and r.reply_delay_seconds == 0 for r in results)


# --- One physical delivery per attempt -----------------------------------------------------


def test_delivering_an_attempt_twice_dials_once_and_returns_the_same_result(new_id, redis_conn):
    job = voice(new_id(), record=True)
    first = get_gateway("voice").deliver(job)
    # A second worker process has its own gateway instance; Redis is what they share.
    second = SimulatorGateway().deliver(job)
    assert first == second
    assert isinstance(first, DeliveryResult)
    assert physical_delivery_count(job.attempt_id) == 1
    assert physical_delivery_count(new_id()) == 0
    # The result outlives any crash window: it is kept for the ledger's month, not minutes.
    assert redis_conn.ttl(delivery_key(job.attempt_id)) > 29 * 24 * 3600
    assert redis_conn.ttl(physical_key(job.attempt_id)) > 29 * 24 * 3600


def test_concurrent_deliveries_of_one_attempt_dial_once(new_id, settings):
    settings.SIMULATOR_CALL_DELAY_MS = 300  # the others arrive while the call is up
    job = sms(new_id())
    start = threading.Barrier(6)
    results: list[DeliveryResult] = []
    errors: list[BaseException] = []

    def worker() -> None:
        gateway = SimulatorGateway()
        start.wait()
        try:
            results.append(gateway.deliver(job))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 6 and all(r == results[0] for r in results)
    assert physical_delivery_count(job.attempt_id) == 1


def _deliver_in_child(job: DeliveryJob, start, out) -> None:
    start.wait()
    out.put(SimulatorGateway().deliver(job).to_json())


def test_two_worker_processes_delivering_one_attempt_dial_once(new_id, settings):
    settings.SIMULATOR_CALL_DELAY_MS = 300
    job = voice(new_id())
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(2), ctx.Queue()
    children = [ctx.Process(target=_deliver_in_child, args=(job, start, out)) for _ in range(2)]
    for child in children:
        child.start()
    results = [DeliveryResult.from_json(out.get(timeout=20)) for _ in children]
    for child in children:
        child.join(10)
        assert child.exitcode == 0
    assert results[0] == results[1]
    assert physical_delivery_count(job.attempt_id) == 1


def test_a_call_still_in_progress_elsewhere_makes_a_repeat_busy(new_id, redis_conn):
    job = voice(new_id())
    redis_conn.set(delivery_key(job.attempt_id), "in-progress:other-worker", ex=60)
    gateway = SimulatorGateway()
    gateway.busy_wait_seconds = 0.3
    with pytest.raises(GatewayBusy):
        gateway.deliver(job)
    assert physical_delivery_count(job.attempt_id) == 0


def crash_mid_delivery(redis_conn: redis.Redis, attempt_id: int, lease_ms: int) -> None:
    """What a worker killed mid-call leaves: its counted delivery and a lease running out."""
    redis_conn.set(delivery_key(attempt_id), "in-progress:dead-worker", px=lease_ms)
    redis_conn.set(physical_key(attempt_id), 1, ex=3600)


def wait_for_lease_to_run_out(redis_conn: redis.Redis, attempt_id: int) -> None:
    deadline = time.monotonic() + 5
    while redis_conn.exists(delivery_key(attempt_id)):
        assert time.monotonic() < deadline, "the crashed worker's marker never expired"
        time.sleep(0.05)


def test_a_crashed_call_blocks_repeats_only_until_its_lease_runs_out(new_id, redis_conn):
    job = voice(new_id())
    crash_mid_delivery(redis_conn, job.attempt_id, lease_ms=1000)
    impatient = SimulatorGateway()
    impatient.busy_wait_seconds = 0.2
    with pytest.raises(GatewayBusy):
        impatient.deliver(job)
    wait_for_lease_to_run_out(redis_conn, job.attempt_id)

    result = SimulatorGateway().deliver(job)
    assert SimulatorGateway().deliver(job) == result
    assert redis_conn.ttl(delivery_key(job.attempt_id)) > 29 * 24 * 3600


def test_a_crashed_simulated_call_is_looked_up_not_dialled_again(new_id, redis_conn, settings):
    settings.SIMULATOR_CALL_DELAY_MS = 800
    job = voice(new_id(), record=True)
    expected = SimulatorGateway().call(job, live=False)  # what the network did with the call
    crash_mid_delivery(redis_conn, job.attempt_id, lease_ms=300)
    wait_for_lease_to_run_out(redis_conn, job.attempt_id)

    started = time.monotonic()
    result = SimulatorGateway().deliver(job)
    assert time.monotonic() - started < 0.8, "no second call was placed"
    assert result == expected
    assert physical_delivery_count(job.attempt_id) == 1
    if result.recording_file:
        with default_storage.open(result.recording_file, "rb") as fh, wave.open(fh) as wav:
            assert wav.getnframes() > 0


def test_a_crashed_simulated_sms_is_looked_up_not_sent_again(new_id, redis_conn):
    job = sms(new_id())
    expected = SimulatorGateway().text(job)
    crash_mid_delivery(redis_conn, job.attempt_id, lease_ms=800)
    result = SimulatorGateway().deliver(job)  # polls, then takes over the expired lease
    assert result == expected
    assert physical_delivery_count(job.attempt_id) == 1


def test_a_waiting_repeat_takes_over_when_a_lease_expires(new_id, redis_conn):
    job = sms(new_id())
    redis_conn.set(delivery_key(job.attempt_id), "in-progress:dead-worker", px=800)
    started = time.monotonic()
    result = SimulatorGateway().deliver(job)
    assert 0.7 <= time.monotonic() - started < 5
    assert result.disposition in ("DELIVERED", "UNDELIVERED", "FAILED")
    assert physical_delivery_count(job.attempt_id) == 1


def test_an_email_lost_mid_send_is_sent_again_and_counted_twice(new_id, redis_conn, mailoutbox):
    # SMTP cannot say whether the dead worker's message went out, so it is sent again.
    job = email(new_id())
    crash_mid_delivery(redis_conn, job.attempt_id, lease_ms=300)
    wait_for_lease_to_run_out(redis_conn, job.attempt_id)
    assert EmailGateway().deliver(job).disposition == "SENT"
    assert len(mailoutbox) == 1
    assert physical_delivery_count(job.attempt_id) == 2


def test_a_call_longer_than_the_marker_ttl_is_still_dialled_once(new_id, settings, redis_conn):
    settings.SIMULATOR_CALL_DELAY_MS = 2500
    job = voice(new_id())
    owner = SimulatorGateway()
    owner.marker_ttl_seconds = 1  # the live owner keeps extending it
    results: list[DeliveryResult] = []
    thread = threading.Thread(target=lambda: results.append(owner.deliver(job)))
    thread.start()
    time.sleep(1.8)
    marker = redis_conn.get(delivery_key(job.attempt_id))
    assert marker is not None and marker.startswith(b"in-progress:")
    repeat = SimulatorGateway().deliver(job)  # a duplicated message, well past the 1 s TTL
    thread.join()
    assert results == [repeat]
    assert physical_delivery_count(job.attempt_id) == 1


def test_a_failing_delivery_releases_its_marker_for_the_retry(new_id, redis_conn):
    job = DeliveryJob(attempt_id=new_id(), channel="fax", device_key=US_PHONE,
                      client_id="A430", contact_name="Maria")  # fmt: skip
    with pytest.raises(ValueError, match="fax"):
        SimulatorGateway().deliver(job)
    assert not redis_conn.exists(delivery_key(job.attempt_id))


# --- Email ------------------------------------------------------------------------------------


def test_email_is_sent_once_even_if_delivered_twice(new_id, mailoutbox):
    job = email(new_id())
    first = get_gateway("email").deliver(job)
    second = EmailGateway().deliver(job)
    assert first == second
    assert first.disposition == "SENT"
    assert first.message == "Your invoice A430"
    assert first.node
    assert len(mailoutbox) == 1
    sent = mailoutbox[0]
    assert sent.subject == "Your invoice A430"
    assert sent.body == job.message
    assert sent.from_email == "billing@acme.test"
    assert sent.to == ["maria.souza@example.com"]
    assert physical_delivery_count(job.attempt_id) == 1


def test_email_to_an_unreachable_server_is_failed_not_raised(new_id, settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = closed_port
    settings.EMAIL_TIMEOUT = 2
    result = EmailGateway().deliver(email(new_id()))
    assert result.disposition == "FAILED"
    assert result.node == "127.0.0.1"


# --- Configuration ------------------------------------------------------------------------------


def test_gateways_come_from_settings_one_instance_per_class(settings):
    assert isinstance(get_gateway("voice"), SimulatorGateway)
    assert get_gateway("voice") is get_gateway("sms")
    assert isinstance(get_gateway("email"), EmailGateway)
    settings.DIALER_GATEWAYS = {
        **settings.DIALER_GATEWAYS,
        "sms": "campaigns.gateways.EmailGateway",
    }
    assert get_gateway("sms") is get_gateway("email")
    with pytest.raises(ImproperlyConfigured):
        get_gateway("fax")
