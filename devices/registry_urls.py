from django.urls import path

from devices import registry_views

app_name = "registries"

urlpatterns = [
    path("platform/registries/", registry_views.registry_index, name="index"),
    path(
        "platform/registries/imports/<int:import_id>/",
        registry_views.import_detail,
        name="import_detail",
    ),
    path(
        "platform/registries/imports/<int:import_id>/progress.json",
        registry_views.import_progress,
        name="import_progress",
    ),
]
