from django.urls import path

from devices import views

app_name = "devices"

urlpatterns = [
    # Public: the recipient of a campaign email, signed in or not (RFC 8058 one-click).
    path("u/<str:token>/", views.email_unsubscribe, name="email_unsubscribe"),
    path("enterprises/<int:enterprise_id>/devices/", views.contact_trace, name="contact_trace"),
    path(
        "enterprises/<int:enterprise_id>/devices/trace/<str:search_id>/",
        views.contact_trace_results,
        name="contact_trace_results",
    ),
    path(
        "enterprises/<int:enterprise_id>/devices/trace/<str:search_id>/trace.csv",
        views.contact_trace_export,
        name="contact_trace_export",
    ),
    path(
        "enterprises/<int:enterprise_id>/recordings/<int:attempt_id>.wav",
        views.enterprise_recording,
        name="recording",
    ),
    path(
        "enterprises/<int:enterprise_id>/recordings/<int:attempt_id>/delete/",
        views.enterprise_recording_delete,
        name="recording_delete",
    ),
    path(
        "enterprises/<int:enterprise_id>/calling-rules/", views.calling_rules, name="calling_rules"
    ),
    path(
        "enterprises/<int:enterprise_id>/calling-rules/<str:kind>/<int:pk>/delete/",
        views.delete_calling_rule,
        name="delete_calling_rule",
    ),
]

urlpatterns += [
    path(
        "enterprises/<int:enterprise_id>/devices/blocking/",
        views.device_blocking,
        name="device_blocking",
    ),
    path(
        "enterprises/<int:enterprise_id>/devices/blocking/settings.csv",
        views.device_settings_export,
        name="device_export",
    ),
    path(
        "enterprises/<int:enterprise_id>/devices/blocking/import/",
        views.device_settings_import,
        name="device_import",
    ),
    path(
        "enterprises/<int:enterprise_id>/devices/blocking/<int:pk>/",
        views.device_setting_detail,
        name="device_setting",
    ),
    path(
        "enterprises/<int:enterprise_id>/devices/blocking/<int:pk>/remove/",
        views.device_setting_remove,
        name="device_setting_remove",
    ),
    path(
        "enterprises/<int:enterprise_id>/devices/blocking/<int:pk>/expiry/",
        views.device_setting_expiry,
        name="device_setting_expiry",
    ),
]
