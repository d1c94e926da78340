"""Per-request enterprise context (its time zone, and its language until the user picks
one), requests refused before routing, and the 503 answered while the database is down."""

import sys

from django.conf import settings
from django.http import HttpResponse, HttpResponseBadRequest
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.views import defaults

from accounts.access import enterprises_for_user
from accounts.outages import DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS
from api.problems import NUL_DETAIL, unavailable_response


class EnterpriseContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        timezone.deactivate()  # a thread's previous request must not leak its zone
        try:
            return self.get_response(request)
        finally:
            # Nor its language or zone to whatever else this thread runs next.
            timezone.deactivate()
            translation.deactivate()

    def process_view(self, request, view_func, view_args, view_kwargs):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        known = enterprises_for_user(user, any_role=True)
        tenant = getattr(request, "tenant", None)
        if tenant is not None and not tenant.is_public:
            # Only the user's own enterprise: an outsider's 404 must not hint whose account it is.
            enterprise = next((e for e in known if e.pk == tenant.enterprise_id), None)
        else:
            wanted = view_kwargs.get("enterprise_id")
            enterprise = next((e for e in known if e.pk == wanted), known[0] if known else None)
        if enterprise is None:
            return None
        timezone.activate(enterprise.time_zone)
        if settings.LANGUAGE_COOKIE_NAME not in request.COOKIES:
            translation.activate(enterprise.language)
            request.LANGUAGE_CODE = enterprise.language
        return None


class RefuseNulMiddleware:
    """A path with a NUL character is refused (400, saying so) before the account routing
    looks its account up: PostgreSQL stores no NUL. Pages' forms refuse NUL in their fields
    themselves, with the field's message; the API checks its requests once the key is
    known (api.auth)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path:
            return HttpResponseBadRequest(NUL_DETAIL, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


def server_error(request):
    """``handler500`` of both URLconfs: Django calls it for any exception a view or a
    middleware let through. While PostgreSQL is stopped or restarting, that is a database
    error (the account routing reads the database on every request), and the visitor gets a
    503 that says to come back, with Retry-After, instead of "Something went wrong". The
    API answers the same as a problem (api.problems). Anything else is the 500 page."""
    if isinstance(sys.exc_info()[1], DATABASE_UNAVAILABLE):
        if request.path.startswith("/api/"):
            return unavailable_response(request)
        # Rendered without the request: context processors and the session need the database.
        page = render_to_string("503.html", {"retry_url": request.get_full_path()})
        return HttpResponse(page, status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    return defaults.server_error(request)
