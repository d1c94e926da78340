"""The Content-Security-Policy middleware: settings.CONTENT_SECURITY_POLICY on every
response, with one scoped exception.

Django's admin, through django-tenants' overrides of admin/index.html and
admin/app_list.html (and admin/change_list.html without actions), carries an inline
<style> and style="" attributes. Under the admin (platform operators only), style-src also
allows 'unsafe-inline'; scripts stay 'self' there as everywhere.
"""

from csp.constants import UNSAFE_INLINE
from csp.middleware import CSPMiddleware, PolicyParts

ADMIN_PREFIX = "/admin/"  # enterprise_portal.urls_public


class PortalCSPMiddleware(CSPMiddleware):
    def get_policy_parts(self, request, response, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if request.path_info.startswith(ADMIN_PREFIX) and parts.update is None:
            parts.update = {"style-src": [UNSAFE_INLINE]}
        return parts
