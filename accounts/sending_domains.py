"""Sending domains: the domains an enterprise's email sub-campaigns may send from.

An account admin writes a sub-campaign's From address; which domains the enterprise sends
as is an enterprise admin's decision. The address's domain must be on the enterprise's
list, exactly: a subdomain is another sender (with its own SPF, DKIM and DMARC records,
often delegated to a mailing vendor or another business unit), so it is listed on its own
rather than allowed by its parent. Names are compared in their IDNA (UTS #46) ASCII form,
lower case, so ``Exämple.COM`` and ``xn--exmple-cua.com`` are the same domain.

Checked when a sub-campaign is saved or started (``campaigns.models.SubCampaign.clean``)
and again by the dialer just before each email is sent (``campaigns.dialer``): removing a
domain stops that sending at once.
"""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from email_validator import EmailNotValidError, validate_email

from accounts.actions import audit
from accounts.models import Enterprise, SendingDomain

NAMED_IN_MESSAGES = 10  # allowed domains a message names; more are "…"

# email-validator explains a bad domain as part of an address; said of a domain alone.
_REWORDED = (
    (r"An email address cannot have an? (\w+) immediately after the @-sign",
     r"A domain cannot start with a \1"),
    (r" immediately after the @-sign or after a period", " at the start of a label"),
    (r"After the @-sign, periods cannot be separated by so many characters",
     "A label between periods has at most 63 characters"),
    (r"The part after the @-sign", "The domain"),
    (r"(An|The) email address", "The domain"),
    (r" after the @-sign", ""),
)  # fmt: skip


class DomainError(ValueError):
    """A domain or an address that cannot be used to send; the message says why."""


def normalise_domain(text: str) -> tuple[str, str]:
    """(ASCII form, Unicode form) of a domain name people typed; DomainError if it is not
    a domain that can send email: one label, an IP address, characters a host name may not
    have, reserved names (.test, .local, .localhost, .invalid, .onion, .arpa)."""
    value = (text or "").strip().rstrip(".")
    if not value:
        raise DomainError(_("Enter a domain name, e.g. example.com."))
    if "@" in value:
        raise DomainError(_("Enter the domain only (example.com), without a name and @."))
    if len(value) > 253:
        raise DomainError(_("A domain name has at most 253 characters."))
    try:
        # The same library and rules as every email address the portal stores.
        info = validate_email(f"postmaster@{value}", check_deliverability=False)
    except EmailNotValidError as exc:
        reason = str(exc)
        for said, meant in _REWORDED:
            reason = re.sub(said, meant, reason)
        message = _("“%(value)s” is not a domain name email can be sent from (e.g. example.com).")
        message %= {"value": value}
        raise DomainError(message if "@" in reason else f"{message} {reason}") from None
    return info.ascii_domain.lower(), info.domain.lower()


def address_domain(address: str) -> str:
    """The ASCII domain of a From address (name@domain); DomainError if it is not one."""
    try:
        info = validate_email((address or "").strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise DomainError(
            _("Enter the From address as name@domain: %(reason)s") % {"reason": str(exc)}
        ) from None
    return info.ascii_domain.lower()


def allowed_domains(enterprise_id: int) -> list[SendingDomain]:
    return list(SendingDomain.objects.filter(enterprise_id=enterprise_id).order_by("domain"))


def sender_problem(enterprise_id: int, address: str) -> str:
    """Why the enterprise may not send from this address ("" if it may), in words that
    name the allowed domains. One query."""
    try:
        domain = address_domain(address)
    except DomainError as exc:
        return str(exc)
    allowed = allowed_domains(enterprise_id)
    if any(d.domain == domain for d in allowed):
        return ""
    if not allowed:
        return _(
            "This enterprise has no sending domains yet, so no email can be sent. An "
            "enterprise admin adds them on the enterprise's Sending domains page."
        )
    names = ", ".join(d.display_name for d in allowed[:NAMED_IN_MESSAGES])
    if len(allowed) > NAMED_IN_MESSAGES:
        names += ", …"
    return _(
        "%(domain)s is not one of this enterprise's sending domains (%(allowed)s). Use an "
        "address at one of them, or ask an enterprise admin to add %(domain)s."
    ) % {"domain": domain, "allowed": names}


# --- actions -----------------------------------------------------------------------------


@transaction.atomic(durable=True)
def do_add_sending_domain(
    enterprise: Enterprise, text: str, *, actor=None, request=None
) -> SendingDomain:
    """Adds a domain to the enterprise's list; DomainError if it is not a domain or is
    listed already (two admins adding it at once: one wins, the other is told)."""
    ascii_name, display = normalise_domain(text)
    listed = _("%(domain)s is already on the list.") % {"domain": display}
    if SendingDomain.objects.filter(enterprise=enterprise, domain=ascii_name).exists():
        raise DomainError(listed)
    try:
        with transaction.atomic():
            domain = SendingDomain.objects.create(
                enterprise=enterprise, domain=ascii_name, display_name=display,
                created_by_label=getattr(actor, "email", "")[:254],
            )  # fmt: skip
    except IntegrityError:
        raise DomainError(listed) from None
    audit(actor, "sending_domain.add", enterprise=enterprise, obj=domain,
          details={"domain": ascii_name}, request=request)  # fmt: skip
    return domain


@transaction.atomic(durable=True)
def do_remove_sending_domain(domain: SendingDomain, *, actor=None, request=None) -> None:
    """Email sub-campaigns sending from it stop at once: the dialer checks before each
    message, and no sub-campaign can be saved or started with it."""
    audit(actor, "sending_domain.remove", enterprise=domain.enterprise, obj=domain,
          details={"domain": domain.domain}, request=request)  # fmt: skip
    domain.delete()
