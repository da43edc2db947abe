"""The one access layer: may this user read or write this area of this organization?

Every view and API endpoint asks here. A user who is not a member of an
organization gets 404 for all of its addresses (its existence is not
revealed); a member whose role lacks the permission gets 403.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404

from alerts.models import AlertConfiguration
from functions.models import Function, Run

from .models import Access, ApiScope, ApiToken, Membership, Organization


class Area:
    FUNCTIONS = "functions"
    STORAGE = "storage"
    # Members and roles: everyone in the organization may look, only Full Admins change.
    ADMINISTRATION = "administration"


AREA_LABELS = {Area.FUNCTIONS: "Functions", Area.STORAGE: "Functions storage", Area.ADMINISTRATION: "Members and roles"}


def membership_for(user: Any, org_id: Any) -> Membership | None:
    """The user's membership in the organization, or None."""
    if not user.is_authenticated:
        return None
    try:
        org_id = int(org_id)
    except (TypeError, ValueError):
        return None
    return (
        Membership.objects.select_related("organization", "custom_role")
        .filter(user=user, organization_id=org_id)
        .first()
    )


def access_level(membership: Membership | None, area: str) -> str:
    if membership is None:
        return Access.NONE
    if area == Area.FUNCTIONS:
        return membership.functions_access
    if area == Area.STORAGE:
        return membership.storage_access
    if area == Area.ADMINISTRATION:
        return Access.WRITE if membership.is_full_admin else Access.READ
    raise ValueError(f"unknown area {area!r}")


def may_read(membership: Membership | None, area: str) -> bool:
    return access_level(membership, area) in (Access.READ, Access.WRITE)


def may_write(membership: Membership | None, area: str) -> bool:
    return access_level(membership, area) == Access.WRITE


def require(user: Any, org_id: Any, area: str, *, write: bool = False) -> Membership:
    """The membership if the user may read (or write) `area`; 404 or 403 otherwise."""
    membership = membership_for(user, org_id)
    if membership is None:
        raise Http404("No such organization.")
    allowed = may_write(membership, area) if write else may_read(membership, area)
    if not allowed:
        verb = "change" if write else "see"
        raise PermissionDenied(
            f"Your role ({membership.role_name}) does not allow you to {verb} {AREA_LABELS[area]} "
            f"in {membership.organization.name}. Ask a Full Admin for access."
        )
    return membership


# --- object helpers: the object, scoped to the organization, and whether the user may change it ---


def storage_for(user: Any, org_id: Any, *, write: bool = False) -> tuple[Organization, bool]:
    """(organization, can_write) for the organization's storage."""
    membership = require(user, org_id, Area.STORAGE, write=write)
    return membership.organization, may_write(membership, Area.STORAGE)


def function_for(user: Any, org_id: Any, name: str, *, write: bool = False) -> tuple[Function, bool]:
    """(function, can_write) for a Function of the organization; 404 for any other organization's."""
    membership = require(user, org_id, Area.FUNCTIONS, write=write)
    function = get_object_or_404(
        Function.objects.select_related("organization", "deployed_version"),
        organization=membership.organization,
        name=name,
    )
    return function, may_write(membership, Area.FUNCTIONS)


def run_for(user: Any, org_id: Any, name: str, correlation_id: Any, *, write: bool = False) -> tuple[Run, bool]:
    """(run, can_write) for a run of the named Function of the organization."""
    function, can_write = function_for(user, org_id, name, write=write)
    run = get_object_or_404(
        Run.objects.select_related("function", "code_version", "triggered_by"),
        function=function,
        correlation_id=correlation_id,
    )
    return run, can_write


def alert_for(user: Any, org_id: Any, alert_id: Any, *, write: bool = False) -> tuple[AlertConfiguration, bool]:
    """(alert, can_write) for an alert configuration of the organization; 404 for any other's.

    Alerts are part of Functions: roles that read Functions see them, roles that
    write Functions change them and fire test incidents.
    """
    membership = require(user, org_id, Area.FUNCTIONS, write=write)
    alert = get_object_or_404(
        AlertConfiguration.objects.select_related("organization"), organization=membership.organization, pk=alert_id
    )
    return alert, may_write(membership, Area.FUNCTIONS)


# --- API tokens: the same questions, answered by the token's scopes ---

# The scope an area needs, to read and to write; a write scope also reads.
_SCOPES = {
    Area.FUNCTIONS: (ApiScope.FUNCTIONS_READ, ApiScope.FUNCTIONS_WRITE),
    Area.STORAGE: (ApiScope.STORAGE_READ, ApiScope.STORAGE_WRITE),
}


def token_may(token: ApiToken, area: str, *, write: bool = False) -> bool:
    read_scope, write_scope = _SCOPES[area]
    if write:
        return write_scope in token.scopes
    return read_scope in token.scopes or write_scope in token.scopes


def token_require(token: ApiToken, area: str, *, write: bool = False) -> None:
    """PermissionDenied naming the missing scope unless the token may read (or write) `area`."""
    if not token_may(token, area, write=write):
        scope = _SCOPES[area][1 if write else 0]
        raise PermissionDenied(
            f"This API token does not have the “{scope.label}” scope ({scope.value}). "
            "A Full Admin can create a token with it in Settings → Developer → API tokens."
        )


def function_for_token(token: ApiToken, name: str, *, write: bool = False) -> Function:
    """The token's organization's Function named `name`; 404 for any other organization's (or none)."""
    token_require(token, Area.FUNCTIONS, write=write)
    function = (
        Function.objects.select_related("organization", "deployed_version")
        .of(token.organization).named(name).first()
    )
    if function is None:
        raise Http404(f"There is no Function named “{name}”.")
    return function


def run_for_token(token: ApiToken, name: str, correlation_id: Any, *, write: bool = False) -> Run:
    """A run of the named Function of the token's organization; 404 otherwise (also for a malformed id)."""
    function = function_for_token(token, name, write=write)
    try:
        correlation_id = uuid.UUID(str(correlation_id))
    except ValueError:
        raise Http404(f"There is no run {correlation_id} of {function.name}.") from None
    run = Run.objects.select_related("function").filter(function=function, correlation_id=correlation_id).first()
    if run is None:
        raise Http404(f"There is no run {correlation_id} of {function.name}.")
    return run


def alert_for_token(token: ApiToken, alert_id: Any, *, write: bool = False) -> AlertConfiguration:
    """An alert configuration of the token's organization; 404 for any other's, an unknown or a malformed id."""
    token_require(token, Area.FUNCTIONS, write=write)
    try:
        alert_id = uuid.UUID(str(alert_id))
    except ValueError:
        raise Http404(f"There is no alert configuration {alert_id}.") from None
    alert = AlertConfiguration.objects.select_related("organization").filter(
        organization=token.organization, pk=alert_id
    ).first()
    if alert is None:
        raise Http404(f"There is no alert configuration {alert_id}.")
    return alert
