from django.apps import AppConfig


class EnterprisePortalConfig(AppConfig):
    """The project itself: settings, URLs, the Celery app, the launcher and the demo. An
    app only so its management commands (load_demo) are found; it has no models."""

    name = "enterprise_portal"
    verbose_name = "Enterprise portal"
