"""Fuzzing every page of the portal: every form (GET and POST) and every parameterised URL
(ids, slugs, tokens, page numbers, query parameters), as each role that can reach it, with
Hypothesis (issue 13). Bad input gets a clear answer (a 4xx, the form with its errors, a
redirect), never a 5xx. The API has its own, schema-driven fuzz (tests/test_api_fuzz.py).

* The inventory is the URL resolvers themselves (enterprise_portal.urls_public and
  urls_tenant, the admin included): every pattern needs a target here (who may reach it,
  which seeded rows its ids name) or a reason to be skipped, so a new page is fuzzed from
  the day it is added, or a test here says it is not.
* The forms are read from the pages, as a browser would: each target is fetched (with
  seeded ids) as each of its roles, and every <form> found is attributed to the pattern its
  action resolves to, with its fields, options and defaults; links' query parameters too.
  Saved searches (?search=<id>, the trace's results) are made by sending their forms.
* Each request: a role, a method the pattern answers, a URL of seeded rows (the persona's
  own, or another enterprise's) or with one part nasty (an id, a token, the account's
  slug), query parameters and form fields as the page has them but for up to three
  changed: another good value, or a nasty one (Unicode digits, NUL, RTL marks, emoji, SQL
  and HTML metacharacters, huge and negative numbers, impossible dates, JSON, bytes that
  are not UTF-8...), left out or repeated; files with hostile contents; odd headers and
  content types. Where a POST redirects to something it made (a search's results, a new
  row), that page is opened too, as a browser would.
* In-process (django.test.Client, every middleware), on the real test database. Each
  request runs in a savepoint that is rolled back, so no example sees another's writes;
  each client's cookies are put back after it, so a sign-out or a language switch does not
  leak either. Failed-sign-in and reset counters live under a cache prefix of this run.
* Every response >= 500 is collected with the request that caused it and the traceback;
  all are reported at the end. At least 10,000 requests are generated (counted, not
  estimated). Derandomized: CI sends the same requests every run.
* The fuzz skips the CSRF check; then each POST form is sent as a browser sends it, with
  its page's token and without.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import logging
import random
import re
import time
import traceback
import uuid
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qsl, quote, quote_from_bytes, unquote, urljoin, urlsplit

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.signals import got_request_exception
from django.db import connection, transaction
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_tenants.utils import tenant_context
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts.api_keys import do_create_api_key
from accounts.models import AuditEvent, Enterprise
from accounts.sending_domains import do_add_sending_domain
from accounts.webhooks import do_subscribe
from campaigns import kannel, voice_messages
from campaigns.blacklists import do_add_entry, do_create_blacklist
from campaigns.models import BlacklistImport
from devices import ledger
from devices.calling_rules import do_add_holiday, do_save_calling_window
from devices.models import Attempt, DeviceSetting, Registry, RegistryImport
from devices.unsubscribe import make_token
from tests import factories
from tests.conftest import PASSWORD
from tests.helpers import sign_in_to_accounts, tone_wav

MIN_REQUESTS = 10_000
MIN_PER_PATTERN = 15
# Requests shared out over the targets, by weight (a form is worth more than a plain page).
BUDGET = 10_150
HOUSTON = "+17135554101"
ACCOUNT = "acme-one"

ANONYMOUS = ("anonymous",)
SIGNED_IN = ("agent", "ent_admin", "operator")
ACCOUNT_MEMBERS = ("agent", "acct_admin", "ent_admin")
ACCOUNT_ADMINS = ("acct_admin", "ent_admin")
ENTERPRISE = ("ent_admin",)
OPERATOR = ("operator",)
PERSONAS = ("anonymous", "outsider", "agent", "acct_admin", "ent_admin", "operator")


# --- The inventory: every URL pattern, from the resolvers ---------------------------------


@dataclass(frozen=True)
class Route:
    """One URL pattern: ``key`` is its route as Django reports it (ResolverMatch.route),
    prefixed with ``a/<slug>/`` for account pages."""

    key: str
    tenant: bool
    parts: tuple  # (pattern, ...) from the URLconf's root to the view
    callback: object


def _walk(patterns, parts=()):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, (*parts, entry.pattern))
        elif isinstance(entry, URLPattern):
            yield (*parts, entry.pattern), entry.callback


def url_routes() -> dict[str, Route]:
    routes = {}
    for conf, tenant in (("enterprise_portal.urls_public", False),
                         ("enterprise_portal.urls_tenant", True)):  # fmt: skip
        for parts, callback in _walk(get_resolver(conf).url_patterns):
            key = ("a/<slug>/" if tenant else "") + "".join(str(p) for p in parts)
            routes[key] = Route(key, tenant, parts, callback)
    return routes


def route_key(path: str) -> tuple[str, dict] | None:
    """The pattern a path of ours resolves to, and its kwargs (None: not one of ours)."""
    tenant = re.match(r"^/a/([^/]+)/", path)
    try:
        if tenant:
            match = resolve("/" + path[tenant.end() :], "enterprise_portal.urls_tenant")
            return "a/<slug>/" + match.route, match.kwargs
        match = resolve(path, "enterprise_portal.urls_public")
    except Resolver404:
        return None
    return match.route, match.kwargs


@dataclass(frozen=True)
class Redirected:
    """A seed that only exists once a form was sent: the kwarg or query parameter ``name``
    of the URL that ``method path`` (with ``data``, as ``role``) redirects to."""

    role: str
    method: str
    path: str
    data: dict
    name: str


@dataclass(frozen=True)
class Target:
    """Who may reach a pattern, and what its URL kwargs name."""

    roles: tuple[str, ...]
    # kwarg -> seed names (the first is the persona's own row; others someone else's).
    # Kwargs not named here take DEFAULT_IDS.
    ids: dict = field(default_factory=dict)
    # Query parameters the view reads, beyond those its forms and links show; "name={seed}"
    # offers a seeded value (a saved search's id) among the good ones.
    params: tuple[str, ...] = ()
    # A whole valid query string (formatted with the seeds) its requests start from, GET or
    # POSTed as a form (carriers send either way), fuzzed field by field: for callbacks
    # whose parameters prove each other (a signature).
    query: str = ""
    # More pages to read forms from: "?query" on the target's URL, or "/path" (formatted
    # with the seeds).
    crawl: tuple[str, ...] = ()
    weight: float = 1.0


DEFAULT_IDS = {
    "enterprise_id": ("ent_a", "ent_b"),
    "account_id": ("acct_a1", "acct_a2", "acct_b1"),
    "campaign_id": ("campaign", "campaign_other"),
    "sub_campaign_id": ("sub", "sub_active"),
    "list_id": ("list",),
    "contact_id": ("contact",),
    "blacklist_id": ("blacklist",),
    "entry_id": ("entry",),
    "attempt_id": ("attempt", "attempt_b"),
    "subscription_id": ("webhook",),
    "domain_id": ("sending_domain",),
}

# Patterns not fuzzed here, by prefix, and why.
SKIPPED = {
    "api/v1/": "the API: fuzzed from its OpenAPI schema by tests/test_api_fuzz.py",
    "healthz": "no parameters, no form: a constant answer for load balancers",
}

LISTS = ("page",)
TARGETS: dict[str, Target] = {
    # Shared pages.
    "i18n/setlang/": Target(SIGNED_IN + ANONYMOUS, params=("next", "language")),
    "": Target(SIGNED_IN + ("acct_admin", "outsider") + ANONYMOUS),
    "login/": Target(ANONYMOUS + ("agent",), params=("next",), weight=2),
    "logout/": Target(ANONYMOUS + SIGNED_IN),
    "password/change/": Target(("agent", "ent_admin"), weight=1.5),
    "password/change/done/": Target(("agent",), weight=0.3),
    "password/reset/": Target(ANONYMOUS, weight=1.5),
    "password/reset/sent/": Target(ANONYMOUS, weight=0.3),
    "password/reset/<uidb64>/<token>/": Target(
        ANONYMOUS,
        ids={"uidb64": ("reset_uid",), "token": ("reset_token", "set_password")},
        weight=1.5,
    ),
    "password/reset/complete/": Target(ANONYMOUS, weight=0.3),
    "accounts/<int:account_id>/sign-in/": Target(("ent_admin", "agent"), params=("next",)),
    "u/<str:token>/": Target(ANONYMOUS, ids={"token": ("unsubscribe_token",)}, weight=1.5),
    "carrier/kannel/mo/": Target(
        ANONYMOUS,
        query="key={kannel_key}&from=%2B17135554101&to=55123&text=STOP&id=fuzz-1&ts=",
        weight=1.5,
    ),
    # Enterprise pages.
    "enterprises/<int:enterprise_id>/": Target(ENTERPRISE),
    "enterprises/<int:enterprise_id>/audit/": Target(
        ENTERPRISE, params=("search={audit_search}",) + LISTS, weight=1.5
    ),
    "enterprises/<int:enterprise_id>/sending-domains/": Target(ENTERPRISE, weight=1.5),
    "enterprises/<int:enterprise_id>/sending-domains/<int:domain_id>/remove/": Target(ENTERPRISE),
    "enterprises/<int:enterprise_id>/webhooks/": Target(ENTERPRISE, weight=1.5),
    "enterprises/<int:enterprise_id>/webhooks/<str:subscription_id>/": Target(
        ENTERPRISE, params=LISTS
    ),
    "enterprises/<int:enterprise_id>/webhooks/<str:subscription_id>/test/": Target(ENTERPRISE),
    "enterprises/<int:enterprise_id>/webhooks/<str:subscription_id>/delete/": Target(ENTERPRISE),
    "enterprises/<int:enterprise_id>/api-keys/": Target(ENTERPRISE, weight=1.5),
    "enterprises/<int:enterprise_id>/api-keys/<str:key_id>/revoke/": Target(
        ENTERPRISE, ids={"key_id": ("enterprise_key", "account_key", "operator_key")}
    ),
    "enterprises/<int:enterprise_id>/devices/": Target(ENTERPRISE, weight=1.5),
    "enterprises/<int:enterprise_id>/devices/trace/<str:search_id>/": Target(
        ENTERPRISE, ids={"search_id": ("trace_search",)}, params=LISTS
    ),
    "enterprises/<int:enterprise_id>/devices/trace/<str:search_id>/trace.csv": Target(
        ENTERPRISE, ids={"search_id": ("trace_search",)}, weight=0.5
    ),
    "enterprises/<int:enterprise_id>/recordings/<int:attempt_id>.wav": Target(ENTERPRISE),
    "enterprises/<int:enterprise_id>/recordings/<int:attempt_id>/delete/": Target(
        ENTERPRISE, params=("next",)
    ),
    "enterprises/<int:enterprise_id>/calling-rules/": Target(ENTERPRISE, weight=2),
    "enterprises/<int:enterprise_id>/calling-rules/<str:kind>/<int:pk>/delete/": Target(
        ENTERPRISE, ids={"kind": ("window", "holiday"), "pk": ("window", "holiday")}
    ),
    "enterprises/<int:enterprise_id>/devices/blocking/": Target(
        ENTERPRISE,
        params=(
            "device",
            "action",
            "reason",
            "expires",
            "setting={setting}",
            "search={settings_search}",
        )
        + LISTS,
        crawl=(f"?device={quote(HOUSTON)}&action=block",),
        weight=2,
    ),  # fmt: skip
    "enterprises/<int:enterprise_id>/devices/blocking/settings.csv": Target(
        ENTERPRISE, params=("search={settings_search}",), weight=0.5
    ),
    "enterprises/<int:enterprise_id>/devices/blocking/import/": Target(ENTERPRISE, weight=1.5),
    "enterprises/<int:enterprise_id>/devices/blocking/<int:pk>/": Target(
        ENTERPRISE, ids={"pk": ("setting", "setting_b")}, params=LISTS
    ),
    "enterprises/<int:enterprise_id>/devices/blocking/<int:pk>/remove/": Target(
        ENTERPRISE, ids={"pk": ("setting", "setting_b")}
    ),
    "enterprises/<int:enterprise_id>/devices/blocking/<int:pk>/expiry/": Target(
        ENTERPRISE, ids={"pk": ("setting", "setting_b")}
    ),
    # Platform operators.
    "platform/api-keys/": Target(OPERATOR, weight=1.5),
    "platform/api-keys/<str:key_id>/revoke/": Target(
        OPERATOR, ids={"key_id": ("operator_key", "enterprise_key")}
    ),
    "platform/registries/": Target(OPERATOR, params=("search={lookup_search}",) + LISTS, weight=2),
    "platform/registries/imports/<int:import_id>/": Target(
        OPERATOR, ids={"import_id": ("registry_import",)}
    ),
    "platform/registries/imports/<int:import_id>/progress.json": Target(
        OPERATOR, ids={"import_id": ("registry_import",)}, weight=0.5
    ),
    # Account pages (/a/<slug>/...).
    "a/<slug>/i18n/setlang/": Target(ACCOUNT_MEMBERS, params=("next", "language"), weight=0.5),
    "a/<slug>/": Target(ACCOUNT_MEMBERS),
    "a/<slug>/campaigns/": Target(ACCOUNT_MEMBERS, params=LISTS),
    "a/<slug>/campaigns/new/": Target(ACCOUNT_ADMINS, weight=1.5),
    "a/<slug>/campaigns/<int:campaign_id>/": Target(ACCOUNT_MEMBERS, params=LISTS),
    "a/<slug>/campaigns/<int:campaign_id>/sub-campaigns/new/": Target(ACCOUNT_ADMINS, weight=2),
    "a/<slug>/sub-campaigns/<int:sub_campaign_id>/": Target(
        ACCOUNT_MEMBERS,
        params=LISTS,
        crawl=("/a/acme-one/sub-campaigns/{sub_active}/",),
        weight=2,
    ),  # fmt: skip
    "a/<slug>/sub-campaigns/<int:sub_campaign_id>/counts.json": Target(ACCOUNT_MEMBERS, weight=0.5),
    "a/<slug>/sub-campaigns/<int:sub_campaign_id>/start/": Target(ACCOUNT_ADMINS),
    "a/<slug>/sub-campaigns/<int:sub_campaign_id>/voice-message/": Target(ACCOUNT_ADMINS),
    "a/<slug>/sub-campaigns/<int:sub_campaign_id>/voice-message.wav": Target(ACCOUNT_MEMBERS),
    "a/<slug>/sub-campaigns/<int:sub_campaign_id>/voice-message/remove/": Target(ACCOUNT_ADMINS),
    "a/<slug>/sub-campaigns/<int:sub_campaign_id>/pause/": Target(ACCOUNT_ADMINS),
    "a/<slug>/lists/": Target(ACCOUNT_MEMBERS, params=LISTS, weight=1.5),
    "a/<slug>/lists/<int:list_id>/": Target(ACCOUNT_MEMBERS, params=LISTS + ("issues",)),
    "a/<slug>/lists/<int:list_id>/progress.json": Target(ACCOUNT_MEMBERS, weight=0.5),
    "a/<slug>/lists/<int:list_id>/rejects.csv": Target(ACCOUNT_MEMBERS, weight=0.5),
    "a/<slug>/lists/<int:list_id>/delete/": Target(ACCOUNT_ADMINS, weight=0.5),
    "a/<slug>/contacts/<int:contact_id>/": Target(ACCOUNT_MEMBERS, params=LISTS),
    "a/<slug>/contacts/<int:contact_id>/disposition/": Target(ACCOUNT_MEMBERS),
    "a/<slug>/carrier/kannel/dlr/": Target(
        ANONYMOUS,
        query="attempt={attempt}&at={attempt_at}&sig={dlr_sig}&type=1&answer=ACK&smsc=x",
        weight=1.5,
    ),
    "a/<slug>/api-keys/": Target(ACCOUNT_ADMINS, weight=1.5),
    "a/<slug>/api-keys/<str:key_id>/revoke/": Target(
        ACCOUNT_ADMINS, ids={"key_id": ("account_key", "enterprise_key")}
    ),
    "a/<slug>/blacklists/": Target(ACCOUNT_MEMBERS, params=LISTS),
    "a/<slug>/blacklists/<int:blacklist_id>/": Target(
        ACCOUNT_MEMBERS, params=("search={entry_search}",) + LISTS, weight=3
    ),
    "a/<slug>/blacklists/<int:blacklist_id>/delete/": Target(ACCOUNT_ADMINS),
    "a/<slug>/blacklists/<int:blacklist_id>/entries/<int:entry_id>/remove/": Target(ACCOUNT_ADMINS),
    "a/<slug>/blacklists/<int:blacklist_id>/export.csv": Target(ACCOUNT_MEMBERS, weight=0.5),
    "a/<slug>/blacklists/<int:blacklist_id>/history/": Target(ACCOUNT_MEMBERS, params=LISTS),
    "a/<slug>/blacklists/<int:blacklist_id>/imports/<int:import_id>/": Target(
        ACCOUNT_MEMBERS, ids={"import_id": ("blacklist_import",)}
    ),
    "a/<slug>/blacklists/<int:blacklist_id>/imports/<int:import_id>/progress.json": Target(
        ACCOUNT_MEMBERS, ids={"import_id": ("blacklist_import",)}, weight=0.5
    ),
    "a/<slug>/campaigns/<int:campaign_id>/blacklists/": Target(ACCOUNT_ADMINS),
    "a/<slug>/recordings/<int:attempt_id>.wav": Target(ACCOUNT_MEMBERS),
    "a/<slug>/recordings/<int:attempt_id>/delete/": Target(ACCOUNT_MEMBERS, params=("next",)),
}

# The platform admin (Django's, with our model admins): each registered model's pages.
ADMIN_PARAMS = ("q", "o", "p", "e", "all", "_popup", "_to_field", "_changelist_filters")
ADMIN_OBJECTS = {  # the model's admin URL -> seeds of its objects
    "accounts/enterprise/": ("admin_enterprise",),
    "accounts/account/": ("admin_account",),
    "accounts/user/": ("admin_user",),
    "accounts/auditevent/": ("admin_event",),
    "auth/group/": ("admin_group",),
}
ADMIN = {
    "admin/": Target(OPERATOR + ("agent",)),
    "admin/login/": Target(ANONYMOUS + OPERATOR, params=("next",)),
    "admin/logout/": Target(OPERATOR),
    "admin/password_change/": Target(OPERATOR),
    "admin/password_change/done/": Target(OPERATOR, weight=0.3),
    "admin/autocomplete/": Target(
        OPERATOR, params=("term", "app_label", "model_name", "field_name", "page")
    ),
    "admin/jsi18n/": Target(OPERATOR, weight=0.3),
    "admin/r/<path:content_type_id>/<path:object_id>/": Target(
        OPERATOR, ids={"content_type_id": ("enterprise_type",), "object_id": ("ent_a",)}
    ),
    "admin/^(?P<app_label>accounts|auth)/$": Target(OPERATOR, ids={"app_label": ("accounts",)}),
    "admin/(?P<url>.*)$": Target(OPERATOR, ids={"url": ("admin_elsewhere",)}, weight=0.5),
    "admin/accounts/user/<id>/password/": Target(OPERATOR, ids={"id": ("admin_user",)}),
}
for _model, _seeds in ADMIN_OBJECTS.items():
    _base = f"admin/{_model}"
    ADMIN[_base] = Target(OPERATOR, params=ADMIN_PARAMS)
    ADMIN[_base + "add/"] = Target(OPERATOR, params=("_popup", "_to_field"))
    for _page in ("history/", "delete/", "change/", ""):
        ADMIN[f"{_base}<path:object_id>/{_page}"] = Target(
            OPERATOR, ids={"object_id": _seeds}, params=("_changelist_filters",),
            weight=1 if _page == "change/" else 0.5,
        )  # fmt: skip
TARGETS.update(ADMIN)


def _skip_reason(key: str) -> str | None:
    return next((why for prefix, why in SKIPPED.items() if key.startswith(prefix)), None)


def test_every_url_pattern_has_a_fuzz_target_or_a_reason_to_skip():
    """A new page is fuzzed from the day it is added, or this says it is not."""
    routes = url_routes()
    missing = [key for key in routes if key not in TARGETS and _skip_reason(key) is None]
    assert not missing, (
        "URL patterns with no fuzz target in tests/test_form_fuzz.py (add one to TARGETS, "
        f"with the roles that reach it and the seeds its ids name, or a reason to SKIPPED): "
        f"{missing}"
    )
    assert len(routes) - sum(1 for key in routes if _skip_reason(key)) >= 100


# --- Seeds: real rows for the ids to name -------------------------------------------------


def _attempt(account, **extra) -> Attempt:
    fields = {
        "attempted_at": timezone.now() - dt.timedelta(hours=2),
        "enterprise_id": account.enterprise_id, "account_id": account.pk,
        "account_name": account.name, "client_id": "C-FUZZ", "device_key": HOUSTON,
        "channel": "voice", "direction": "outbound", "disposition": "ANSWERED",
        "call_seconds": 30, "node": "engine-1",
    }  # fmt: skip
    fields.update(extra)
    return Attempt.objects.create(**fields)


def _seed(personas) -> dict[str, str]:
    """Rows of every kind a URL can name, in acme-one (and a few of Borealis's, for ids
    that must not be found), and the ids as URL text."""
    p = personas
    wav = tone_wav(1.0)
    with tenant_context(p.acct_a1):
        listing = factories.contact_list(
            [{"client_id": "C-FUZZ", "phones": [HOUSTON], "email": "fuzz@example.com"}]
        )
        contact = listing.contacts.get()
        sub = factories.sub_campaign(listing, activate=False, campaign_name="Fuzzed campaign")
        voice_messages.do_set_voice_message(sub, SimpleUploadedFile("message.wav", wav))
        sub_active = factories.sub_campaign(listing, campaign_name="Other campaign")
        blacklist = do_create_blacklist(name="Fuzzed list", description="Seeded")
        do_add_entry(blacklist, "phone", "+17135554199")
        do_add_entry(blacklist, "extension", "4242")
        entry = blacklist.entries.order_by("id").first()
        job = BlacklistImport.objects.create(
            blacklist=blacklist, file_name="seeded.txt", upload_path="none", status="done"
        )
        recording = default_storage.save(f"recordings/fuzz/{uuid.uuid4().hex}.wav",
                                          ContentFile(wav))  # fmt: skip
        attempt = _attempt(
            p.acct_a1, campaign_id=sub.campaign_id, campaign_name="Fuzzed campaign",
            sub_campaign_id=sub.pk, sub_campaign_name=sub.name, contact_id=contact.pk,
            recording_state="stored", recording_file=recording,
        )  # fmt: skip
    connection.set_schema_to_public()
    attempt_b = _attempt(p.acct_b1, recording_state="stored", recording_file=recording)
    setting = DeviceSetting.objects.create(
        enterprise=p.ent_a, device_key=HOUSTON, action="block", source="manual", reason="Seeded"
    )
    setting_b = DeviceSetting.objects.create(
        enterprise=p.ent_b, device_key="+5511912345678", action="block", source="manual"
    )
    window = do_save_calling_window(p.ent_a, region="US", start=dt.time(9), end=dt.time(20))
    holiday = do_add_holiday(p.ent_a, date=dt.date(2026, 12, 25), region="", name="Christmas")
    domain = do_add_sending_domain(p.ent_a, "fuzz.example.com")
    webhook = do_subscribe(p.ent_a, "https://hooks.example.com/fuzz", ["device.blocked"],
                           actor=p.ent_admin)  # fmt: skip
    enterprise_key, _ = do_create_api_key(name="Fuzz enterprise", scopes=["trace:read"],
                                          created_by=p.ent_admin, enterprise=p.ent_a)  # fmt: skip
    account_key, _ = do_create_api_key(name="Fuzz account", scopes=["blacklists:write"],
                                       created_by=p.acct_admin, enterprise=p.ent_a,
                                       account=p.acct_a1)  # fmt: skip
    operator_key, _ = do_create_api_key(name="Fuzz operator", scopes=["registries:read"],
                                        created_by=p.operator)  # fmt: skip
    us_dnc = Registry.objects.get(country="US")
    registry_import = RegistryImport.objects.create(registry=us_dnc, kind="full",
                                                    source_name="seeded.txt")  # fmt: skip
    group = Group.objects.create(name="Fuzzed group")
    event = AuditEvent.objects.filter(enterprise=p.ent_a).order_by("id").first()
    ids = {
        "ent_a": p.ent_a.pk, "ent_b": p.ent_b.pk, "acct_a1": p.acct_a1.pk,
        "acct_a2": p.acct_a2.pk, "acct_b1": p.acct_b1.pk, "campaign": sub.campaign_id,
        "campaign_other": sub_active.campaign_id, "sub": sub.pk, "sub_active": sub_active.pk,
        "list": listing.pk, "contact": contact.pk, "blacklist": blacklist.pk,
        "entry": entry.pk, "blacklist_import": job.pk, "attempt": attempt.pk,
        "attempt_b": attempt_b.pk, "setting": setting.pk, "setting_b": setting_b.pk,
        "window": window.pk, "holiday": holiday.pk, "sending_domain": domain.pk,
        "webhook": webhook.pk, "enterprise_key": enterprise_key.pk,
        "account_key": account_key.pk, "operator_key": operator_key.pk,
        "registry_import": registry_import.pk, "us_dnc": us_dnc.pk,
        "admin_enterprise": p.ent_a.pk, "admin_account": p.acct_a1.pk,
        "admin_user": p.agent.pk, "admin_event": event.pk, "admin_group": group.pk,
        "enterprise_type": ContentType.objects.get_for_model(Enterprise).pk,
    }  # fmt: skip
    seeds = {name: str(value) for name, value in ids.items()}
    at = ledger.stamp(attempt.attempted_at)
    seeds.update({
        "accounts": "accounts", "admin_elsewhere": "accounts/nothing-here/",
        "unsubscribe_token": make_token(p.ent_a.pk, "fuzz@example.com", attempt.pk),
        "reset_uid": urlsafe_base64_encode(force_bytes(p.agent.pk)),
        "reset_token": default_token_generator.make_token(p.agent),
        "set_password": "set-password",
        "attempt_at": str(at), "dlr_sig": kannel.signature(ACCOUNT, attempt.pk, at),
        "kannel_key": quote(django_settings.KANNEL_CALLBACK_SECRET, safe=""),
    })  # fmt: skip
    return seeds


# Seeds that exist once a form is sent: saved searches (accounts.searches), opened at the
# URL the search form redirects to.
SEEDED_BY_FORMS = {
    "trace_search": Redirected("ent_admin", "POST", "/enterprises/{ent_a}/devices/",
                               {"criteria": "device", "value": HOUSTON}, "search_id"),
    "audit_search": Redirected("ent_admin", "POST", "/enterprises/{ent_a}/audit/",
                               {"action": "device"}, "search"),
    "settings_search": Redirected("ent_admin", "POST", "/enterprises/{ent_a}/devices/blocking/",
                                  {"op": "search", "q": "713"}, "search"),
    "entry_search": Redirected("acct_admin", "POST", "/a/acme-one/blacklists/{blacklist}/",
                               {"action": "search", "q": "4242"}, "search"),
    "lookup_search": Redirected("operator", "POST", "/platform/registries/",
                                {"registry": "{us_dnc}", "number": "7135554101"}, "search"),
}  # fmt: skip


def _format(text: str, seeds: dict) -> str:
    return text.format(**seeds)


def _seed_names(target: Target, kwarg: str) -> tuple:
    return target.ids.get(kwarg) or DEFAULT_IDS.get(kwarg) or ()


def _seed_value(seeds: dict, kwarg: str, name: str) -> str | None:
    if kwarg == "kind":
        return name  # the rule's kind in words: "window" or "holiday"
    return seeds.get(name)


# --- Forms, as a browser reads them -----------------------------------------------------


@dataclass
class Field:
    name: str
    kind: str  # the input's type, "select", "textarea" or "submit" (a named button)
    options: list[str] = field(default_factory=list)
    default: list[str] = field(default_factory=list)  # what the browser sends untouched
    multiple: bool = False


@dataclass
class Form:
    method: str  # "get" or "post"
    action: str  # the path it is sent to, with any query
    multipart: bool = False
    fields: dict[str, Field] = field(default_factory=dict)
    page: str = ""  # the page it was read from
    role: str = ""  # who read it

    def add(self, name: str, kind: str) -> Field:
        return self.fields.setdefault(name, Field(name, kind))

    def signature(self) -> tuple:
        return (self.method, urlsplit(self.action).path,
                tuple(sorted((f.name, f.kind) for f in self.fields.values())))  # fmt: skip


class PageForms(HTMLParser):
    """The forms of one page (fields, their options and defaults) and its links."""

    def __init__(self, page: str, html: str):
        super().__init__(convert_charrefs=True)
        self.page = page
        self.forms: list[Form] = []
        self.links: list[str] = []
        self._form: Form | None = None
        self._select: Field | None = None
        self._textarea: Field | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            action = urlsplit(urljoin(self.page, a.get("action") or self.page))
            path = action.path + (f"?{action.query}" if action.query else "")
            method = "post" if a.get("method", "").lower() == "post" else "get"
            self._form = Form(method, path, "multipart" in a.get("enctype", ""))
            self.forms.append(self._form)
        elif tag == "a" and a.get("href"):
            self.links.append(urljoin(self.page, a["href"]))
        elif tag == "option" and self._select is not None:
            self._select.options.append(a.get("value", ""))
            if "selected" in a:
                self._select.default.append(a.get("value", ""))
        elif self._form is not None and a.get("name") and "disabled" not in a:
            self._control(tag, a)

    def _control(self, tag: str, a: dict) -> None:
        name = a["name"]
        kind = a.get("type", "text").lower() if tag == "input" else tag
        if tag == "button" or kind in ("submit", "image"):
            if a.get("type", "submit").lower() == "submit":
                self._form.add(name, "submit").options.append(a.get("value", ""))
        elif kind in ("radio", "checkbox"):
            control = self._form.add(name, kind)
            control.multiple = kind == "checkbox"
            control.options.append(a.get("value", "on"))
            if "checked" in a:
                control.default.append(a.get("value", "on"))
        elif tag == "select":
            self._select = self._form.add(name, "select")
            self._select.multiple = "multiple" in a
        elif tag == "textarea":
            self._textarea = self._form.add(name, "textarea")
            self._textarea.default = [""]
        elif tag == "input" and kind not in ("reset", "button"):
            control = self._form.add(name, kind)
            if kind != "file":
                control.default = [a.get("value", "")]

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select" and self._select is not None:
            if not self._select.default and not self._select.multiple and self._select.options:
                self._select.default = self._select.options[:1]
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea.default = [self._textarea.default[0] + data]


# --- Values: good ones, and the nasty ones this is about ----------------------------------

NASTY = (
    "",
    " ",
    "\t\r\n",
    "0",
    "-1",
    "-0",
    "00000000000000000001",
    "1e309",
    "NaN",
    "-inf",
    "9" * 30,
    str(2**63),
    str(2**63 - 1),
    str(-(2**63) - 1),
    str(2**31),
    "1.5",
    "0x1F",
    # Digits that str.isdigit() takes and int() may not: superscripts, Arabic-Indic,
    # fullwidth, N'Ko, Roman numerals, fractions.
    "²",
    "٣",
    "１２３",
    "٠٧١٣٥٥٥٤١٠١",
    "߁߂",
    "Ⅻ",
    "½",
    "⑦",
    "𝟘𝟙",
    "\x00",
    "a\x00b",
    "\x00" * 3,
    "\u200f",
    "\u202eevil",
    "\ufeff1",
    "\u00a0",
    "\u3000",
    "😀",
    "👨‍👩‍👧‍👦",
    "🇧🇷",
    "e\u0301",
    "ß",
    "İ",
    "ı",
    "' OR 1=1 --",
    '"; DROP TABLE accounts_user; --',
    "%",
    "_",
    "\\",
    "%_%",
    "'",
    '"',
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "{{ 7|add:7 }}",
    "{% debug %}",
    "${7*7}",
    "%s%s%n",
    "{0}",
    "&amp;",
    "]]>",
    "0000-00-00",
    "2026-02-30",
    "2026-13-01",
    "2026-12-31T25:61",
    "9999-12-31",
    "0001-01-01",
    "10000-01-01",
    "1970-01-01T00:00:00Z",
    "24:00",
    "23:59:60",
    "-1:00",
    "2026-W53",
    '{"a": 1}',
    "[]",
    "null",
    "true",
    '{"$gt": ""}',
    "[" * 50,
    "a" * 300,
    "x" * 5000,
    "é" * 2000,
    "+",
    "+1",
    HOUSTON,
    "713 555 4101",
    "(11) 91234-5678",
    "+999999999999999999999",
    "a@b",
    "user@exämple.com",
    "@",
    "a@b@c",
    "x" * 64 + "@example.com",
    "http://127.0.0.1/",
    "javascript:alert(1)",
    "//evil.example/",
    "/\\evil.example",
    "https://exa mple.com",
    "../../etc/passwd",
    "/a/acme-two/",
    "/a/acme-one//evil.example",
)
# Bytes that are not UTF-8 (what surrogates become on the wire), and overlong forms.
NASTY_BYTES = (b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe2\x82", b"a\xffb", b"\x80" * 5)


def _generated(count: int = 400) -> tuple[str, ...]:
    """More nasty text, made once (a fixed seed): runs of characters from the scripts and
    classes that break parsers (other scripts' digits, RTL, combining marks, controls,
    emoji, astral planes), numbers of every size, impossible dates."""
    rng = random.Random(13)
    alphabets = [
        "0123456789", "٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹", "०१२३४५६७८९", "０１２３４５６７８９",
        "¹²³⁴⁵⁶⁷⁸⁹⁰½¼", "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2069",
        "\u0300\u0301\u0302\u0327\u20dd", "\x01\x07\x08\x0b\x0c\x1b\x7f\x85\x9f",
        "😀🇧🇷👍🏽\U0001f9d1\u200d\U0001f4bb", "汉字かなカナ한글", "абвгдеё", "אבגדה", "العربية",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢𝟘𝟙", "'\"\\;%_*?<>&|`$(){}[]", " \t\r\n\u00a0\u2028\u3000",
    ]  # fmt: skip
    made = []
    for _ in range(count):
        kind = rng.randrange(4)
        if kind < 2:
            alphabet = "".join(rng.sample(alphabets, rng.randint(1, 3)))
            made.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24))))
        elif kind == 2:
            made.append(str(rng.choice([-1, 1]) * rng.randrange(10 ** rng.randint(1, 40))))
        else:
            made.append(f"{rng.randrange(10001):04}-{rng.randrange(14):02}-{rng.randrange(33):02}")
    return tuple(made)


NASTY_POOL = NASTY + _generated()


def nasty_text():
    """Mostly from the pool (cheap to draw: thousands of requests), sometimes whatever
    Hypothesis makes of any Unicode text."""
    return st.one_of(st.sampled_from(NASTY_POOL), st.sampled_from(NASTY_POOL),
                     st.sampled_from(NASTY_POOL), st.text(max_size=24))  # fmt: skip


# Good values by field or parameter name, to get past one field to the next.
SAMPLES = {
    "value": (HOUSTON, "713 555 4101", "fuzz@example.com", "C-FUZZ"),
    "device": (HOUSTON, "fuzz@example.com", "+5511912345678", "4242"),
    "number": ("7135554101", "11912345678"),
    "username": ("agent@acme.test", "operator@platform.test", "nobody@example.com"),
    "email": ("agent@acme.test", "nobody@example.com"),
    "password": (PASSWORD, "wrong-password"),
    "old_password": (PASSWORD,),
    "new_password1": ("a-new-Passw0rd-long",),
    "new_password2": ("a-new-Passw0rd-long",),
    "password1": ("a-new-Passw0rd-long",),
    "password2": ("a-new-Passw0rd-long",),
    "name": ("Fuzzed", "Fuzzed campaign"),
    "description": ("Seeded",),
    "reason": ("Asked not to be called",),
    "note": ("Called back",),
    "date": ("2026-12-24",),
    "expires": ("2030-01-31", "2030-01-31 10:00"),
    "expires_on": ("2030-01-31",),
    "date_from": ("2026-01-01",),
    "date_to": ("2026-12-31",),
    "start": ("08:00",),
    "end": ("21:00",),
    "region": ("US", "BR", ""),
    "url": ("https://hooks.example.com/x",),
    "domain": ("example.org",),
    "attempt_cap": ("7",),
    "attempt_cap_days": ("7",),
    "q": ("713", "4242"),
    "search": ("nope",),
    "next": ("/a/acme-one/", "/", "https://evil.example/"),
    "page": ("2", "last", "0"),
    "issues": ("2",),
    "action": ("device", "add", "edit", "campaigns", "upload", "cap", "window", "holiday"),
    "criteria": ("device", "client_id"),
    "language": ("pt-br", "en"),
}
EXTRA_NAMES = ("id", "pk", "enterprise", "account", "is_superuser", "role", "__proto__", "a[]")
LANGUAGES = ("pt-br", "pt-BR,pt;q=0.9,en;q=0.8", "*", "xx-YY", "en;q=abc", "a" * 300, "de")
RANGES = ("bytes=0-99", "bytes=-100", "bytes=100-", "bytes=5-1", "bytes=0-0,5-6", "bytes=²-3",
          "bytes=" + "9" * 5000, "bytes=0-" + "9" * 40, "items=0-1", "bytes=",
          "bytes=-")  # fmt: skip
FORM_CONTENT = "application/x-www-form-urlencoded"
CONTENT_TYPES = (
    "application/x-www-form-urlencoded; charset=utf-16",
    "application/x-www-form-urlencoded; charset=no-such-codec",
    "multipart/form-data",  # no boundary
    "multipart/form-data; boundary=" + "x" * 100,
    "application/json",
    "text/plain",
)


NASTY_VALUES = st.one_of(
    st.sampled_from(NASTY_POOL), st.sampled_from(NASTY_POOL), st.sampled_from(NASTY_POOL),
    st.text(max_size=24), st.sampled_from(NASTY_BYTES),
)  # fmt: skip


def values_for(control: Field):
    """What is sent for a control the request changes: another good value, a nasty one,
    nothing, or the name repeated. Built once per control: Hypothesis checks a strategy
    the first time it draws from it, and there are thousands of draws."""
    pool = list(control.options) + list(SAMPLES.get(control.name, ()))
    good = st.sampled_from(pool) if pool else NASTY_VALUES
    return st.one_of(
        st.lists(good, max_size=4, unique=True) if control.multiple else good.map(lambda v: [v]),
        NASTY_VALUES.map(lambda v: [v]),
        st.just([]),
        st.lists(st.one_of(good, NASTY_VALUES), min_size=2, max_size=3),
    )


WAV = tone_wav(1.0)
FILE_NAMES = st.one_of(
    st.sampled_from(("numbers.csv", "list.txt", "message.wav", "numbers.zip", "x.xlsx",
                     "../../etc/passwd", "ñ😀.csv", "a" * 300 + ".csv", "no-extension")),
    st.text(max_size=20).map(lambda text: text + ".csv"),
)  # fmt: skip
CELLS = st.one_of(st.sampled_from((HOUSTON, "7135554101", "4242", "block", "allow", "phone",
                                   "2030-01-01", "fuzz@example.com")), nasty_text())  # fmt: skip
ROWS = st.lists(st.lists(CELLS, max_size=4), max_size=6)


@st.composite
def _uploads(draw) -> SimpleUploadedFile:
    """A file as hostile as a person can make one: bad names, encodings, binary, zips."""
    name = draw(FILE_NAMES)
    text = "\n".join(",".join(row) for row in draw(ROWS))
    kind = draw(st.integers(0, 7))
    if kind == 0:
        content = text.encode("utf-8", "surrogatepass")
    elif kind == 1:
        content = ("\ufeffphone,action,reason\n" + text).encode("utf-8", "surrogatepass")
    elif kind == 2:
        content = text.encode("utf-16", "surrogatepass")
    elif kind == 3:
        content = draw(st.binary(max_size=600))
    elif kind == 4:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(draw(st.sampled_from(("a.txt", "../b.csv", "c/"))),
                             text.encode("utf-8", "surrogatepass"))  # fmt: skip
        content = buffer.getvalue()
    elif kind == 5:
        content = WAV[: draw(st.integers(0, len(WAV)))]
    elif kind == 6:
        content = b"PK\x03\x04" + draw(st.binary(max_size=100))
    else:
        content = b""
    return SimpleUploadedFile(name, content)


UPLOADS = _uploads()


def _latin1(value) -> str:
    """A header or multipart value as a WSGI server would hand it over."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value.encode("utf-8", "surrogatepass").decode("latin-1")


def _quote(value, safe: str = "") -> str:
    if isinstance(value, bytes):
        return quote_from_bytes(value, safe=safe)
    return quote(value.encode("utf-8", "surrogatepass"), safe=safe)


def _urlencode(pairs) -> str:
    return "&".join(f"{_quote(k)}={_quote(v)}" for k, v in pairs)


# --- Requests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    role: str
    method: str
    path: str  # with its query string
    body: bytes = b""
    content_type: str = ""
    headers: tuple = ()
    follow: bool = False  # a GET that follows redirects (reading pages)

    def __str__(self) -> str:
        body = self.body[:400] + (b"..." if len(self.body) > 400 else b"")
        text = f"as {self.role}: {self.method} {self.path[:500]}"
        if self.body:
            text += f"\n    {self.content_type}: {body!r}"
        if self.headers:
            text += f"\n    headers: {dict(self.headers)!r:.300}"
        return text


class Fuzzer:
    """Sends requests as the personas, each in a savepoint rolled back after it, with the
    client's cookies put back; counts them and keeps every response >= 500."""

    def __init__(self, clients: dict, *, per_request: bool = True):
        self.clients = clients
        self.cookies: dict = {}
        self.per_request = per_request  # cookies put back after each request
        self.sent = 0
        self.by_route: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.seconds = 0.0
        self.failures: list[tuple[str, str, int, str]] = []
        self._traceback = ""

    def remember_cookies(self) -> None:
        self.cookies = {role: copy.deepcopy(c.cookies) for role, c in self.clients.items()}

    def forget_cookies(self) -> None:
        for role, cookies in self.cookies.items():
            self.clients[role].cookies = copy.deepcopy(cookies)

    def record_exception(self, sender, request=None, **kwargs):
        self._traceback = traceback.format_exc()

    def send(self, key: str, request: Sent, *, keep: bool = False):
        """The response (its content read) to ``request`` (``keep``: not rolled back, a
        seed). A POST that saved a search is followed to its results, as a browser would:
        the terms it sent are read back there."""
        client = self.clients[request.role]
        savepoint = None if keep else transaction.savepoint()
        response = None
        try:
            response = self._one(key, client, request, str(request))
            if request.method == "POST" and response is not None:
                target = urlsplit(response.get("Location", ""))
                if target.netloc in ("", "testserver") and _names_a_search(target):
                    path = target.path + (f"?{target.query}" if target.query else "")
                    then = Sent(request.role, "GET", path, headers=request.headers)
                    self._one(key, client, then, f"{request}\n    then GET {path}")
        finally:
            if savepoint is not None:
                transaction.savepoint_rollback(savepoint)
                # And released: a savepoint rolled back to stays open, so the next one
                # would nest inside it, 10,000 deep (each level keeping its transaction
                # id's lock: PostgreSQL ran out of lock slots, and got slower as it went).
                transaction.savepoint_commit(savepoint)
                transaction.set_rollback(False)
            connection.set_schema_to_public()
            # A cookie set (a sign-out, a language, messages) is forgotten with the rest.
            changed = response is None or response.cookies
            if self.per_request and request.role in self.cookies and changed:
                client.cookies = copy.deepcopy(self.cookies[request.role])
        return response

    def _one(self, key: str, client, request: Sent, described: str):
        self._traceback = ""
        started = time.process_time()
        response = None
        try:
            if request.follow:
                response = client.get(request.path, follow=True, **dict(request.headers))
            else:
                response = client.generic(request.method, request.path, request.body,
                                          content_type=request.content_type,
                                          **dict(request.headers))  # fmt: skip
            if response.streaming:  # a streamed body reads the database now: in the savepoint
                response._content_read = b"".join(response.streaming_content)
            status = response.status_code
        except Exception:  # noqa: BLE001 - what a server would turn into a 500
            self._traceback = traceback.format_exc()
            status = 599
        self.seconds += time.process_time() - started
        self.sent += 1
        self.by_route[key] += 1
        self.statuses[status // 100 * 100] += 1
        if status >= 500:
            self.failures.append((key, described, status, self._traceback))
        return response

    def report(self) -> str:
        """Every failure, grouped by where in our code it surfaced, with the requests."""
        groups: dict[str, list] = defaultdict(list)
        for key, request, status, text in self.failures:
            ours = [ln for ln in text.splitlines() if "File" in ln and "/.venv/" not in ln]
            last = text.strip().splitlines()[-1] if text.strip() else f"HTTP {status}"
            groups[f"{last}\n  at {ours[-1].strip() if ours else key}"].append(
                (key, request, status, text)
            )
        out = [f"{len(self.failures)} responses >= 500 of {self.sent} requests, "
               f"{len(groups)} distinct causes:"]  # fmt: skip
        for cause, items in groups.items():
            out.append(f"\n=== {cause} ({len(items)} requests)")
            for key, request, status, _text in items[:5]:
                out.append(f"  [{status}] {key}\n    {request}")
            out.append("\n".join(items[0][3].splitlines()[-40:]))  # the traceback's end
        return "\n".join(out)


class FuzzClient(Client):
    """django.test.Client without what a test of one page wants and thousands of requests
    pay for: a copy of every rendered template's context, the resolver match."""

    def request(self, **request):
        response = self.handler(self._base_environ(**request))
        response.client = self
        response.request = request
        if response.cookies:
            self.cookies.update(response.cookies)
        return response


def _names_a_search(target) -> bool:
    """Whether a URL opens a saved search (accounts.searches): ?search=<id>, or the
    Contact Trace's results at .../trace/<search id>/."""
    if "search" in dict(parse_qsl(target.query)):
        return True
    found = route_key(target.path) if target.path.startswith("/") else None
    return bool(found and "search_id" in found[1])


def _clients(personas) -> dict:
    """A client per persona, signed in as tests.helpers.client_for signs them in."""
    clients = {}
    for role in PERSONAS:
        client = clients[role] = FuzzClient()
        user = personas.user(role)
        if user is not None:
            client.force_login(user)
            sign_in_to_accounts(client, user)
    return clients


# --- Plans: what each pattern is sent -------------------------------------------------------


@dataclass
class Plan:
    route: Route
    target: Target
    methods: set[str] = field(default_factory=set)
    forms: list[Form] = field(default_factory=list)  # POST forms sent to it
    query: Form = field(default_factory=lambda: Form("get", ""))  # its query parameters
    examples: int = 0

    def add_form(self, form: Form) -> None:
        if form.method == "get":
            for control in form.fields.values():
                known = self.query.add(control.name, control.kind)
                known.options += [v for v in control.options if v not in known.options]
                known.default = known.default or control.default
        elif form.signature() not in {f.signature() for f in self.forms}:
            self.forms.append(form)


def _seeded_path(plan: Plan, seeds: dict) -> str:
    kwargs = {name: _seed_value(seeds, name, _seed_names(plan.target, name)[0])
              for name in _kwarg_names(plan.route)}  # fmt: skip
    return build_path(plan.route, kwargs, ACCOUNT)


_ROUTE_KWARG = re.compile(r"<(?:(\w+):)?(\w+)>")
_REGEX_KWARG = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def _kwarg_names(route: Route) -> dict[str, str]:
    """The route's kwargs and their converters ("int", "str", "path"; "re" for regexes)."""
    names = {}
    for part in route.parts:
        if isinstance(part, RoutePattern):
            names.update({m[2]: m[1] or "str" for m in _ROUTE_KWARG.finditer(str(part))})
        elif isinstance(part, RegexPattern):
            names.update({m[1]: "re" for m in _REGEX_KWARG.finditer(str(part))})
    return names


def build_path(route: Route, kwargs: dict, slug) -> str:
    path = "/" + (f"a/{_quote(slug)}/" if route.tenant else "")
    for part in route.parts:
        text = str(part)
        if isinstance(part, RegexPattern):
            text = _REGEX_KWARG.sub(lambda m: _quote(kwargs[m[1]], "/"), text)
            path += text.removeprefix("^").removesuffix("$")
        else:
            path += _ROUTE_KWARG.sub(lambda m: _quote(kwargs[m[2]], "/" if m[1] == "path"
                                                      else ""), text)  # fmt: skip
    return path


def plan_targets(routes: dict, seeds: dict, fuzzer: Fuzzer) -> tuple[dict[str, Plan], list]:
    """A plan per target: its seeds (making those only a form makes), the forms, links and
    methods of its pages as each of its roles reads them, its share of the budget. With
    the problems found on the way."""
    plans = {key: Plan(route, TARGETS[key]) for key, route in routes.items()
             if key in TARGETS and _skip_reason(key) is None}  # fmt: skip
    problems = [problem for plan in plans.values() for problem in _seed_plan(plan, seeds, fuzzer)]
    if problems:
        return plans, problems
    for plan in plans.values():
        _read_pages(plans, plan, seeds, fuzzer)
    for plan in plans.values():
        for param in plan.target.params:
            name, _, seeded = param.partition("=")
            control = plan.query.add(name, "text")
            if seeded:
                control.options.append(_format(seeded, seeds))
        if plan.target.query:
            baseline = Form("get", "")
            for pair in _format(plan.target.query, seeds).split("&"):
                name, _, value = pair.partition("=")
                baseline.add(name, "text").default = [unquote(value)]
            plan.add_form(baseline)
            plan.forms.append(Form("post", "", fields=copy.deepcopy(baseline.fields)))
        if not plan.methods:
            problems.append(f"{plan.route.key}: answers no GET or POST to {plan.target.roles}")
    weights = {
        key: plan.target.weight * (1 + 0.5 * len(plan.forms) + 0.1 * len(plan.query.fields))
        for key, plan in plans.items()
    }
    total = sum(weights.values())
    for key, plan in plans.items():
        plan.examples = max(MIN_PER_PATTERN, round(BUDGET * weights[key] / total))
    return plans, problems


def _seed_plan(plan: Plan, seeds: dict, fuzzer: Fuzzer) -> list[str]:
    """Problems with the seeds the plan names (its kwargs', its parameters'), making those
    only a form makes."""
    problems, wanted = [], []
    for kwarg in _kwarg_names(plan.route):
        names = [] if kwarg == "kind" else list(_seed_names(plan.target, kwarg))
        if not names and kwarg != "kind":
            problems.append(f"{plan.route.key}: no seed for its kwarg {kwarg!r}")
        wanted += names
    texts = (*plan.target.params, plan.target.query, *plan.target.crawl)
    wanted += [name for text in texts for name in re.findall(r"\{(\w+)\}", text)]
    for name in wanted:
        if name not in seeds and name in SEEDED_BY_FORMS:
            seeds[name] = _seed_by_form(SEEDED_BY_FORMS[name], seeds, fuzzer)
        if seeds.get(name) is None:
            problems.append(f"{plan.route.key}: seed {name!r} could not be made")
    return problems


def _read_pages(plans: dict, plan: Plan, seeds: dict, fuzzer: Fuzzer) -> None:
    """GETs the target's pages (following redirects) as each role, reading their forms and
    links; an empty POST tells whether it takes POSTs."""
    here = _seeded_path(plan, seeds)
    pages = [here] + [
        _format(extra, seeds) if extra.startswith("/") else here + _format(extra, seeds)
        for extra in plan.target.crawl
    ]
    for role in plan.target.roles:
        for page in pages:
            response = fuzzer.send(plan.route.key, Sent(role, "GET", page, follow=True))
            if response is None:
                continue
            if (response.redirect_chain or [(None, response.status_code)])[0][1] != 405:
                plan.methods.add("GET")
            if response.get("Content-Type", "").startswith("text/html"):
                landed = response.request["PATH_INFO"]
                if response.request.get("QUERY_STRING"):
                    landed += "?" + response.request["QUERY_STRING"]
                _read_forms(plans, landed, role, response.content.decode("utf-8", "replace"))
        probe = fuzzer.send(plan.route.key, Sent(role, "POST", here, content_type=FORM_CONTENT))
        if probe is not None and probe.status_code != 405:
            plan.methods.add("POST")


def _read_forms(plans: dict, page: str, role: str, html: str) -> None:
    parsed = PageForms("http://testserver" + page, html)
    for form in parsed.forms:
        found = route_key(urlsplit(form.action).path)
        if found and found[0] in plans:
            form.page, form.role = page, role
            plans[found[0]].add_form(form)
    for link in parsed.links:
        parts = urlsplit(link)
        found = route_key(parts.path) if parts.query and parts.netloc == "testserver" else None
        if found and found[0] in plans:
            query = plans[found[0]].query
            for name, value in parse_qsl(parts.query, keep_blank_values=True):
                control = query.add(name, "text")
                if value not in control.options:
                    control.options.append(value)


def _seed_by_form(spec: Redirected, seeds: dict, fuzzer: Fuzzer) -> str | None:
    """Sends the form (kept: the row it makes must outlive the request) and reads the id
    from where it redirects: a kwarg of that URL, or a query parameter."""
    body = _urlencode((name, _format(value, seeds)) for name, value in spec.data.items())
    path = _format(spec.path, seeds)
    request = Sent(spec.role, spec.method, path, body.encode(), FORM_CONTENT)
    response = fuzzer.send("(seed)", request, keep=True)
    if response is None or not response.has_header("Location"):
        return None
    target = urlsplit(response["Location"])
    query = dict(parse_qsl(target.query))
    if spec.name in query:
        return query[spec.name]
    found = route_key(target.path)
    return str(found[1][spec.name]) if found and spec.name in found[1] else None


# --- The strategy: one request to one pattern ----------------------------------------------

BIG_IDS = ("0", "00", "9" * 19, "9" * 30, str(2**63), str(2**63 - 1), str(2**64), "1" + "0" * 25)


def _url_parts(plan: Plan, seeds: dict) -> dict[str, tuple]:
    """Each part of the URL (its kwargs, the account's slug): (its seeded values, nasty)."""
    parts = {}
    for name, converter in _kwarg_names(plan.route).items():
        good = [_seed_value(seeds, name, seed) for seed in _seed_names(plan.target, name)]
        if converter == "int":
            bad = st.one_of(st.sampled_from(BIG_IDS), NASTY_VALUES)
        elif converter in ("path", "re"):
            bad = st.one_of(NASTY_VALUES, st.lists(nasty_text(), max_size=3).map("/".join))
        else:
            bad = NASTY_VALUES
        parts[name] = (st.sampled_from(good), bad)
    if plan.route.tenant:
        parts["<slug>"] = (st.just(ACCOUNT), st.one_of(st.sampled_from(SLUGS), NASTY_VALUES))
    return parts


SLUGS = ("acme-two", "bor-one", "public", "tenant_template", "ACME-ONE", "acme-one.", "..", "a")


def form_strategy(form: Form):
    """Field values and files for one submission of ``form``: as the page has them, but
    for up to three fields (one bad field at a time gets past the others' checks)."""
    controls = list(form.fields.values())
    changeable = [c.name for c in controls if c.kind != "file"]
    changes = (st.lists(st.sampled_from(changeable), max_size=3, unique=True) if changeable
               else st.just([]))  # fmt: skip
    strategies = {c.name: values_for(c) for c in controls if c.kind != "file"}
    extra = st.tuples(st.one_of(st.sampled_from(EXTRA_NAMES), st.text(max_size=8)), NASTY_VALUES)

    @st.composite
    def submission(draw) -> tuple[list, dict]:
        changed = set(draw(changes))
        pairs, files = [], {}
        for control in controls:
            if control.kind == "file":
                if draw(st.integers(0, 9)):
                    files[control.name] = draw(UPLOADS)
            elif control.name in changed:
                pairs += [(control.name, value) for value in draw(strategies[control.name])]
            else:
                pairs += [(control.name, value) for value in control.default]
        if draw(st.integers(0, 9)) == 0:
            pairs.append(draw(extra))
        return pairs, files

    return submission()


LANGUAGE_HEADER = st.one_of(st.sampled_from(LANGUAGES), NASTY_VALUES).map(_latin1)
RANGE_HEADER = st.one_of(st.sampled_from(RANGES), nasty_text().map("bytes=".__add__)).map(_latin1)


def request_strategy(plan: Plan, seeds: dict):
    parts = _url_parts(plan, seeds)
    # Mostly a URL of seeded rows, so the request reaches the page or the form; else one
    # part of it nasty (the others seeded, to get past their lookups to that one's).
    spoilt = st.one_of(st.just(None), st.just(None), st.sampled_from(sorted(parts) or [None]))
    roles = st.sampled_from(plan.target.roles)
    methods = st.sampled_from(sorted(plan.methods))
    query = form_strategy(plan.query)
    forms = st.sampled_from([(form, form_strategy(form)) for form in plan.forms or
                             [Form("post", "")]])  # fmt: skip
    content_types = st.sampled_from(CONTENT_TYPES)
    wav = plan.route.key.endswith(".wav")

    @st.composite
    def one(draw) -> Sent:
        role, method = draw(roles), draw(methods)
        bad = draw(spoilt)
        values = {name: draw(part[name == bad]) for name, part in parts.items()}
        path = build_path(plan.route, values, values.pop("<slug>", ACCOUNT))
        headers = {}
        if draw(st.integers(0, 7)) == 0:
            headers["HTTP_ACCEPT_LANGUAGE"] = draw(LANGUAGE_HEADER)
        if wav and draw(st.booleans()):
            headers["HTTP_RANGE"] = draw(RANGE_HEADER)
        if (method == "GET" or draw(st.integers(0, 5)) == 0) and draw(st.integers(0, 4)):
            pairs, _ = draw(query)
            if pairs:
                path += "?" + _urlencode(pairs)
        if method == "GET":
            return Sent(role, method, path, headers=tuple(headers.items()))
        form, submission = draw(forms)
        pairs, files = draw(submission)
        if form.multipart or files:
            data = defaultdict(list)
            for name, value in pairs:
                data[name].append(_latin1(value))
            data.update(files)
            body, content_type = encode_multipart(BOUNDARY, dict(data)), MULTIPART_CONTENT
        else:
            body = _urlencode(pairs).encode("ascii")
            content_type = FORM_CONTENT
        if draw(st.integers(0, 11)) == 0:
            content_type = draw(content_types)
        return Sent(role, method, path, body, content_type, tuple(headers.items()))

    return one()


FUZZ_SETTINGS = hypothesis_settings(
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.generate],  # failures are collected, not raised: nothing to shrink
    suppress_health_check=list(HealthCheck),
)


# --- The tests ---------------------------------------------------------------------------


@pytest.fixture
def fuzz_settings(settings, tmp_path):
    """Uploads and recordings in a directory of this test's; failed-sign-in and reset
    counters under a cache prefix of this run (so every run starts from none); passwords
    hashed quickly (a sign-in with an unknown address still hashes one)."""
    settings.MEDIA_ROOT = tmp_path
    settings.CACHES = copy.deepcopy(settings.CACHES)
    settings.CACHES["default"]["KEY_PREFIX"] = f"fuzz-{uuid.uuid4().hex}"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher",
                                 *settings.PASSWORD_HASHERS]  # fmt: skip
    # No DNS look-up of fuzzed webhook hosts: the test stays off the network (the check of
    # where a host resolves has its own tests, tests/test_webhooks.py).
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    return settings


def _prepared(personas) -> tuple[Fuzzer, dict, dict[str, Plan]]:
    # The personas' passwords hashed quickly too: sign-ins with the right one are fuzzed.
    # Before the reset token (made from the hash) and the sessions (which hold it).
    for role in PERSONAS[1:] + ("other_ent_admin",):
        user = personas.user(role)
        user.set_password(PASSWORD)
        user.save(update_fields=["password"])
    seeds = _seed(personas)
    fuzzer = Fuzzer(_clients(personas))
    # A visitor who has opened a password reset link: its set-password form is fuzzed.
    reset = f"/password/reset/{seeds['reset_uid']}/{seeds['reset_token']}/"
    fuzzer.send("(seed)", Sent("anonymous", "GET", reset), keep=True)
    fuzzer.remember_cookies()  # reading the pages signs nobody out either (logout/ is probed)
    routes = url_routes()
    plans, problems = plan_targets(routes, seeds, fuzzer)
    assert not problems, "\n".join(problems)
    return fuzzer, seeds, plans


@pytest.fixture
def quiet_logs():
    """A warning per 4xx and an error per 5xx would be thousands of lines: the failures
    are reported by the test itself."""
    loggers = [logging.getLogger(name) for name in ("django.request", "django.security")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def _fuzz(fuzzer: Fuzzer, plan: Plan, seeds: dict, generated: Counter) -> None:
    @hypothesis_settings(FUZZ_SETTINGS, max_examples=plan.examples)
    @given(request=request_strategy(plan, seeds))
    def fuzz(request):
        fuzzer.send(plan.route.key, request)
        generated[plan.route.key] += 1

    fuzz()


def test_every_form_and_parameterised_url_survives_fuzzing(
    personas, fuzz_settings, quiet_logs, caplog
):
    fuzzer, seeds, plans = _prepared(personas)
    read = fuzzer.sent
    generated: Counter[str] = Counter()
    got_request_exception.connect(fuzzer.record_exception)
    try:
        for plan in plans.values():
            _fuzz(fuzzer, plan, seeds, generated)
        checked, refusals, browsers = _send_as_browsers(personas, plans, caplog)
    finally:
        got_request_exception.disconnect(fuzzer.record_exception)

    assert not fuzzer.failures, fuzzer.report()
    assert not browsers.failures, browsers.report()
    total = sum(generated.values())
    forms = sum(len(plan.forms) for plan in plans.values())
    summary = (f"{total} generated requests to {len(plans)} URL patterns ({forms} POST forms), "
               f"{fuzzer.sent - total - read} pages they redirected to, {read} reading the "
               f"pages and {browsers.sent} CSRF samples: statuses "
               f"{dict(sorted(fuzzer.statuses.items()))}, "
               f"{fuzzer.seconds / fuzzer.sent * 1000:.1f} ms CPU a request")  # fmt: skip
    print(summary)
    assert total >= MIN_REQUESTS, summary
    starved = {key: generated[key] for key in plans if generated[key] < MIN_PER_PATTERN}
    assert not starved, f"patterns that got too few requests: {starved}"
    assert forms >= 50, f"only {forms} POST forms found on the pages"
    assert not refusals, "\n".join(refusals)
    assert checked >= 50, f"only {checked} forms sent with and without their CSRF token"


def _send_as_browsers(personas, plans: dict, caplog) -> tuple[int, list[str], Fuzzer]:
    """The fuzz skips the CSRF check; here each POST form is sent once as a browser sends
    it, with the token of the page it is on (never refused as a forgery), and once without
    (refused, unless the view takes requests from outside: carriers, mail clients). How
    many were sent, what was wrongly refused or let through, and the requests."""
    browsers = Fuzzer(_clients(personas), per_request=False)  # the CSRF cookie is kept
    browsers.remember_cookies()
    for client in browsers.clients.values():
        client.handler.enforce_csrf_checks = True
    checked, refusals = 0, []

    def refused() -> int:
        return sum(1 for r in caplog.records if r.name == "django.security.csrf")

    with caplog.at_level(logging.WARNING, logger="django.security.csrf"):
        for key, plan in plans.items():
            exempt = getattr(plan.route.callback, "csrf_exempt", False)
            for form in (f for f in plan.forms if f.page):  # not a callback's query
                page = browsers.send(key, Sent(form.role, "GET", form.page, follow=True))
                found = PageForms("http://testserver" + form.page, page.content.decode())
                same = [f for f in found.forms if f.signature() == form.signature()]
                if not same:
                    refusals.append(f"{key}: the form is no longer on {form.page}")
                    continue
                pairs = [(c.name, v) for c in same[0].fields.values() for v in c.default]
                for with_token in (True, False):
                    sent = [(n, v) for n, v in pairs if with_token or n != "csrfmiddlewaretoken"]
                    before = refused()
                    response = browsers.send(key, Sent(
                        form.role, "POST", form.action, _urlencode(sent).encode(),
                        FORM_CONTENT,
                    ))  # fmt: skip
                    forged = refused() > before
                    if forged != (not with_token and not exempt) or (
                        forged and response.status_code != 403
                    ):
                        refusals.append(f"{key} ({form.role}, token: {with_token}): "
                                        f"{response.status_code}, refused: {forged}")  # fmt: skip
                browsers.forget_cookies()  # a sign-out or a language switch, say
                checked += 1
    return checked, refusals, browsers
