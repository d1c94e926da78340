"""Template helpers of the Device Blocking pages."""

from django import template

from devices.blocking import saved_by as _saved_by

register = template.Library()


@register.filter
def saved_by(setting) -> str:
    return _saved_by(setting)
