"""Organizations, members and roles: every change goes through here.

Each function validates fully before it writes, so a refused change leaves
nothing half-done; the message of a ValidationError says what to fix.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zoneinfo
from datetime import timedelta
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import Access, ApiScope, ApiToken, BuiltinRole, CustomRole, Membership, Organization, Region, User

ROLE_NAME_RE = re.compile(r"^[\w .&'()/-]{1,64}$")


def _clean_org_name(name: Any) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError("The organization needs a name.")
    if len(name) > 100:
        raise ValidationError("An organization name can be at most 100 characters.")
    return name


def _organization_name_taken(name: str) -> str:
    """The refusal of a name another organization has (names are unique whatever their case)."""
    return f"An organization named “{name}” already exists: choose another name."


def organization_create(*, name: str, region: str = Region.US, timezone: str = "UTC") -> Organization:
    name = _clean_org_name(name)
    if region not in Region.values:
        raise ValidationError(f"Unknown region “{region}”: use one of {', '.join(Region.values)}.")
    if timezone not in zoneinfo.available_timezones():
        raise ValidationError(f"“{timezone}” is not an IANA time zone name (for example Europe/Berlin).")
    if Organization.objects.filter(name__iexact=name).exists():
        raise ValidationError(_organization_name_taken(name))
    try:
        with transaction.atomic():
            return Organization.objects.create(name=name, region=region, timezone=timezone)
    except IntegrityError:
        raise ValidationError(_organization_name_taken(name)) from None


def organization_update(*, organization: Organization, name: str, timezone: str) -> list[str]:
    """Rename the organization and set its time zone; returns the fields that changed.

    Schedules are read in the organization's time zone: when it changes, their next runs are
    worked out again (schedules.signals). The region is not changeable here: it decides the
    AWS region and bucket name every Function sees.
    """
    errors: dict[str, list[str]] = {}
    try:
        name = _clean_org_name(name)
    except ValidationError as error:
        errors["name"] = error.messages
    else:
        if Organization.objects.filter(name__iexact=name).exclude(pk=organization.pk).exists():
            errors["name"] = [_organization_name_taken(name)]
    timezone = (timezone or "").strip()
    if timezone not in zoneinfo.available_timezones():
        errors["timezone"] = [
            f"“{timezone[:64]}” is not an IANA time zone name: pick one from the list (for example Europe/Berlin)."]
    if errors:
        raise ValidationError(errors)
    changed = [field for field, value in (("name", name), ("timezone", timezone))
               if getattr(organization, field) != value]
    if changed:
        organization.name, organization.timezone = name, timezone
        try:
            with transaction.atomic():
                organization.save(update_fields=changed)
        except IntegrityError:
            raise ValidationError({"name": [_organization_name_taken(name)]}) from None
    return changed


def resolve_role(*, organization: Organization, role: str) -> tuple[str, CustomRole | None]:
    """A role given as `full_admin`, a built-in label, `custom:<id>` or a custom role's name."""
    role = (role or "").strip()
    for builtin in BuiltinRole:
        if role.lower() in (builtin.value, builtin.label.lower()):
            return builtin.value, None
    custom = None
    if role.startswith("custom:") and role[7:].isdigit():
        custom = CustomRole.objects.filter(organization=organization, pk=int(role[7:])).first()
    if custom is None:
        custom = CustomRole.objects.filter(organization=organization, name__iexact=role).first()
    if custom is None:
        names = [b.value for b in BuiltinRole] + list(
            CustomRole.objects.filter(organization=organization).values_list("name", flat=True)
        )
        raise ValidationError(f"Unknown role “{role}”: use one of {', '.join(names)}.")
    return "", custom


def _lock_full_admins(organization: Organization) -> list[Membership]:
    return list(Membership.objects.select_for_update().filter(organization=organization).full_admins())


def membership_add(
    *,
    organization: Organization,
    email: str,
    role: str,
    password: str | None = None,
    name: str = "",
) -> tuple[Membership, bool]:
    """Add a person to the organization, creating the user if the e-mail is new.

    Returns (membership, created_user).
    """
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError(f"“{email}” is not a valid e-mail address.") from None
    builtin, custom = resolve_role(organization=organization, role=role)
    if password is not None:
        validate_password(password)
    with transaction.atomic():
        user = User.objects.filter(email__iexact=email).first()
        created = user is None
        if created:
            user = User.objects.create_user(email, password, name=name)
        elif password:
            user.set_password(password)
            user.save(update_fields=["password"])
        if Membership.objects.filter(user=user, organization=organization).exists():
            raise ValidationError(f"{email} is already a member of {organization.name}.")
        membership = Membership.objects.create(
            user=user, organization=organization, builtin_role=builtin, custom_role=custom
        )
    return membership, created


def membership_change_role(*, membership: Membership, role: str, actor_membership: Membership) -> Membership:
    if not actor_membership.is_full_admin:
        raise ValidationError("Only a Full Admin can change roles.")
    builtin, custom = resolve_role(organization=membership.organization, role=role)
    with transaction.atomic():
        full_admins = _lock_full_admins(membership.organization)
        membership.refresh_from_db()
        demoting = membership.is_full_admin and builtin != BuiltinRole.FULL_ADMIN
        if demoting and len(full_admins) <= 1:
            raise ValidationError(
                f"{membership.user.email} is the last Full Admin of {membership.organization.name}: "
                "make someone else a Full Admin first."
            )
        membership.builtin_role = builtin
        membership.custom_role = custom
        membership.save(update_fields=["builtin_role", "custom_role"])
    return membership


def membership_remove(*, membership: Membership, actor_membership: Membership) -> None:
    if not actor_membership.is_full_admin:
        raise ValidationError("Only a Full Admin can remove members.")
    with transaction.atomic():
        full_admins = _lock_full_admins(membership.organization)
        if membership.is_full_admin and len(full_admins) <= 1:
            raise ValidationError(
                f"{membership.user.email} is the last Full Admin of {membership.organization.name}: "
                "make someone else a Full Admin before removing them."
            )
        membership.delete()


def invitation_send(*, membership: Membership, link: str) -> None:
    """Mail the set-password link of an invitation (the page shows it too, for installations without mail)."""
    membership.user.email_user(
        f"You have been invited to {membership.organization.name}",
        f"Set your password for {membership.user.email} and sign in: {link}",
    )


def _pending(membership: Membership, actor_membership: Membership, verb: str) -> None:
    if not actor_membership.is_full_admin:
        raise ValidationError(f"Only a Full Admin can {verb} invitations.")
    if not membership.is_pending:
        raise ValidationError(
            f"{membership.user.email} has already accepted the invitation: change their role or remove them above."
        )


def invitation_resend(*, membership: Membership, actor_membership: Membership, link: str) -> None:
    _pending(membership, actor_membership, "resend")
    invitation_send(membership=membership, link=link)


def invitation_revoke(*, membership: Membership, actor_membership: Membership) -> None:
    """Withdraw an invitation nobody accepted: the membership goes, and the account with it when it
    belongs nowhere else (so its set-password link leads nowhere)."""
    _pending(membership, actor_membership, "revoke")
    with transaction.atomic():
        user = membership.user
        membership.delete()
        if not user.memberships.exists():
            user.delete()


def _clean_role_fields(
    *,
    organization: Organization,
    name: str,
    functions_access: str,
    storage_access: str,
    exclude_pk: int | None = None,
) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "The role needs a name."})
    if not ROLE_NAME_RE.match(name):
        raise ValidationError({"name": "A role name is 1-64 letters, digits, spaces or . & ' ( ) / - _."})
    reserved = {b.value for b in BuiltinRole} | {b.label.lower() for b in BuiltinRole}
    if name.lower() in reserved:
        raise ValidationError({"name": f"“{name}” is a built-in role's name: choose another name."})
    clash = CustomRole.objects.filter(organization=organization, name__iexact=name)
    if exclude_pk:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise ValidationError({"name": f"A role named “{name}” already exists: choose another name."})
    errors = {}
    if functions_access not in Access.values:
        errors["functions_access"] = "Choose None, Read or Read and write for Functions."
    if storage_access not in Access.values:
        errors["storage_access"] = "Choose None, Read or Read and write for Functions storage."
    if errors:
        raise ValidationError(errors)
    return name


def custom_role_create(
    *,
    organization: Organization,
    name: str,
    description: str = "",
    functions_access: str,
    storage_access: str,
) -> CustomRole:
    name = _clean_role_fields(
        organization=organization, name=name, functions_access=functions_access, storage_access=storage_access
    )
    return CustomRole.objects.create(
        organization=organization,
        name=name,
        description=(description or "").strip()[:300],
        functions_access=functions_access,
        storage_access=storage_access,
    )


def custom_role_update(
    *,
    role: CustomRole,
    name: str,
    description: str = "",
    functions_access: str,
    storage_access: str,
) -> CustomRole:
    role.name = _clean_role_fields(
        organization=role.organization,
        name=name,
        functions_access=functions_access,
        storage_access=storage_access,
        exclude_pk=role.pk,
    )
    role.description = (description or "").strip()[:300]
    role.functions_access = functions_access
    role.storage_access = storage_access
    role.save()
    return role


def custom_role_delete(*, role: CustomRole) -> None:
    in_use = role.memberships.count()
    if in_use:
        raise ValidationError(
            f"{in_use} member{'s' if in_use != 1 else ''} still {'have' if in_use != 1 else 'has'} "
            f"the role “{role.name}”: give them another role first."
        )
    role.delete()


# --- API tokens ---

API_TOKEN_PREFIX = "sfn_"
API_TOKEN_DEFAULT_DAYS = 90
API_TOKEN_MAX_DAYS = 365
API_TOKEN_NAME_MAX = 100
# last_used_at is written at most this often per token, not on every request.
API_TOKEN_USE_RESOLUTION = timedelta(seconds=60)
# What a token may be given on the command line and in the form, in a stable order.
API_SCOPES = [scope.value for scope in ApiScope]


def api_token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _clean_scopes(scopes: Any) -> list[str]:
    if isinstance(scopes, str):
        scopes = [part.strip() for part in scopes.split(",") if part.strip()]
    scopes = list(scopes or ())
    unknown = [s for s in scopes if s not in API_SCOPES]
    if unknown:
        raise ValidationError(
            {"scopes": [f"Unknown scope {', '.join(map(str, unknown))}: choose from {', '.join(API_SCOPES)}."]}
        )
    if not scopes:
        raise ValidationError({"scopes": ["Choose at least one scope."]})
    return [s for s in API_SCOPES if s in scopes]


def api_token_create(
    *,
    organization: Organization,
    name: str,
    scopes: Any,
    expires_in_days: int | None = API_TOKEN_DEFAULT_DAYS,
    actor: Any = None,
    actor_label: str = "",
) -> tuple[ApiToken, str]:
    """A new API token: returns (token row, the token itself), the only time the token exists in clear.

    `expires_in_days` is 1..365 (default 90); None means the token never
    expires, which callers pass only when the admin chose it explicitly.
    """
    errors = {}
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name:
        errors["name"] = ["Give the token a name that says what uses it (for example “CI deploys”)."]
    elif len(name) > API_TOKEN_NAME_MAX:
        errors["name"] = [f"The name is {len(name)} characters long; the limit is {API_TOKEN_NAME_MAX}."]
    elif ApiToken.objects.of(organization).filter(revoked_at__isnull=True, name__iexact=name).exists():
        errors["name"] = [f"A token named “{name}” already exists in {organization.name}: choose another name."]
    try:
        scopes = _clean_scopes(scopes)
    except ValidationError as error:
        errors.update(error.message_dict)
    if expires_in_days is not None:
        if isinstance(expires_in_days, bool) or not isinstance(expires_in_days, int) or not (
            1 <= expires_in_days <= API_TOKEN_MAX_DAYS
        ):
            errors["expires_in_days"] = [
                f"A token expires after 1 to {API_TOKEN_MAX_DAYS} days (default {API_TOKEN_DEFAULT_DAYS}), "
                "or never when you choose that explicitly."
            ]
    if errors:
        raise ValidationError(errors)
    raw = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    user = actor if getattr(actor, "is_authenticated", False) else None
    expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days is not None else None
    try:
        with transaction.atomic():
            token = ApiToken.objects.create(
                organization=organization, name=name, scopes=scopes, token_hash=api_token_hash(raw),
                hint=raw[:10], created_by=user, created_by_label=(user.email if user else actor_label)[:254],
                expires_at=expires_at,
            )
    except IntegrityError:
        raise ValidationError({"name": [f"A token named “{name}” already exists in {organization.name}: choose another name."]}) from None
    return token, raw


def api_token_revoke(*, token: ApiToken, actor: Any = None) -> ApiToken:
    """Revoke the token at once; revoking a revoked token changes nothing."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now(), revoked_by=user)
    token.refresh_from_db()
    return token


class ApiTokenRefused(Exception):
    """The bearer token cannot be used; the message says why (for the 401 answer)."""


def api_token_authenticate(raw: str) -> ApiToken:
    """The usable ApiToken the bearer string names, its last use recorded; ApiTokenRefused otherwise."""
    if not isinstance(raw, str) or not raw.startswith(API_TOKEN_PREFIX) or len(raw) > 200:
        raise ApiTokenRefused(
            "The Authorization header must be “Bearer <token>” with an API token (it starts with sfn_). "
            "Create one in Settings → Developer → API tokens."
        )
    token = ApiToken.objects.select_related("organization").filter(token_hash=api_token_hash(raw)).first()
    if token is None:
        raise ApiTokenRefused("This API token is not valid: check that it was copied whole.")
    now = timezone.now()
    if token.revoked_at:
        raise ApiTokenRefused(f"The API token “{token.name}” was revoked: create a new one.")
    if token.is_expired(now):
        raise ApiTokenRefused(f"The API token “{token.name}” expired at {token.expires_at:%Y-%m-%d %H:%M} UTC: create a new one.")
    if token.last_used_at is None or token.last_used_at < now - API_TOKEN_USE_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
