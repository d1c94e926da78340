"""The integration API, version 1, at ``/api/v1/``: OpenAPI at ``openapi.json``, its
interactive documentation at ``docs`` (served by the app, no CDN), errors as RFC 9457
problems. Every endpoint needs an API key (accounts.api_keys); see docs/api.md."""

from __future__ import annotations

from ninja import NinjaAPI, Swagger

from api import blacklists, decisions, devices, problems, registries, trace
from api.auth import ApiKeyAuth

PROBLEM = {
    "title": "Problem",
    "description": "RFC 9457 problem details (docs/api.md, Errors).",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "…/problems/<kind>: stable, for programs."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What is wrong, for people."},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"},
                   "description": "invalid-request: one per field."},
    },
}  # fmt: skip
ERRORS = {
    400: "Malformed: a bad cursor or Idempotency-Key.",
    401: "No usable key (missing, unknown, expired or revoked).",
    403: "The key lacks the scope, or is the wrong kind of key.",
    404: "Not found for this key.",
    409: "The first request with this Idempotency-Key is still running.",
    422: "Invalid: fields, devices, times, a reused Idempotency-Key, a NUL character.",
    429: "Rate limited: see Retry-After.",
    503: "Unavailable for a while (the database cannot be reached): see Retry-After.",
}


class PortalAPI(NinjaAPI):
    """Every operation documents its errors too: the problems the handlers give."""

    def get_openapi_schema(self, *args, **kwargs):
        schema = super().get_openapi_schema(*args, **kwargs)
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM
        problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path in schema["paths"].values():
            for operation in path.values():
                for code, text in ERRORS.items():
                    operation["responses"].setdefault(code, {"description": text,
                                                             "content": problem})  # fmt: skip
        return schema


api = PortalAPI(
    title="Compliance Portal API",
    version="1",
    description=(
        "Device settings, decisions, campaign blacklists and the Contact Trace for the "
        "systems around a contact center. Authenticate with `Authorization: Bearer cpk_…` "
        "(an enterprise admin creates keys on the enterprise's API keys page; an account "
        "admin on the account's). Errors are RFC 9457 problem details."
    ),
    urls_namespace="api-v1",
    auth=ApiKeyAuth(),
    docs=Swagger(settings={"persistAuthorization": False}),
    docs_url="/docs",
    openapi_url="/openapi.json",
)
problems.install(api)
api.add_router("", devices.router)
api.add_router("", decisions.router)
api.add_router("", blacklists.router)
api.add_router("", trace.router)
api.add_router("", registries.router)
