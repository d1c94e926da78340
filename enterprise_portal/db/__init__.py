"""The portal's database backend: django-tenants' PostgreSQL backend, see base.py."""
