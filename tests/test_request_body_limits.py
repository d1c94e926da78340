"""Request bodies are capped before anything reads them (issue 13, item 3): an upload
larger than its page accepts is refused with its message before the body is spooled to
disk, every other page takes only a form's worth, and a body without a length is read
up to the cap and no further."""

from __future__ import annotations

import io
import json
import socket
import time
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.test import Client

from tests.helpers import client_for

HUNDRED_TEN_MB = 110 * 1024 * 1024


def _post_unread(base_url: str, path: str, declared: int, sent: int = 256 * 1024) -> bytes:
    """Declares ``declared`` bytes, sends only ``sent`` of them, and waits for the answer:
    a server that reads the body before answering would wait for the rest (and time out)."""
    url = urlparse(base_url)
    with socket.create_connection((url.hostname, url.port), timeout=20) as sock:
        sock.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: localhost\r\n"
                "Content-Type: multipart/form-data; boundary=XyZ\r\n"
                f"Content-Length: {declared}\r\nConnection: close\r\n\r\n"
            ).encode()
            + b"--XyZ\r\n"
            + b"x" * sent
        )
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer:
                break
        assert time.monotonic() - started < 15
        return answer


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/a/acme-one/lists/", "/a/acme-one/lists/"),
        ("/a/acme-one/blacklists/1/", "/a/acme-one/blacklists/1/#imports"),
        ("/enterprises/{ent}/devices/blocking/import/",
         "/enterprises/{ent}/devices/blocking/import/"),
    ],
)  # fmt: skip
def test_an_upload_over_its_limit_is_refused_before_the_body_is_read(
    committed, live_server_url, path, location
):
    ent = _acme_id()
    answer = _post_unread(live_server_url, path.format(ent=ent), HUNDRED_TEN_MB)
    head = answer.split(b"\r\n\r\n")[0].decode()
    assert head.startswith("HTTP/1.1 303"), head
    assert f"Location: {location.format(ent=ent)}" in head


def test_any_other_page_takes_a_form_and_no_more(committed, live_server_url):
    answer = _post_unread(live_server_url, "/login/", 20 * 1024 * 1024)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def _acme_id() -> int:
    from accounts.models import Enterprise

    return Enterprise.objects.get(name="Acme Test").pk


def test_the_refusal_says_why_on_the_upload_page(personas):
    client = client_for(personas, "acct_admin")
    response = client.post(
        "/a/acme-one/lists/", data=b"", content_type="multipart/form-data; boundary=XyZ",
        CONTENT_LENGTH=str(HUNDRED_TEN_MB),
    )  # fmt: skip
    assert (response.status_code, response["Location"]) == (303, "/a/acme-one/lists/")
    page = client.get("/a/acme-one/lists/").content.decode()
    assert f"The upload is larger than {settings.MAX_UPLOAD_MB} MB." in page


def test_the_api_answers_a_problem(personas):
    response = Client().post(
        "/api/v1/devices/bulk", data=b"{}", content_type="application/json",
        CONTENT_LENGTH=str(50 * 1024 * 1024),
    )  # fmt: skip
    assert response.status_code == 413
    assert response["Content-Type"] == "application/problem+json"
    assert json.loads(response.content)["status"] == 413


@pytest.mark.parametrize("length", ["12abc", "²", "-5", "9" * 40])
def test_a_length_that_is_not_a_number_is_a_400(personas, length):
    response = Client().post("/login/", data=b"", content_type="text/plain", CONTENT_LENGTH=length)
    assert response.status_code == 400


def _chunked(client: Client, path: str, body: bytes, content_type: str):
    return client.post(
        path, data=b"", content_type=content_type,
        **{"CONTENT_LENGTH": "", "CONTENT_TYPE": content_type,
           "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(body)},
    )  # fmt: skip


def test_a_body_without_a_length_is_read_up_to_the_cap(personas):
    form = b"username=agent%40acme.test&password=wrong"
    answer = _chunked(Client(), "/login/", form, "application/x-www-form-urlencoded")
    # Read whole and used: the sign-in form got its fields and says the password is wrong.
    assert answer.status_code == 200
    assert "The email address or password is not correct." in answer.content.decode()

    too_much = b"username=" + b"a" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 128 * 1024)
    assert (
        _chunked(Client(), "/login/", too_much, "application/x-www-form-urlencoded").status_code
        == 413
    )


def test_one_setting_caps_every_body(personas, settings):
    settings.MAX_REQUEST_BODY_BYTES = 1024 * 1024  # below the contact list's own 100 MB
    client = client_for(personas, "acct_admin")
    response = client.post(
        "/a/acme-one/lists/", data=b"", content_type="multipart/form-data; boundary=XyZ",
        CONTENT_LENGTH=str(2 * 1024 * 1024),
    )  # fmt: skip
    assert response.status_code == 303
