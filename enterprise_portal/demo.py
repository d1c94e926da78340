"""The demo `make run` loads: people and accounts (accounts.demo), then the running demo
campaigns (campaigns.demo). Idempotent: loading it twice changes nothing."""

from __future__ import annotations

from accounts.demo import DEMO_PASSWORD, DemoLogin, load_demo_people
from campaigns.demo import load_demo_campaigns

__all__ = ["DEMO_PASSWORD", "load_demo"]


def load_demo() -> list[DemoLogin]:
    people = load_demo_people()
    load_demo_campaigns(people.accounts["acme-east"])
    return people.logins
