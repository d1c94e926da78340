"""Per-request enterprise context (its time zone, and its language until the user picks
one), requests refused before routing, request bodies capped before anything reads them,
and the 503 answered while the database is down."""

import copy
import os
import sys
import tempfile
import threading
from collections import OrderedDict

from django.conf import settings
from django.contrib import messages
from django.core.handlers.wsgi import LimitedStream
from django.db import connection
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import clear_url_caches, set_urlconf
from django.utils import timezone, translation
from django.views import defaults
from django_tenants.middleware.subfolder import TenantSubfolderMiddleware
from django_tenants.urlresolvers import get_subfolder_urlconf
from django_tenants.utils import (
    get_public_schema_name,
    get_subfolder_prefix,
    get_tenant_domain_model,
    get_tenant_model,
)

from accounts.access import enterprises_for_user
from accounts.outages import DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS
from api.problems import NUL_DETAIL, problem_response, unavailable_response
from devices import uploads


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


class AccountRoutingMiddleware(TenantSubfolderMiddleware):
    """django-tenants' subfolder routing (``/a/<account>/…`` to the account's schema,
    everything else to the public one), without rebuilding the URL resolvers on every
    request. django-tenants makes a new URLconf module for each request to an account and
    then clears every cached resolver, so each request parsed the whole URLconf again
    (about 4 ms of an API request; bench/README.md). Here each account's URLconf module is
    kept (the most recent ``URLCONF_CACHE_SIZE``), so its resolver stays cached with it,
    and the public URLconf's resolver is never cleared. The account is still read on every
    request (it may have been deactivated); the API's public tenant row is kept per
    process, since every API request reads its key from the database anyway."""

    URLCONF_CACHE_SIZE = 256

    def __init__(self, get_response):
        super().__init__(get_response)
        self.prefix = f"/{get_subfolder_prefix()}/"
        self.urlconfs: OrderedDict[str, object] = OrderedDict()
        self.public_tenant = None
        self.lock = threading.Lock()  # gunicorn's threaded workers share the cache

    def process_request(self, request):
        if hasattr(request, "tenant"):
            return None
        connection.set_schema_to_public()
        if not request.path.startswith(self.prefix):
            tenant = self._public_tenant(cached=request.path.startswith("/api/"))
            self.setup_url_routing(request, force_public=True)
            urlconf = None
        else:
            subfolder = request.path[len(self.prefix) :].split("/", 1)[0]
            domain_model = get_tenant_domain_model()
            try:
                tenant = self.get_tenant(domain_model=domain_model, hostname=subfolder)
            except domain_model.DoesNotExist:
                return self.no_tenant_found(request, subfolder)
            tenant.domain_subfolder = subfolder
            urlconf = self._urlconf(tenant)
        tenant.domain_url = self.hostname_from_request(request)
        request.tenant = tenant
        connection.set_tenant(tenant)
        if urlconf is not None:
            request.urlconf = urlconf
            set_urlconf(urlconf)
        return None

    def _public_tenant(self, *, cached: bool):
        if cached and self.public_tenant is not None:
            return copy.copy(self.public_tenant)
        model = get_tenant_model()
        try:
            tenant = model.objects.get(schema_name=get_public_schema_name())
        except model.DoesNotExist:
            raise self.TENANT_NOT_FOUND_EXCEPTION("Unable to find public tenant") from None
        self.public_tenant = copy.copy(tenant)
        return tenant

    def _urlconf(self, tenant):
        subfolder = tenant.domain_subfolder
        with self.lock:
            urlconf = self.urlconfs.get(subfolder)
            if urlconf is not None:
                self.urlconfs.move_to_end(subfolder)
                return urlconf
            if len(self.urlconfs) >= self.URLCONF_CACHE_SIZE:
                # Resolvers are cached by module: forgetting modules means clearing them all.
                self.urlconfs.clear()
                clear_url_caches()
            urlconf = self.urlconfs[subfolder] = get_subfolder_urlconf(tenant)
            return urlconf


class RequestBodyLimitMiddleware:
    """Caps every request body before anything reads it (listed before the CSRF check,
    which reads a POST's fields). A view that takes a file declares its limit
    (devices.uploads.accepts_upload); every other view takes the form limit,
    DATA_UPLOAD_MAX_MEMORY_SIZE; neither beyond MAX_REQUEST_BODY_MB. A declared
    CONTENT_LENGTH over the limit is refused unread: an upload with its message, back on
    its page; anything else 413. A body without a length (chunked) is read up to the
    limit and cut there: more than that is refused the same way."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        policy = getattr(view_func, "upload_policy", None)
        limit = (
            policy.limit_bytes() + uploads.MULTIPART_OVERHEAD
            if policy is not None
            else settings.DATA_UPLOAD_MAX_MEMORY_SIZE + FORM_OVERHEAD
        )
        limit = min(limit, settings.MAX_REQUEST_BODY_BYTES)
        declared = request.META.get("CONTENT_LENGTH") or ""
        if declared:
            if not (declared.isascii() and declared.isdigit() and len(declared) <= 18):
                return _bad_length(request)
            if int(declared) > limit:
                return _too_large(request, policy, view_kwargs)
            return None
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            body = _read_capped(request.META["wsgi.input"], limit)
            if body is None:
                return _too_large(request, policy, view_kwargs)
            size = body.seek(0, os.SEEK_END)
            body.seek(0)
            request.META["CONTENT_LENGTH"] = str(size)
            request._stream = LimitedStream(body, size)
        return None


FORM_OVERHEAD = 64 * 1024


def _read_capped(stream, limit: int):
    """The body, spooled (in memory while small), or None once it passes ``limit``."""
    # Handed to the request as its body (closed with it), hence no context manager.
    spool = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE)  # noqa: SIM115
    total = 0
    while chunk := stream.read(64 * 1024):
        total += len(chunk)
        if total > limit:
            spool.close()
            return None
        spool.write(chunk)
    return spool


def _bad_length(request):
    detail = "Content-Length is not a number of bytes."
    if request.path.startswith("/api/"):
        return problem_response(request, 400, "bad-request", detail)
    return HttpResponseBadRequest(detail, content_type="text/plain; charset=utf-8")


def _too_large(request, policy, view_kwargs):
    if request.path.startswith("/api/"):
        return problem_response(
            request, 413, "too-large",
            f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
        )  # fmt: skip
    if policy is not None:
        messages.error(request, policy.message())
        back = policy.back(request, **view_kwargs) if policy.back else request.get_full_path()
        return HttpResponseRedirect(back, status=303)
    page = render_to_string("413.html", request=request)
    return HttpResponse(page, status=413)


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
