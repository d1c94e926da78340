"""Voice over SIP (``VOICE_GATEWAY=sip``): the Celery side of real calls.

Calls last minutes; Celery tasks must not. So once the gate has authorised an attempt and
its ledger row is committed, ``SipGateway`` hands the call to the call engines (processes
of their own, ``manage.py call_engine``, see ``campaigns.call_engine``) through a Redis
queue and returns at once; the engine that takes it dials, and reports the outcome
through ``dialer.record_outcome``, the path every outcome takes.

**Capacity.** Every engine says, in Redis, how many channels it has and that it is alive.
The dispatcher reserves a channel for each voice attempt it claims (``reserve``), and
claims no more than are free: calls never wait in a queue for a channel. A reservation is
released when the outcome is recorded, when the claim is refused or voided, and by
itself when it outlives the longest possible call (a crashed process cannot leak it).

**At most once.** A job carries its ledger id; the hand-off is idempotent on it
(``IdempotentGateway``), so a task delivered twice queues one call. An engine marks a call
"in flight" before its INVITE; when an engine dies, the sweep (``sweep_lost_calls``)
records its in-flight calls as UNKNOWN (never dialled again) and frees their channels. A
job no engine took within ``CALL_QUEUE_SECONDS`` was never dialled: it is FAILED, and the
sub-campaign's retry rules (and the gate, again) decide.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable

from django.conf import settings
from django.db import connection

from campaigns.gateways import DeliveryJob, DeliveryResult, IdempotentGateway, redis_client
from devices.models import Disposition, installation_key

ENGINE_TTL_SECONDS = 10  # an engine that has not said it is alive for this long is dead


def _key(name: str) -> str:
    return f"calls:{installation_key()}:{name}"


def queue_key() -> str:
    return _key("queue")


def inflight_key() -> str:
    return _key("inflight")


def slots_key() -> str:
    return _key("slots")


def engines_key() -> str:
    return _key("engines")


# --- the code → result table ------------------------------------------------------------------

DEFAULT_RESULTS = {
    200: Disposition.ANSWERED,
    486: Disposition.BUSY,
    600: Disposition.BUSY,
    480: Disposition.NO_ANSWER,
    408: Disposition.NO_ANSWER,
    487: Disposition.NO_ANSWER,  # our CANCEL after the ring timeout
    404: Disposition.INVALID_NUMBER,
    484: Disposition.INVALID_NUMBER,
    410: Disposition.INVALID_NUMBER,
    604: Disposition.INVALID_NUMBER,
    603: Disposition.DECLINED,
}


def result_for(code: int) -> str:
    """Our result for a SIP final code: the settings' table (``SIP_RESULT_CODES``, which a
    deployment extends), then the defaults, then FAILED for any other 4xx, 5xx or 6xx."""
    table = {**DEFAULT_RESULTS, **settings.SIP_RESULT_CODES}
    if code in table:
        return table[code]
    if 200 <= code < 300:
        return Disposition.ANSWERED
    return Disposition.FAILED


# --- engines and channels -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EngineInfo:
    name: str
    channels: int
    busy: int
    seen_at: float


def engines(now: float | None = None) -> list[EngineInfo]:
    """The engines alive now (seen within ENGINE_TTL_SECONDS)."""
    now = now if now is not None else time.time()
    found = []
    for name, raw in redis_client().hgetall(engines_key()).items():
        data = json.loads(raw)
        if now - data["seen_at"] <= ENGINE_TTL_SECONDS:
            found.append(EngineInfo(name.decode(), data["channels"], data["busy"], data["seen_at"]))
    return sorted(found, key=lambda e: e.name)


def capacity() -> int:
    return sum(engine.channels for engine in engines())


# Reserve up to len(ARGV)-2 channels atomically: drop reservations past their deadline, then
# add members while fewer than the capacity are held. Returns the members reserved.
_RESERVE = """
local now, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
local granted = {}
for i = 4, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    table.insert(granted, ARGV[i])
  elseif held < capacity then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[i])
    held = held + 1
    table.insert(granted, ARGV[i])
  end
end
return granted
"""


def member(state_id: int, schema: str | None = None) -> str:
    return f"{schema or connection.schema_name}:{state_id}"


def reserve(state_ids: list[int]) -> set[int]:
    """Channels for these dial states, as many as are free: the ids granted."""
    if not state_ids:
        return set()
    lifetime = (
        settings.CALL_QUEUE_SECONDS + settings.SIP_RING_SECONDS + settings.SIP_MAX_CALL_SECONDS
    )
    client = redis_client()
    granted = client.eval(
        _RESERVE, 1, slots_key(), time.time(), capacity(), lifetime,
        *[member(pk) for pk in state_ids],
    )  # fmt: skip
    return {int(raw.decode().rsplit(":", 1)[1]) for raw in granted}


def release(members: Iterable[str]) -> None:
    members = list(members)
    if members:
        redis_client().zrem(slots_key(), *members)


def channels_in_use() -> int:
    client = redis_client()
    client.zremrangebyscore(slots_key(), "-inf", time.time())
    return client.zcard(slots_key())


# --- the hand-off -----------------------------------------------------------------------------


class SipGateway(IdempotentGateway):
    """Queues the call for an engine; the outcome comes later (``pending``)."""

    reserves_channels = True

    def reserve(self, state_ids: list[int]) -> set[int]:
        return reserve(state_ids)

    def release(self, state_ids: Iterable[int]) -> None:
        release(member(pk) for pk in state_ids)

    def perform(self, job: DeliveryJob) -> DeliveryResult:
        payload = {
            **dataclasses.asdict(job),
            "schema": connection.schema_name,
            "queued_at": time.time(),
        }
        redis_client().lpush(queue_key(), json.dumps(payload))
        return DeliveryResult(Disposition.PENDING, pending=True, source_address=job.caller_id)
