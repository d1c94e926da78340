"""The integration API (/api/v1/): keys, scopes, problems, device settings, decisions."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.actions import do_add_membership
from accounts.api_keys import do_create_api_key, do_revoke_api_key
from accounts.models import ApiKey, AuditEvent, Role, User
from campaigns.actions import do_create_campaign
from campaigns.blacklists import do_add_entry, do_create_blacklist, do_set_blacklist_campaigns
from campaigns.models import Blacklist, BlacklistEntry, DialState
from devices.actions import do_save_device_setting
from devices.models import Attempt, DeviceSetting
from tests import factories
from tests.helpers import client_for

ALL_ENTERPRISE = ["trace:read", "devices:write", "blacklists:write", "decisions:read"]
HOUSTON = "+17135554101"


def _key(personas, *, account=None, scopes=None, enterprise=None, **extra) -> tuple[ApiKey, str]:
    owner = personas.acct_admin if account is not None else personas.ent_admin
    return do_create_api_key(
        name="CRM sync", scopes=scopes or (["trace:read", "decisions:read"] if account else
                                           ALL_ENTERPRISE),
        created_by=owner, enterprise=enterprise or personas.ent_a, account=account, **extra,
    )  # fmt: skip


def _api(secret: str | None = None) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}") if secret else Client()


def _json(response):
    return json.loads(response.content)


def _put(client, device, body, **headers):
    return client.put(f"/api/v1/devices/{device}", json.dumps(body),
                      content_type="application/json", **headers)  # fmt: skip


def _post(client, path, body, **headers):
    return client.post(path, json.dumps(body), content_type="application/json", **headers)


# --- keys -------------------------------------------------------------------------------------


def test_a_key_is_shown_once_kept_hashed_and_audited(personas):
    key, secret = _key(personas)
    assert secret.startswith(f"cpk_{key.prefix}_") and len(secret) > 40
    stored = ApiKey.objects.get(pk=key.pk)
    assert secret.split("_", 2)[2] not in json.dumps(
        {f.name: str(getattr(stored, f.name)) for f in ApiKey._meta.fields}
    ), "only a hash of the secret is stored"
    event = AuditEvent.objects.get(action="api_key.create", object_id=str(key.pk))
    assert event.actor == personas.ent_admin and event.details["scopes"] == sorted(ALL_ENTERPRISE)
    assert _api(secret).get(f"/api/v1/devices/{HOUSTON}").status_code == 200
    assert ApiKey.objects.get(pk=key.pk).last_used_at is not None


@pytest.mark.parametrize("case", ["none", "garbage", "wrong-secret", "revoked", "expired"])
def test_no_usable_key_is_a_401_problem(personas, case):
    key, secret = _key(personas)
    if case == "revoked":
        do_revoke_api_key(key, actor=personas.ent_admin)
    if case == "expired":
        ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - dt.timedelta(1))
    sent = {"none": None, "garbage": "hello", "wrong-secret": secret[:-4] + "AAAA"}.get(
        case, secret
    )
    response = _api(sent).get(f"/api/v1/devices/{HOUSTON}")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert _json(response)["status"] == 401 and "API key" in _json(response)["detail"]


def test_scopes_and_key_kinds_are_enforced(personas):
    _key1, reader = _key(personas, scopes=["trace:read"])
    refused = _api(reader).get(f"/api/v1/devices/{HOUSTON}")
    assert refused.status_code == 403 and "devices:write" in _json(refused)["detail"]
    _key2, account_key = _key(personas, account=personas.acct_a1, scopes=["decisions:read"])
    refused = _put(_api(account_key), HOUSTON, {"action": "block"})
    assert refused.status_code == 403
    assert _json(refused)["type"].endswith("/missing-scope")
    with pytest.raises(Exception, match="Choose one or more"):
        _key(personas, account=personas.acct_a1, scopes=["devices:write"])


def test_keys_are_rate_limited_with_retry_after(personas, settings):
    settings.API_RATE_LIMIT = 3
    _key1, secret = _key(personas)
    client = _api(secret)
    codes = [client.get(f"/api/v1/devices/{HOUSTON}").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.get(f"/api/v1/devices/{HOUSTON}")
    assert 1 <= int(limited["Retry-After"]) <= 61
    assert _json(limited)["type"].endswith("/rate-limited")


# --- device settings --------------------------------------------------------------------------


def test_a_block_through_the_api_cancels_queued_attempts_and_is_audited_under_the_key(personas):
    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(factories.contact_list([{"phones": [HOUSTON]}]))
    key, secret = _key(personas)
    response = _put(_api(secret), "(713) 555-4101", {"action": "block", "reason": "Cease letter"})
    assert response.status_code == 200, response.content
    body = _json(response)
    assert body["device"] == HOUSTON and body["cancelled"] == 1
    assert body["setting"]["source"] == "api" and body["setting"]["reason"] == "Cease letter"
    with tenant_context(personas.acct_a1):
        state = DialState.objects.get(sub_campaign=sub)
    assert (state.status, state.last_rule) == ("suppressed", "device_block")
    setting = DeviceSetting.objects.get(enterprise=personas.ent_a, device_key=HOUSTON)
    assert setting.created_by_label == f"API key “CRM sync” ({personas.ent_admin.email})"
    event = AuditEvent.objects.get(action="device.block", object_id=str(setting.pk))
    assert event.actor == personas.ent_admin and event.details["api_key"] == key.prefix
    assert event.actor_label.startswith("API key “CRM sync”")
    seen = _json(_api(secret).get(f"/api/v1/devices/{HOUSTON}"))
    assert seen["setting"]["action"] == "block" and len(seen["history"]) == 1

    allowed = _put(_api(secret), HOUSTON, {"action": "clear"})
    assert _json(allowed)["released"] == 1
    assert _json(_api(secret).get(f"/api/v1/devices/{HOUSTON}"))["setting"] is None


def test_bad_devices_and_bodies_are_problems_that_say_why(personas):
    _key1, secret = _key(personas)
    client = _api(secret)
    bad = _put(client, "12345", {"action": "block"})
    assert bad.status_code == 422 and _json(bad)["type"].endswith("/invalid-device")
    assert "number" in _json(bad)["detail"].lower()
    past = _put(client, HOUSTON, {"action": "block", "expires_at": "2020-01-01T00:00:00Z"})
    assert past.status_code == 422 and "future" in _json(past)["detail"]
    nonsense = _put(client, HOUSTON, {"action": "explode"})
    assert nonsense.status_code == 422 and _json(nonsense)["errors"][0]["field"] == "action"
    not_json = client.put(f"/api/v1/devices/{HOUSTON}", "{", content_type="application/json")
    assert 400 <= not_json.status_code < 500
    assert not DeviceSetting.objects.filter(enterprise=personas.ent_a).exists()


def test_bulk_keeps_the_good_items_and_names_the_bad_lines(personas):
    _key1, secret = _key(personas)
    items = [{"device": HOUSTON, "reason": "CRM"}, {"device": "not a phone"},
             {"device": "Someone@Example.COM"}, {"device": "+1713555410"}]  # fmt: skip
    response = _post(_api(secret), "/api/v1/devices/bulk", {"action": "block", "items": items})
    assert response.status_code == 200, response.content
    body = _json(response)
    assert (body["saved"], body["blocks"], body["errors"]) == (2, 2, 2)
    assert [r["line"] for r in body["results"] if r["status"] == "error"] == [2, 4]
    assert body["results"][2]["key"] == "someone@example.com"
    assert set(
        DeviceSetting.objects.filter(enterprise=personas.ent_a).values_list("device_key", flat=True)
    ) == {HOUSTON, "someone@example.com"}
    too_many = _post(_api(secret), "/api/v1/devices/bulk",
                     {"action": "block", "items": [{"device": HOUSTON}] * 10_001})  # fmt: skip
    assert too_many.status_code == 422


def test_bulk_keeps_every_character_of_a_reason_and_refuses_bad_items(personas):
    # Bulk settings are written with COPY: its separators in a reason must come back as sent.
    _key1, secret = _key(personas)
    reason = "tab\there, line\nbreak, back\\slash \\N, “quoted”, \r end"
    later = (timezone.now() + dt.timedelta(days=30)).replace(microsecond=0)
    items = [{"device": HOUSTON, "reason": reason, "expires_at": later.isoformat()},
             {"device": "+17135554102"}]  # fmt: skip
    response = _post(_api(secret), "/api/v1/devices/bulk", {"action": "allow", "items": items})
    assert response.status_code == 200, response.content
    saved = {s.device_key: s for s in DeviceSetting.objects.filter(enterprise=personas.ent_a)}
    assert saved[HOUSTON].reason == reason and saved[HOUSTON].expires_at == later
    assert saved["+17135554102"].reason == "" and saved["+17135554102"].expires_at is None
    assert saved[HOUSTON].source == "api" and "CRM sync" in saved[HOUSTON].created_by_label
    assert saved[HOUSTON].created_at is not None
    for bad in ({"reason": "no device"}, {"device": HOUSTON, "reason": "x" * 256},
                {"device": HOUSTON, "expires_at": "soon"}, {"device": 12}):  # fmt: skip
        refused = _post(_api(secret), "/api/v1/devices/bulk", {"action": "block", "items": [bad]})
        assert refused.status_code == 422, (bad, refused.content)
    assert DeviceSetting.objects.filter(enterprise=personas.ent_a).count() == 2


def test_an_idempotency_key_makes_a_retry_change_nothing(personas):
    _key1, secret = _key(personas)
    client = _api(secret)
    first = _put(client, HOUSTON, {"action": "block"}, HTTP_IDEMPOTENCY_KEY="req-1")
    again = _put(client, HOUSTON, {"action": "block"}, HTTP_IDEMPOTENCY_KEY="req-1")
    assert first.status_code == again.status_code == 200
    assert _json(first) == _json(again) and again["Idempotent-Replayed"] == "true"
    assert DeviceSetting.objects.filter(enterprise=personas.ent_a).count() == 1
    other = _put(client, HOUSTON, {"action": "allow"}, HTTP_IDEMPOTENCY_KEY="req-1")
    assert other.status_code == 422 and _json(other)["type"].endswith("/idempotency-key-reused")


def test_the_list_pages_by_cursor_through_every_setting_once(personas):
    _key1, secret = _key(personas)
    for n in range(5):
        do_save_device_setting(personas.ent_a, f"+1713555420{n}", "block")
    do_save_device_setting(personas.ent_a, "+17135554209", "allow")
    seen, cursor = [], None
    while True:
        page = _json(_api(secret).get("/api/v1/devices", {"action": "block", "limit": 2,
                                                          **({"cursor": cursor} if cursor
                                                             else {})}))  # fmt: skip
        seen += [item["device"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == [f"+1713555420{n}" for n in range(5)]
    assert _api(secret).get("/api/v1/devices", {"cursor": "!!"}).status_code == 400


def test_one_enterprise_key_never_sees_another_enterprise(personas):
    do_save_device_setting(personas.ent_b, "+5511912345678", "block", reason="B's secret")
    _key1, secret = _key(personas)
    seen = _json(_api(secret).get("/api/v1/devices/+5511912345678"))
    assert seen["setting"] is None and seen["history"] == []
    listed = _json(_api(secret).get("/api/v1/devices"))
    assert "+5511912345678" not in json.dumps(listed)
    asked = _post(_api(secret), "/api/v1/decisions",
                  {"devices": [HOUSTON], "channel": "voice", "purpose": "collections",
                   "account": "bor-one"})  # fmt: skip
    assert asked.status_code == 404


# --- decisions --------------------------------------------------------------------------------


def test_decisions_are_the_gates_own(personas):
    do_save_device_setting(personas.ent_a, HOUSTON, "block", reason="Cease letter")
    _key1, secret = _key(personas, account=personas.acct_a1)
    noon = "2026-12-02T18:00:00Z"  # noon in Houston, a Wednesday
    body = {"devices": [HOUSTON, "+17135554102", "nonsense"], "channel": "voice",
            "purpose": "collections", "at": noon}  # fmt: skip
    response = _post(_api(secret), "/api/v1/decisions", body)
    assert response.status_code == 200, response.content
    results = _json(response)["results"]
    assert [r["decision"] for r in results] == ["suppress", "dial", "invalid"]
    assert results[0]["rule"] == "device_block" and results[0]["source"] == "manual"
    assert "Cease letter" in results[0]["detail"]
    night = _post(_api(secret), "/api/v1/decisions",
                  {**body, "devices": ["+17135554102"], "at": "2026-12-03T05:00:00Z"})  # fmt: skip
    deferred = _json(night)["results"][0]
    assert deferred["decision"] == "defer" and deferred["rule"] == "calling_window"
    retry_at = dt.datetime.fromisoformat(deferred["retry_at"])
    assert retry_at == dt.datetime(2026, 12, 3, 14, 0, tzinfo=dt.UTC)  # 8:00 in Houston


def test_a_key_stops_working_the_moment_it_or_its_account_is_turned_off(personas):
    # Keys and accounts are read on every request, never from a cache.
    key, secret = _key(personas, account=personas.acct_a1)
    body = {"devices": [HOUSTON], "channel": "voice", "purpose": "collections"}
    assert _post(_api(secret), "/api/v1/decisions", body).status_code == 200
    personas.acct_a1.is_active = False
    personas.acct_a1.save(update_fields=["is_active"])
    for account in (None, "acme-one", str(personas.acct_a1.pk)):
        asked = _post(_api(secret), "/api/v1/decisions", {**body, "account": account})
        assert asked.status_code == 404, (account, asked.content)
    personas.acct_a1.is_active = True
    personas.acct_a1.save(update_fields=["is_active"])
    assert _post(_api(secret), "/api/v1/decisions", body).status_code == 200
    do_revoke_api_key(key, actor=personas.acct_admin)
    assert _post(_api(secret), "/api/v1/decisions", body).status_code == 401
    for forged in (secret.replace("cpk_", "cpk_zz"), "cpk_" + "f" * 17 + "_x", "cpk__x"):
        assert _post(_api(forged), "/api/v1/decisions", body).status_code == 401, forged


def test_a_decision_names_its_campaign_blacklists_only_when_asked(personas):
    # Without a campaign the gate runs for the account as a whole: no list applies.
    with tenant_context(personas.acct_a1):
        campaign = do_create_campaign(name="Collections")
        blacklist = do_create_blacklist(name="Do not call")
        do_set_blacklist_campaigns(blacklist, [campaign])
        do_add_entry(blacklist, BlacklistEntry.Kind.PHONE, HOUSTON, actor=personas.acct_admin)
    _key1, secret = _key(personas, account=personas.acct_a1)
    body = {"devices": [HOUSTON], "channel": "voice", "purpose": "collections",
            "at": "2026-12-02T18:00:00Z"}  # fmt: skip
    whole = _json(_post(_api(secret), "/api/v1/decisions", body))["results"][0]
    assert whole["decision"] == "dial"
    named = _json(_post(_api(secret), "/api/v1/decisions", {**body, "campaign": campaign.pk}))
    assert named["results"][0]["rule"] == "campaign_blacklist"
    assert named["results"][0]["source"] == str(blacklist.pk)


def test_the_schema_and_its_documentation_are_served_by_the_app(personas):
    schema = Client().get("/api/v1/openapi.json")
    assert schema.status_code == 200
    paths = _json(schema)["paths"]
    assert {"/api/v1/devices/{device}", "/api/v1/devices/bulk", "/api/v1/decisions"} <= set(paths)
    docs = Client().get("/api/v1/docs")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "swagger-ui-bundle.js" in page and "cdn." not in page


_SENDER = """
import json, sys, time, urllib.request
url, secret, at, body = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
request = urllib.request.Request(url, data=body.encode(), method="POST", headers={
    "Authorization": "Bearer " + secret, "Content-Type": "application/json",
    "Idempotency-Key": "bulk-2026-12-03"})
time.sleep(max(0, at - time.time()))
with urllib.request.urlopen(request, timeout=60) as response:
    print(json.dumps({"status": response.status,
                      "replayed": response.headers.get("Idempotent-Replayed"),
                      "body": json.loads(response.read())}))
"""


def test_the_same_bulk_request_from_two_processes_at_once_makes_one_change(
    committed, open_all_day_account, live_server_url
):
    enterprise = open_all_day_account.enterprise
    admin = User.objects.create_user(f"api-{enterprise.pk}@acme.test", "pw-1234567890")
    do_add_membership(admin, enterprise, Role.ENTERPRISE_ADMIN)
    _key_row, secret = do_create_api_key(name="Twice", scopes=["devices:write"],
                                         created_by=admin, enterprise=enterprise)  # fmt: skip
    items = [{"device": f"+1713555{n:04d}"} for n in range(300)]
    body = json.dumps({"action": "block", "items": items})
    at = time.time() + 1.5
    url = live_server_url.replace("localhost", "127.0.0.1") + "/api/v1/devices/bulk"
    senders = [
        subprocess.Popen(
            [sys.executable, "-c", _SENDER, url, secret, str(at), body],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    try:
        answers = [json.loads(proc.communicate(timeout=90)[0]) for proc in senders]
        assert [a["status"] for a in answers] == [200, 200]
        assert answers[0]["body"] == answers[1]["body"] and answers[0]["body"]["saved"] == 300
        assert sorted(str(a["replayed"]) for a in answers) == ["None", "true"]
        assert DeviceSetting.objects.filter(enterprise=enterprise).count() == 300, "one change"
    finally:
        # Committed rows: 300 blocks of +1713555xxxx would stay for the journeys that pick
        # a random number of that range and check it has no setting yet.
        DeviceSetting.objects.filter(enterprise=enterprise).delete()


# --- the keys pages -----------------------------------------------------------------------------


def test_an_enterprise_admin_creates_a_key_sees_it_once_and_revokes_it(personas):
    client = client_for(personas, "ent_admin")
    page = f"/enterprises/{personas.ent_a.pk}/api-keys/"
    empty = client.get(page)
    assert empty.status_code == 200 and b'data-testid="no-keys"' in empty.content
    created = client.post(page, {"name": "CRM sync", "scopes": ["devices:write", "trace:read"]})
    assert created.status_code == 302 and created["Location"] == page
    shown = client.get(page).content.decode()
    key = ApiKey.objects.get(enterprise=personas.ent_a, name="CRM sync")
    secret = shown.split('id="new-key-value" readonly value="', 1)[1].split('"', 1)[0]
    assert secret.startswith(f"cpk_{key.prefix}_")
    assert "Authorization: Bearer &lt;key&gt;" in shown, "the placeholder is text, not a tag"
    assert _api(secret).get(f"/api/v1/devices/{HOUSTON}").status_code == 200
    assert secret not in client.get(page).content.decode(), "shown once"
    bad = client.post(page, {"name": "", "scopes": ["registries:read"]})
    assert bad.status_code == 200 and ApiKey.objects.filter(enterprise=personas.ent_a).count() == 1
    confirm = client.get(f"{page}{key.pk}/revoke/")
    assert confirm.status_code == 200 and b"cannot be undone" in confirm.content
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None, "a GET revokes nothing"
    assert client.post(f"{page}{key.pk}/revoke/").status_code == 302
    assert _api(secret).get(f"/api/v1/devices/{HOUSTON}").status_code == 401
    assert AuditEvent.objects.filter(action="api_key.revoke", object_id=str(key.pk)).exists()


def test_an_account_admin_manages_the_accounts_keys_only(personas):
    client = client_for(personas, "acct_admin")
    page = "/a/acme-one/api-keys/"
    form = client.get(page).content.decode()
    assert "decisions:read" in form and "devices:write" not in form
    client.post(page, {"name": "Dialer", "scopes": ["decisions:read"]})
    key = ApiKey.objects.get(account=personas.acct_a1)
    assert key.enterprise == personas.ent_a and key.scopes == ["decisions:read"]
    enterprise_key, _secret = _key(personas)
    assert client.get(f"{page}{enterprise_key.pk}/revoke/").status_code == 404
    assert client_for(personas, "agent").get(page).status_code == 403
    assert (
        client_for(personas, "other_ent_admin")
        .get(f"/enterprises/{personas.ent_a.pk}/api-keys/")
        .status_code
        == 404
    )


# --- campaign blacklists ---------------------------------------------------------------------


def test_blacklist_entries_through_the_api_suppress_and_release_at_once(personas):
    _key1, secret = _key(personas, account=personas.acct_a1, scopes=["blacklists:write"])
    client = _api(secret)
    created = _post(client, "/api/v1/blacklists", {"name": "Litigation hold"})
    assert created.status_code == 201, created.content
    blacklist_id = _json(created)["id"]
    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(factories.contact_list([{"phones": [HOUSTON]}]))
        do_set_blacklist_campaigns(Blacklist.objects.get(pk=blacklist_id), [sub.campaign])
    added = _post(client, f"/api/v1/blacklists/{blacklist_id}/entries",
                  {"items": [{"number": "(713) 555-4101", "reason": "Attorney"},
                             {"number": "1"}, {"number": "1234"}]})  # fmt: skip
    body = _json(added)
    assert (body["added"], body["suppressed"], body["errors"]) == (2, 1, 1), body
    assert body["results"][1]["status"] == "error" and body["results"][1]["line"] == 2
    with tenant_context(personas.acct_a1):
        assert DialState.objects.get(sub_campaign=sub).status == "suppressed"
    again = _json(_post(client, f"/api/v1/blacklists/{blacklist_id}/entries",
                        {"items": [{"number": HOUSTON}]}))  # fmt: skip
    assert again["added"] == 0 and again["results"][0]["status"] == "listed"
    listed = _json(client.get(f"/api/v1/blacklists/{blacklist_id}/entries"))
    assert {e["number"] for e in listed["items"]} == {HOUSTON, "1234"}
    assert listed["items"][0]["source"] == "api"
    removed = client.delete(f"/api/v1/blacklists/{blacklist_id}/entries/{HOUSTON}")
    assert _json(removed) == {"removed": 1, "released": 1, "not_listed": []}
    with tenant_context(personas.acct_a1):
        assert DialState.objects.get(sub_campaign=sub).status == "pending"
    gone = client.delete(f"/api/v1/blacklists/{blacklist_id}/entries/{HOUSTON}")
    assert gone.status_code == 404
    bulk = _json(_post(client, f"/api/v1/blacklists/{blacklist_id}/entries/remove",
                       {"numbers": ["1234", "+17135559999"]}))  # fmt: skip
    assert bulk["removed"] == 1 and bulk["not_listed"] == ["+17135559999"]
    assert AuditEvent.objects.filter(action="blacklist.entries_add",
                                     actor_label__startswith="API key").exists()  # fmt: skip


def test_an_account_key_reaches_no_other_account(personas):
    _key1, secret = _key(personas, account=personas.acct_a1, scopes=["blacklists:write"])
    client = _api(secret)
    assert client.get("/api/v1/blacklists", {"account": "acme-two"}).status_code == 404
    assert client.get("/api/v1/blacklists", {"account": "bor-one"}).status_code == 404
    with tenant_context(personas.acct_a2):
        other = do_create_blacklist(name="Acme Two's")
        do_add_entry(other, "phone", "+17135557777")
    # Ids are per account: the same id here is this account's list (or none), never theirs.
    seen = client.get(f"/api/v1/blacklists/{other.pk}/entries")
    assert seen.status_code in (200, 404) and "+17135557777" not in seen.content.decode()
    assert "Acme Two's" not in client.get("/api/v1/blacklists").content.decode()


# --- Contact Trace ----------------------------------------------------------------------------


def _attempts(personas, n: int, **fields):
    now = timezone.now()
    rows = [
        Attempt(attempted_at=now - dt.timedelta(minutes=i), enterprise_id=personas.ent_a.pk,
                account_id=personas.acct_a1.pk, account_name="Acme One", client_id="C-9",
                device_key=HOUSTON, channel="voice", direction="outbound",
                disposition="ANSWERED", call_seconds=30 + i, node="engine-1", **fields)
        for i in range(n)
    ]  # fmt: skip
    Attempt.objects.bulk_create(rows)


def test_the_trace_by_phone_pages_by_cursor_and_is_audited(personas):
    _attempts(personas, 5)
    _key1, secret = _key(personas, scopes=["trace:read"])
    client = _api(secret)
    first = _json(client.get("/api/v1/trace", {"phone": "713-555-4101", "limit": 3}))
    assert first["query"] == HOUSTON and len(first["items"]) == 3
    assert first["items"][0]["call_seconds"] == 30 and first["items"][0]["result"] == "ANSWERED"
    rest = _json(client.get("/api/v1/trace", {"phone": HOUSTON, "cursor": first["next_cursor"]}))
    assert [a["call_seconds"] for a in rest["items"]] == [33, 34] and rest["next_cursor"] is None
    by_client = _json(client.get("/api/v1/trace", {"client_id": "C-9"}))
    assert len(by_client["items"]) == 5
    assert client.get("/api/v1/trace", {"phone": "1", "email": "a@b.co"}).status_code == 422
    assert client.get("/api/v1/trace", {"email": "not-an-email"}).status_code == 422
    assert AuditEvent.objects.filter(action="trace.search", details__via="api").count() == 2


def test_the_export_streams_ndjson_and_csv_for_many_keys(personas):
    _attempts(personas, 3)
    _key1, secret = _key(personas, scopes=["trace:read"])
    client = _api(secret)
    ndjson = _post(client, "/api/v1/trace/export",
                   {"devices": [HOUSTON, "+17135550000"], "client_ids": ["C-9"]})  # fmt: skip
    assert ndjson.status_code == 200 and ndjson["Content-Type"] == "application/x-ndjson"
    lines = b"".join(ndjson.streaming_content).decode().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["device"] == HOUSTON
    csv_body = _post(client, "/api/v1/trace/export", {"devices": [HOUSTON], "format": "csv"})
    text = b"".join(csv_body.streaming_content).decode("utf-8-sig")
    assert text.splitlines()[0].startswith("Date,Account") and len(text.splitlines()) == 4
    bad = _post(client, "/api/v1/trace/export", {"devices": ["nope"]})
    assert bad.status_code == 422 and _json(bad)["invalid"] == 1
    assert AuditEvent.objects.filter(action="trace.export", details__via="api").count() == 2


# --- registries -------------------------------------------------------------------------------


def test_registries_are_for_operator_keys(personas):
    operator_key, secret = do_create_api_key(name="Ops", scopes=["registries:read"],
                                             created_by=personas.operator)  # fmt: skip
    assert operator_key.is_operator
    listing = _api(secret).get("/api/v1/registries")
    assert listing.status_code == 200
    codes = {r["code"] for r in _json(listing)}
    assert codes, "the registries the platform knows"
    code = sorted(codes)[0]
    looked = _api(secret).get(f"/api/v1/registries/{code}/numbers/nonsense")
    assert looked.status_code == 422
    _key1, enterprise_secret = _key(personas)
    assert _api(enterprise_secret).get("/api/v1/registries").status_code == 403


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", f"/api/v1/devices/{HOUSTON}", {"action": "block", "reason": "a\u0000b"}),
        ("POST", "/api/v1/blacklists?account=acme-one", {"name": "a\u0000b"}),
        ("GET", "/api/v1/trace?client_id=a%00b", None),
        ("GET", "/api/v1/blacklists?account=a%00b", None),
        ("POST", "/api/v1/decisions", {"devices": [HOUSTON], "channel": "voice",
                                       "purpose": "collections", "account": "a\u0000b"}),
    ],
)  # fmt: skip
def test_a_nul_character_anywhere_is_a_422_problem_not_a_500(personas, method, path, body):
    _key1, secret = _key(personas)
    response = _api(secret).generic(method, path, json.dumps(body) if body else "",
                                    content_type="application/json")  # fmt: skip
    assert response.status_code == 422
    assert _json(response)["type"].endswith("/nul-character")


def test_a_nul_character_in_a_page_is_a_form_error_or_a_400(personas):
    client = client_for(personas, "ent_admin")
    response = client.post(f"/enterprises/{personas.ent_a.pk}/api-keys/",
                           {"name": "a\x00b", "scopes": ["trace:read"]})  # fmt: skip
    assert response.status_code == 200 and b"Null characters are not allowed" in response.content
    assert not ApiKey.objects.exists(), "the form said why and saved nothing"
    assert client.get("/a/acme%00one/").status_code == 400


def test_a_keys_scopes_are_a_list_not_the_text_of_one(personas):
    # The key is read with one SQL statement (accounts.api_keys): its JSON field must be
    # converted as the ORM would, or "scope in key.scopes" tests a substring.
    from accounts.api_keys import authenticate

    _key1, secret = _key(personas, scopes=["trace:read"])
    key = authenticate(secret)
    assert key.scopes == ["trace:read"]
    assert "trace" not in key.scopes and "read" not in key.scopes


def test_a_nul_in_a_body_of_any_declared_type_is_a_422_not_a_500(personas):
    _key1, secret = _key(personas, account=personas.acct_a1)
    body = '{"devices": ["+17135554101"], "channel": "voice", "purpose": "collections", ' \
           '"account": "acme\\u0000one"}'  # fmt: skip
    for content_type in ("text/plain", "APPLICATION/JSON", "application/json"):
        answer = _api(secret).post("/api/v1/decisions", body, content_type=content_type)
        assert answer.status_code == 422, (content_type, answer.content)
        assert _json(answer)["type"].endswith("/nul-character")
