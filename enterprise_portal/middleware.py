"""Per-request enterprise context: its time zone, and its language until the user picks one."""

from django.conf import settings
from django.utils import timezone, translation

from accounts.access import enterprises_for_user


class EnterpriseContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        enterprise = None
        tenant = getattr(request, "tenant", None)
        if tenant is not None and not tenant.is_public:
            enterprise = tenant.enterprise
        elif getattr(request, "user", None) is not None and request.user.is_authenticated:
            wanted = view_kwargs.get("enterprise_id")
            known = enterprises_for_user(request.user, any_role=True)
            enterprise = next((e for e in known if e.pk == wanted), None) or (
                known[0] if known else None
            )
        if enterprise is None:
            timezone.deactivate()
            return None
        timezone.activate(enterprise.time_zone)
        if settings.LANGUAGE_COOKIE_NAME not in request.COOKIES:
            translation.activate(enterprise.language)
            request.LANGUAGE_CODE = enterprise.language
        return None
