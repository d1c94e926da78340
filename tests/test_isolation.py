"""Every page × every persona: exactly 200, 302 (to where), 403, 404 or the login page."""

import pytest
from django_tenants.utils import tenant_context

from campaigns.blacklists import do_add_entry, do_create_blacklist
from campaigns.models import BlacklistImport
from devices.models import DeviceSetting, Registry, RegistryImport
from tests import factories
from tests.helpers import client_for

PERSONAS = [
    "anonymous",
    "outsider",
    "agent",
    "acct_admin",
    "ent_admin",
    "other_ent_admin",
    "operator",
]
LOGIN = "login"
OPERATOR_PAGE = [LOGIN, 404, 404, 404, 404, 404, 200]

# page -> expected outcome per persona (in PERSONAS order).
# A path outcome means a 302 to that path; LOGIN means a redirect to the sign-in page.
MATRIX = {
    "/": [
        LOGIN,
        200,
        "/a/acme-one/",
        "/a/acme-one/",
        "/enterprises/{ent_a}/",
        "/enterprises/{ent_b}/",
        200,
    ],
    "/enterprises/{ent_a}/": [LOGIN, 404, 403, 403, 200, 404, 404],
    "/enterprises/{ent_b}/": [LOGIN, 404, 404, 404, 404, 200, 404],
    "/enterprises/{ent_a}/audit/": [LOGIN, 404, 403, 403, 200, 404, 404],
    "/enterprises/{ent_b}/audit/": [LOGIN, 404, 404, 404, 404, 200, 404],
    "/enterprises/999999/": [LOGIN, 404, 404, 404, 404, 404, 404],
    "/enterprises/{ent_a}/api-keys/": [LOGIN, 404, 403, 403, 200, 404, 404],
    "/enterprises/{ent_a}/webhooks/": [LOGIN, 404, 403, 403, 200, 404, 404],
    "/enterprises/{ent_b}/webhooks/": [LOGIN, 404, 404, 404, 404, 200, 404],
    "/enterprises/{ent_a}/webhooks/999999/": [LOGIN, 404, 403, 403, 404, 404, 404],
    "/enterprises/{ent_a}/webhooks/999999/test/": [LOGIN, 404, 403, 403, 405, 404, 404],
    "/enterprises/{ent_b}/api-keys/": [LOGIN, 404, 404, 404, 404, 200, 404],
    "/enterprises/{ent_a}/api-keys/999999/revoke/": [LOGIN, 404, 403, 403, 404, 404, 404],
    "/a/acme-one/api-keys/": [LOGIN, 404, 403, 200, 200, 404, 404],
    "/a/acme-two/api-keys/": [LOGIN, 404, 404, 404, 200, 404, 404],
    "/a/acme-one/api-keys/999999/revoke/": [LOGIN, 404, 403, 404, 404, 404, 404],
    # The API takes keys, never a session: signed in or not, no key is a 401.
    "/api/v1/devices": [401] * 7,
    "/api/v1/openapi.json": [200] * 7,
    "/platform/api-keys/": OPERATOR_PAGE,
    "/platform/api-keys/999999/revoke/": [LOGIN, 404, 404, 404, 404, 404, 404],
    "/accounts/{acct_a1}/sign-in/": [
        LOGIN,
        404,
        "/a/acme-one/",
        "/a/acme-one/",
        "/a/acme-one/",
        404,
        404,
    ],
    "/accounts/{acct_a2}/sign-in/": [LOGIN, 404, 404, 404, "/a/acme-two/", 404, 404],
    "/accounts/{acct_b1}/sign-in/": [LOGIN, 404, 404, 404, 404, "/a/bor-one/", 404],
    "/a/acme-one/": [LOGIN, 404, 200, 200, 200, 404, 404],
    "/a/acme-two/": [LOGIN, 404, 404, 404, 200, 404, 404],
    "/a/bor-one/": [LOGIN, 404, 404, 404, 404, 200, 404],
    "/a/bor-two/": [LOGIN, 404, 404, 404, 404, 200, 404],
    "/a/no-such-account/": [404, 404, 404, 404, 404, 404, 404],
    "/enterprises/{ent_a}/calling-rules/": [LOGIN, 404, 403, 403, 200, 404, 404],
    "/enterprises/{ent_b}/calling-rules/": [LOGIN, 404, 404, 404, 404, 200, 404],
    "/enterprises/{ent_a}/sending-domains/": [LOGIN, 404, 403, 403, 200, 404, 404],
    "/enterprises/{ent_b}/sending-domains/": [LOGIN, 404, 404, 404, 404, 200, 404],
    "/a/acme-one/campaigns/": [LOGIN, 404, 200, 200, 200, 404, 404],
    "/a/acme-two/campaigns/": [LOGIN, 404, 404, 404, 200, 404, 404],
    "/a/acme-one/campaigns/new/": [LOGIN, 404, 403, 200, 200, 404, 404],
    "/a/acme-one/campaigns/{campaign}/": [LOGIN, 404, 200, 200, 200, 404, 404],
    "/a/acme-one/campaigns/{campaign}/sub-campaigns/new/": [LOGIN, 404, 403, 200, 200, 404, 404],
    "/a/acme-one/sub-campaigns/{sub}/": [LOGIN, 404, 200, 200, 200, 404, 404],
    "/a/acme-one/sub-campaigns/{sub}/counts.json": [LOGIN, 404, 200, 200, 200, 404, 404],
    "/a/acme-one/sub-campaigns/{sub}/start/": [LOGIN, 404, 403, 405, 405, 404, 404],
    "/a/acme-one/sub-campaigns/999999/": [LOGIN, 404, 404, 404, 404, 404, 404],
    "/a/acme-one/sub-campaigns/{sub}/voice-message/": [LOGIN, 404, 403, 405, 405, 404, 404],
    # No message yet: nothing to play, nothing to remove.
    "/a/acme-one/sub-campaigns/{sub}/voice-message.wav": [LOGIN, 404, 404, 404, 404, 404, 404],
    "/a/acme-one/sub-campaigns/{sub}/voice-message/remove/": [
        LOGIN,
        404,
        403,
        "/a/acme-one/sub-campaigns/{sub}/#settings",
        "/a/acme-one/sub-campaigns/{sub}/#settings",
        404,
        404,
    ],  # fmt: skip
    "/a/acme-two/sub-campaigns/{sub}/voice-message.wav": [LOGIN, 404, 404, 404, 404, 404, 404],
    # Carrier callbacks and unsubscribe links: no session matters, only their own proof.
    "/a/acme-one/carrier/kannel/dlr/": [400] * 7,
    "/carrier/kannel/mo/": [403] * 7,
    "/u/not-a-token/": [400] * 7,
    # The same id in another account's schema is another account's business: never found.
    "/a/acme-two/sub-campaigns/{sub}/": [LOGIN, 404, 404, 404, 404, 404, 404],
    "/a/bor-one/sub-campaigns/{sub}/": [LOGIN, 404, 404, 404, 404, 404, 404],
    "/a/acme-one/lists/": [LOGIN, 404, 200, 200, 200, 404, 404],
    "/a/acme-one/lists/{list}/": [LOGIN, 404, 200, 200, 200, 404, 404],
    "/a/acme-one/lists/{list}/progress.json": [LOGIN, 404, 200, 200, 200, 404, 404],
    "/a/acme-one/lists/{list}/rejects.csv": [LOGIN, 404, 200, 200, 200, 404, 404],
    "/a/acme-one/lists/{list}/delete/": [LOGIN, 404, 403, 405, 405, 404, 404],
    "/a/acme-one/contacts/{contact}/": [LOGIN, 404, 200, 200, 200, 404, 404],
    "/a/acme-one/contacts/{contact}/disposition/": [LOGIN, 404, 405, 405, 405, 404, 404],
    "/a/acme-one/blacklists/": [LOGIN, 404, 200, 200, 200, 404, 404],
    "/a/acme-two/blacklists/": [LOGIN, 404, 404, 404, 200, 404, 404],
    "/a/bor-one/blacklists/": [LOGIN, 404, 404, 404, 404, 200, 404],
    "/a/acme-one/blacklists/{blacklist}/": [LOGIN, 404, 200, 200, 200, 404, 404],
    "/a/acme-one/blacklists/{blacklist}/export.csv": [LOGIN, 404, 200, 200, 200, 404, 404],
    "/a/acme-one/blacklists/{blacklist}/history/": [LOGIN, 404, 200, 200, 200, 404, 404],
    "/a/acme-one/blacklists/{blacklist}/imports/{import}/": [LOGIN, 404, 200, 200, 200, 404, 404],
    "/a/acme-one/blacklists/{blacklist}/imports/{import}/progress.json": [
        LOGIN,
        404,
        200,
        200,
        200,
        404,
        404,
    ],  # fmt: skip
    "/a/acme-one/blacklists/{blacklist}/entries/{entry}/remove/": [
        LOGIN,
        404,
        403,
        200,
        200,
        404,
        404,
    ],  # fmt: skip
    "/a/acme-one/blacklists/{blacklist}/delete/": [LOGIN, 404, 403, 200, 200, 404, 404],
    "/a/acme-one/blacklists/999999/": [LOGIN, 404, 404, 404, 404, 404, 404],
    "/a/acme-one/blacklists/{blacklist}/entries/999999/remove/": [
        LOGIN,
        404,
        403,
        404,
        404,
        404,
        404,
    ],  # fmt: skip
    "/a/acme-two/blacklists/{blacklist}/": [LOGIN, 404, 404, 404, 404, 404, 404],
    "/a/acme-one/campaigns/{campaign}/blacklists/": [LOGIN, 404, 403, 405, 405, 404, 404],
    "/enterprises/{ent_a}/devices/blocking/": [LOGIN, 404, 403, 403, 200, 404, 404],
    "/enterprises/{ent_b}/devices/blocking/": [LOGIN, 404, 404, 404, 404, 200, 404],
    "/enterprises/{ent_a}/devices/blocking/settings.csv": [LOGIN, 404, 403, 403, 200, 404, 404],
    "/enterprises/{ent_a}/devices/blocking/import/": [LOGIN, 404, 403, 403, 200, 404, 404],
    "/enterprises/{ent_a}/devices/blocking/{setting}/": [LOGIN, 404, 403, 403, 200, 404, 404],
    "/enterprises/{ent_a}/devices/blocking/{setting}/remove/": [
        LOGIN,
        404,
        403,
        403,
        200,
        404,
        404,
    ],
    "/enterprises/{ent_a}/devices/blocking/{setting}/expiry/": [
        LOGIN,
        404,
        403,
        403,
        200,
        404,
        404,
    ],
    # One enterprise's setting id under another enterprise: never found.
    "/enterprises/{ent_b}/devices/blocking/{setting}/": [LOGIN, 404, 404, 404, 404, 404, 404],
    "/enterprises/{ent_a}/devices/blocking/999999/": [LOGIN, 404, 403, 403, 404, 404, 404],
    "/password/change/": [LOGIN, 200, 200, 200, 200, 200, 200],
    # National registries: platform operators only.
    "/platform/registries/": OPERATOR_PAGE,
    "/platform/registries/?registry={us_dnc}&number=7135554101": OPERATOR_PAGE,
    "/platform/registries/imports/{registry_import}/": OPERATOR_PAGE,
    "/platform/registries/imports/{registry_import}/progress.json": OPERATOR_PAGE,
    "/platform/registries/imports/999999/": [LOGIN, 404, 404, 404, 404, 404, 404],
    "/a/acme-one/platform/registries/": [404] * 7,
    "/admin/": ["/admin/login/?next=/admin/"] * 6 + [200],
}


def _cases():
    for page, outcomes in MATRIX.items():
        for persona, expected in zip(PERSONAS, outcomes, strict=True):
            yield pytest.param(page, persona, expected, id=f"{persona}:{page}")


@pytest.mark.parametrize(("page", "persona", "expected"), list(_cases()))
def test_page_access(personas, page, persona, expected):
    with tenant_context(personas.acct_a1):
        listing = factories.contact_list([{"client_id": "X1", "phones": ["+17135554101"]}])
        sub = factories.sub_campaign(listing, activate=False)
        contact = listing.contacts.get()
        blacklist = do_create_blacklist(name="Isolation list")
        do_add_entry(blacklist, "phone", "+17135554199")
        job = BlacklistImport.objects.create(blacklist=blacklist, file_name="f.txt",
                                             upload_path="none", status="done")  # fmt: skip
        entry = blacklist.entries.get()
    setting = DeviceSetting.objects.create(
        enterprise=personas.ent_a, device_key="+17135554101", action="block", source="manual"
    )
    us_dnc = Registry.objects.get(country="US")
    registry_import = RegistryImport.objects.create(registry=us_dnc, kind="full", source_name="x")
    ids = {
        "blacklist": blacklist.pk,
        "entry": entry.pk,
        "import": job.pk,
        "ent_a": personas.ent_a.pk,
        "ent_b": personas.ent_b.pk,
        "acct_a1": personas.acct_a1.pk,
        "acct_a2": personas.acct_a2.pk,
        "acct_b1": personas.acct_b1.pk,
        "campaign": sub.campaign_id,
        "sub": sub.pk,
        "list": listing.pk,
        "contact": contact.pk,
        "setting": setting.pk,
        "us_dnc": us_dnc.pk,
        "registry_import": registry_import.pk,
    }
    url = page.format(**ids)
    response = client_for(personas, persona).get(url)
    if expected == LOGIN:
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")
    elif isinstance(expected, str):
        assert response.status_code == 302
        assert response["Location"] == expected.format(**ids)
    else:
        assert response.status_code == expected
        if expected == 404:
            assert b'data-testid="not-found"' in response.content
            # A 404 never tells whose account it would have been.
            body = response.content.decode()
            owner = personas.ent_a.name if "/a/acme-" in url else personas.ent_b.name
            user = personas.user(persona)
            if "/a/" in url and user is not None:
                mine = {m.enterprise.name for m in user.memberships.select_related("enterprise")}
                if owner not in mine:
                    assert owner not in body


def test_other_enterprise_data_never_rendered(personas):
    """An enterprise admin's pages never name another enterprise's accounts."""
    client = client_for(personas, "ent_admin")
    for url in (
        "/",
        f"/enterprises/{personas.ent_a.pk}/",
        f"/enterprises/{personas.ent_a.pk}/audit/",
    ):
        body = client.get(url, follow=True).content.decode()
        assert "Acme One" in body or url.endswith("audit/")
        assert "Borealis" not in body
