"""End-to-end dialer throughput: beat -> dispatcher -> real Celery worker -> simulator -> ledger.

    python bench/dispatch.py [--quick] [--contacts N]

Starts a real worker (2 processes) and beat against a scratch database, activates a
voice sub-campaign and times until every device has a recorded attempt. Baseline in
the same run: the same pipeline with one Celery task per attempt (no chunking).
Target (issue: dialer pipeline): at least 300 attempts/s on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time

from _harness import django_on_bench_db, emit, machine, percentile, start_celery, stop


def run_phase(label: str, contacts: int, chunk: int, offset: int) -> dict:
    from django_tenants.utils import tenant_context

    from accounts.actions import do_create_account, do_create_enterprise
    from campaigns.actions import do_activate_sub_campaign, do_create_campaign, do_save_sub_campaign
    from campaigns.models import DialState, SubCampaign
    from contacts.models import Contact, ContactList
    from devices.models import ActiveSubCampaign, Attempt, CallingWindow

    enterprise = do_create_enterprise(f"Bench {label}")
    enterprise.attempt_cap = 0  # every device once: caps are measured by the policy bench
    enterprise.save()
    CallingWindow.objects.create(
        enterprise=enterprise, region="", start=dt.time(0), end=dt.time(23, 59, 59, 999999)
    )
    account = do_create_account(enterprise, f"Bench {label}")
    with tenant_context(account):
        listing = ContactList.objects.create(name="bench", status="ready")
        Contact.objects.bulk_create(
            [
                Contact(contact_list=listing, client_id=f"B{n}", merge_key=f"B{n}",
                        phones=[f"+1{713 + (n // 10_000_000) % 50}{(offset + n) % 10_000_000:07d}"])
                for n in range(contacts)
            ],
            batch_size=5000,
        )  # fmt: skip
        campaign = do_create_campaign(name="Bench")
        sub = do_save_sub_campaign(
            SubCampaign(campaign=campaign, name="Voice", channel="voice", purpose="collections",
                        caller_id="+17135550000", pacing_per_minute=1_000_000, max_attempts=1),
            lists=[listing],
        )  # fmt: skip

    env = {**os.environ, "ATTEMPT_TASK_CHUNK": str(chunk), "DISPATCH_BATCH_SIZE": "2000",
           "DISPATCH_INTERVAL_SECONDS": "1", "SIMULATOR_REPLY_PERCENT": "0"}  # fmt: skip
    log_dir = tempfile.mkdtemp(prefix=f"bench-dispatch-{label}-")
    procs = [start_celery("worker", env, log_dir), start_celery("beat", env, log_dir)]
    try:
        time.sleep(4)  # worker and beat up
        with tenant_context(account):
            started = time.time()
            do_activate_sub_campaign(sub)
            remaining = DialState.objects.filter(
                sub_campaign=sub, status__in=["pending", "dialing"]
            )
            deadline = time.monotonic() + 900
            while remaining.exists():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{label}: not finished in 900 s; logs in {log_dir}")
                time.sleep(0.25)
            finished = time.time()
    finally:
        stop(*procs)
        ActiveSubCampaign.objects.filter(account=account).delete()
    rows = Attempt.objects.filter(account_id=account.pk).values_list("attempted_at", "completed_at")
    authorised = [(a.timestamp() - started) for a, _ in rows]
    first = min(authorised)
    elapsed = finished - started
    return {
        f"{label}_attempts": len(authorised),
        f"{label}_seconds": round(elapsed, 2),
        f"{label}_attempts_per_s": round(len(authorised) / (finished - started - first), 1),
        f"{label}_first_attempt_latency_s": round(first, 3),
        f"{label}_authorise_latency_p50_s": round(percentile(authorised, 50), 2),
        f"{label}_authorise_latency_p95_s": round(percentile(authorised, 95), 2),
        f"{label}_delivery_p95_ms": round(
            percentile([(c - a).total_seconds() * 1000 for a, c in rows], 95), 1
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--contacts", type=int, default=None)
    parser.add_argument("--chunk", type=int, default=50, help="attempts per Celery task")
    args = parser.parse_args()
    contacts = args.contacts or (3_000 if args.quick else 20_000)
    with django_on_bench_db():
        chunked = run_phase("chunked", contacts, chunk=args.chunk, offset=0)
        baseline = run_phase("per_task", max(1_000, contacts // 4), chunk=1, offset=5_000_000)
    emit(
        {
            "bench": "dispatch",
            "contacts": contacts,
            **chunked,
            **baseline,
            "target_attempts_per_s": 300,
            "meets_target": chunked["chunked_attempts_per_s"] >= 300,
            **machine(),
        }
    )


if __name__ == "__main__":
    main()
