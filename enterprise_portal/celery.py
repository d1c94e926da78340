"""Celery application. Tasks sent from an account's context run in that account's schema."""

import os

from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "enterprise_portal.settings")

app = CeleryApp("enterprise_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
