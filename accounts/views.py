from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.views.decorators.http import require_POST

from . import services
from .access import Area, may_read, require
from .forms import apply_service_errors
from .models import Access, ApiScope, ApiToken, BuiltinRole, CustomRole, Membership, Organization, User


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send the user to the first organization they belong to."""
    membership = request.user.memberships.order_by("organization__name").first()
    if membership is None:
        return render(request, "accounts/no_organization.html")
    return org_home(request, membership.organization_id)


@login_required
def org_home(request: HttpRequest, org_id: int) -> HttpResponse:
    """An organization's start page: Functions where the role allows, else its storage or members."""
    membership = require(request.user, org_id, Area.ADMINISTRATION)
    if may_read(membership, Area.FUNCTIONS):
        return redirect("functions:list", org_id=org_id)
    if may_read(membership, Area.STORAGE):
        return redirect("functions:storage", org_id=org_id)
    return redirect("accounts:members", org_id=org_id)


def _role_choices(organization: Organization) -> list[tuple[str, str]]:
    choices = [(b.value, b.label) for b in BuiltinRole]
    choices += [(f"custom:{r.pk}", f"{r.name} (custom)") for r in organization.custom_roles.all()]
    return choices


class InviteForm(forms.Form):
    email = forms.EmailField(label="E-mail", max_length=254)
    role = forms.ChoiceField(label="Role")

    def __init__(self, *args: Any, organization: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = _role_choices(organization)


class RoleForm(forms.Form):
    name = forms.CharField(max_length=64)
    description = forms.CharField(max_length=300, required=False)
    functions_access = forms.ChoiceField(label="Functions", choices=Access.choices, widget=forms.RadioSelect, initial=Access.NONE)
    storage_access = forms.ChoiceField(label="Functions storage", choices=Access.choices, widget=forms.RadioSelect, initial=Access.NONE)


def _set_password_link(request: HttpRequest, user: User) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return request.build_absolute_uri(reverse("password_reset_confirm", args=[uid, token]))


class SetPasswordView(auth_views.PasswordResetConfirmView):
    """The invitation's set-password page; afterwards the sign-in page confirms it."""

    success_url = "/login/"
    post_reset_login = False

    def form_valid(self, form: forms.Form) -> HttpResponse:
        response = super().form_valid(form)
        messages.success(self.request, f"Your password is set. Sign in as {form.user.email}.")
        return response


# The set-password link of the invitation just made, shown once on the page after the redirect.
INVITE_LINK_SESSION_KEY = "accounts.invite_link"


class OrganizationForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True)
    timezone = forms.ChoiceField(
        label="Time zone", choices=(),
        help_text=("Schedules without a zone of their own run in this one, and the Monitor's charts use it. "
                   "Changing it moves those schedules' next runs to the new zone's clock."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["timezone"].choices = [(zone, zone) for zone in _time_zones()]


def _time_zones() -> list[str]:
    import zoneinfo

    return sorted(zoneinfo.available_timezones())


@login_required
def organization_settings(request: HttpRequest, org_id: int) -> HttpResponse:
    """The organization's name and time zone: everyone in it may look, Full Admins change them."""
    membership = require(request.user, org_id, Area.ADMINISTRATION)
    organization = membership.organization
    form = OrganizationForm(initial={"name": organization.name, "timezone": organization.timezone})
    if request.method == "POST":
        require(request.user, org_id, Area.ADMINISTRATION, write=True)
        form = OrganizationForm(request.POST)
        if form.is_valid():
            try:
                changed = services.organization_update(organization=organization, **form.cleaned_data)
            except ValidationError as error:
                apply_service_errors(form, error)
            else:
                if "timezone" in changed:
                    messages.success(request, f"Saved. Schedules now run in {organization.timezone}: their next "
                                              "runs were worked out again.")
                else:
                    messages.success(request, "Saved." if changed else "Nothing changed.")
                return redirect("accounts:organization", org_id=org_id)
    return render(
        request, "accounts/organization.html",
        {"form": form, "organization": organization, "can_write": membership.is_full_admin},
        status=400 if form.errors else 200,
    )


@login_required
def members(request: HttpRequest, org_id: int) -> HttpResponse:
    membership = require(request.user, org_id, Area.ADMINISTRATION)
    organization = membership.organization
    invite_form = InviteForm(organization=organization)
    if request.method == "POST":
        membership = require(request.user, org_id, Area.ADMINISTRATION, write=True)
        invite_form = InviteForm(request.POST, organization=organization)
        if invite_form.is_valid():
            try:
                new_membership, created = services.membership_add(
                    organization=organization,
                    email=invite_form.cleaned_data["email"],
                    role=invite_form.cleaned_data["role"],
                )
            except ValidationError as error:
                apply_service_errors(invite_form, error)
            else:
                email = new_membership.user.email
                if created:
                    link = _set_password_link(request, new_membership.user)
                    services.invitation_send(membership=new_membership, link=link)
                    request.session[INVITE_LINK_SESSION_KEY] = {"email": email, "link": link}
                    messages.success(request, f"Invited {email}. Send them the link below to set a password.")
                else:
                    messages.success(request, f"Added {email} to {organization.name}.")
                # A fresh, empty form (and a reload does not invite twice).
                return redirect("accounts:members", org_id=org_id)
    members_of = Membership.objects.filter(organization=organization).select_related("user", "custom_role")
    return render(
        request,
        "accounts/members.html",
        {
            "rows": members_of.accepted().order_by("user__email"),
            "pending": members_of.pending().order_by("-created_at"),
            "invite_form": invite_form,
            "invite": request.session.pop(INVITE_LINK_SESSION_KEY, None) if request.method == "GET" else None,
            "role_choices": _role_choices(organization),
            "can_write": membership.is_full_admin,
        },
        status=400 if invite_form.errors else 200,
    )


@login_required
@require_POST
def invitation_resend(request: HttpRequest, org_id: int, pk: int) -> HttpResponse:
    actor = require(request.user, org_id, Area.ADMINISTRATION, write=True)
    target = _member_of(org_id, pk)
    link = _set_password_link(request, target.user)
    try:
        services.invitation_resend(membership=target, actor_membership=actor, link=link)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        request.session[INVITE_LINK_SESSION_KEY] = {"email": target.user.email, "link": link}
        messages.success(request, f"Sent the invitation to {target.user.email} again.")
    return redirect("accounts:members", org_id=org_id)


@login_required
@require_POST
def invitation_revoke(request: HttpRequest, org_id: int, pk: int) -> HttpResponse:
    actor = require(request.user, org_id, Area.ADMINISTRATION, write=True)
    target = _member_of(org_id, pk)
    try:
        services.invitation_revoke(membership=target, actor_membership=actor)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Revoked the invitation of {target.user.email}: its link no longer works.")
    return redirect("accounts:members", org_id=org_id)


def _member_of(org_id: int, pk: int) -> Membership:
    return get_object_or_404(Membership.objects.select_related("user", "organization"), pk=pk, organization_id=org_id)


@login_required
@require_POST
def member_role(request: HttpRequest, org_id: int, pk: int) -> HttpResponse:
    actor = require(request.user, org_id, Area.ADMINISTRATION, write=True)
    target = _member_of(org_id, pk)
    try:
        services.membership_change_role(membership=target, role=request.POST.get("role", ""), actor_membership=actor)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"{target.user.email} is now {target.role_name}.")
    return redirect("accounts:members", org_id=org_id)


@login_required
@require_POST
def member_remove(request: HttpRequest, org_id: int, pk: int) -> HttpResponse:
    actor = require(request.user, org_id, Area.ADMINISTRATION, write=True)
    target = _member_of(org_id, pk)
    try:
        services.membership_remove(membership=target, actor_membership=actor)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Removed {target.user.email} from {target.organization.name}.")
        if target.user_id == request.user.id:
            return redirect("home")
    return redirect("accounts:members", org_id=org_id)


@login_required
def roles(request: HttpRequest, org_id: int) -> HttpResponse:
    membership = require(request.user, org_id, Area.ADMINISTRATION)
    organization = membership.organization
    form = RoleForm()
    if request.method == "POST":
        require(request.user, org_id, Area.ADMINISTRATION, write=True)
        form = RoleForm(request.POST)
        if form.is_valid():
            try:
                role = services.custom_role_create(organization=organization, **form.cleaned_data)
            except ValidationError as error:
                apply_service_errors(form, error)
            else:
                messages.success(request, f"Created the role “{role.name}”.")
                return redirect("accounts:roles", org_id=org_id)
    custom_roles = organization.custom_roles.all()
    return render(
        request,
        "accounts/roles.html",
        {
            "builtin_roles": [
                (BuiltinRole.FULL_ADMIN.label, "Read and write", "Read and write", "Everything, including members and roles"),
                (BuiltinRole.STANDARD_ADMIN.label, "Read and write", "Read and write", ""),
                (BuiltinRole.READ_ONLY_ADMIN.label, "Read", "Read", ""),
            ],
            "custom_roles": custom_roles,
            "form": form,
            "can_write": membership.is_full_admin,
        },
        status=400 if form.errors else 200,
    )


@login_required
def role_edit(request: HttpRequest, org_id: int, pk: int) -> HttpResponse:
    membership = require(request.user, org_id, Area.ADMINISTRATION, write=True)
    role = get_object_or_404(CustomRole, pk=pk, organization_id=org_id)
    if request.method == "POST":
        form = RoleForm(request.POST)
        if form.is_valid():
            try:
                services.custom_role_update(role=role, **form.cleaned_data)
            except ValidationError as error:
                apply_service_errors(form, error)
            else:
                messages.success(request, f"Saved the role “{role.name}”.")
                return redirect("accounts:roles", org_id=org_id)
        # A refused save shows the name that is still stored, not the rejected one.
        role.refresh_from_db()
    else:
        form = RoleForm(
            initial={
                "name": role.name,
                "description": role.description,
                "functions_access": role.functions_access,
                "storage_access": role.storage_access,
            }
        )
    return render(
        request,
        "accounts/role_edit.html",
        {"role": role, "form": form, "current_membership": membership},
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def role_delete(request: HttpRequest, org_id: int, pk: int) -> HttpResponse:
    require(request.user, org_id, Area.ADMINISTRATION, write=True)
    role = get_object_or_404(CustomRole, pk=pk, organization_id=org_id)
    try:
        services.custom_role_delete(role=role)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Deleted the role “{role.name}”.")
    return redirect("accounts:roles", org_id=org_id)


def permission_denied(request: HttpRequest, exception: Exception = None) -> HttpResponse:
    message = str(exception) if exception and str(exception) else "You do not have access to this page."
    return render(request, "403.html", {"message": message}, status=403)


# --- API tokens (Full Admin) ---

EXPIRY_CHOICES = [("30", "30 days"), ("90", "90 days"), ("180", "180 days"), ("365", "1 year"), ("never", "Never (not recommended)")]


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=services.API_TOKEN_NAME_MAX, help_text="What uses it, e.g. “CI deploys”.")
    scopes = forms.MultipleChoiceField(choices=ApiScope.choices, widget=forms.CheckboxSelectMultiple)
    expires = forms.ChoiceField(label="Expires after", choices=EXPIRY_CHOICES, initial="90")


@login_required
def api_tokens(request, org_id):
    """List, create (the token shown this once) and revoke the organization's API tokens."""
    membership = require(request.user, org_id, Area.ADMINISTRATION, write=True)
    organization = membership.organization
    form = ApiTokenForm()
    created = None
    if request.method == "POST":
        form = ApiTokenForm(request.POST)
        if form.is_valid():
            expires = form.cleaned_data["expires"]
            try:
                token, raw = services.api_token_create(
                    organization=organization, name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"],
                    expires_in_days=None if expires == "never" else int(expires), actor=request.user,
                )
            except ValidationError as error:
                apply_service_errors(form, error)
            else:
                created = (token, raw)
                form = ApiTokenForm()
    response = render(
        request,
        "accounts/api_tokens.html",
        {
            "form": form,
            "created": created,
            "tokens": ApiToken.objects.of(organization).select_related("created_by"),
            "api_base": request.build_absolute_uri("/api"),
        },
        status=400 if form.errors else 200,
    )
    # The page may carry a token in clear: never keep it in a cache.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def api_token_revoke(request, org_id, pk):
    require(request.user, org_id, Area.ADMINISTRATION, write=True)
    token = get_object_or_404(ApiToken, pk=pk, organization_id=org_id)
    services.api_token_revoke(token=token, actor=request.user)
    messages.success(request, f"Revoked the API token “{token.name}”: requests with it are refused from now on.")
    return redirect("accounts:api_tokens", org_id=org_id)
