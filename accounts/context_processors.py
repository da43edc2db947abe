from .access import Area, may_read


def organizations(request):
    """The organizations the signed-in user can switch between, and what the current one allows."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    memberships = list(user.memberships.select_related("organization", "custom_role").order_by("organization__name"))
    current = None
    match = getattr(request, "resolver_match", None)
    org_id = match.kwargs.get("org_id") if match else None
    for membership in memberships:
        if org_id is not None and membership.organization_id == org_id:
            current = membership
    section = None
    if match:
        if match.app_name == "functions":
            section = "functions"
        elif match.url_name == "organization_runs":
            section = "runs"
        elif match.app_name == "alerts":
            section = "alerts"
        elif match.app_name == "accounts" and match.url_name == "organization":
            section = "organization"
        elif match.url_name in ("members", "member_role", "member_remove"):
            section = "members"
        elif match.url_name in ("roles", "role_edit", "role_delete"):
            section = "roles"
        elif match.url_name in ("api_tokens", "api_token_revoke"):
            section = "api_tokens"
    return {
        "section": section,
        "memberships": memberships,
        "current_membership": current,
        "current_org": current.organization if current else None,
        "nav_functions": bool(current and may_read(current, Area.FUNCTIONS)),
        "nav_storage": bool(current and may_read(current, Area.STORAGE)),
        "nav_api_tokens": bool(current and current.is_full_admin),
    }
