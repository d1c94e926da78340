"""One process of the block race (tests/test_block_race.py): a dialler or a blocker.

    python tests/race_worker.py '{"role": "dial", ...}'

It sets Django up on the database DATABASE_URL names, prints "ready", waits for "go" on
stdin (the barrier: every process starts together), works, and prints its figures as one
JSON object on its last line. Errors are counted and reported, never swallowed silently.
"""

from __future__ import annotations

import json
import os
import random
import select
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "enterprise_portal.settings")


def _error(figures: Counter, errors: list[str], kind: str, exc: Exception) -> None:
    figures[kind] += 1
    if len(errors) < 20:
        errors.append(f"{kind}: {type(exc).__name__}: {str(exc).strip()[:300]}")


def dial(spec: dict) -> dict:
    """Loops over the sub-campaigns of both accounts: dispatch (claims due devices), then
    perform the claimed attempts in chunks, as the Celery tasks do, until told to stop
    ("stop" on stdin), every dial state is settled, or the time is up."""
    from django.conf import settings
    from django.db import DatabaseError
    from django.utils import timezone
    from django_tenants.utils import tenant_context

    from accounts.models import Account
    from campaigns import dialer
    from campaigns.models import DialState

    accounts = {a.pk: a for a in Account.objects.filter(pk__in={a for a, _ in spec["subs"]})}
    work = [(accounts[account_id], sub_id) for account_id, sub_id in spec["subs"]]
    rng = random.Random(spec["seed"])
    chunk = settings.ATTEMPT_TASK_CHUNK
    figures: Counter = Counter()
    errors: list[str] = []
    deadline = time.monotonic() + spec["seconds"]
    while time.monotonic() < deadline and not _stop_requested():
        rng.shuffle(work)
        claimed_any = False
        for account, sub_id in work:
            with tenant_context(account):
                now = timezone.now()
                try:
                    report = dialer.dispatch_sub_campaign(sub_id, now=now)
                except DatabaseError as exc:
                    _error(figures, errors, "dispatch_errors", exc)
                    continue
                figures["dispatched"] += report.queued
                figures["dispatch_suppressed"] += report.suppressed
                figures["dispatch_deferred"] += report.deferred
                # What this pass claimed (its claim time is ours): the chunks the Celery
                # task would have received. A block may have cancelled some meanwhile.
                items = [
                    [pk, str(token)]
                    for pk, token in DialState.objects.filter(
                        sub_campaign_id=sub_id,
                        status=DialState.Status.DIALING,
                        claimed_at=now,
                        current_attempt_id__isnull=True,
                    ).values_list("pk", "claim_token")
                ]
                claimed_any = claimed_any or bool(items)
                for start in range(0, len(items), chunk):
                    part = items[start : start + chunk]
                    for _try in range(3):  # the task's retry / the stale-claim sweep
                        try:
                            recorded, busy = dialer.perform_attempts(part)
                        except DatabaseError as exc:
                            _error(figures, errors, "perform_errors", exc)
                            continue
                        figures["recorded"] += recorded
                        figures["busy"] += len(busy)
                        break
        if not claimed_any:
            if _settled(accounts.values(), DialState):
                break
            time.sleep(0.01)  # the rest is claimed by another dialler right now
    figures["seconds"] = round(spec["seconds"] - (deadline - time.monotonic()), 2)
    figures["settled"] = int(_settled(accounts.values(), DialState))
    return {**figures, "errors": errors}


def _stop_requested() -> bool:
    """A line (or the end) on stdin, without waiting for it."""
    return bool(select.select([sys.stdin], [], [], 0)[0])


def _settled(accounts, dial_state_model) -> bool:
    from django_tenants.utils import tenant_context

    for account in accounts:
        with tenant_context(account):
            if dial_state_model.objects.filter(status__in=["pending", "dialing"]).exists():
                return False
    return True


def block(spec: dict) -> dict:
    """Saves spec["count"] Blocks at a jittered pace: some on a device a dialler holds
    claimed right now (the tightest race), the rest from its own random list."""
    from django.db import DatabaseError
    from django_tenants.utils import tenant_context

    from accounts.models import Account, Enterprise
    from campaigns.models import DialState
    from devices.actions import do_save_device_setting
    from devices.models import DeviceSetting

    enterprise = Enterprise.objects.get(pk=spec["enterprise_id"])
    accounts = list(Account.objects.filter(enterprise=enterprise))
    rng = random.Random(spec["seed"])
    listed = iter(spec["devices"])
    done: set[str] = set()
    figures: Counter = Counter()
    errors: list[str] = []
    started = time.monotonic()
    while figures["blocks"] + figures["block_errors"] < spec["count"]:
        key = None
        if rng.random() < spec["hot_share"]:
            with tenant_context(rng.choice(accounts)):
                claimed = set(
                    DialState.objects.filter(status=DialState.Status.DIALING).values_list(
                        "device_key", flat=True
                    )[:100]
                )
            claimed -= done
            if claimed:
                key = rng.choice(sorted(claimed))
                figures["hot"] += 1
        key = key or next(k for k in listed if k not in done)
        done.add(key)
        try:
            do_save_device_setting(
                enterprise, key, DeviceSetting.Action.BLOCK, reason=f"race {spec['name']}"
            )
            figures["blocks"] += 1
        except DatabaseError as exc:
            _error(figures, errors, "block_errors", exc)
        time.sleep(rng.uniform(0, 2 * spec["interval"]))
    figures["seconds"] = round(time.monotonic() - started, 2)
    return {**figures, "errors": errors}


def main() -> None:
    spec = json.loads(sys.argv[1])
    import django

    django.setup()
    from django.db import connection

    connection.ensure_connection()
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit("no start signal")
    result = {"dial": dial, "block": block}[spec["role"]](spec)
    print(json.dumps({"name": spec["name"], **result}), flush=True)
    # The process fails (the test asserts its exit status) when its own work failed: a
    # database error anywhere, or a blocker that did not save every block it was given.
    assert not result["errors"], result["errors"]
    if spec["role"] == "block":
        assert result["blocks"] == spec["count"], f"{result['blocks']} of {spec['count']} saved"


if __name__ == "__main__":
    main()
