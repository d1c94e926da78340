"""Small things many tests share: a signed-in client, the dialer run in the test's own
process, a WAV tone, an HTTP receiver for webhooks."""

from __future__ import annotations

import array
import http.server
import io
import math
import threading
import time
import wave

from django.db import connection
from django.test import Client
from django_tenants.utils import tenant_context

from accounts.access import accounts_for_user
from accounts.models import Account, Role
from campaigns import dialer
from campaigns.models import DialState
from devices.models import ActiveSubCampaign, Attempt, DeviceSetting
from tests.conftest import Personas


def client_for(personas: Personas, name: str, *, signed_in: bool = True) -> Client:
    """A client logged in as the persona. An enterprise admin has also signed in (by POST,
    audited) to every account of their enterprise, unless ``signed_in=False``."""
    client = Client()
    user = personas.user(name)
    if user is not None:
        client.force_login(user)
        if signed_in:
            sign_in_to_accounts(client, user)
    return client


def sign_in_to_accounts(client: Client, user) -> None:
    """Signs the client in to every account the user enters as an enterprise admin."""
    for access in accounts_for_user(user):
        if access.role == Role.ENTERPRISE_ADMIN:
            response = client.post(f"/accounts/{access.account.pk}/sign-in/")
            assert response.status_code == 302, response


def run_dialer(account, sub, *, seconds: float = 60, until=None) -> dict[str, Attempt]:
    """What beat and the worker would do, here: the dispatcher's ticks and the attempt
    tasks, until every contact has an outcome (or ``until(rows)`` holds; a call's outcome
    comes from its call engine, a text's report from its carrier). The rows by device."""
    performed: set[tuple[int, str]] = set()
    deadline = time.monotonic() + seconds
    while True:
        with tenant_context(account):
            dialer.dispatch_sub_campaign(sub.pk)
            for state in DialState.objects.filter(sub_campaign=sub, status="dialing"):
                item = (state.pk, str(state.claim_token))
                if item not in performed:
                    performed.add(item)
                    dialer.perform_attempt(*item)
            left = DialState.objects.filter(sub_campaign=sub).exclude(status="done").count()
        rows = {
            row.device_key: row
            for row in Attempt.objects.filter(
                account_id=account.pk, sub_campaign_id=sub.pk, direction="outbound"
            )
        }
        if until(rows) if until else not left:
            return rows
        if time.monotonic() > deadline:
            # A caller with its own condition judges what it got; without one, every
            # contact must have settled: say which did not, rather than return less.
            assert until is not None, f"{left} contact(s) still unsettled after {seconds} s"
            return rows
        time.sleep(0.2)


def retire_enterprise(enterprise, accounts) -> None:
    """After a test that committed a fresh enterprise: its accounts off the dispatcher and
    every sweep that loops over accounts, its ledger rows and device settings removed."""
    ids = [account.pk for account in accounts]
    ActiveSubCampaign.objects.filter(account_id__in=ids).delete()
    Account.objects.filter(pk__in=ids).update(is_active=False)
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM public.devices_attempt WHERE enterprise_id = %s", [enterprise.pk]
        )
    DeviceSetting.objects.filter(enterprise=enterprise).delete()


def wait_for(check, seconds: float = 20):
    """``check()``'s first truthy answer within ``seconds`` (else its last answer)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    return check()


def tone_wav(seconds: float = 2.0, hertz: int = 440) -> bytes:
    """A loud 8 kHz, 16-bit mono tone: a voice message that is easy to hear back."""
    out = io.BytesIO()
    with wave.open(out, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        frames = (int(12000 * math.sin(2 * math.pi * hertz * n / 8000))
                  for n in range(int(seconds * 8000)))  # fmt: skip
        audio.writeframes(array.array("h", frames).tobytes())
    return out.getvalue()


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that keeps what it is sent and answers ``codes`` in
    turn (then 200)."""

    def __init__(self, path: str = "/hooks"):
        self.received: list[dict] = []
        self.codes: list[int] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.received.append({"headers": dict(self.headers), "body": body})
                self.send_response(owner.codes.pop(0) if owner.codes else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
