"""Every error the API answers is an RFC 9457 problem: ``application/problem+json`` with
``type``, ``title``, ``status`` and ``detail`` (and ``errors`` for invalid fields)."""

from __future__ import annotations

from django.http import Http404, JsonResponse, RawPostDataException, UnreadablePostError
from ninja.errors import AuthenticationError, HttpError, ValidationError

from accounts.outages import RETRY_AFTER_SECONDS

PROBLEM_TYPE = "https://portal.example/problems/"  # stable identifiers, documented in docs/api.md


class Problem(Exception):
    """Raise to answer a problem: ``Problem(404, "not-found", "No such device setting.")``."""

    def __init__(self, status: int, kind: str, detail: str, *, title: str = "",
                 headers: dict | None = None, **extra):  # fmt: skip
        super().__init__(detail)
        self.status, self.kind, self.detail = status, kind, detail
        self.title = title or TITLES.get(status, "Error")
        self.headers = headers or {}
        self.extra = extra


TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


def problem_response(request, status: int, kind: str, detail: str, *, title: str = "",
                     headers: dict | None = None, **extra) -> JsonResponse:  # fmt: skip
    body = {
        "type": PROBLEM_TYPE + kind,
        "title": title or TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.path if request is not None else "",
        **extra,
    }
    response = JsonResponse(body, status=status, content_type="application/problem+json")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def unavailable_response(request) -> JsonResponse:
    """503 while the database is unavailable (accounts.outages). Answered by Django's
    handler500, enterprise_portal.middleware.server_error: ninja re-raises what its
    handlers do not take (unless DEBUG), and the account routing fails before the API."""
    return problem_response(
        request, 503, "unavailable",
        f"The service is temporarily unavailable; try again in {RETRY_AFTER_SECONDS} s.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )  # fmt: skip


def install(api) -> None:
    """The API's exception handlers: ours, ninja's and Django's, each as a problem."""

    @api.exception_handler(Problem)
    def _problem(request, exc: Problem):
        return problem_response(request, exc.status, exc.kind, exc.detail, title=exc.title,
                                headers=exc.headers, **exc.extra)  # fmt: skip

    @api.exception_handler(ValidationError)
    def _invalid(request, exc: ValidationError):
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query",
                                                                           "path")),
             "message": e.get("msg", "invalid")}
            for e in exc.errors
        ]  # fmt: skip
        detail = "; ".join(f"{e['field'] or 'request'}: {e['message']}" for e in errors[:5])
        return problem_response(request, 422, "invalid-request", detail, errors=errors)

    @api.exception_handler(AuthenticationError)
    def _unauthenticated(request, exc):
        return problem_response(
            request, 401, "not-authenticated",
            "Send a valid, unexpired and unrevoked API key: 'Authorization: Bearer cpk_…'.",
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )  # fmt: skip

    @api.exception_handler(HttpError)
    def _http(request, exc: HttpError):
        return problem_response(request, exc.status_code, "http-error", str(exc))

    @api.exception_handler(Http404)
    def _not_found(request, exc):
        return problem_response(request, 404, "not-found", "No such resource for this key.")


NUL_DETAIL = "The request contains a NUL character (\\u0000); no field accepts one."
SMALL_FORM_BYTES = 1 << 20


def request_has_nul(request) -> bool:
    """A NUL anywhere a field could come from: the path, the query, form fields or a JSON
    body (raw or escaped). Uploaded files are not looked into (a WAV has NULs), nor the
    fields of a large upload, whose view checks its size before anything is read."""
    if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
        return True
    if any("\x00" in value for _k, values in request.GET.lists() for value in values):
        return True
    if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
        return False
    content_type = request.META.get("CONTENT_TYPE", "").lower()
    try:
        if content_type.startswith("multipart/"):
            if _length(request) > SMALL_FORM_BYTES:
                return False
            return any("\x00" in value for _k, values in request.POST.lists() for value in values)
        # Any other body: ninja reads JSON whatever the declared type (text/plain included).
        return b"\x00" in request.body or b"\\u0000" in request.body
    except (RawPostDataException, UnreadablePostError, ValueError):
        return False  # the view's own parsing answers a broken body


def _length(request) -> int:
    value = request.META.get("CONTENT_LENGTH") or ""
    return int(value) if value.isascii() and value.isdigit() and len(value) < 16 else 1 << 62
