"""The embedded servers behind `make run` / `make test` start, answer and stop."""

import socket

import psycopg
import redis

from enterprise_portal.launcher import embedded_postgres, embedded_redis


def test_embedded_redis_starts_answers_and_stops(tmp_path):
    with embedded_redis(tmp_path / "redis", persistent=False) as url:
        client = redis.Redis.from_url(url)
        assert client.ping() is True
        client.set("probe", "1")
        assert client.get("probe") == b"1"
        port = client.connection_pool.connection_kwargs["port"]
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "Redis still listening after stop"


def test_embedded_postgres_initialises_creates_the_database_and_stops(tmp_path):
    pgdata = tmp_path / "pgdata"
    with embedded_postgres(pgdata, database="probe") as url:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("probe",)
            assert conn.execute("SHOW server_version_num").fetchone()[0] >= "150000"
        assert (pgdata / "postmaster.pid").exists()
    assert (pgdata / "PG_VERSION").exists()
    assert not (pgdata / "postmaster.pid").exists(), "PostgreSQL still running after stop"
