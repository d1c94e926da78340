"""Platform operators create enterprises and accounts in the Django admin."""

from django.contrib.auth.models import Group
from django.db import connection

from accounts.models import Account, AuditEvent, Enterprise, Membership, Role
from tests.helpers import client_for


def test_operator_creates_an_account_with_its_schema_in_the_admin(personas):
    client = client_for(personas, "operator")
    response = client.post(
        "/admin/accounts/enterprise/add/",
        {
            "name": "Delta Debt",
            "time_zone": "America/New_York",
            "default_region": "US",
            "language": "en",
            "attempt_cap": "7",
            "attempt_cap_days": "7",
            "accounts-TOTAL_FORMS": "0",
            "accounts-INITIAL_FORMS": "0",
            "calling_windows-TOTAL_FORMS": "1",
            "calling_windows-INITIAL_FORMS": "0",
            "calling_windows-0-region": "US",
            "calling_windows-0-start": "09:00",
            "calling_windows-0-end": "20:00",
            "holidays-TOTAL_FORMS": "1",
            "holidays-INITIAL_FORMS": "0",
            "holidays-0-date": "2026-12-25",
            "holidays-0-name": "Christmas",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    enterprise = Enterprise.objects.get(name="Delta Debt")
    window = enterprise.calling_windows.get()
    assert (window.region, str(window.start), str(window.end)) == ("US", "09:00:00", "20:00:00")
    assert enterprise.holidays.get().name == "Christmas"

    response = client.post(
        "/admin/accounts/account/add/",
        {
            "enterprise": enterprise.pk,
            "name": "Delta Main",
            "slug": "delta-main",
            "domains-TOTAL_FORMS": "0",
            "domains-INITIAL_FORMS": "0",
        },
        follow=True,
    )
    assert response.status_code == 200
    assert "Account schema acct_delta_main created in" in response.content.decode()
    account = Account.objects.get(slug="delta-main")
    assert account.domains.get().domain == "delta-main"
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'acct_delta_main'")
        assert cursor.fetchone() == (1,)
    rows = AuditEvent.objects.filter(enterprise=enterprise).order_by("id")
    assert [(e.action, e.actor, e.object_type) for e in rows] == [
        ("admin.add", personas.operator, "enterprise"),
        ("admin.add", personas.operator, "callingwindow"),
        ("admin.add", personas.operator, "holiday"),
        ("account.create", personas.operator, "account"),
        ("admin.add", personas.operator, "account"),
    ]
    assert rows[1].details["changes"]["start"] == [None, "09:00:00"]


def test_admin_rejects_a_bad_time_zone(personas):
    client = client_for(personas, "operator")
    response = client.post(
        "/admin/accounts/enterprise/add/",
        {"name": "Bad", "time_zone": "Nowhere/Land", "default_region": "US", "language": "en",
         "attempt_cap": "7", "attempt_cap_days": "7",
         "accounts-TOTAL_FORMS": "0", "accounts-INITIAL_FORMS": "0",
         "calling_windows-TOTAL_FORMS": "0", "calling_windows-INITIAL_FORMS": "0",
         "holidays-TOTAL_FORMS": "0", "holidays-INITIAL_FORMS": "0"},
    )  # fmt: skip
    assert response.status_code == 200
    assert "Nowhere/Land is not a known time zone." in response.content.decode()
    assert not Enterprise.objects.filter(name="Bad").exists()


def test_enterprise_admins_cannot_use_the_platform_admin(personas):
    response = client_for(personas, "ent_admin").get("/admin/accounts/account/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def _membership_form(membership, role: str) -> dict:
    user = membership.user
    return {
        "email": user.email,
        "full_name": user.full_name,
        "is_active": "on",
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "memberships-TOTAL_FORMS": "1",
        "memberships-INITIAL_FORMS": "1",
        "memberships-0-id": membership.pk,
        "memberships-0-user": user.pk,
        "memberships-0-enterprise": membership.enterprise_id,
        "memberships-0-account": membership.account_id or "",
        "memberships-0-role": role,
    }


def test_changing_a_role_in_the_admin_is_audited_with_before_and_after(personas):
    membership = Membership.objects.get(user=personas.agent)
    client = client_for(personas, "operator")
    response = client.post(
        f"/admin/accounts/user/{personas.agent.pk}/change/",
        _membership_form(membership, Role.ACCOUNT_ADMIN),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    membership.refresh_from_db()
    assert membership.role == Role.ACCOUNT_ADMIN
    event = AuditEvent.objects.get(action="admin.change", object_type="membership")
    assert event.actor == personas.operator
    assert (event.enterprise, event.account) == (personas.ent_a, personas.acct_a1)
    assert event.details["changes"] == {"role": ["agent", "account_admin"]}
    assert event.details["via"] == "user: Agnes Agent"
    assert event.ip_address == "127.0.0.1"
    # The enterprise admin sees it in the enterprise's audit log.
    log = client_for(personas, "ent_admin").get(f"/enterprises/{personas.ent_a.pk}/audit/")
    assert "admin.change" in log.content.decode()
    # Saving again with nothing changed writes no role row.
    client.post(
        f"/admin/accounts/user/{personas.agent.pk}/change/",
        _membership_form(membership, Role.ACCOUNT_ADMIN),
    )
    assert AuditEvent.objects.filter(action="admin.change", object_type="membership").count() == 1


def test_a_membership_naming_no_account_id_is_a_form_error_not_a_server_error(personas):
    """Found by tests/test_form_fuzz.py: "é" as a membership's account made Django's
    autocomplete widget query it as an id while showing the form again (a 500)."""
    membership = Membership.objects.get(user=personas.agent)
    client = client_for(personas, "operator")
    for value in ("é", "²", "9" * 30, "-1"):
        form = {**_membership_form(membership, Role.ACCOUNT_ADMIN),
                "memberships-0-account": value, "memberships-0-enterprise": value}  # fmt: skip
        response = client.post(f"/admin/accounts/user/{personas.agent.pk}/change/", form)
        assert response.status_code == 200, value
        assert "Select a valid choice" in response.content.decode(), value
    membership.refresh_from_db()
    assert membership.role == Role.AGENT


def test_a_to_field_naming_a_reverse_relation_is_refused_not_a_server_error(personas):
    """Found by tests/test_form_fuzz.py: "?_to_field=+" on the user add page made Django's
    admin read ``primary_key`` of a reverse relation (an AttributeError, a 500)."""
    client = client_for(personas, "operator")
    for page in ("/admin/accounts/user/add/", "/admin/accounts/enterprise/",
                 f"/admin/accounts/user/{personas.agent.pk}/change/"):  # fmt: skip
        for name in ("+", "memberships", "accounts", "no_such_field"):
            assert client.get(page, {"_to_field": name}).status_code == 400, (page, name)
    # A column of the model is still a field to point at (the admin's own popups use it).
    assert client.get("/admin/accounts/user/add/", {"_to_field": "id"}).status_code == 200


def test_password_and_enterprise_changes_and_deletions_in_the_admin_are_audited(personas):
    client = client_for(personas, "operator")
    response = client.post(
        f"/admin/accounts/user/{personas.outsider.pk}/password/",
        {"password1": "a-new-long-passphrase-42", "password2": "a-new-long-passphrase-42",
         "usable_password": "true"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    event = AuditEvent.objects.get(action="admin.change", object_type="user")
    assert "a-new-long-passphrase-42" not in str(event.details)
    assert event.object_repr == "Oscar Outsider"

    group = Group.objects.create(name="Reviewers")
    response = client.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    deleted = AuditEvent.objects.get(action="admin.delete")
    assert (deleted.object_type, deleted.object_repr, deleted.actor) == (
        "group",
        "Reviewers",
        personas.operator,
    )


def test_every_model_in_the_admin_is_audited():
    from django.contrib import admin

    from accounts.admin_audit import AuditedAdmin

    unaudited = [
        model._meta.label
        for model, model_admin in admin.site._registry.items()
        if not isinstance(model_admin, AuditedAdmin)
    ]
    assert unaudited == []


def test_the_operator_lands_on_the_admin_and_the_registries_not_on_no_access(personas):
    # Issue 14, item 8: not "You are not a member… ask an administrator".
    body = client_for(personas, "operator").get("/").content.decode()
    assert 'data-testid="operator-places"' in body
    assert 'href="/admin/"' in body and 'href="/platform/registries/"' in body
    assert 'data-testid="no-access"' not in body
    # A person with no place at all still gets the explanation, and no operator links.
    from django.test import Client

    from accounts.models import User

    nobody = User.objects.create_user("nobody@acme.test", "a-long-enough-password")
    client = Client()
    client.force_login(nobody)
    body = client.get("/").content.decode()
    assert 'data-testid="no-access"' in body and 'data-testid="operator-places"' not in body
