"""Delivery gateways: the one place a call is dialled, an SMS sent or an email mailed.

The dialer hands a gateway a ``DeliveryJob`` and records the ``DeliveryResult``.
Gateways are pluggable (``settings.DIALER_GATEWAYS`` names a class per channel):
the simulator produces realistic voice and SMS outcomes, node names, real WAV
recordings and inbound replies; ``EmailGateway`` sends through Django's email
backend (SMTP in production). A real telephony provider subclasses
``IdempotentGateway`` and implements ``perform``.

Every gateway is idempotent on ``attempt_id`` (the ledger row): a Celery message
delivered twice, or a task resumed after a crash, gets the first delivery's result
back and nothing is dialled or sent again. See ``IdempotentGateway``.
"""

from __future__ import annotations

import array
import dataclasses
import io
import json
import logging
import math
import random
import smtplib
import sys
import threading
import time
import uuid
import wave
from dataclasses import dataclass
from typing import Protocol

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.mail import BadHeaderError, EmailMessage
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from redis.commands.core import Script

from devices.models import Channel, Disposition, installation_key

logger = logging.getLogger(__name__)

# Attempt ids restart with a new database: keys carry the database's installation key.
DELIVERY_KEY = "dialer:{}:delivery:{}"
PHYSICAL_KEY = "dialer:{}:physical:{}"
MARKER_PREFIX = "in-progress:"
THIRTY_DAYS = 30 * 24 * 3600


@dataclass(frozen=True)
class DeliveryJob:
    attempt_id: int  # ledger row id: the idempotency key
    channel: str  # "voice" | "sms" | "email"
    device_key: str  # E.164 phone or lower-case email
    client_id: str
    contact_name: str
    caller_id: str = ""
    record_call: bool = False
    sms_source_address: str = ""
    sms_source_type: str = ""  # SourceType value: "short_code" | "long_code" | "alpha"
    message: str = ""  # already rendered text
    email_from: str = ""
    email_subject: str = ""
    # Email: the recipient's one-click unsubscribe link (RFC 8058), signed per recipient.
    unsubscribe_url: str = ""
    # Voice: the WAV to play when the person answers (a path in private storage).
    voice_message: str = ""
    voice_message_seconds: float = 0
    # Where the attempt lives, for carriers and engines that report back later.
    dial_state_id: int = 0
    account_slug: str = ""
    attempted_at_us: int = 0  # the ledger row's attempted_at (devices.ledger.stamp)


@dataclass(frozen=True)
class DeliveryResult:
    disposition: str  # a devices.models.Disposition value
    call_seconds: int = 0
    node: str = ""
    recording_file: str = ""  # a path in Django default storage, "" if none
    carrier_code: str = ""
    source_address: str = ""
    source_type: str = ""
    message: str = ""  # the SMS text actually sent / the email subject
    reply_text: str = ""  # SMS only: an inbound reply the simulated handset will send
    reply_delay_seconds: int = 0
    carrier_answer: str = ""  # the carrier's words: a SIP reason phrase, an SMPP error
    # True when the gateway handed the attempt on (to a call engine) and its outcome comes
    # later, through dialer.record_outcome: the attempt stays dialling until then.
    pending: bool = False

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> DeliveryResult:
        data = json.loads(raw)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class GatewayBusy(Exception):
    """Another delivery of the same attempt is still running; retry later."""

    def __init__(self, attempt_id: int):
        super().__init__(f"delivery of attempt {attempt_id} is still in progress elsewhere")
        self.attempt_id = attempt_id


class Gateway(Protocol):
    def deliver(self, job: DeliveryJob) -> DeliveryResult: ...


# --- Redis --------------------------------------------------------------------------

_redis_lock = threading.Lock()
_redis_client: redis.Redis | None = None
_redis_url = ""
_scripts: dict[str, Script] = {}

# Take an attempt or read what is there, in one round trip. Taken: 1 if no delivery of it
# ever began (and it is counted now), 2 if one began and left no result (a crash).
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
  redis.call('SET', KEYS[2], 1, 'EX', ARGV[3])
  return 1
end
return redis.call('GET', KEYS[1])
"""
FRESH, RESUMED = 1, 2
# Store a result unless one is already stored: the first result wins, for every caller.
_STORE_RESULT = f"""
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, {len(MARKER_PREFIX)}) ~= '{MARKER_PREFIX}' then return v end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return ARGV[1]
"""
# Extend or drop the in-progress marker only while it is still ours.
_RENEW_MARKER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE_MARKER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def redis_client() -> redis.Redis:
    """The process's Redis client, created on first use (redis-py re-opens after a fork)."""
    global _redis_client, _redis_url
    url = settings.REDIS_URL
    if _redis_client is None or _redis_url != url:
        with _redis_lock:
            if _redis_client is None or _redis_url != url:
                client = redis.Redis.from_url(url)
                _scripts.update(
                    claim=client.register_script(_CLAIM),
                    store=client.register_script(_STORE_RESULT),
                    renew=client.register_script(_RENEW_MARKER),
                    release=client.register_script(_RELEASE_MARKER),
                )
                _redis_client, _redis_url = client, url
    return _redis_client


def _script(name: str) -> Script:
    redis_client()
    return _scripts[name]


def delivery_key(attempt_id: int) -> str:
    return DELIVERY_KEY.format(installation_key(), attempt_id)


def physical_key(attempt_id: int) -> str:
    return PHYSICAL_KEY.format(installation_key(), attempt_id)


def physical_delivery_count(attempt_id: int) -> int:
    """How many times this attempt was physically dialled or sent (0 if never)."""
    value = redis_client().get(physical_key(attempt_id))
    return int(value) if value else 0


class _MarkerKeeper(threading.Thread):
    """Keeps a live owner's in-progress marker from expiring while a long call lasts."""

    def __init__(self, key: str, token: str, ttl: int):
        super().__init__(name=f"marker-keeper {key}", daemon=True)
        self.key, self.token, self.ttl = key, token, ttl
        self.finished = threading.Event()

    def run(self) -> None:
        renew = _script("renew")
        while not self.finished.wait(max(self.ttl / 3, 0.1)):
            try:
                if not renew(keys=[self.key], args=[self.token, self.ttl]):
                    return  # no longer ours: stored, or expired while this process stalled
            except redis.RedisError:
                logger.warning("Could not extend the delivery marker %s", self.key)

    def stop(self) -> None:
        self.finished.set()
        self.join()


class IdempotentGateway:
    """Performs each attempt's delivery once, however many times ``deliver`` is called.

    Protocol, on one Redis key per attempt (``dialer:<installation>:delivery:{attempt_id}``):

    1. ``SET key "in-progress:<token>" NX EX marker_ttl_seconds``. The caller that
       sets it is the owner; in the same Lua script it counts the physical delivery
       (``dialer:<installation>:physical:{attempt_id}``, 30 days), so a crash can never leave a
       delivery uncounted. It performs the delivery, then stores the result JSON
       under the same key for 30 days (replacing its marker) and returns it.
    2. Any other caller polls the key for up to ``busy_wait_seconds``: a stored
       result is returned as is (same result for every call); still in progress
       after that, it raises ``GatewayBusy`` so the task retries later.

    Why the marker is a short lease: if the owner's process dies mid-call, no result
    is ever stored, and a marker that lived 30 days would block that contact's
    attempt for a month. So the marker lives ``marker_ttl_seconds`` and a keeper
    thread extends it every third of that while the owner is alive: a call longer
    than the lease (a ten-minute conversation) never lets a duplicate message dial
    again, and a dead owner's lease runs out within the TTL.

    After that, a later call (the task's retry, the dialer's stale-claim sweep)
    becomes the owner of an attempt whose delivery began but left no result. It
    first asks ``resume(job)`` what became of that delivery: a gateway that can look
    the call or message up at its provider (by the attempt id it was sent with)
    returns that outcome, and nothing is dialled again; the simulator does this,
    because its network's outcome for an attempt is deterministic. A gateway that
    cannot (SMTP has no such lookup) returns None and the delivery is performed
    again: a genuine second dial or send after a crash mid-delivery, acceptable
    because the first outcome was lost with the process and never recorded; the
    physical counter then shows 2. If ``perform`` raises, the owner deletes its
    marker at once so the retry need not wait for the lease to run out.

    The result is stored with a compare-and-set (first result wins): if an owner
    stalled past its marker and a second owner also delivered, both calls return
    the same, first stored, result.
    """

    marker_ttl_seconds: int = 30
    result_ttl_seconds: int = THIRTY_DAYS
    busy_wait_seconds: float = 5.0
    poll_interval_seconds: float = 0.05

    def deliver(self, job: DeliveryJob) -> DeliveryResult:
        key = delivery_key(job.attempt_id)
        claim = _script("claim")
        deadline = time.monotonic() + self.busy_wait_seconds
        while True:
            token = f"{MARKER_PREFIX}{uuid.uuid4().hex}"
            stored = claim(
                keys=[key, physical_key(job.attempt_id)],
                args=[token, self.marker_ttl_seconds, self.result_ttl_seconds],
            )
            if stored in (FRESH, RESUMED):
                return self._deliver_as_owner(job, key, token, resumed=stored == RESUMED)
            if stored is not None and not stored.startswith(MARKER_PREFIX.encode()):
                return DeliveryResult.from_json(stored)
            # In progress elsewhere, or the marker expired just now (the next SET wins it).
            if time.monotonic() >= deadline:
                raise GatewayBusy(job.attempt_id)
            time.sleep(self.poll_interval_seconds)

    def _deliver_as_owner(
        self, job: DeliveryJob, key: str, token: str, *, resumed: bool
    ) -> DeliveryResult:
        keeper = _MarkerKeeper(key, token, self.marker_ttl_seconds)
        keeper.start()
        try:
            result = self.resume(job) if resumed else None
            if result is None:
                if resumed:
                    self._count_physical(job.attempt_id)
                result = self.perform(job)
        except BaseException:
            # Nothing to remember: let the task's retry deliver again at once.
            keeper.stop()
            _script("release")(keys=[key], args=[token])
            raise
        keeper.stop()
        stored = _script("store")(keys=[key], args=[result.to_json(), self.result_ttl_seconds])
        return DeliveryResult.from_json(stored)

    def _count_physical(self, attempt_id: int) -> None:
        with redis_client().pipeline() as pipe:
            pipe.incr(physical_key(attempt_id))
            pipe.expire(physical_key(attempt_id), self.result_ttl_seconds)
            pipe.execute()

    def perform(self, job: DeliveryJob) -> DeliveryResult:
        """The physical delivery: once per attempt, unless an earlier one was lost."""
        raise NotImplementedError

    def resume(self, job: DeliveryJob) -> DeliveryResult | None:
        """The outcome of this attempt's earlier delivery, lost in a crash; None if unknown."""
        return None


# --- The simulator: voice and SMS -----------------------------------------------------

VOICE_MIX = {
    Disposition.ANSWERED: 35,
    Disposition.NO_ANSWER: 30,
    Disposition.BUSY: 8,
    Disposition.VOICEMAIL: 17,
    Disposition.FAILED: 5,
    Disposition.ABANDONED: 5,
}
SMS_MIX = {Disposition.DELIVERED: 93, Disposition.UNDELIVERED: 5, Disposition.FAILED: 2}

# MCC+MNC of real networks, by the number's country calling code.
CARRIERS = {
    "+55": ["72405", "72406", "72410", "72411", "72402", "72431"],  # Claro, Vivo, TIM, Oi
    "+1": ["310260", "310410", "311480", "312530"],  # T-Mobile, AT&T, Verizon, Sprint
    "+44": ["23410", "23415", "23420", "23430"],
}
DEFAULT_CARRIERS = ["00101"]

STOP_WORDS_EN = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"]
STOP_WORDS_PT = ["PARE", "SAIR", "CANCELAR", "DESCADASTRAR"]
REPLIES_EN = [
    "Ok, thanks",
    "Who is this?",
    "I'll pay tomorrow",
    "Already paid",
    "Call me after 5pm please",
    "Can you send me the bill again?",
    "Wrong number",
]
REPLIES_PT = [
    "Vou pagar amanhã",
    "Já paguei",
    "Ok, obrigado",
    "Quem é?",
    "Pode me ligar mais tarde?",
    "Me manda o boleto de novo",
    "Número errado",
]
STOP_SHARE = 0.30

RECORDING_RATE = 8000
MAX_RECORDING_SECONDS = 8


def _pick(rng: random.Random, mix: dict[str, int]) -> str:
    return str(rng.choices(list(mix), weights=list(mix.values()))[0])


def _call_seconds(rng: random.Random, disposition: str) -> int:
    if disposition == Disposition.ANSWERED:
        # Log-normal around a 90 s median: most collection calls are short, a few long.
        return max(20, min(600, round(rng.lognormvariate(math.log(90), 0.8))))
    if disposition == Disposition.VOICEMAIL:
        return rng.randint(15, 45)
    if disposition == Disposition.ABANDONED:
        return rng.randint(2, 10)
    return 0  # busy, failed, no answer: ring time is not billed


def _carriers(device_key: str) -> list[str]:
    for prefix in sorted(CARRIERS, key=len, reverse=True):
        if device_key.startswith(prefix):
            return CARRIERS[prefix]
    return DEFAULT_CARRIERS


def _noisy_keyword(rng: random.Random, word: str) -> str:
    """A keyword as people type it: any case, stray spaces, a full stop or two."""
    cased = rng.choice([word, word.lower(), word.capitalize()])
    lead = rng.choice(["", "", "", " "])
    trail = rng.choice(["", "", ".", "!", " ", "..", "\n"])
    return f"{lead}{cased}{trail}"


def speech_like_wav(rng: random.Random, seconds: int) -> bytes:
    """A small, real WAV (8 kHz mono 16-bit PCM): syllable-like voiced bursts and pauses."""
    total = RECORDING_RATE * seconds
    samples = array.array("h", bytes(2 * total))
    pos = rng.randint(800, 2400)  # the line opens with a little silence
    while pos < total:
        length = int(RECORDING_RATE * rng.uniform(0.08, 0.25))
        pitch = rng.uniform(95, 230)  # a speaking voice's fundamental
        formant = rng.uniform(500, 1200)
        loudness = rng.uniform(3000, 9000)
        for i in range(min(length, total - pos)):
            t = i / RECORDING_RATE
            envelope = math.sin(math.pi * i / length)
            voiced = (
                math.sin(2 * math.pi * pitch * t)
                + 0.5 * math.sin(4 * math.pi * pitch * t)
                + 0.3 * math.sin(2 * math.pi * formant * t)
            )
            samples[pos + i] = int(loudness * envelope * voiced / 1.8)
        pos += length
        # Short gaps between syllables, longer ones between words and phrases.
        pos += int(RECORDING_RATE * rng.choice([0.03, 0.05, 0.08, 0.2, 0.45]))
    if sys.byteorder == "big":
        samples.byteswap()  # WAV is little-endian
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RECORDING_RATE)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def recording_path(attempt_id: int) -> str:
    return f"recordings/{attempt_id % 1000:03d}/{attempt_id}.wav"


class SimulatorGateway(IdempotentGateway):
    """Voice calls and SMS with realistic, deterministic outcomes (seeded by the attempt id).

    Deterministic, like a provider that remembers each call: a delivery lost in a
    crash is resumed by looking its outcome up (no second dial), and tests can
    predict outcomes.
    """

    def perform(self, job: DeliveryJob) -> DeliveryResult:
        if job.channel == Channel.VOICE:
            return self.call(job)
        if job.channel == Channel.SMS:
            return self.text(job)
        raise ValueError(f"the simulator does not deliver {job.channel!r}")

    def resume(self, job: DeliveryJob) -> DeliveryResult | None:
        if job.channel == Channel.VOICE:
            return self.call(job, live=False)  # the call is over: no ringing to wait for
        if job.channel == Channel.SMS:
            return self.text(job)
        return None

    def call(self, job: DeliveryJob, *, live: bool = True) -> DeliveryResult:
        rng = random.Random(job.attempt_id)
        disposition = _pick(rng, VOICE_MIX)
        seconds = _call_seconds(rng, disposition)
        node = rng.choice(settings.DIALER_NODES)
        if live and settings.SIMULATOR_CALL_DELAY_MS:
            time.sleep(settings.SIMULATOR_CALL_DELAY_MS / 1000)
        recording = ""
        if job.record_call and disposition == Disposition.ANSWERED:
            audio = speech_like_wav(rng, min(seconds, MAX_RECORDING_SECONDS))
            path = recording_path(job.attempt_id)
            # The file of a call whose result was lost in a crash may be there, or half there.
            if default_storage.exists(path):
                default_storage.delete(path)
            recording = default_storage.save(path, ContentFile(audio))
        return DeliveryResult(
            disposition=disposition,
            call_seconds=seconds,
            node=node,
            recording_file=recording,
            source_address=job.caller_id,
        )

    def text(self, job: DeliveryJob) -> DeliveryResult:
        rng = random.Random(job.attempt_id)
        disposition = _pick(rng, SMS_MIX)
        carrier = rng.choice(_carriers(job.device_key))
        node = rng.choice(settings.DIALER_NODES)
        reply_roll = rng.random() * 100
        reply, delay = "", 0
        if disposition == Disposition.DELIVERED and reply_roll < settings.SIMULATOR_REPLY_PERCENT:
            portuguese = job.device_key.startswith("+55")
            if rng.random() < STOP_SHARE:
                words = STOP_WORDS_PT if portuguese else STOP_WORDS_EN
                reply = _noisy_keyword(rng, rng.choice(words))
            else:
                reply = rng.choice(REPLIES_PT if portuguese else REPLIES_EN)
            delay = rng.randint(5, 120)
        return DeliveryResult(
            disposition=disposition,
            node=node,
            carrier_code=carrier,
            source_address=job.sms_source_address,
            source_type=job.sms_source_type,
            message=job.message,
            reply_text=reply,
            reply_delay_seconds=delay,
        )


# --- Email -----------------------------------------------------------------------------


class EmailGateway(IdempotentGateway):
    """Email through Django's email backend; a refused or unreachable server is FAILED.

    Each message carries the recipient's one-click unsubscribe (RFC 8058: the
    ``List-Unsubscribe`` and ``List-Unsubscribe-Post`` headers, and the link in the body),
    which blocks the address for the whole enterprise (devices.unsubscribe)."""

    def perform(self, job: DeliveryJob) -> DeliveryResult:
        headers, body = {}, job.message
        if job.unsubscribe_url:
            headers = {
                "List-Unsubscribe": f"<{job.unsubscribe_url}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
            body = f"{body}\n\n--\n{_unsubscribe_line()} {job.unsubscribe_url}"
        email = EmailMessage(
            subject=job.email_subject,
            body=body,
            from_email=job.email_from or None,
            to=[job.device_key],
            headers=headers,
        )
        try:
            email.send(fail_silently=False)
            disposition = Disposition.SENT
        except (smtplib.SMTPException, OSError, BadHeaderError) as exc:
            logger.warning("Email for attempt %s failed: %s", job.attempt_id, exc)
            disposition = Disposition.FAILED
        return DeliveryResult(
            disposition=disposition,
            node=(settings.EMAIL_HOST or "smtp")[:64],
            source_address=job.email_from,
            message=job.email_subject,
        )


def _unsubscribe_line() -> str:
    return _("To stop these emails:")


# --- Registry -----------------------------------------------------------------------------

_gateways: dict[str, Gateway] = {}


def get_gateway(channel: str) -> Gateway:
    """The configured gateway for a channel (``settings.DIALER_GATEWAYS``), one per class."""
    try:
        path = settings.DIALER_GATEWAYS[channel]
    except KeyError:
        raise ImproperlyConfigured(f"DIALER_GATEWAYS has no gateway for {channel!r}") from None
    gateway = _gateways.get(path)
    if gateway is None:
        gateway = _gateways.setdefault(path, import_string(path)())
    return gateway
