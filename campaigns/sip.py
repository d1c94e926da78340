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
import logging
import time
from collections.abc import Iterable

from django.conf import settings
from django.db import connection
from django.utils.translation import gettext as _
from django_tenants.utils import tenant_context

from accounts.models import Account
from campaigns import dialer
from campaigns.gateways import DeliveryJob, DeliveryResult, IdempotentGateway, redis_client
from devices.ledger import from_stamp
from devices.models import Disposition, installation_key

logger = logging.getLogger(__name__)

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
            "field": f"{connection.schema_name}:{job.attempt_id}",  # its key while in flight
            "queued_at": time.time(),
        }
        redis_client().lpush(queue_key(), json.dumps(payload))
        return DeliveryResult(Disposition.PENDING, pending=True, source_address=job.caller_id)


# --- taking calls, settling them, and what the sweep does when an engine dies ----------------

# Pop up to ARGV[1] jobs and mark each in flight for engine ARGV[2], in one step: a job is
# always either queued or in flight, never lost between the two.
_TAKE = """
local taken = {}
for i = 1, tonumber(ARGV[1]) do
  local raw = redis.call('RPOP', KEYS[1])
  if not raw then break end
  -- the job is kept as sent: cjson would round its big integers (attempted_at_us)
  local entry = '{"engine": ' .. cjson.encode(ARGV[2]) .. ', "taken_at": ' .. ARGV[3]
    .. ', "job": ' .. raw .. '}'
  redis.call('HSET', KEYS[2], cjson.decode(raw)['field'], entry)
  table.insert(taken, raw)
end
return taken
"""


def take(engine: str, count: int) -> list[dict]:
    """Up to ``count`` queued calls, now in flight on ``engine`` (oldest first)."""
    if count <= 0:
        return []
    raw = redis_client().eval(
        _TAKE, 2, queue_key(), inflight_key(), count, engine, repr(time.time())
    )
    return [json.loads(item) for item in raw]


def in_flight_field(job: dict) -> str:
    return job.get("field") or f"{job['schema']}:{job['attempt_id']}"


def settle(job: dict, result: DeliveryResult) -> bool:
    """Records the outcome of a handed-on call in its account (``dialer.record_outcome``,
    the path every outcome takes), then forgets the call and frees its channel. False when
    the outcome was recorded already (by the engine or by the sweep, whichever came first)."""
    account = Account.objects.filter(schema_name=job["schema"]).first()
    recorded = False
    if account is not None:
        with tenant_context(account):
            recorded = dialer.record_outcome(
                job["attempt_id"], from_stamp(job["attempted_at_us"]), result
            )
    client = redis_client()
    client.hdel(inflight_key(), in_flight_field(job))
    client.zrem(slots_key(), member(job["dial_state_id"], job["schema"]))
    return recorded


def sweep_lost_calls(now: float | None = None) -> tuple[int, int]:
    """Calls that will never report: those in flight on an engine that stopped saying it
    is alive (recorded UNKNOWN: the phone may have rung, so they are never dialled again),
    and jobs no engine took within ``CALL_QUEUE_SECONDS`` (never dialled: FAILED, and the
    sub-campaign's retry rules decide). Returns (unknown, failed)."""
    now = now if now is not None else time.time()
    client = redis_client()
    alive = {engine.name for engine in engines(now)}
    unknown = failed = 0
    for raw in client.hvals(inflight_key()):
        entry = json.loads(raw)
        if entry["engine"] in alive:
            continue
        result = DeliveryResult(
            Disposition.UNKNOWN,
            node=entry["engine"],
            carrier_answer=_("The call engine stopped during the call"),
        )
        settle(entry["job"], result)
        unknown += 1
        logger.warning("Call %s lost with engine %s", entry["job"]["attempt_id"], entry["engine"])
    for raw in client.lrange(queue_key(), 0, -1):
        job = json.loads(raw)
        if now - job["queued_at"] <= settings.CALL_QUEUE_SECONDS:
            continue
        if client.lrem(queue_key(), 1, raw):  # ours now: no engine can take it any more
            settle(job, not_taken(settings.CALL_QUEUE_SECONDS))
            failed += 1
    return unknown, failed


def not_taken(seconds: int) -> DeliveryResult:
    return DeliveryResult(
        Disposition.FAILED,
        carrier_answer=_("Not dialled: no call engine took the call within %(seconds)s s")
        % {"seconds": seconds},
    )
