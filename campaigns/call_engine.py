"""A call engine (``manage.py call_engine``): one process, one SIP stack, a few channels.

``campaigns.sip.SipGateway`` queues each call the gate authorised; an engine takes as many
as it has free channels (``sip.take`` marks them in flight in the same step), sends the
INVITE to ``SIP_TRUNK_URI`` with the sub-campaign's caller ID in From and
P-Asserted-Identity, plays the sub-campaign's message on answer, records the far end when
the sub-campaign records calls, and reports the outcome through ``sip.settle`` →
``dialer.record_outcome``, the path every outcome takes. Why PJSIP (``pjsua2``) and what
the alternative showed: docs/voice.md.

One thread does everything: PJSIP is polled (``threadCnt = 0``, ``mainThreadOnly``) from
the loop in ``Engine.run``, which also takes jobs, keeps time (ring timeout → CANCEL, the
message's end → BYE, the longest call) and says in Redis every second that the engine is
alive. PJSIP's own media clock runs the audio. The stack is created in ``run``, in the
process that uses it (never before a fork).

At most once: a call is in flight before its INVITE is sent. If the engine dies, the sweep
(``sip.sweep_lost_calls``) records its calls UNKNOWN once it stops saying it is alive,
and they are never dialled again. A job older than ``CALL_QUEUE_SECONDS`` when taken was
never dialled: FAILED, and the retry rules decide.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import signal
import socket
import tempfile
import time
from pathlib import Path

import pjsua2 as pj
from django import db
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.utils.translation import gettext as _
from redis.exceptions import RedisError

from campaigns import sip
from campaigns.gateways import DeliveryResult, recording_path
from devices.models import Disposition

logger = logging.getLogger(__name__)

# The PJSIP wheel is built with at most this many calls per process (PJSUA_MAX_CALLS).
STACK_CALLS = 4
HEARTBEAT_SECONDS = 1.0
SILENT_TRUNK_GRACE_SECONDS = 4.0  # after our CANCEL/hang-up, a trunk that said nothing
DRAIN_SECONDS = 30.0  # on SIGTERM: calls up may finish this long before we hang up
IDLE_POLL_SECONDS = 0.1  # how often an engine with nothing queued asks Redis again


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    name: str
    channels: int
    sip_port: int
    rtp_port: int
    trunk_uri: str = ""
    username: str = ""
    password: str = ""
    ring_seconds: int = 30
    max_call_seconds: int = 3600
    queue_seconds: int = 60

    @classmethod
    def from_settings(cls, index: int = 0, name: str = "", channels: int = 0) -> EngineConfig:
        return cls(
            name=name or f"{socket.gethostname()}-engine-{index + 1}",
            channels=channels or settings.CALL_ENGINE_CHANNELS,
            sip_port=settings.CALL_ENGINE_SIP_PORT + index,
            rtp_port=settings.CALL_ENGINE_RTP_PORT + index * 100,
            trunk_uri=settings.SIP_TRUNK_URI,
            username=settings.SIP_USERNAME,
            password=settings.SIP_PASSWORD,
            ring_seconds=settings.SIP_RING_SECONDS,
            max_call_seconds=settings.SIP_MAX_CALL_SECONDS,
            queue_seconds=settings.CALL_QUEUE_SECONDS,
        )


def trunk_parts(uri: str) -> tuple[str, str]:
    """``sip:[user@]host[:port][;params]`` → ("host[:port]", ";params")."""
    rest = uri.strip()
    if rest.lower().startswith("sips:"):
        raise ValueError("SIP_TRUNK_URI: sips (TLS) is not supported; use sip:")
    if rest.lower().startswith("sip:"):
        rest = rest[4:]
    rest = rest.split("@", 1)[-1]
    host, _sep, params = rest.partition(";")
    if not host:
        raise ValueError(f"SIP_TRUNK_URI has no host: {uri!r}")
    return host, (";" + params if params else "")


def _wav_complete(path: Path | None) -> bool:
    """A WAV file whose RIFF header carries its length (a recorder writes it on close)."""
    try:
        with open(path, "rb") as audio:
            header = audio.read(8)
    except (OSError, TypeError):
        return False
    return header[:4] == b"RIFF" and int.from_bytes(header[4:8], "little") > 0


class _LogWriter(pj.LogWriter):
    def write(self, entry):
        level = logging.WARNING if entry.level <= 2 else logging.DEBUG
        logger.log(level, "pjsip: %s", entry.msg.rstrip())


class _Call(pj.Call):
    """One call and what the engine knows of it. Callbacks only note what happened; the
    engine's loop acts on it."""

    def __init__(self, engine: Engine, account: pj.Account, job: dict):
        super().__init__(account)
        self.engine, self.job = engine, job
        self.started = time.monotonic()
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.hangup_at: float | None = None
        self.code, self.reason = 0, ""
        self.recorder: pj.AudioMediaRecorder | None = None
        self.player: pj.AudioMediaPlayer | None = None
        self.record_path: Path | None = None
        self.reported = False
        self.rang = False  # a provisional answer (180/183) came

    def onCallState(self, prm):  # noqa: N802 - PJSIP's name
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_EARLY:
            self.rang = True
        elif info.state == pj.PJSIP_INV_STATE_CONFIRMED and self.answered_at is None:
            self.answered_at = time.monotonic()
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.code, self.reason = info.lastStatusCode, info.lastReason
            self.ended_at = time.monotonic()
            self.engine.ended.append(self)

    def onCallMediaState(self, prm):  # noqa: N802
        info = self.getInfo()  # kept: its media list lives inside it
        for index, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            audio = self.getAudioMedia(index)
            if self.job.get("record_call") and self.recorder is None:
                self.record_path = self.engine.work_dir / f"{self.job['attempt_id']}.wav"
                self.recorder = pj.AudioMediaRecorder()
                self.recorder.createRecorder(str(self.record_path))
                audio.startTransmit(self.recorder)
            message = self.engine.message_file(self.job.get("voice_message", ""))
            if message and self.player is None:
                self.player = pj.AudioMediaPlayer()
                self.player.createPlayer(str(message), pj.PJMEDIA_FILE_NO_LOOP)
                self.player.startTransmit(audio)

    def end(self) -> None:
        if self.hangup_at is None:
            self.hangup_at = time.monotonic()
            try:
                self.hangup(pj.CallOpParam(True))
            except pj.Error as exc:
                logger.warning("Hang-up of call %s: %s", self.job["attempt_id"], exc.info())


class Engine:
    def __init__(self, config: EngineConfig):
        self.config = config
        self.trunk_host, self.trunk_params = trunk_parts(config.trunk_uri)
        self.calls: dict[str, _Call] = {}  # in-flight field → call, until its outcome is settled
        self.lingering: list[_Call] = []  # settled, but PJSIP still holds them (a silent trunk)
        self.ended: list[_Call] = []
        self.closing: list[tuple[_Call, float]] = []  # ended; their recordings still closing
        self.accounts: dict[str, pj.Account] = {}
        self.messages: dict[str, Path | None] = {}
        self.unsettled: list[tuple[dict, DeliveryResult]] = []  # the database was away
        self.stopping: float | None = None
        self.work_dir = Path(tempfile.mkdtemp(prefix=f"call-engine-{config.name}-"))

    # --- life -----------------------------------------------------------------------------

    def run(self, until: float | None = None) -> None:
        """Serve until SIGTERM/SIGINT (then drain) or until the monotonic time ``until``."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self._start_stack()
        logger.info(
            "Call engine %s: %d channels, SIP on %d, trunk %s",
            self.config.name, self.config.channels, self.config.sip_port, self.trunk_host,
        )  # fmt: skip
        next_beat = redis_warned = next_take = 0.0
        try:
            while True:
                self.endpoint.libHandleEvents(10)
                now = time.monotonic()
                if until is not None and now >= until and self.stopping is None:
                    self.stopping = now
                try:
                    if now >= next_beat:
                        next_beat = now + HEARTBEAT_SECONDS
                        self._heartbeat()
                    if self.stopping is None and now >= next_take:
                        # Idle, Redis is asked every IDLE_POLL_SECONDS, not every tick.
                        next_take = now if self._take() else now + IDLE_POLL_SECONDS
                except RedisError as exc:  # calls in progress go on; outcomes wait
                    if now >= redis_warned:
                        logger.warning("Redis unavailable (%s); calls in progress go on", exc)
                        redis_warned = now + 30
                    next_beat = now + HEARTBEAT_SECONDS
                self._keep_time(now)
                self._settle_ended()
                if self.stopping is not None and not self.calls:
                    break
        finally:
            with contextlib.suppress(RedisError):  # gone from the list: no more calls for us
                sip.redis_client().hdel(sip.engines_key(), self.config.name)
            self._stop_stack()

    def _stop(self, signum, frame) -> None:
        if self.stopping is None:
            logger.info("Call engine %s stopping: finishing %d calls", self.config.name,
                        len(self.calls))  # fmt: skip
            self.stopping = time.monotonic()
        else:  # asked twice: hang up now
            self.stopping -= DRAIN_SECONDS

    def _start_stack(self) -> None:
        self.endpoint = pj.Endpoint()
        self.endpoint.libCreate()
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0
        config.uaConfig.mainThreadOnly = True
        config.uaConfig.maxCalls = STACK_CALLS
        config.uaConfig.userAgent = "compliance-portal call engine"
        self._log_writer = _LogWriter()
        config.logConfig.writer = self._log_writer
        config.logConfig.level = 2
        config.logConfig.consoleLevel = 2
        config.logConfig.decor = 0
        config.medConfig.clockRate = 8000
        config.medConfig.sndClockRate = 8000
        config.medConfig.noVad = True
        config.medConfig.threadCnt = 1
        self.endpoint.libInit(config)
        transport = pj.TransportConfig()
        transport.port = self.config.sip_port
        transport.boundAddress = ""
        self.endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        self.endpoint.audDevManager().setNullDev()
        for codec in self.endpoint.codecEnum2():  # G.711 only: what every trunk speaks
            name = codec.codecId.split("/")[0].upper()
            self.endpoint.codecSetPriority(codec.codecId, 200 if name in ("PCMA", "PCMU") else 0)
        self.endpoint.libStart()

    def _stop_stack(self) -> None:
        self.endpoint.hangupAllCalls()
        for _tick in range(50):
            self.endpoint.libHandleEvents(10)
        self.calls.clear()
        self.lingering.clear()
        self.accounts.clear()
        self.endpoint.libDestroy()

    def _heartbeat(self) -> None:
        client = sip.redis_client()
        busy = len(self.calls)
        client.hset(
            sip.engines_key(),
            self.config.name,
            json.dumps({"channels": 0 if self.stopping else self.config.channels,
                            "busy": busy, "seen_at": time.time()}),
        )  # fmt: skip
        self._retry_unsettled()

    # --- calls ----------------------------------------------------------------------------

    def _free(self) -> int:
        stack_busy = len(self.calls) + len(self.lingering)
        return min(self.config.channels - len(self.calls), STACK_CALLS - stack_busy)

    def _take(self) -> bool:
        """Takes queued calls for the free channels; True if it took any."""
        free = self._free()
        if free <= 0:
            return False
        jobs = sip.take(self.config.name, free)
        for job in jobs:
            if time.time() - job["queued_at"] > self.config.queue_seconds:
                self._settle(job, sip.not_taken(self.config.queue_seconds))
                continue
            self._dial(job)
        return bool(jobs)

    def _dial(self, job: dict) -> None:
        field = sip.in_flight_field(job)
        caller = job.get("caller_id") or "anonymous"
        call = _Call(self, self._account(caller), job)
        param = pj.CallOpParam(True)
        identity = pj.SipHeader()
        identity.hName = "P-Asserted-Identity"
        identity.hValue = f"<sip:{caller}@{self.trunk_host}>"
        param.txOption.headers.append(identity)
        destination = f"sip:{job['device_key']}@{self.trunk_host}{self.trunk_params}"
        self.calls[field] = call  # before the INVITE: a failure may end the call at once
        try:
            call.makeCall(destination, param)
        except pj.Error as exc:
            logger.warning("INVITE for attempt %s not sent: %s", job["attempt_id"], exc.info())
            self.calls.pop(field, None)
            call.reported = True
            self._settle(job, DeliveryResult(Disposition.FAILED, node=self.config.name,
                                             carrier_answer=exc.reason[:160]))  # fmt: skip

    def _account(self, caller: str) -> pj.Account:
        """The From of a call is its PJSIP account's identity: one account per caller ID."""
        account = self.accounts.get(caller)
        if account is None:
            config = pj.AccountConfig()
            config.idUri = f"sip:{caller}@{self.trunk_host}"
            config.mediaConfig.lockCodecEnabled = False  # no re-INVITE after the answer
            rtp = pj.TransportConfig()
            rtp.port = self.config.rtp_port
            rtp.portRange = 100
            config.mediaConfig.transportConfig = rtp
            if self.config.username:
                config.sipConfig.authCreds.append(
                    pj.AuthCredInfo("digest", "*", self.config.username, 0, self.config.password)
                )
            account = pj.Account()
            account.create(config)
            self.accounts[caller] = account
        return account

    def message_file(self, name: str) -> Path | None:
        """A local copy of the sub-campaign's message (private storage may be remote)."""
        if not name:
            return None
        if name not in self.messages:
            try:
                target = self.work_dir / f"message-{len(self.messages)}.wav"
                with default_storage.open(name, "rb") as source:
                    target.write_bytes(source.read())
                self.messages[name] = target
            except OSError:
                logger.warning("Voice message %s cannot be read; calls go without it", name)
                self.messages[name] = None
        return self.messages[name]

    def _keep_time(self, now: float) -> None:
        for call in list(self.calls.values()):
            if call.ended_at is not None:
                continue
            if call.answered_at is None:
                if now - call.started >= self.config.ring_seconds:
                    call.end()  # CANCEL, once the trunk has said anything at all
                if (
                    call.hangup_at is not None
                    and now - call.hangup_at >= SILENT_TRUNK_GRACE_SECONDS
                ):
                    self._silent(call)
                continue
            seconds = self.message_seconds(call)
            if seconds is not None and now - call.answered_at >= seconds + 0.5:
                call.end()  # the message was played
            elif now - call.answered_at >= self.config.max_call_seconds or (
                self.stopping is not None and now - self.stopping >= DRAIN_SECONDS
            ):
                call.end()  # the longest call allowed, or the engine is going away

    def message_seconds(self, call: _Call) -> float | None:
        if call.player is None:
            return None
        return call.job.get("voice_message_seconds") or None

    def _silent(self, call: _Call) -> None:
        """The trunk never answered our INVITE (nor the hang-up): no answer, by our timeout.
        PJSIP keeps the call until its own timer ends it; it holds no channel of ours."""
        self.calls.pop(sip.in_flight_field(call.job), None)
        self.lingering.append(call)
        call.reported = True
        self._settle(call.job, self._unanswered(call))

    def _unanswered(self, call: _Call) -> DeliveryResult:
        """Our own ring timeout on a trunk that never rang: no answer, in our words."""
        answer = _("The trunk neither rang nor answered within %(seconds)s s") % {
            "seconds": self.config.ring_seconds
        }
        return DeliveryResult(Disposition.NO_ANSWER, node=self.config.name, carrier_answer=answer)

    def _settle_ended(self) -> None:
        while self.ended:
            call = self.ended.pop(0)
            if call in self.lingering:
                self.lingering.remove(call)
            if call.reported:
                continue
            call.reported = True
            call.player = None
            if call.recorder is not None:
                # PJSIP closes a recorder on its media clock, a tick after we let it go:
                # its file is complete once the WAV header has its length.
                call.recorder = None
                self.closing.append((call, time.monotonic() + 2.0))
                continue
            self._finish(call)
        for item in list(self.closing):
            call, deadline = item
            if _wav_complete(call.record_path) or time.monotonic() > deadline:
                self.closing.remove(item)
                self._finish(call)

    def _finish(self, call: _Call) -> None:
        self.calls.pop(sip.in_flight_field(call.job), None)
        self._settle(call.job, self._result(call))

    def _result(self, call: _Call) -> DeliveryResult:
        if call.answered_at is None and call.hangup_at is not None and not call.rang:
            return self._unanswered(call)  # PJSIP ends such a call itself, with a 487
        seconds = 0
        if call.answered_at is not None:
            seconds = max(0, round((call.ended_at or time.monotonic()) - call.answered_at))
            disposition = Disposition.ANSWERED
        else:
            disposition = sip.result_for(call.code)
        recording = ""
        path = call.record_path
        if path is not None and path.exists():
            if call.answered_at is not None and _wav_complete(path):
                with path.open("rb") as audio:
                    recording = default_storage.save(
                        recording_path(call.job["attempt_id"]), File(audio)
                    )
            elif call.answered_at is not None:
                logger.warning("Recording of attempt %s never closed", call.job["attempt_id"])
            path.unlink(missing_ok=True)
        return DeliveryResult(
            disposition,
            call_seconds=seconds,
            node=self.config.name,
            recording_file=recording,
            carrier_code=str(call.code or ""),
            carrier_answer=f"{call.code} {call.reason}".strip()[:160],
            source_address=call.job.get("caller_id", ""),
        )

    def _settle(self, job: dict, result: DeliveryResult) -> None:
        try:
            sip.settle(job, result)
        except Exception:  # the database or Redis is away: keep it, retry every second
            logger.exception("Outcome of attempt %s not recorded yet", job["attempt_id"])
            self.unsettled.append((job, result))
            db.connections.close_all()  # the next try connects afresh

    def _retry_unsettled(self) -> None:
        pending, self.unsettled = self.unsettled, []
        for job, result in pending:
            self._settle(job, result)
