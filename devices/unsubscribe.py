"""Email unsubscribe, one click (RFC 8058).

Every campaign email carries ``List-Unsubscribe: <URL>`` and ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click``. The URL holds a signed token naming the enterprise, the
recipient's address and the attempt that sent it: a mail client's one-click POST to it
blocks the address for the whole enterprise (an opt-out, source "Email unsubscribe"); a
GET (a person, or a link scanner) only shows a page asking to confirm.

A token changed by one character is refused (bad signature); a token used once is refused
the second time (its receipt exists), so a replayed request changes nothing again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction

from accounts.actions import audit
from accounts.models import Enterprise
from accounts.urls_helpers import public_path
from devices.models import DeviceSetting, InboundReceipt
from devices.opt_outs import opt_out, opt_out_received

SALT = "devices.unsubscribe"
MAX_AGE = dt.timedelta(days=180)  # mail is read late; older links ask to write in


class BadToken(ValueError):
    """Not one of our links (changed, truncated) or too old."""


@dataclass(frozen=True)
class Unsubscribe:
    enterprise: Enterprise
    email: str
    attempt_id: int

    @property
    def masked_email(self) -> str:
        """j•••@example.com: enough for the person to recognise, not to harvest."""
        name, _, domain = self.email.partition("@")
        return f"{name[:1]}•••@{domain}"


def make_token(enterprise_id: int, email: str, attempt_id: int) -> str:
    return signing.dumps({"e": enterprise_id, "k": email, "a": attempt_id}, salt=SALT)


def unsubscribe_url(enterprise_id: int, email: str, attempt_id: int) -> str:
    token = make_token(enterprise_id, email, attempt_id)
    return settings.PORTAL_BASE_URL + public_path("devices:email_unsubscribe", token)


def read_token(token: str) -> Unsubscribe:
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE)
        enterprise = Enterprise.objects.filter(pk=int(data["e"])).first()
        email, attempt_id = str(data["k"]), int(data["a"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise BadToken(token) from None
    if enterprise is None or "@" not in email:
        raise BadToken(token)
    return Unsubscribe(enterprise, email, attempt_id)


@dataclass(frozen=True)
class Outcome:
    unsubscribe: Unsubscribe
    already_used: bool


def do_unsubscribe(token: str, *, request=None) -> Outcome:
    """Blocks the address the token names, once. BadToken if it is not a valid token."""
    found = read_token(token)
    try:
        with transaction.atomic(durable=True):
            InboundReceipt.objects.create(
                source=InboundReceipt.Source.EMAIL_UNSUBSCRIBE,
                external_id=f"attempt:{found.attempt_id}",
                enterprise_id=found.enterprise.pk,
                device_key=found.email,
            )
            setting = opt_out(
                found.enterprise,
                found.email,
                source=DeviceSetting.Source.EMAIL_UNSUBSCRIBE,
                reason="List-Unsubscribe",
                request=request,
            )
            opt_out_received(found.enterprise, found.email, channel="email",
                             keyword="List-Unsubscribe")  # fmt: skip
            audit(None, "email.unsubscribe", enterprise=found.enterprise, obj=setting,
                  details={"device": found.email, "attempt": found.attempt_id},
                  request=request)  # fmt: skip
    except IntegrityError:  # the receipt exists: this link did its work already
        return Outcome(found, already_used=True)
    return Outcome(found, already_used=False)
