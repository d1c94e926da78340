"""Running demo campaigns, so a new user of `make run` sees live attempts within a minute.

Contacts are spread over time zones around the world: at any hour some are inside
their local calling window (and are dialled) while others wait for their morning,
which shows the calling-window rule at work.
"""

from __future__ import annotations

import random

import phonenumbers
from django_tenants.utils import tenant_context

from accounts.models import Account
from campaigns.actions import do_activate_sub_campaign, do_create_campaign, do_save_sub_campaign
from campaigns.blacklists import do_add_entry, do_create_blacklist, do_set_blacklist_campaigns
from campaigns.models import Campaign, Purpose, SubCampaign
from contacts.models import Contact, ContactList
from devices.models import Channel, SourceType

# (country calling code, national number prefix, digits to vary): all valid mobile ranges.
NUMBER_SEEDS = [
    (1, 2125550100, 99), (1, 7135554100, 99), (1, 3035550100, 99), (1, 2135550100, 99),
    (1, 9075550100, 99), (1, 8085550100, 99), (55, 11961234000, 999), (55, 71991234000, 999),
    (44, 7400123000, 999), (91, 8123456000, 999), (81, 9012345000, 999), (61, 412345000, 999),
]  # fmt: skip
FIRST = [
    "Ana",
    "Bruno",
    "Carla",
    "Diego",
    "Emma",
    "Felipe",
    "Grace",
    "Hiro",
    "Isabel",
    "Jamal",
    "Kenji",
    "Laura",
    "Mateus",
    "Nina",
]
LAST = [
    "Silva",
    "Smith",
    "Santos",
    "Johnson",
    "Oliveira",
    "Brown",
    "Costa",
    "Tanaka",
    "Patel",
    "Garcia",
    "Souza",
    "Lee",
]


def _numbers(rng: random.Random, count: int) -> list[str]:
    found: list[str] = []
    while len(found) < count:
        code, base, spread = rng.choice(NUMBER_SEEDS)
        number = phonenumbers.PhoneNumber(
            country_code=code, national_number=base + rng.randrange(spread)
        )
        if phonenumbers.is_valid_number(number):
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            if e164 not in found:
                found.append(e164)
    return found


def _demo_list(rng: random.Random, size: int) -> ContactList:
    listing = ContactList.objects.create(
        name="Demo portfolio", source_file="demo.csv", status=ContactList.Status.READY,
        rows_read=size, rows_imported=size, created_by_label="demo",
    )  # fmt: skip
    contacts = []
    for n, phone in enumerate(_numbers(rng, size)):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        client_id = f"AC{100000 + n}"
        contacts.append(
            Contact(
                contact_list=listing,
                client_id=client_id,
                name=f"{first} {last}",
                phones=[phone],
                email=f"{first}.{last}.{n}@example.com".lower(),
                merge_key=client_id,
                line_number=n + 2,
                extra={"balance": f"{rng.randint(50, 5000)}.00"},
            )  # fmt: skip
        )
    Contact.objects.bulk_create(contacts)
    return listing


def load_demo_campaigns(account: Account, *, size: int = 400) -> bool:
    """Creates and starts the demo campaigns in the account, once. True if created."""
    with tenant_context(account):
        if Campaign.objects.filter(name="Demo collections").exists():
            return False
        rng = random.Random(account.pk)
        listing = _demo_list(rng, size)
        campaign = do_create_campaign(
            name="Demo collections", description="Voice and SMS reminders for overdue accounts."
        )
        voice = do_save_sub_campaign(
            SubCampaign(
                campaign=campaign, name="Voice – first contact", channel=Channel.VOICE,
                purpose=Purpose.COLLECTIONS, caller_id="+17135550100", record_calls=True,
                pacing_per_minute=40, max_attempts=3,
                retry_minutes={"NO_ANSWER": 3, "BUSY": 2, "VOICEMAIL": 5, "FAILED": 5,
                               "ABANDONED": 2},
            ),
            lists=[listing],
        )  # fmt: skip
        sms = do_save_sub_campaign(
            SubCampaign(
                campaign=campaign, name="SMS – payment reminder", channel=Channel.SMS,
                purpose=Purpose.COLLECTIONS, sms_source_address="55123",
                sms_source_type=SourceType.SHORT_CODE, pacing_per_minute=20, max_attempts=1,
                message="Hi {name}, your account {client_id} is overdue. Reply STOP to opt out.",
            ),
            lists=[listing],
        )  # fmt: skip
        # A campaign blacklist in use: two of the list's people asked not to be called.
        blacklist = do_create_blacklist(
            name="Do not call (demo)", description="People who asked this account not to call."
        )
        campaign.auto_blacklist = blacklist
        campaign.auto_unanswered_after = 6
        campaign.save(update_fields=["auto_blacklist", "auto_unanswered_after"])
        do_set_blacklist_campaigns(blacklist, [campaign])
        for contact in listing.contacts.order_by("id")[:2]:
            if contact.phones:
                do_add_entry(blacklist, "phone", contact.phones[0], reason="Asked by phone")
        do_add_entry(blacklist, "extension", "4021", reason="Internal test extension")
        do_activate_sub_campaign(voice)
        do_activate_sub_campaign(sms)
    return True
