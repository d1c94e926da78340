"""Demo people for `make run`: one enterprise, three accounts, a user for every role.

The whole demo (campaigns included) is loaded by ``enterprise_portal.demo``."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from accounts.actions import do_add_membership, do_create_account, do_create_enterprise
from accounts.models import Account, Enterprise, Membership, Role, SendingDomain, User
from accounts.sending_domains import do_add_sending_domain

DEMO_PASSWORD = "demo-portal-2026"  # noqa: S105 - printed at start-up; demo data only
# Email sub-campaigns of the demo send from addresses at this domain (e.g.
# billing@acme-collections.example.com); example.com's names are reserved for examples.
DEMO_SENDING_DOMAIN = "acme-collections.example.com"


@dataclass(frozen=True)
class DemoLogin:
    email: str
    role: str
    where: str


def _user(email: str, full_name: str, *, superuser: bool = False) -> User:
    user = User.objects.filter(email=email).first()
    if user is None:
        if superuser:
            user = User.objects.create_superuser(email, DEMO_PASSWORD, full_name=full_name)
        else:
            user = User.objects.create_user(email, DEMO_PASSWORD, full_name=full_name)
    return user


def _membership(user: User, enterprise: Enterprise, role: str, account: Account | None = None):
    if not Membership.objects.filter(user=user, enterprise=enterprise, account=account).exists():
        do_add_membership(user, enterprise, role, account=account)


@dataclass(frozen=True)
class DemoPeople:
    enterprise: Enterprise
    accounts: dict[str, Account]
    logins: list[DemoLogin]


def load_demo_people() -> DemoPeople:
    with transaction.atomic():
        enterprise = Enterprise.objects.filter(
            name="Acme Collections"
        ).first() or do_create_enterprise(
            "Acme Collections", time_zone="America/Chicago", default_region="US", language="en"
        )
    if not SendingDomain.objects.filter(enterprise=enterprise, domain=DEMO_SENDING_DOMAIN).exists():
        do_add_sending_domain(enterprise, DEMO_SENDING_DOMAIN)
    accounts = {}
    for name, slug in (
        ("Acme East", "acme-east"),
        ("Acme West", "acme-west"),
        ("Acme Cards", "acme-cards"),
    ):
        accounts[slug] = Account.objects.filter(slug=slug).first() or do_create_account(
            enterprise, name, slug=slug
        )
    operator = _user("operator@demo.test", "Platform Operator", superuser=True)
    ent_admin = _user("admin@acme.test", "Erin Enterprise")
    acct_admin = _user("east.admin@acme.test", "Adam Account")
    agent = _user("east.agent@acme.test", "Agnes Agent")
    _membership(ent_admin, enterprise, Role.ENTERPRISE_ADMIN)
    _membership(acct_admin, enterprise, Role.ACCOUNT_ADMIN, accounts["acme-east"])
    _membership(agent, enterprise, Role.AGENT, accounts["acme-east"])
    return DemoPeople(
        enterprise,
        accounts,
        [
            DemoLogin(operator.email, "Platform operator", "/admin/"),
            DemoLogin(ent_admin.email, "Enterprise admin", "Acme Collections (all accounts)"),
            DemoLogin(acct_admin.email, "Account admin", "Acme East"),
            DemoLogin(agent.email, "Agent", "Acme East"),
        ],
    )
