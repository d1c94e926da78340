"""How fast a contact list imports: the streaming COPY engine vs saving contacts one by one.

    python bench/import_contacts.py [--quick] [--rows N]

Target (issue: contact-list import): 100,000 rows in under 30 s on 2 cores. The CSV has
client_id, name, two phones, email, time_zone and two extra columns; 2% of rows repeat an
earlier client (merged), 1% have only a malformed phone (rejected); every good number is
distinct, so nothing is flattered by the per-import normalisation cache.

Baseline, same run: the obvious ORM code (normalise, look the merge key up, then
``Contact.objects.create`` or ``save``), timed on a 2,000-row sample and extrapolated to the
full size (labelled ``baseline_*_extrapolated``). Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import tempfile
import time

from _harness import django_on_bench_db, emit, machine

AREA_CODES = [212, 213, 281, 305, 312, 415, 512, 617, 713, 832]
BASELINE_ROWS = 2000
TARGET_SECONDS_100K = 30.0


def write_csv(path: str, rows: int) -> dict[str, int]:
    """The benchmark file; returns how many rows should be kept, merged and rejected."""
    kept = merged = rejected = 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("client_id,name,phone1,phone2,email,time_zone,balance,branch\n")
        for n in range(rows):
            area = AREA_CODES[n % len(AREA_CODES)]
            line = n // len(AREA_CODES)  # distinct (area, line) for every n below 100,000
            if n % 100 == 37:
                out.write(f"R{n},Rejected {n},555-{n % 100:02d},,,,0,\n")
                rejected += 1
            elif n % 50 == 11 and n > 1000:
                # An earlier client again, with a second number: merged.
                m = n - 1001  # m % 50 == 10: always a kept row
                out.write(f"C{m},,+1 {area} 556 {line % 10000:04d},,,,{n},\n")
                merged += 1
            else:
                out.write(
                    f"C{n},Person {n},({area}) 555-{line % 10000:04d},"
                    f"{AREA_CODES[(n + 3) % 10]}-557-{line % 10000:04d},"
                    f"person.{n}@example.com,America/Chicago,{n % 997}.50,Branch {n % 40}\n"
                )
                kept += 1
    return {"kept": kept, "merged": merged, "rejected": rejected}


def baseline_row_by_row(contact_list, path: str, region: str, limit: int) -> float:
    """The naive import: one normalise + SELECT + INSERT/UPDATE per row. Seconds for ``limit``."""
    from contacts.models import Contact, ContactImportIssue
    from devices.keys import DeviceKeyError, normalize_email, normalize_phone

    started = time.perf_counter()
    with open(path, encoding="utf-8-sig", newline="") as source:
        reader = csv.DictReader(source)
        for number, row in enumerate(reader, start=2):
            if number - 1 > limit:
                break
            phones, problems = [], []
            for column in ("phone1", "phone2"):
                if row[column]:
                    try:
                        phones.append(normalize_phone(row[column], region))
                    except DeviceKeyError as exc:
                        problems.append(str(exc))
            email = ""
            if row["email"]:
                try:
                    email = normalize_email(row["email"])
                except DeviceKeyError as exc:
                    problems.append(str(exc))
            if not phones and not email:
                ContactImportIssue.objects.create(
                    contact_list=contact_list, line_number=number, reason=" ".join(problems)[:300]
                )
                continue
            key = row["client_id"] or (phones[0] if phones else email)
            extra = {"balance": row["balance"], "branch": row["branch"]}
            found = Contact.objects.filter(contact_list=contact_list, merge_key=key).first()
            if found is None:
                Contact.objects.create(
                    contact_list=contact_list,
                    client_id=row["client_id"],
                    name=row["name"],
                    phones=phones,
                    email=email,
                    time_zone=row["time_zone"],
                    extra=extra,
                    merge_key=key,
                    line_number=number,
                )
            else:
                found.phones += [p for p in phones if p not in found.phones]
                found.email = found.email or email
                found.extra.update(extra)
                found.save()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10,000 rows instead of 100,000")
    parser.add_argument("--rows", type=int, default=None)
    args = parser.parse_args()
    rows = args.rows or (10_000 if args.quick else 100_000)

    with django_on_bench_db():
        from django_tenants.utils import tenant_context

        from accounts.actions import do_create_account, do_create_enterprise
        from contacts.importer import import_csv
        from contacts.models import ContactList

        enterprise = do_create_enterprise("Bench Enterprise", default_region="US")
        account = do_create_account(enterprise, "Bench Imports")
        with tempfile.TemporaryDirectory(prefix="bench-import-") as folder:
            path = os.path.join(folder, "contacts.csv")
            expected = write_csv(path, rows)
            size = os.path.getsize(path)
            with tenant_context(account):
                contact_list = ContactList.objects.create(name="Bench list")
                with open(path, "rb") as stream:
                    summary = import_csv(contact_list, io.BufferedReader(stream), "US")
                baseline_list = ContactList.objects.create(name="Baseline list")
                sample = min(BASELINE_ROWS, rows)
                baseline_seconds = baseline_row_by_row(baseline_list, path, "US", sample)

    assert summary.status == "ready", summary.error
    assert summary.rows_imported == expected["kept"], (summary, expected)
    assert summary.rows_merged == expected["merged"], (summary, expected)
    assert summary.rows_rejected == expected["rejected"], (summary, expected)
    rate = summary.rows_read / summary.seconds
    baseline_rate = sample / baseline_seconds
    result = {
        "bench": "import_contacts",
        "rows": summary.rows_read,
        "file_mb": round(size / 1024 / 1024, 2),
        "rows_kept": summary.rows_imported,
        "rows_merged": summary.rows_merged,
        "rows_rejected": summary.rows_rejected,
        "import_seconds": summary.seconds,
        "import_db_write_seconds": summary.write_seconds,
        "import_rows_per_s": round(rate),
        "baseline": "ORM row by row (normalise, SELECT by merge key, create/save)",
        "baseline_sample_rows": sample,
        "baseline_rows_per_s": round(baseline_rate),
        "baseline_seconds_extrapolated": round(rows / baseline_rate, 1),
        "speedup": round(rate / baseline_rate, 1),
        "target_seconds_100k": TARGET_SECONDS_100K,
        "seconds_for_100k_at_this_rate": round(100_000 / rate, 1),
        "meets_target": 100_000 / rate < TARGET_SECONDS_100K,
        **machine(),
    }
    emit(result)


if __name__ == "__main__":
    main()
