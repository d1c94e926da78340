"""Registry warnings for account pages (the sub-campaign page's banner)."""

from __future__ import annotations

from django import template
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import DialState
from devices.models import Registry
from devices.policy import RULE_REGISTRY_STALE
from devices.registry.freshness import TELEMARKETING, is_stale

register = template.Library()


def _country(code: str) -> str:
    return {"BR": _("Brazil"), "US": _("the United States")}.get(code, code)


@register.simple_tag(takes_context=True)
def registry_warnings(context, sub) -> list[dict]:
    """What a telemarketing sub-campaign's admins must know about the national registries:
    a stale one holds its dialling (in the enterprise's country, or where its attempts are
    waiting for one); one never imported leaves its country unscreened."""
    if sub is None or sub.purpose != TELEMARKETING:
        return []
    request = context.get("request")
    enterprise = getattr(request, "enterprise", None)
    region = enterprise.default_region if enterprise is not None else ""
    now = timezone.now()
    warnings = []
    for registry in Registry.objects.all():
        values = {
            "name": registry.name,
            "country": _country(registry.country),
            "days": registry.max_age_days,
        }
        if is_stale(registry, now):
            held = registry.country == region or (
                DialState.objects.filter(
                    sub_campaign=sub,
                    status=DialState.Status.PENDING,
                    last_rule=RULE_REGISTRY_STALE,
                    last_rule_source=registry.code,
                ).exists()
            )
            if held:
                values["date"] = timezone.localtime(registry.last_imported_at).date().isoformat()
                warnings.append(
                    {
                        "level": "danger",
                        "text": _(
                            "Telemarketing dialling is held: %(name)s was last imported on "
                            "%(date)s, more than %(days)s days ago. Numbers in %(country)s "
                            "are not called until a platform operator imports a current copy."
                        )
                        % values,
                    }
                )
        elif registry.last_imported_at is None and registry.country == region:
            warnings.append(
                {
                    "level": "warning",
                    "text": _(
                        "%(name)s has never been imported: telemarketing to numbers in "
                        "%(country)s is not screened against it."
                    )
                    % values,
                }
            )
    return warnings
