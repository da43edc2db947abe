"""A Function's History: the verbs it records, who acted, and the one way an entry is written.

The catalogue (functions.services) and the secrets vault (secrets_vault.services)
both write here, so neither needs the other to record a change.
"""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import models

from .models import AuditEntry, Function


class AuditAction(models.TextChoices):
    """Every verb of the History tab (AuditEntry.action)."""

    # The catalogue
    CREATED = "created", "Created"
    IMPORTED = "imported", "Imported"
    UPDATED = "updated", "Updated"
    VERSION_UPLOADED = "version_uploaded", "Uploaded code"
    VERSION_DEPLOYED = "version_deployed", "Deployed code"
    DELETED = "deleted", "Deleted"
    # The secrets vault (names only, never a value)
    SECRET_ADDED = "secret_added", "Added a secret"
    SECRET_VALUE_SET = "secret_value_set", "Set a secret's missing value"
    SECRET_VALUE_REPLACED = "secret_value_replaced", "Replaced a secret's value"
    SECRET_RENAMED = "secret_renamed", "Renamed a secret"
    SECRET_DELETED = "secret_deleted", "Deleted a secret"
    SECRETS_IMPORTED = "secrets_imported", "Imported secret names"
    SECRETS_REPLACED = "secrets_replaced", "Replaced the secrets"
    # Schedules
    SCHEDULE_CHANGED = "schedule_changed", "Changed the schedule"
    # Alerts (alerts.services): the Function became, or stopped being, an alert's action
    ALERT_ACTION_ADDED = "alert_action_added", "Added to an alert"
    ALERT_ACTION_REMOVED = "alert_action_removed", "Removed from an alert"


# Who a service acts for: a request's user (signed in or not), a user, or None for a command or token.
Actor = AbstractBaseUser | AnonymousUser | None


def actor_user(actor: Actor) -> AbstractBaseUser | None:
    """The signed-in user behind a change, or None for a command, an API token or an anonymous caller.

    Services take ``actor`` as whatever the caller has (``request.user``, a
    user, or None) and ``actor_label`` for callers that are not users.
    """
    return actor if getattr(actor, "is_authenticated", False) else None


def actor_name(actor: Actor, label: str | None = None) -> str:
    """How History names the actor: the given label (a command, an API token), else the user's e-mail."""
    if label:
        return label[:254]
    user = actor_user(actor)
    return user.email if user is not None else ""


def audit_record(
    *,
    function: Function,
    actor: Actor,
    action: str,
    summary: str,
    changes: dict | None = None,
    actor_label: str | None = None,
) -> AuditEntry:
    """One History entry of the Function: who did what, when.

    Callers pass names and non-secret values only: a secret's value must never
    reach ``summary`` or ``changes`` (the History tab shows both to every reader).
    """
    return AuditEntry.objects.create(
        function=function,
        organization_id=function.organization_id,
        function_name=function.name,
        actor=actor_user(actor),
        actor_label=actor_name(actor, actor_label),
        action=action,
        summary=summary[:500],
        changes=changes or {},
    )

