"""Sign-in, sign-out, throttling, password reset and change, as a user sees them."""

import re

import pytest
from django.conf import settings
from django.test import Client

from accounts import throttle
from accounts.models import AuditEvent
from tests.conftest import PASSWORD

IP = "127.0.0.1"  # REMOTE_ADDR of django.test.Client
INVALID_LOGIN = "The email address or password is not correct."
LOCKED_OUT = "Too many failed sign-in attempts"
UNKNOWN_EMAIL = "nobody@nowhere.test"
NEW_PASSWORD = "Violet-Lantern-Quartz-8141"
RESET_LINK = re.compile(r"https?://[^/\s]+(/password/reset/([^/\s]+)/([^/\s]+)/)")
THROTTLED_EMAILS = [
    "ent.admin@acme.test",
    "acct.admin@acme.test",
    "agent@acme.test",
    UNKNOWN_EMAIL,
]


@pytest.fixture(autouse=True)
def clean_throttle(db):
    """The cache is a real Redis shared across tests: no failure counts in, none out (the
    counters of known addresses are their users': the database says which)."""
    for email in THROTTLED_EMAILS:
        throttle.reset(email, IP)
    yield
    for email in THROTTLED_EMAILS:
        throttle.reset(email, IP)


def _login(client: Client, email: str, password: str, **kwargs):
    return client.post("/login/", {"username": email, "password": password}, **kwargs)


# --- 1. Wrong credentials: one generic message; Argon2 hashes ----------------------------


def test_wrong_password_and_unknown_email_get_the_same_generic_error(personas):
    client = Client()
    wrong = _login(client, personas.ent_admin.email, "not-the-password")
    assert wrong.status_code == 200
    assert wrong.context["form"].non_field_errors() == [INVALID_LOGIN]
    assert INVALID_LOGIN in wrong.content.decode()
    assert 'name="password"' in wrong.content.decode()
    assert "_auth_user_id" not in client.session

    unknown = _login(Client(), UNKNOWN_EMAIL, "not-the-password")
    assert unknown.status_code == 200
    assert unknown.context["form"].non_field_errors() == [INVALID_LOGIN]
    assert unknown.context["form"].errors == wrong.context["form"].errors


def test_sign_ins_and_failed_sign_ins_are_audited_without_the_password(personas, settings):
    settings.LOGIN_FAILURE_LIMIT = 2

    def events():
        return [
            (e.action, e.actor_label, e.enterprise_id, e.details)
            for e in AuditEvent.objects.filter(action__startswith="auth.").order_by("id")
        ]

    _login(Client(), personas.ent_admin.email, "not-the-password")
    _login(Client(), "ENT.ADMIN@acme.test", PASSWORD)
    _login(Client(), UNKNOWN_EMAIL, "hunter2-secret")
    wrong = {"email": personas.ent_admin.email, "reason": "invalid_login"}
    assert events() == [
        ("auth.sign_in_failed", "system", personas.ent_a.pk, wrong),
        ("auth.sign_in", "ent.admin@acme.test", personas.ent_a.pk, {}),
        ("auth.sign_in_failed", "system", None,
         {"email": UNKNOWN_EMAIL, "reason": "invalid_login"}),
    ]  # fmt: skip
    failed = AuditEvent.objects.filter(action="auth.sign_in_failed").order_by("id").first()
    assert failed.ip_address == IP and failed.object_id == str(personas.ent_admin.pk)
    # Locked out: refused before the password is checked, and said so.
    for _ in range(3):
        _login(Client(), personas.agent.email, "not-the-password")
    assert events()[-1][3] == {"email": personas.agent.email, "reason": "locked_out"}
    assert "not-the-password" not in str(events()) and "hunter2" not in str(events())


def test_passwords_are_stored_with_argon2(personas):
    for user in (personas.ent_admin, personas.agent, personas.operator):
        assert user.password.startswith("argon2"), user.email
        assert PASSWORD not in user.password
        assert user.check_password(PASSWORD)


# --- 2. Correct credentials -------------------------------------------------------------


def test_enterprise_admin_signs_in_and_lands_on_the_enterprise(personas):
    client = Client()
    response = _login(client, "ent.admin@acme.test", PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == settings.LOGIN_REDIRECT_URL
    assert client.session["_auth_user_id"] == str(personas.ent_admin.pk)

    landing = client.get(response["Location"], follow=True)
    assert landing.status_code == 200
    assert landing.redirect_chain[-1] == (f"/enterprises/{personas.ent_a.pk}/", 302)
    assert landing.request["PATH_INFO"] == f"/enterprises/{personas.ent_a.pk}/"


def test_login_follows_redirects_to_the_enterprise_page(personas):
    response = _login(Client(), "ent.admin@acme.test", PASSWORD, follow=True)
    assert response.status_code == 200
    assert response.request["PATH_INFO"] == f"/enterprises/{personas.ent_a.pk}/"
    assert personas.ent_a.name in response.content.decode()


def test_email_is_case_insensitive_at_login(personas):
    client = Client()
    response = _login(client, "ENT.ADMIN@ACME.TEST", PASSWORD, follow=True)
    assert response.status_code == 200
    assert response.request["PATH_INFO"] == f"/enterprises/{personas.ent_a.pk}/"
    assert client.session["_auth_user_id"] == str(personas.ent_admin.pk)


# --- 3. Throttling ----------------------------------------------------------------------


def test_lockout_after_repeated_failures_refuses_even_the_right_password(personas):
    email = personas.acct_admin.email
    client = Client()
    for _attempt in range(settings.LOGIN_FAILURE_LIMIT):
        response = _login(client, email, "not-the-password")
        assert response.status_code == 200
        assert INVALID_LOGIN in response.content.decode()
    assert throttle.is_locked_out(email, IP)

    response = _login(client, email, PASSWORD)
    assert response.status_code == 200
    assert LOCKED_OUT in response.content.decode()
    assert INVALID_LOGIN not in response.content.decode()
    assert "_auth_user_id" not in client.session

    # Another spelling of the same address is the same lock.
    response = _login(Client(), email.upper(), PASSWORD)
    assert LOCKED_OUT in response.content.decode()

    throttle.reset(email, IP)
    response = _login(client, email, PASSWORD)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(personas.acct_admin.pk)


def test_a_unicode_spelling_of_the_address_gets_no_fresh_counter(personas):
    """PostgreSQL's UPPER() makes "admın" (dotless ı) "ADMIN": the sign-in finds the same
    user, so the failures must count against that user too, whatever the spelling."""
    email = personas.ent_admin.email  # ent.admin@acme.test
    twisted = email.replace("admin", "admın")
    assert twisted != email and _login(Client(), twisted, PASSWORD).status_code == 302
    for attempt in range(settings.LOGIN_FAILURE_LIMIT):
        spelling = twisted if attempt % 2 else email.upper()
        _login(Client(), spelling, "not-the-password")
    for spelling in (email, twisted, email.upper()):
        response = _login(Client(), spelling, PASSWORD)
        assert LOCKED_OUT in response.content.decode(), spelling
    throttle.reset(email, IP)


def test_unknown_addresses_are_counted_by_one_canonical_form(personas):
    ghost = "ghost@acme.test"
    spellings = ["ghost@acme.test", "GHOST@ACME.TEST", "ｇｈｏｓｔ@acme.test", "Ghost@Acme.Test",
                 "ghost@acme.test"]  # fmt: skip
    for spelling in spellings:
        _login(Client(), spelling, "guess")
    assert throttle.is_locked_out("GHOST@acme.test", None)
    throttle.reset(ghost, IP)


def test_failures_below_the_limit_do_not_lock(personas):
    email = personas.agent.email
    client = Client()
    for _attempt in range(settings.LOGIN_FAILURE_LIMIT - 1):
        _login(client, email, "not-the-password")
    response = _login(client, email, PASSWORD)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(personas.agent.pk)
    # A successful sign-in clears the count for that address: as many failures again
    # still leave the right password working.
    for _attempt in range(settings.LOGIN_FAILURE_LIMIT - 1):
        _login(Client(), email, "not-the-password")
    again = Client()
    response = _login(again, email, PASSWORD)
    assert response.status_code == 302
    assert again.session["_auth_user_id"] == str(personas.agent.pk)


# --- 4. Logout --------------------------------------------------------------------------


def test_logout_is_post_only_and_ends_the_session(personas):
    client = Client()
    assert _login(client, personas.ent_admin.email, PASSWORD).status_code == 302
    assert client.get(f"/enterprises/{personas.ent_a.pk}/").status_code == 200

    assert client.get("/logout/").status_code == 405
    assert client.session["_auth_user_id"] == str(personas.ent_admin.pk)

    response = client.post("/logout/")
    assert response.status_code == 302
    assert response["Location"] == settings.LOGOUT_REDIRECT_URL
    assert "_auth_user_id" not in client.session
    after = client.get(f"/enterprises/{personas.ent_a.pk}/")
    assert after.status_code == 302
    assert after["Location"].startswith("/login/?next=")


# --- 5. Password reset ------------------------------------------------------------------


def test_password_reset_by_email_link_sets_a_new_password(personas, mailoutbox):
    user = personas.agent
    client = Client()
    response = client.post("/password/reset/", {"email": user.email})
    assert response.status_code == 302
    assert response["Location"] == "/password/reset/sent/"
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == [user.email]
    match = RESET_LINK.search(message.body)
    assert match, message.body
    link = match.group(1)

    opened = client.get(link)
    assert opened.status_code == 302
    set_password_url = opened["Location"]
    assert set_password_url.endswith("/set-password/")

    form = client.get(set_password_url)
    assert form.status_code == 200
    assert form.context["validlink"] is True

    done = client.post(
        set_password_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    assert done.status_code == 302
    assert done["Location"] == "/password/reset/complete/"
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert not user.check_password(PASSWORD)
    assert user.password.startswith("argon2")

    # The link is single-use.
    reused = Client().get(link, follow=True)
    assert reused.context["validlink"] is False
    assert "This reset link is invalid or has already been used." in reused.content.decode()

    # And the new password signs in.
    fresh = Client()
    assert _login(fresh, user.email, NEW_PASSWORD).status_code == 302
    assert fresh.session["_auth_user_id"] == str(user.pk)


def test_password_reset_for_unknown_email_looks_the_same_and_sends_nothing(personas, mailoutbox):
    known = Client().post("/password/reset/", {"email": personas.agent.email}, follow=True)
    mailoutbox.clear()
    unknown = Client().post("/password/reset/", {"email": UNKNOWN_EMAIL}, follow=True)
    assert unknown.status_code == 200
    assert unknown.redirect_chain == [("/password/reset/sent/", 302)]
    assert unknown.redirect_chain == known.redirect_chain
    assert "If an account exists for that address" in unknown.content.decode()
    assert len(mailoutbox) == 0


def test_reset_links_come_from_portal_base_url_not_the_host_header(personas, mailoutbox, settings):
    settings.PORTAL_BASE_URL = "https://portal.example.com"
    settings.ALLOWED_HOSTS = ["*"]
    Client().post("/password/reset/", {"email": personas.agent.email}, HTTP_HOST="evil.test")
    body = mailoutbox[0].body
    assert "https://portal.example.com/password/reset/" in body
    assert "evil.test" not in body


def test_reset_requests_are_limited_per_address_and_per_client(personas, mailoutbox, settings):
    settings.PASSWORD_RESET_EMAIL_LIMIT = 2
    settings.PASSWORD_RESET_IP_LIMIT = 4
    for _ in range(3):
        answer = Client().post("/password/reset/", {"email": personas.agent.email}, follow=True)
        assert answer.redirect_chain == [("/password/reset/sent/", 302)]
    # The third looked the same and sent nothing: an address gets at most 2 an hour.
    assert len(mailoutbox) == 2
    # Another address from the same client: its first goes out, then the client's limit.
    Client().post("/password/reset/", {"email": personas.acct_admin.email})
    assert len(mailoutbox) == 3
    refused = Client().post("/password/reset/", {"email": personas.ent_admin.email})
    assert refused.status_code == 200
    assert "Too many password reset requests from your address" in refused.content.decode()
    assert len(mailoutbox) == 3
    # From another client (behind the trusted proxy), the address may ask again.
    settings.TRUSTED_PROXY_COUNT = 1
    other = Client(HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert other.post("/password/reset/", {"email": personas.ent_admin.email}).status_code == 302
    assert len(mailoutbox) == 4
    throttle.reset(personas.ent_admin.email, "198.51.100.7")


@pytest.mark.parametrize(
    ("proxies", "forwarded", "seen"),
    [
        (0, "203.0.113.9", IP),  # no proxy: the header is the client's own claim
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "10.9.9.9, 203.0.113.9", "203.0.113.9"),  # a spoofed entry on the left
        (2, "10.9.9.9, 203.0.113.9, 192.0.2.1", "203.0.113.9"),
        (2, "203.0.113.9", IP),  # shorter than the proxies: not through them
        (1, "not-an-address", IP),
        (1, "2001:DB8::1", "2001:db8::1"),
    ],
)
def test_the_client_address_behind_trusted_proxies_is_used_by_audit_and_throttle(
    personas, settings, proxies, forwarded, seen
):
    settings.TRUSTED_PROXY_COUNT = proxies
    settings.LOGIN_FAILURE_LIMIT = 1  # the address's own limit: 4 failures
    client = Client(HTTP_X_FORWARDED_FOR=forwarded)
    for _ in range(4):
        _login(client, UNKNOWN_EMAIL + str(_), "not-the-password")
    event = AuditEvent.objects.filter(action="auth.sign_in_failed").first()
    assert event.ip_address == seen
    # That address is now locked out; with a proxy, another client behind it is not.
    assert LOCKED_OUT in _login(client, personas.agent.email, PASSWORD).content.decode()
    if seen != IP:
        elsewhere = Client(HTTP_X_FORWARDED_FOR="198.51.100.99")
        assert _login(elsewhere, personas.agent.email, PASSWORD).status_code == 302
    for n in range(4):
        throttle.reset(UNKNOWN_EMAIL + str(n), seen)
    throttle.reset(personas.agent.email, "198.51.100.99")


def test_password_reset_lifts_a_lockout(personas, mailoutbox):
    user = personas.ent_admin
    for _attempt in range(settings.LOGIN_FAILURE_LIMIT):
        _login(Client(), user.email, "not-the-password")
    client = Client()
    client.post("/password/reset/", {"email": user.email})
    link = RESET_LINK.search(mailoutbox[0].body).group(1)
    set_password_url = client.get(link)["Location"]
    client.post(set_password_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)

    fresh = Client()
    response = _login(fresh, user.email, NEW_PASSWORD)
    assert LOCKED_OUT not in response.content.decode()
    assert fresh.session.get("_auth_user_id") == str(user.pk)


# --- 6. Password change -----------------------------------------------------------------


def test_password_change_with_the_right_old_password(personas):
    user = personas.acct_admin
    client = Client()
    client.force_login(user)
    response = client.post(
        "/password/change/",
        {
            "old_password": PASSWORD,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302
    assert response["Location"] == "/password/change/done/"
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert not user.check_password(PASSWORD)
    # The session survives its own password change.
    assert client.get("/password/change/done/").status_code == 200


def test_password_change_with_a_wrong_old_password_keeps_the_old_one(personas):
    user = personas.acct_admin
    client = Client()
    client.force_login(user)
    response = client.post(
        "/password/change/",
        {
            "old_password": "not-the-password",
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )
    assert response.status_code == 200
    assert "old_password" in response.context["form"].errors
    assert "Your old password was entered incorrectly." in response.content.decode()
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert not user.check_password(NEW_PASSWORD)


# --- 7. CSRF ----------------------------------------------------------------------------


def test_login_enforces_csrf(personas):
    client = Client(enforce_csrf_checks=True)
    response = _login(client, personas.ent_admin.email, PASSWORD)
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session

    # With the token from the form, the same POST signs in.
    client.get("/login/")
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    response = client.post(
        "/login/",
        {"username": personas.ent_admin.email, "password": PASSWORD, "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(personas.ent_admin.pk)
