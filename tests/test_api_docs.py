"""docs/api.md cannot rot: each of its sh examples runs against a live server, and its
signature check agrees with the portal's signatures."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from accounts.actions import do_add_membership
from accounts.api_keys import do_create_api_key
from accounts.models import ApiKey, Role, User
from accounts.webhooks import signature
from devices.models import DeviceSetting

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.DOTALL)


def test_every_curl_example_runs(committed, open_all_day_account, live_server_url, tmp_path):
    account = open_all_day_account
    admin = User.objects.create_user(f"docs-{account.slug}@acme.test", "pw-1234567890")
    do_add_membership(admin, account.enterprise, Role.ENTERPRISE_ADMIN)
    _key, secret = do_create_api_key(name="Docs", scopes=[s.value for s in ApiKey.Scope
                                                          if s != "registries:read"],
                                     created_by=admin, enterprise=account.enterprise)  # fmt: skip
    env = {"PORTAL": live_server_url.replace("localhost", "127.0.0.1"), "KEY": secret,
           "ACCOUNT": account.slug, "PATH": "/usr/bin:/bin"}  # fmt: skip
    blocks = _blocks("sh")
    assert len(blocks) >= 8
    for block in blocks:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, f"{block}\n{done.stdout}\n{done.stderr}"
    blocked = set(
        DeviceSetting.objects.filter(enterprise=account.enterprise).values_list(
            "device_key", flat=True
        )
    )
    assert {"+17135554101", "+17135554102", "maria.silva@example.com"} <= blocked
    lines = (tmp_path / "trace.ndjson").read_text().splitlines()
    assert all(json.loads(line)["device"] for line in lines)


def test_the_signature_check_in_the_docs_accepts_ours_and_refuses_others():
    (code,) = _blocks("python")
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - our own documentation's example
    verify = namespace["verify"]
    body = b'{"type": "test.ping"}'
    header = signature("s3cret", int(time.time()), body)
    assert verify("s3cret", header, body)
    assert not verify("other", header, body)
    assert not verify("s3cret", header, body + b" ")
    assert not verify("s3cret", signature("s3cret", int(time.time()) - 3600, body), body)


@pytest.mark.parametrize("name", ["API_RATE_LIMIT", "WEBHOOK_ALLOW_PRIVATE_URLS"])
def test_the_api_settings_are_documented(name):
    root = DOC.parent.parent
    assert name in (root / ".env.example").read_text()
    assert f"`{name}`" in (root / "README.md").read_text()
