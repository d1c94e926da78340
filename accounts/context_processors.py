from accounts.access import enterprises_for_user


def portal(request) -> dict:
    """Where the user is (enterprise or account) and who they are, for the navigation bar."""
    tenant = getattr(request, "tenant", None)
    account = tenant if tenant is not None and not tenant.is_public else None
    access = getattr(request, "account_access", None)
    # Only what the access helpers granted: a 404 inside an account the user may not see
    # must not name the enterprise that owns it.
    enterprise = getattr(request, "enterprise", None)
    user = getattr(request, "user", None)
    admin_of = enterprises_for_user(user) if user is not None else []
    return {
        "current_account": account if access is not None else None,
        "current_access": access,
        "current_enterprise": enterprise,
        "is_enterprise_admin_here": enterprise is not None and enterprise in admin_of,
    }
