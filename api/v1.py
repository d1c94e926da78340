"""The integration API, version 1, at ``/api/v1/``: OpenAPI at ``openapi.json``, its
interactive documentation at ``docs`` (served by the app, no CDN), errors as RFC 9457
problems. Every endpoint needs an API key (accounts.api_keys); see docs/api.md."""

from __future__ import annotations

from ninja import NinjaAPI, Swagger

from api import blacklists, decisions, devices, problems, registries, trace
from api.auth import ApiKeyAuth

api = NinjaAPI(
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
