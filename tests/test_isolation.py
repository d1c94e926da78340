"""Every page × every persona: exactly 200, 302 (to where), 403, 404 or the login page."""

import pytest

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
    "/password/change/": [LOGIN, 200, 200, 200, 200, 200, 200],
    "/admin/": ["/admin/login/?next=/admin/"] * 6 + [200],
}


def _cases():
    for page, outcomes in MATRIX.items():
        for persona, expected in zip(PERSONAS, outcomes, strict=True):
            yield pytest.param(page, persona, expected, id=f"{persona}:{page}")


@pytest.mark.parametrize(("page", "persona", "expected"), list(_cases()))
def test_page_access(personas, page, persona, expected):
    ids = {
        "ent_a": personas.ent_a.pk,
        "ent_b": personas.ent_b.pk,
        "acct_a1": personas.acct_a1.pk,
        "acct_a2": personas.acct_a2.pk,
        "acct_b1": personas.acct_b1.pk,
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
