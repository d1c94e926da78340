"""Shared pages: sign-in, enterprise pages, platform administration."""

from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path
from django.utils.translation import gettext_lazy as _

from api import views as api_views
from api import webhook_views
from api.v1 import api
from campaigns import carrier_views

admin.site.site_header = _("Compliance Portal – platform administration")
admin.site.site_title = _("Compliance Portal")


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


# A database outage is a 503 with Retry-After, not a 500 (enterprise_portal.middleware).
handler500 = "enterprise_portal.middleware.server_error"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("healthz", healthz, name="healthz"),
    path("api/v1/", api.urls),
    path("platform/api-keys/", api_views.operator_keys, name="operator_api_keys"),
    path(
        "platform/api-keys/<str:key_id>/revoke/",
        api_views.operator_key_revoke,
        name="operator_api_key_revoke",
    ),  # fmt: skip
    path("enterprises/<int:enterprise_id>/webhooks/", webhook_views.webhooks_page, name="webhooks"),
    path(
        "enterprises/<int:enterprise_id>/webhooks/<str:subscription_id>/",
        webhook_views.webhook_detail,
        name="webhook",
    ),
    path(
        "enterprises/<int:enterprise_id>/webhooks/<str:subscription_id>/test/",
        webhook_views.webhook_test,
        name="webhook_test",
    ),
    path(
        "enterprises/<int:enterprise_id>/webhooks/<str:subscription_id>/delete/",
        webhook_views.webhook_delete,
        name="webhook_delete",
    ),  # fmt: skip
    path("enterprises/<int:enterprise_id>/api-keys/", api_views.enterprise_keys, name="api_keys"),
    path(
        "enterprises/<int:enterprise_id>/api-keys/<str:key_id>/revoke/",
        api_views.enterprise_key_revoke,
        name="api_key_revoke",
    ),  # fmt: skip
    # Replies from handsets through Kannel: one endpoint for every account.
    path("carrier/kannel/mo/", carrier_views.kannel_mo, name="kannel_mo"),
    path("", include("accounts.urls")),
    path("", include("devices.urls")),
    path("", include("devices.registry_urls")),
]
