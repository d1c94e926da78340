"""The isolation matrix, for the API: every endpoint × every persona's key, plus no key, an
expired key and a revoked key. A key of enterprise A never reads or writes anything of B:
what is B's is not found, or simply absent from A's answers."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.api_keys import do_create_api_key, do_revoke_api_key
from accounts.models import ApiKey
from campaigns.blacklists import do_add_entry, do_create_blacklist
from devices.actions import do_save_device_setting
from devices.models import Attempt, DeviceSetting

KEYS = ["ent_a", "acct_a1", "ent_b", "operator", "none", "expired", "revoked"]
A_PHONE, B_PHONE = "+17135554101", "+5511912345678"
A_SECRET, B_SECRET = "A's cease letter", "B's cease letter"
ENTERPRISE = ["trace:read", "devices:write", "blacklists:write", "decisions:read"]
ACCOUNT = ["trace:read", "blacklists:write", "decisions:read"]
DECIDE = {"devices": [A_PHONE], "channel": "voice", "purpose": "collections",
          "account": "acme-one"}  # fmt: skip

# (method, path, body, expected status per key in KEYS order); {a1_list}: an Acme One list.
ENTERPRISE_ONLY = [200, 403, 200, 403, 401, 401, 401]  # each enterprise its own
ACME_ONE = [200, 200, 404, 403, 401, 401, 401]  # Acme One's: enterprise A and its account
EITHER = [200, 200, 200, 403, 401, 401, 401]  # each key its own share of the answer
A1_LIST = "/api/v1/blacklists/{a1_list}/entries"
MATRIX = [
    ("GET", f"/api/v1/devices/{A_PHONE}", None, ENTERPRISE_ONLY),
    ("GET", "/api/v1/devices", None, ENTERPRISE_ONLY),
    ("PUT", "/api/v1/devices/+17135554199", {"action": "block"}, ENTERPRISE_ONLY),
    ("POST", "/api/v1/devices/bulk", {"action": "allow", "items": [{"device": A_PHONE}]},
     ENTERPRISE_ONLY),
    ("POST", "/api/v1/decisions", DECIDE, ACME_ONE),
    ("GET", "/api/v1/blacklists?account=acme-one", None, ACME_ONE),
    ("GET", "/api/v1/blacklists?account=acme-two", None, [200, 404, 404, 403, 401, 401, 401]),
    ("GET", "/api/v1/blacklists?account=bor-one", None, [404, 404, 200, 403, 401, 401, 401]),
    ("GET", f"{A1_LIST}?account=acme-one", None, ACME_ONE),
    ("POST", "/api/v1/blacklists?account=acme-one", {"name": "Matrix"},
     [201, 201, 404, 403, 401, 401, 401]),
    ("POST", f"{A1_LIST}?account=acme-one", {"items": [{"number": "+17135554188"}]}, ACME_ONE),
    ("DELETE", f"{A1_LIST}/+17135554177?account=acme-one", None, ACME_ONE),
    ("GET", f"/api/v1/trace?phone=%2B{A_PHONE[1:]}", None, EITHER),
    ("POST", "/api/v1/trace/export", {"devices": [A_PHONE]}, EITHER),
    ("GET", "/api/v1/registries", None, [403, 403, 403, 200, 401, 401, 401]),
    ("GET", "/api/v1/openapi.json", None, [200] * 7),
]  # fmt: skip


@pytest.fixture
def world(personas):
    do_save_device_setting(personas.ent_a, A_PHONE, "block", reason=A_SECRET)
    do_save_device_setting(personas.ent_b, B_PHONE, "block", reason=B_SECRET)
    with tenant_context(personas.acct_a1):
        a1_list = do_create_blacklist(name="A1 hold")
        do_add_entry(a1_list, "phone", "+17135554177")
    with tenant_context(personas.acct_b1):
        b1_list = do_create_blacklist(name="B1 hold")
        do_add_entry(b1_list, "phone", B_PHONE)
    now = timezone.now()
    Attempt.objects.bulk_create([
        Attempt(attempted_at=now, enterprise_id=personas.ent_a.pk, account_id=personas.acct_a2.pk,
                account_name="Acme Two", device_key=A_PHONE, channel="voice",
                direction="outbound", disposition="ANSWERED", message="A2 only"),
        Attempt(attempted_at=now, enterprise_id=personas.ent_b.pk, account_id=personas.acct_b1.pk,
                account_name="Borealis One", device_key=A_PHONE, channel="voice",
                direction="outbound", disposition="BUSY", message="B's call"),
    ])  # fmt: skip

    def key(owner, scopes, **where):
        return do_create_api_key(name="Matrix", scopes=scopes, created_by=owner, **where)[1]

    keys = {
        "ent_a": key(personas.ent_admin, ENTERPRISE, enterprise=personas.ent_a),
        "acct_a1": key(personas.acct_admin, ACCOUNT, account=personas.acct_a1),
        "ent_b": key(personas.other_ent_admin, ENTERPRISE, enterprise=personas.ent_b),
        "operator": key(personas.operator, ["registries:read"]),
        "none": None,
        "expired": key(personas.ent_admin, ENTERPRISE, enterprise=personas.ent_a),
        "revoked": key(personas.ent_admin, ENTERPRISE, enterprise=personas.ent_a),
    }
    prefixes = {name: secret.split("_")[1] for name, secret in keys.items() if secret}
    ApiKey.objects.filter(prefix=prefixes["expired"]).update(
        expires_at=now - dt.timedelta(minutes=1)
    )
    do_revoke_api_key(ApiKey.objects.get(prefix=prefixes["revoked"]), actor=personas.ent_admin)
    return {"keys": keys, "a1_list": a1_list.pk, "b1_list": b1_list.pk}


def _cases():
    for method, path, body, outcomes in MATRIX:
        for key, expected in zip(KEYS, outcomes, strict=True):
            yield pytest.param(method, path, body, key, expected, id=f"{key}:{method} {path}")


@pytest.mark.parametrize(("method", "path", "body", "key", "expected"), list(_cases()))
def test_api_access(personas, world, method, path, body, key, expected):
    secret = world["keys"][key]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}") if secret else Client()
    url = path.format(a1_list=world["a1_list"])
    data = json.dumps(body) if body is not None else None
    response = client.generic(method, url, data or "", content_type="application/json")
    assert response.status_code == expected, response.content[:300]
    text = (b"".join(response.streaming_content) if response.streaming else response.content
            ).decode()  # fmt: skip
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/problem+json"
    # Whatever a key may read, the other enterprise's data is never in it.
    if key in ("ent_a", "acct_a1"):
        assert B_SECRET not in text and "B's call" not in text and B_PHONE not in text
    if key == "ent_b":
        assert A_SECRET not in text and "A2 only" not in text
        assert not DeviceSetting.objects.filter(enterprise=personas.ent_a,
                                                device_key="+17135554199").exists()  # fmt: skip
    if key == "acct_a1":
        assert "A2 only" not in text, "an account key sees its own account's attempts"
