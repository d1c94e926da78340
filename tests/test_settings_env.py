"""Settings helpers read the environment and fail loudly, naming the variable."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from enterprise_portal import env


def test_typed_helpers_read_values(monkeypatch):
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.setenv("X_LIST", "a.example, b.example,,")
    assert env.env_bool("X_BOOL") is True
    assert env.env_int("X_INT", minimum=1) == 42
    assert env.env_list("X_LIST") == ["a.example", "b.example"]
    assert env.env_str("X_MISSING", "fallback") == "fallback"


@pytest.mark.parametrize(
    ("name", "value", "call", "message"),
    [
        ("X_BOOL", "maybe", lambda: env.env_bool("X_BOOL"), "X_BOOL='maybe' is not a boolean"),
        ("X_INT", "4O", lambda: env.env_int("X_INT"), "X_INT='4O' is not an integer"),
        ("X_INT", "0", lambda: env.env_int("X_INT", minimum=1), "X_INT=0 must be at least 1"),
        ("X_LVL", "LOUD", lambda: env.env_choice("X_LVL", ("INFO",)), "must be one of INFO"),
    ],
)
def test_bad_values_stop_with_the_variable_name(monkeypatch, name, value, call, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        call()


def test_required_variable_missing(monkeypatch):
    monkeypatch.delenv("X_REQUIRED", raising=False)
    with pytest.raises(ImproperlyConfigured, match="X_REQUIRED is required"):
        env.env_str("X_REQUIRED")


def test_database_urls_tcp_and_socket():
    tcp = env.parse_database_url("DATABASE_URL", "postgresql://u:p%40ss@db.internal:6432/portal")
    assert (tcp.user, tcp.password, tcp.host, tcp.port, tcp.name) == (
        "u", "p@ss", "db.internal", "6432", "portal",
    )  # fmt: skip
    socket = env.parse_database_url(
        "DATABASE_URL", "postgresql://postgres:@/portal?host=/var/run/pg&sslmode=disable"
    )
    assert socket.host == "/var/run/pg"
    assert socket.options == {"sslmode": "disable"}
    with pytest.raises(ImproperlyConfigured, match="postgresql://"):
        env.parse_database_url("DATABASE_URL", "mysql://x/y")
    with pytest.raises(ImproperlyConfigured, match="no database name"):
        env.parse_database_url("DATABASE_URL", "postgresql://localhost/")


def test_cache_uses_another_redis_database():
    assert env.redis_url_with_db("redis://127.0.0.1:6379/0", 1) == "redis://127.0.0.1:6379/1"
    with pytest.raises(ImproperlyConfigured):
        env.redis_url_with_db("http://nope", 1)
