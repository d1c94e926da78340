"""Accounts as schemas, sign-in to an account, the audit log, routing errors, language and time."""

import datetime as dt
import zoneinfo
from urllib.parse import urlencode

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import translation

from accounts.actions import audit, do_add_membership, do_create_account
from accounts.models import AuditEvent, Role, User
from tests.helpers import client_for


def _tables(schema: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema])
        return {row[0] for row in cursor.fetchall()}


def test_new_account_schema_is_a_copy_of_the_template(personas):
    account = do_create_account(personas.ent_a, "Acme Three")
    assert account.schema_name == "acct_acme_three"
    assert account.url_prefix == "/a/acme-three/"
    assert _tables("acct_acme_three") == _tables("tenant_template")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM acct_acme_three.django_migrations")
        (applied,) = cursor.fetchone()
    assert applied > 0, "migrations are recorded as applied in the cloned schema"
    assert AuditEvent.objects.filter(action="account.create", account=account).exists()


def test_account_names_get_unique_slugs(personas):
    first = do_create_account(personas.ent_b, "Acme One")  # same name, other enterprise
    assert first.slug == "acme-one-2"


def test_create_commands(personas, capsys):
    call_command("create_enterprise", "Cobalt", "--region", "BR", "--time-zone", "America/Recife")
    call_command("create_account", "Cobalt", "Cobalt Main")
    out = capsys.readouterr().out
    assert "Enterprise Cobalt created" in out
    assert "Account Cobalt Main created at /a/cobalt-main/" in out
    with pytest.raises(CommandError, match="No enterprise"):
        call_command("create_account", "Nope", "X")
    with pytest.raises(CommandError, match="not a known time zone"):
        call_command("create_enterprise", "Bad TZ", "--time-zone", "Mars/Olympus")


def test_membership_scope_is_validated(personas):
    newcomer = User.objects.create_user("new@acme.test", "x-long-password")
    with pytest.raises(ValidationError):
        do_add_membership(newcomer, personas.ent_a, Role.ENTERPRISE_ADMIN, account=personas.acct_a1)
    with pytest.raises(ValidationError):
        do_add_membership(newcomer, personas.ent_a, Role.AGENT)
    with pytest.raises(ValidationError, match="another enterprise"):
        do_add_membership(newcomer, personas.ent_a, Role.AGENT, account=personas.acct_b1)


def _sign_ins(account) -> int:
    return AuditEvent.objects.filter(action="account.sign_in", account=account).count()


def test_enterprise_admin_sign_in_is_a_post_audited_and_lands_signed_in(personas):
    client = client_for(personas, "ent_admin", signed_in=False)
    # A GET only asks: another site's link or image cannot write audit rows.
    page = client.get(f"/accounts/{personas.acct_a2.pk}/sign-in/")
    assert page.status_code == 200
    assert 'data-testid="confirm-sign-in"' in page.content.decode()
    assert _sign_ins(personas.acct_a2) == 0
    response = client.post(f"/accounts/{personas.acct_a2.pk}/sign-in/", follow=True)
    assert response.redirect_chain == [("/a/acme-two/", 302)]
    body = response.content.decode()
    assert 'data-testid="account-title">Acme Two<' in body
    assert "Enterprise admin" in body
    event = AuditEvent.objects.get(action="account.sign_in", account=personas.acct_a2)
    assert event.actor == personas.ent_admin
    assert event.enterprise == personas.ent_a
    assert event.details == {"role": "enterprise_admin"}
    assert event.ip_address == "127.0.0.1"
    # Signed in for the session: the account's pages answer, the sign-in page goes through.
    assert client.get("/a/acme-two/lists/").status_code == 200
    assert client.get(f"/accounts/{personas.acct_a2.pk}/sign-in/")["Location"] == "/a/acme-two/"
    assert _sign_ins(personas.acct_a2) == 1


def test_sign_in_post_needs_the_csrf_token(personas):
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas.ent_admin)
    assert client.post(f"/accounts/{personas.acct_a1.pk}/sign-in/").status_code == 403
    assert _sign_ins(personas.acct_a1) == 0
    assert client.get("/a/acme-one/lists/").status_code == 302


@pytest.mark.parametrize(
    "path", ["/a/acme-one/", "/a/acme-one/lists/", "/a/acme-one/campaigns/?page=2"]
)
def test_enterprise_admin_who_has_not_signed_in_is_sent_to_sign_in(personas, path):
    client = client_for(personas, "ent_admin", signed_in=False)
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == (
        f"/accounts/{personas.acct_a1.pk}/sign-in/?{urlencode({'next': path})}"
    )
    assert "Acme One" in client.get(response["Location"]).content.decode()
    landed = client.post(response["Location"].split("?")[0], {"next": path})
    assert landed["Location"] == path
    assert _sign_ins(personas.acct_a1) == 1
    # A POST to an account page before signing in changes nothing and is sent to sign in.
    other = client_for(personas, "ent_admin", signed_in=False)
    refused = other.post("/a/acme-two/campaigns/new/", {"name": "x"})
    assert refused.status_code == 302
    assert refused["Location"] == f"/accounts/{personas.acct_a2.pk}/sign-in/"


def test_signing_in_to_one_account_does_not_open_another(personas):
    client = client_for(personas, "ent_admin", signed_in=False)
    client.post(f"/accounts/{personas.acct_a1.pk}/sign-in/")
    assert client.get("/a/acme-one/").status_code == 200
    assert client.get("/a/acme-two/").status_code == 302


def test_members_enter_their_own_account_without_a_sign_in(personas):
    for name in ("acct_admin", "agent"):
        client = client_for(personas, name)
        assert client.get("/a/acme-one/lists/").status_code == 200
        assert client.get(f"/accounts/{personas.acct_a1.pk}/sign-in/")["Location"] == "/a/acme-one/"
    assert _sign_ins(personas.acct_a1) == 0


@pytest.mark.parametrize(
    ("next_url", "lands_on"),
    [
        ("/a/acme-one/", "/a/acme-one/"),
        ("/a/acme-two/", "/a/acme-one/"),  # another account: ignored
        ("https://evil.example/a/acme-one/", "/a/acme-one/"),
        ("//evil.example/a/acme-one/", "/a/acme-one/"),
    ],
)
def test_sign_in_next_stays_inside_the_account(personas, next_url, lands_on):
    client = client_for(personas, "ent_admin", signed_in=False)
    response = client.post(f"/accounts/{personas.acct_a1.pk}/sign-in/", {"next": next_url})
    assert response["Location"] == lands_on


def test_account_members_see_who_has_access_agents_do_not(personas):
    admin_page = client_for(personas, "acct_admin").get("/a/acme-one/").content.decode()
    assert "agent@acme.test" in admin_page
    assert "ent.admin@acme.test" in admin_page
    agent_page = client_for(personas, "agent").get("/a/acme-one/").content.decode()
    assert "acct.admin@acme.test" not in agent_page
    assert "Agent" in agent_page


def test_inactive_account_is_not_reachable(personas):
    personas.acct_a2.is_active = False
    personas.acct_a2.save(update_fields=["is_active"])
    client = client_for(personas, "ent_admin")
    assert client.get("/a/acme-two/").status_code == 404
    assert client.get(f"/accounts/{personas.acct_a2.pk}/sign-in/").status_code == 404
    assert "Acme Two" not in client.get(f"/enterprises/{personas.ent_a.pk}/").content.decode()


def test_unknown_account_and_page_give_the_404_page(personas):
    client = client_for(personas, "ent_admin")
    for url in ("/a/does-not-exist/", "/a/does-not-exist/anything", "/no/such/page/", "/a/"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"This page does not exist" in response.content


def _filtered(client, url, page=None, **terms):
    """The audit filter, POSTed; the log it opens at (?search=<opaque id>)."""
    posted = client.post(url, terms)
    if posted.status_code != 303:
        return posted
    assert posted["Location"].startswith(url + "?search=") and "@" not in posted["Location"]
    return client.get(posted["Location"], {} if page is None else {"page": page})


def test_audit_log_filters_and_stays_inside_the_enterprise(personas):
    audit(personas.ent_admin, "test.alpha", account=personas.acct_a1)
    audit(personas.acct_admin, "test.beta", account=personas.acct_a2)
    audit(personas.other_ent_admin, "test.gamma", account=personas.acct_b1)
    client = client_for(personas, "ent_admin")
    url = f"/enterprises/{personas.ent_a.pk}/audit/"

    body = client.get(url).content.decode()
    assert "test.alpha" in body and "test.beta" in body
    assert "test.gamma" not in body

    body = _filtered(client, url, action="beta").content.decode()
    assert "test.beta" in body and "test.alpha" not in body

    body = _filtered(client, url, account=personas.acct_a1.pk).content.decode()
    assert "test.alpha" in body and "test.beta" not in body

    body = _filtered(client, url, who="acct.admin@acme.test").content.decode()
    assert "test.beta" in body and "test.alpha" not in body
    # A filter in the address bar is not one: the address never travels in a URL.
    body = client.get(url, {"who": "acct.admin"}).content.decode()
    assert "test.alpha" in body and "test.beta" in body

    # Another enterprise's account is not a valid choice.
    response = _filtered(client, url, account=personas.acct_b1.pk)
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert "test.gamma" not in response.content.decode()

    response = _filtered(client, url, date_from="2026-02-01", date_to="2026-01-01")
    assert "The start date must be on or before the end date." in response.content.decode()


def test_audit_log_paginates(personas):
    for n in range(60):
        audit(personas.ent_admin, f"test.bulk.{n:02d}", enterprise=personas.ent_a)
    client = client_for(personas, "ent_admin")
    url = f"/enterprises/{personas.ent_a.pk}/audit/"
    first = _filtered(client, url, action="test.bulk")
    search_id = first.request["QUERY_STRING"].removeprefix("search=")
    second = client.get(url, {"search": search_id, "page": 2}).content.decode()
    first = first.content.decode()
    assert "60 events" in first
    assert "test.bulk.59" in first and "test.bulk.00" not in first
    assert "test.bulk.00" in second and "search=" in second
    assert client.get(url, {"page": "not-a-number"}).status_code == 200


def test_dates_are_shown_in_the_enterprise_time_zone(personas):
    event = audit(personas.ent_admin, "test.clock", enterprise=personas.ent_a)
    event.occurred_at = dt.datetime(2026, 1, 15, 18, 0, tzinfo=dt.UTC)
    event.save(update_fields=["occurred_at"])
    body = client_for(personas, "ent_admin").get(f"/enterprises/{personas.ent_a.pk}/audit/")
    assert "2026-01-15 12:00:00" in body.content.decode()  # America/Chicago, UTC-6
    assert "America/Chicago" in body.content.decode()


def test_language_switcher_and_enterprise_default_language(personas):
    with translation.override("pt-br"):
        portuguese = str(translation.gettext("Audit log"))
    assert portuguese != "Audit log", "the Portuguese catalogue is compiled"

    # Borealis' language is Portuguese: its admin sees it without choosing.
    body = client_for(personas, "other_ent_admin").get(f"/enterprises/{personas.ent_b.pk}/")
    assert portuguese in body.content.decode()

    client = client_for(personas, "ent_admin")
    page = f"/enterprises/{personas.ent_a.pk}/"
    assert "Audit log" in client.get(page).content.decode()
    response = client.post("/i18n/setlang/", {"language": "pt-br", "next": page})
    assert response.status_code == 302
    assert portuguese in client.get(page).content.decode()


def test_account_pages_route_right_when_the_routing_cache_turns_over(personas, monkeypatch):
    # Each account's URLconf is kept (enterprise_portal.middleware.AccountRoutingMiddleware);
    # with room for one, every request below evicts the other account's.
    from enterprise_portal.middleware import AccountRoutingMiddleware

    monkeypatch.setattr(AccountRoutingMiddleware, "URLCONF_CACHE_SIZE", 1)
    client = client_for(personas, "ent_admin")
    for slug, name in [("acme-one", "Acme One"), ("acme-two", "Acme Two")] * 2:
        page = client.get(f"/a/{slug}/")
        assert page.status_code == 200 and name in page.content.decode(), slug
        assert f'href="/a/{slug}/' in page.content.decode(), "links carry the account's prefix"
    assert client.get("/a/does-not-exist/").status_code == 404


def _search_path() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW search_path")
        return cursor.fetchone()[0]


def test_the_schema_holds_after_a_rollback_with_search_path_remembered(personas, settings):
    # TENANT_LIMIT_SET_CALLS: django-tenants issues SET search_path once per schema switch.
    # A SET is transactional: a rollback (here to the test's savepoint) undoes it, and the
    # next statement must set it again rather than read another schema's tables.
    from django.db import transaction
    from django_tenants.utils import tenant_context

    assert settings.TENANT_LIMIT_SET_CALLS
    assert _search_path() == "public"
    with tenant_context(personas.acct_a1):
        with pytest.raises(RuntimeError), transaction.atomic():
            assert _search_path() == "acct_acme_one, public"
            raise RuntimeError("rolled back")
        assert _search_path() == "acct_acme_one, public"
    assert _search_path() == "public"


def test_search_path_is_set_on_a_switch_and_not_again_for_the_same_schema(personas):
    # enterprise_portal.db: a request that starts in the schema the last one ended in
    # issues no SET; a request after another schema's sets public again before reading.
    from django.test.utils import CaptureQueriesContext

    from accounts.api_keys import do_create_api_key

    _key, secret = do_create_api_key(
        name="Sets", scopes=["decisions:read"], created_by=personas.ent_admin,
        enterprise=personas.ent_a,
    )  # fmt: skip
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    body = {"devices": ["+17135554101"], "channel": "voice", "purpose": "collections",
            "account": "acme-one"}  # fmt: skip

    def decide():
        with CaptureQueriesContext(connection) as seen:
            answer = api.post("/api/v1/decisions", body, content_type="application/json")
        assert answer.status_code == 200, answer.content
        return [q["sql"] for q in seen.captured_queries if q["sql"].startswith("SET search_path")]

    decide()
    assert decide() == [], "public after public: nothing to set"
    page = client_for(personas, "ent_admin").get("/a/acme-one/")
    assert page.status_code == 200
    assert _search_path() == "acct_acme_one, public", "the account page read its own schema"
    connection.set_schema_to_public()
    assert decide() == ['SET search_path = "public"'], "after an account's page: public again"


@pytest.mark.parametrize("language", ["en", "pt-br"])
def test_dates_are_written_one_way_in_both_languages(personas, language):
    # Issue 14, item 8: not "12/02/2026 11:42 p.m." beside "2026-12-02 23:42".
    client = client_for(personas, "ent_admin")
    client.cookies["django_language"] = language
    body = client.get(f"/enterprises/{personas.ent_a.pk}/").content.decode()
    created = personas.acct_a1.created_at.astimezone(zoneinfo.ZoneInfo(personas.ent_a.time_zone))
    assert created.strftime("%Y-%m-%d %H:%M") in body
    assert " p.m." not in body and " a.m." not in body
