from django.urls import path

from devices import views

app_name = "devices"

urlpatterns = [
    path("enterprises/<int:enterprise_id>/devices/", views.contact_trace, name="contact_trace"),
    path(
        "enterprises/<int:enterprise_id>/devices/trace.csv",
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
