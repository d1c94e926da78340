"""Device keys: phone numbers and email addresses normalised once, at the edge.

Phones become E.164 (``+17135554101``) with the enterprise's default region deciding
numbers written without a country code; emails become their normalised, lower-cased
form. Every table stores these keys; nothing normalises at read time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from django.utils.translation import gettext as _
from email_validator import EmailNotValidError, validate_email
from phonenumbers import timezone as phone_timezone

PHONE = "phone"
EMAIL = "email"
EXTENSION = "extension"

_PHONE_CHARS = re.compile(r"^[\d\s().+\-/]+$")
_EXTENSION = re.compile(r"^\d{2,8}$")
MAX_INPUT = 254


class DeviceKeyError(ValueError):
    """Input that is not a usable phone number or email address; the message says why."""


@dataclass(frozen=True)
class DeviceKey:
    kind: str
    key: str

    def __str__(self) -> str:
        return self.key


def phone_format_hint(region: str) -> str:
    if region == "BR":
        return _("Enter the area code and number, e.g. (11) 91234-5678, or +55 11 91234-5678.")
    if region == "US":
        return _("Enter all 10 digits, e.g. 713 555 4101; outside the US include the country "
                 "code, e.g. +44 20 7946 0958.")  # fmt: skip
    return _("Include the country code, e.g. +44 20 7946 0958.")


def normalize_phone(value: str, region: str) -> str:
    """E.164 for a phone number, or DeviceKeyError saying what format is expected."""
    text = (value or "").strip()
    if not text:
        raise DeviceKeyError(_("Enter a phone number."))
    if len(text) > 40 or not _PHONE_CHARS.match(text):
        raise DeviceKeyError(
            _("“%(value)s” is not a phone number. %(hint)s")
            % {"value": text[:40], "hint": phone_format_hint(region)}
        )
    if text.startswith("00"):  # international prefix written out
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException:
        raise DeviceKeyError(
            _("“%(value)s” is not a phone number. %(hint)s")
            % {"value": text, "hint": phone_format_hint(region)}
        ) from None
    if not phonenumbers.is_valid_number(number):
        reason = phonenumbers.is_possible_number_with_reason(number)
        if reason == phonenumbers.ValidationResult.TOO_SHORT:
            message = _("“%(value)s” is too short to be a complete phone number. %(hint)s")
        elif reason == phonenumbers.ValidationResult.TOO_LONG:
            message = _("“%(value)s” has too many digits. %(hint)s")
        else:
            message = _("“%(value)s” is not a valid phone number. %(hint)s")
        raise DeviceKeyError(message % {"value": text, "hint": phone_format_hint(region)})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(value: str) -> str:
    text = (value or "").strip()
    if not text:
        raise DeviceKeyError(_("Enter an email address."))
    if len(text) > MAX_INPUT:
        raise DeviceKeyError(_("That email address is too long."))
    try:
        info = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise DeviceKeyError(
            _("“%(value)s” is not a complete email address (name@domain.com): %(reason)s")
            % {"value": text, "reason": str(exc)}
        ) from None
    # Compared case-insensitively everywhere: stored lower-case.
    return info.normalized.lower()


def normalize_extension(value: str) -> str:
    text = (value or "").strip()
    if not _EXTENSION.match(text):
        raise DeviceKeyError(_("An extension is 2 to 8 digits."))
    return text


def parse_device(value: str, region: str) -> DeviceKey:
    """A phone number or an email address, whichever the input is."""
    text = (value or "").strip()
    if "@" in text:
        return DeviceKey(EMAIL, normalize_email(text))
    return DeviceKey(PHONE, normalize_phone(text, region))


def kind_of_key(key: str) -> str:
    if key.startswith("+"):
        return PHONE
    if "@" in key:
        return EMAIL
    return EXTENSION


def time_zones_for_phone(e164: str) -> tuple[str, ...]:
    """The IANA zones a number may be in (several for non-geographic or ambiguous numbers)."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = phone_timezone.time_zones_for_number(number)
    return tuple(z for z in zones if z != phone_timezone.UNKNOWN_TIMEZONE)


def country_of_phone(e164: str) -> str:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None)) or ""
    except phonenumbers.NumberParseException:
        return ""
