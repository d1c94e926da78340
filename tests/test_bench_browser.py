"""The browser of bench/load.py's users (bench/_browser.py) on the portal's real pages: it
finds the login, Contact Trace and Device Blocking forms, submits them with their CSRF token
and defaults as a browser would, and lands where a person would; it refuses any host but
this machine's loopback."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from devices.models import Attempt, DeviceSetting
from tests.conftest import PASSWORD

BASE = "http://testserver"
DEVICE = "+17135554101"


def _load(name: str):
    """A module of bench/ by its path (bench/ on sys.path would shadow apps: bench/api.py)."""
    path = Path(__file__).resolve().parent.parent / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench{name}", path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


browser = _load("_browser")


def _page(response):
    url = BASE + response.request["PATH_INFO"]
    if response.request.get("QUERY_STRING"):
        url += "?" + response.request["QUERY_STRING"]
    return browser.Page(url, response.content.decode())


def _open(client: Client, url: str):
    response = client.get(urlsplit(url).path, follow=True)
    assert response.status_code == 200
    return _page(response)


def _send(client: Client, submission):
    """What the bench's user sends for a form, redirects followed."""
    method, url, data = submission
    parts = urlsplit(url)
    assert browser.require_local(url.replace("testserver", "127.0.0.1"))
    if method == "GET":
        response = client.get(f"{parts.path}?{parts.query}", follow=True)
    else:
        response = client.post(parts.path, urlencode(data), follow=True,
                               content_type="application/x-www-form-urlencoded")  # fmt: skip
    assert response.status_code == 200, response.content[:300]
    return _page(response)


def _signed_in(personas, name: str) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas.user(name))
    return client


def test_the_login_form_signs_in_with_its_csrf_token(personas):
    client = Client(enforce_csrf_checks=True)
    login = _open(client, "/login/")
    form = login.form_with("username", "password")
    method, url, data = form.submit({"username": "ent.admin@acme.test", "password": PASSWORD})
    assert method == "POST" and urlsplit(url).path == "/login/"
    assert dict(data)["csrfmiddlewaretoken"]
    landed = _send(client, (method, url, data))
    assert landed.form_with("username", "password") is None
    assert f"/enterprises/{personas.ent_a.pk}/" in landed.url


def test_a_wrong_field_name_is_an_error_not_a_silent_extra(personas):
    login = _open(Client(), "/login/")
    with pytest.raises(KeyError, match="email"):
        login.form_with("username", "password").submit({"email": "x@y.test"})


def test_the_trace_search_form_finds_the_attempts_and_offers_the_export(personas):
    account = personas.acct_a1
    Attempt.objects.create(
        attempted_at=timezone.now() - dt.timedelta(days=1), enterprise_id=account.enterprise_id,
        account_id=account.pk, account_name=account.name, campaign_id=1, campaign_name="Camp",
        sub_campaign_id=2, sub_campaign_name="Voice", client_id="C1", device_key=DEVICE,
        channel="voice", direction="outbound", disposition="ANSWERED",
    )  # fmt: skip
    client = _signed_in(personas, "ent_admin")
    page = _open(client, f"/enterprises/{personas.ent_a.pk}/devices/")
    form = page.form_with("criteria", "value")
    results = _send(client, form.submit({"criteria": "device", "value": "713 555 4101"}))
    assert results.has("trace-count")
    assert "1 attempt to reach +17135554101" in results.html
    export = results.link("trace-export")
    response = client.get(export.href.removeprefix(BASE))
    assert response["Content-Type"].startswith("text/csv")
    assert DEVICE in b"".join(response.streaming_content).decode()


def test_view_setting_posts_the_defaults_and_the_button_and_saves_nothing(personas):
    client = _signed_in(personas, "ent_admin")
    page = _open(client, f"/enterprises/{personas.ent_a.pk}/devices/blocking/")
    form = page.form_with("device", "action")
    method, url, data = form.submit({"device": DEVICE}, button="view")
    assert method == "POST"
    sent = dict(data)
    assert sent["op"] == "view" and sent["action"] == "block" and sent["csrfmiddlewaretoken"]
    preview = _send(client, (method, url, data))
    assert preview.has("preview")
    assert DEVICE in preview.html
    assert not DeviceSetting.objects.filter(enterprise=personas.ent_a).exists()
    with pytest.raises(KeyError, match="delete"):
        form.submit({"device": DEVICE}, button="delete")


def test_an_account_user_opens_the_sub_campaign_with_its_poll_url(personas):
    from django_tenants.utils import tenant_context

    from tests import factories

    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(factories.contact_list([{"phones": [DEVICE]}]),
                                     activate=False)  # fmt: skip
    client = _signed_in(personas, "acct_admin")
    page = _open(client, f"/a/acme-one/sub-campaigns/{sub.pk}/")
    assert page.has("sub-campaign-title")
    box = page.element_with("data-poll-url")
    assert box["data-poll-url"] == f"/a/acme-one/sub-campaigns/{sub.pk}/counts.json"
    assert int(box["data-poll-seconds"]) > 0


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.5/", "http://192.168.1.2:8000/", "https://example.com/login/",
     "http://127.0.0.1.example.com/", "ftp://127.0.0.1/", "http://localhost@10.0.0.5/"],
)  # fmt: skip
def test_only_loopback_is_a_target(url):
    with pytest.raises(browser.NotLocal):
        browser.require_local(url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/x/", "http://localhost/", "http://[::1]:9/"]
)
def test_loopback_is_a_target(url):
    assert browser.require_local(url) == url


def test_ids_and_opaque_tokens_make_one_endpoint_name():
    assert browser.path_template("http://127.0.0.1/enterprises/12/devices/trace/"
                                 "Zm9vYmFyYmF6cXV4cXV1eDEyMzQ/") == (
        "/enterprises/<id>/devices/trace/<id>/"
    )  # fmt: skip
    assert browser.path_template("http://127.0.0.1/a/bench-load/sub-campaigns/7/counts.json") == (
        "/a/bench-load/sub-campaigns/<id>/counts.json"
    )
