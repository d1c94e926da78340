"""Template helpers of the Device Blocking pages."""

from django import template

from devices.blocking import saved_by as _saved_by
from devices.models import Disposition
from devices.policy import rule_label

register = template.Library()


@register.filter
def saved_by(setting) -> str:
    return _saved_by(setting)


@register.filter
def rule_words(rule: str) -> str:
    """The rule that stopped an attempt, in the reader's language (the code stays in the
    data): "Device block", not device_block."""
    return rule_label(rule) if rule else ""


@register.filter
def result_words(disposition: str) -> str:
    """A result in the reader's language ("Voicemail", "Entregue"), not VOICEMAIL."""
    try:
        return str(Disposition(disposition).label) if disposition else ""
    except ValueError:
        return disposition  # a result of an older release: as stored
