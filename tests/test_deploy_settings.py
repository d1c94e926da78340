"""Production defaults (issue 13, item 6): the environment docker-compose gives the portal
passes `manage.py check --deploy` with nothing to report; a missing, short or known
SECRET_KEY stops a DEBUG=0 process; cookies are Secure unless DEBUG; http is redirected
except for health checks and Kannel's callbacks; every page carries a strict
Content-Security-Policy and no template has inline code or style attributes."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.test import Client

from enterprise_portal import env as portal_env
from tests.conftest import _test_database_url

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
STRONG_KEY = secrets.token_urlsafe(50)
REFUSED = "refuses to start"
# What a dummy process needs to import the settings; no check below connects to them.
SERVERS = {"DATABASE_URL": "postgresql://portal:portal@db:5432/portal",
           "REDIS_URL": "redis://redis:6379/0"}  # fmt: skip

_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingVariable(Exception):
    pass


def _interpolate(value: str, given: dict[str, str]) -> str:
    """docker compose's ${NAME}, ${NAME:-default} and ${NAME:?error} with ``given`` as the
    operator's shell environment."""

    def one(match: re.Match) -> str:
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        if name in given and (given[name] or not (op or "").startswith(":")):
            return given[name]
        if op in (":?", "?"):
            raise MissingVariable(f"{name}: {arg}")
        return arg if op in (":-", "-") else ""

    return _VARIABLE.sub(one, value)


def compose_environment(service: str, given: dict[str, str]) -> dict[str, str]:
    """The environment docker compose gives ``service`` (YAML merge keys resolved)."""
    spec = yaml.safe_load(COMPOSE.read_text())["services"][service]
    return {name: _interpolate(str(value), given) for name, value in spec["environment"].items()}


def run_python(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """A fresh interpreter with only ``env`` (and PATH): what the container would run."""
    return subprocess.run(
        [sys.executable, *args],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- docker-compose: check --deploy reports nothing; no default secret ------------------


def test_check_deploy_reports_nothing_with_the_docker_compose_environment():
    env = compose_environment("web", {"SECRET_KEY": STRONG_KEY})
    done = run_python(env, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout
    assert "WARNINGS" not in done.stdout + done.stderr


@pytest.mark.parametrize("service", ["web", "worker", "beat", "migrate", "call-engine"])
def test_docker_compose_refuses_to_start_without_a_secret_key(service):
    with pytest.raises(MissingVariable, match="SECRET_KEY: set SECRET_KEY to a random string"):
        compose_environment(service, {})
    assert compose_environment(service, {"SECRET_KEY": STRONG_KEY})["SECRET_KEY"] == STRONG_KEY


def test_docker_compose_turns_https_on_and_publishes_gunicorn_on_loopback_only():
    env = compose_environment("web", {"SECRET_KEY": STRONG_KEY})
    assert env["SECURE_SSL_REDIRECT"] == env["PROXY_SSL_HEADER"] == env["SECURE_COOKIES"] == "1"
    assert int(env["SECURE_HSTS_SECONDS"]) >= 31536000
    ports = yaml.safe_load(COMPOSE.read_text())["services"]["web"]["ports"]
    assert [_interpolate(p, {}) for p in ports] == ["127.0.0.1:8000:8000"]


# --- SECRET_KEY: refused with DEBUG=0, today's behaviour with DEBUG=1 ---------------------


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (None, "SECRET_KEY is not set"),
        ("change-me", "placeholder"),  # docker-compose's old default
        (secrets.token_urlsafe(50)[:49], "49 characters long, fewer than 50"),
    ],
    ids=["missing", "placeholder", "short"],
)
def test_a_debug_off_process_refuses_to_start_on_a_weak_secret_key(key, reason):
    env = {**SERVERS, "DEBUG": "0"} | ({"SECRET_KEY": key} if key is not None else {})
    done = run_python(env, "manage.py", "check")
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert reason in done.stderr and REFUSED in done.stderr
    assert "secrets.token_urlsafe(50)" in done.stderr  # says how to make a good one


def test_a_debug_process_keeps_starting_on_a_development_key():
    done = run_python({**SERVERS, "DEBUG": "1", "SECRET_KEY": "dev"}, "manage.py", "check")
    assert done.returncode == 0, done.stderr
    missing = run_python({**SERVERS, "DEBUG": "1"}, "manage.py", "check")
    assert "Environment variable SECRET_KEY is required but not set" in missing.stderr


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "not set"),
        ("dev", "3 characters long"),
        ("secret", "6 characters long"),
        ("change-me-to-a-long-random-string", "placeholder"),  # .env.example's
        ("django-insecure-" + secrets.token_urlsafe(50), "placeholder"),  # startproject's
        ("CHANGEME" + secrets.token_urlsafe(50), "placeholder"),
        ("ab" * 40, "fewer than 5 different characters"),
    ],
    ids=["empty", "dev", "secret", "env-example", "django-insecure", "changeme", "repetitive"],
)
def test_known_short_and_repetitive_keys_are_refused(monkeypatch, key, reason):
    monkeypatch.setenv("SECRET_KEY", key)
    with pytest.raises(Exception, match=reason):
        portal_env.env_secret_key("SECRET_KEY", debug=False)
    assert portal_env.env_secret_key("SECRET_KEY", debug=True) == key


def test_a_random_key_of_the_minimum_length_is_accepted(monkeypatch):
    key = secrets.token_urlsafe(50)[:50]
    assert portal_env.secret_key_problem(key) is None
    monkeypatch.setenv("SECRET_KEY", key)
    assert portal_env.env_secret_key("SECRET_KEY", debug=False) == key


# --- Cookies: Secure unless DEBUG ---------------------------------------------------------

COOKIES_SCRIPT = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
response = Client().get("/login/")
print(json.dumps({"csrftoken": bool(response.cookies["csrftoken"]["secure"]),
                  "session": settings.SESSION_COOKIE_SECURE}))
"""


def _cookies(extra: dict[str, str]) -> dict:
    env = {"DATABASE_URL": _test_database_url(), "REDIS_URL": os.environ["REDIS_URL"],
           "DJANGO_SETTINGS_MODULE": "enterprise_portal.settings", "SECRET_KEY": STRONG_KEY,
           **extra}  # fmt: skip
    done = run_python(env, "-c", COOKIES_SCRIPT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_cookies_are_secure_by_default_with_debug_off(committed):
    assert _cookies({"DEBUG": "0"}) == {"csrftoken": True, "session": True}
    # Plain-http trials turn them off on purpose; `make run` (DEBUG=1) keeps them plain.
    assert _cookies({"DEBUG": "0", "SECURE_COOKIES": "0"}) == {"csrftoken": False, "session": False}
    assert _cookies({"DEBUG": "1"}) == {"csrftoken": False, "session": False}


# --- HTTPS: redirect, except health checks and Kannel; HSTS behind the proxy --------------


@pytest.fixture
def https_on(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    return Client()  # after the settings: its middleware reads them on the first request


def test_http_is_redirected_but_health_checks_and_kannel_callbacks_are_answered(personas, https_on):
    page = https_on.get("/login/")
    assert page.status_code == 301
    assert page["Location"] == "https://testserver/login/"
    health = https_on.get("/healthz")
    assert (health.status_code, health.content) == (200, b"ok")
    reply = https_on.get("/carrier/kannel/mo/", {"key": "wrong"})
    assert (reply.status_code, reply.content) == (403, b"bad key\n")
    report = https_on.get(
        f"/a/{personas.acct_a1.slug}/carrier/kannel/dlr/", {"attempt": 1, "at": 1, "sig": "x"}
    )
    assert (report.status_code, report.content) == (403, b"bad signature\n")


def test_behind_the_proxy_pages_are_served_with_hsts(personas, https_on):
    page = https_on.get("/login/", headers={"X-Forwarded-Proto": "https"})
    assert page.status_code == 200
    assert page["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


# --- Content-Security-Policy ---------------------------------------------------------------

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def _policy(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in header.split(";") if part.strip())


@pytest.mark.parametrize("path", ["/login/", "/api/v1/docs", "/no-such-page/"])
def test_pages_carry_a_strict_content_security_policy(client, personas, path):
    response = client.get(path)
    assert response.status_code in (200, 404)
    assert _policy(response) == POLICY
    assert "unsafe" not in response["Content-Security-Policy"]


def test_only_the_admin_allows_inline_styles_and_never_inline_scripts(client, personas):
    admin = _policy(client.get("/admin/login/"))
    assert admin == POLICY | {"style-src": "'self' 'unsafe-inline'"}
    assert _policy(client.get("/administration/")) == POLICY  # a 404 outside the admin


def test_the_server_error_page_has_no_inline_style():
    from django.template import loader

    html = loader.get_template("500.html").render()
    assert "style=" not in html
    assert 'href="/static/css/portal.css"' in html


INLINE = [
    (re.compile(r"\son[a-z]+\s*=", re.I), "inline event handler"),
    (re.compile(r"\sstyle\s*=", re.I), "style attribute"),
    (re.compile(r"<style\b", re.I), "<style> element"),
    (
        re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I),
        "inline <script>",
    ),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
]


def test_no_template_has_inline_script_or_style():
    found = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        text = path.read_text()
        for pattern, what in INLINE:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert found == []
