"""Platform operators create enterprises and accounts in the Django admin."""

from django.db import connection

from accounts.models import Account, AuditEvent, Enterprise
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
    actions = set(AuditEvent.objects.filter(enterprise=enterprise).values_list("action", flat=True))
    assert actions == {"enterprise.create", "account.create"}


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
