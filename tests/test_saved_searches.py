"""Saved searches (accounts.searches): an id no search can have is simply not found."""

import pytest
from django.http import Http404
from django_tenants.utils import tenant_context

from accounts import searches
from campaigns.blacklists import do_create_blacklist
from tests.helpers import client_for

MALFORMED = ["a\x00b", "\x00", "²", "é", "a b", "../x", "x" * 33, ""]


@pytest.mark.parametrize("search_id", MALFORMED)
def test_an_id_that_no_search_can_have_is_not_found(personas, search_id):
    with pytest.raises(Http404):
        searches.find(search_id, "trace", enterprise=personas.ent_a)


def test_a_malformed_search_id_on_a_list_page_is_ignored(personas):
    """Found by tests/test_form_fuzz.py: /platform/registries/?search=a%00b was a 500
    (PostgreSQL stores no NUL, so looking the id up failed)."""
    with tenant_context(personas.acct_a1):
        blacklist = do_create_blacklist(name="Searched")
    ent = personas.ent_a.pk
    pages = {
        "operator": ["/platform/registries/"],
        "ent_admin": [f"/enterprises/{ent}/audit/", f"/enterprises/{ent}/devices/blocking/",
                      f"/enterprises/{ent}/devices/blocking/settings.csv"],
        "acct_admin": [f"/a/acme-one/blacklists/{blacklist.pk}/"],
    }  # fmt: skip
    for role, urls in pages.items():
        client = client_for(personas, role)
        for url in urls:
            for search_id in ("a\x00b", "\x00"):
                response = client.get(url, {"search": search_id})
                assert response.status_code == 200, (url, search_id)
