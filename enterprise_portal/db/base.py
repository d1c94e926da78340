"""django-tenants' PostgreSQL backend, keeping the search path it set when a request or a
task "switches" to the schema the connection is already in.

With ``TENANT_LIMIT_SET_CALLS``, django-tenants issues ``SET search_path`` once per switch
(and again after a rollback or a reconnection, which may have undone it). But every request
starts by switching to the public schema, and the last one almost always ended there: that
SET was a round trip on every page and API call for nothing.
"""

from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper


class DatabaseWrapper(TenantDatabaseWrapper):
    def set_tenant(self, tenant, include_public=True):
        kept = self.search_path_set_schemas
        same = (
            kept is not None
            and self.tenant is not None
            and self.schema_name == tenant.schema_name
            and self.include_public_schema == include_public
        )
        super().set_tenant(tenant, include_public)
        if same:
            self.search_path_set_schemas = kept
