"""The Secrets tab of a Function. Names only: no page, message or error ever shows a value."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import function_for
from accounts.forms import apply_service_errors
from functions.models import Function

from . import services
from .forms import SecretAddForm, SecretRenameForm, SecretValueForm
from .models import Secret


def _secret_of(function: Function, secret_id: int) -> Secret:
    return get_object_or_404(Secret.objects.select_related("function", "updated_by"), pk=secret_id, function=function)


def _list_page(
    request: HttpRequest,
    function: Function,
    can_write: bool,
    add_form: forms.Form,
    status: int = 200,
) -> HttpResponse:
    rows = services.secret_rows(function=function)
    return render(
        request,
        "secrets_vault/secrets.html",
        {
            "function": function,
            "can_write": can_write,
            "tab": "secrets",
            "rows": rows,
            "missing": [row.name for row in rows if row.value_missing],
            "unreadable": [row.name for row in rows if row.key_unavailable],
            "add_form": add_form,
            "limit": services.MAX_SECRETS_PER_FUNCTION,
        },
        status=status,
    )


def _edit_page(
    request: HttpRequest,
    function: Function,
    secret: Secret,
    *,
    value_form: forms.Form = None,
    rename_form: forms.Form = None,
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "secrets_vault/secret_edit.html",
        {
            "function": function,
            "can_write": True,
            "tab": "secrets",
            "secret": secret,
            "value_form": value_form or SecretValueForm(),
            "rename_form": rename_form or SecretRenameForm(initial={"name": secret.name}),
        },
        status=status,
    )


@sensitive_post_parameters("value")
@login_required
@require_http_methods(["GET", "POST"])
def secret_list(request: HttpRequest, org_id: int, name: str) -> HttpResponse:
    """The names, who changed each and when; writers add a secret here."""
    function, can_write = function_for(request.user, org_id, name, write=request.method == "POST")
    if request.method != "POST":
        return _list_page(request, function, can_write, SecretAddForm())
    form = SecretAddForm(request.POST)
    if form.is_valid():
        try:
            secret = services.secret_create(
                function=function, name=form.cleaned_data["name"], value=form.cleaned_data["value"], actor=request.user
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            messages.success(request, f"Added the secret “{secret.name}”. Its value cannot be shown again.")
            return redirect("functions:secrets", org_id=function.organization_id, name=function.name)
    return _list_page(request, function, can_write, form, status=400)


@login_required
@require_http_methods(["GET"])
def secret_edit(request: HttpRequest, org_id: int, name: str, secret_id: int) -> HttpResponse:
    """Replace the value, rename, delete: for writers only."""
    function, _ = function_for(request.user, org_id, name, write=True)
    return _edit_page(request, function, _secret_of(function, secret_id))


@sensitive_post_parameters("value")
@login_required
@require_POST
def secret_value(request: HttpRequest, org_id: int, name: str, secret_id: int) -> HttpResponse:
    function, _ = function_for(request.user, org_id, name, write=True)
    secret = _secret_of(function, secret_id)
    form = SecretValueForm(request.POST)
    if form.is_valid():
        try:
            was_missing = secret.value_missing
            services.secret_set(function=function, name=secret.name, value=form.cleaned_data["value"], actor=request.user)
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            verb = "Set" if was_missing else "Replaced"
            messages.success(request, f"{verb} the value of “{secret.name}”. It cannot be shown again.")
            return redirect("functions:secrets", org_id=function.organization_id, name=function.name)
    return _edit_page(request, function, secret, value_form=form, status=400)


@login_required
@require_POST
def secret_rename(request: HttpRequest, org_id: int, name: str, secret_id: int) -> HttpResponse:
    function, _ = function_for(request.user, org_id, name, write=True)
    secret = _secret_of(function, secret_id)
    old_name = secret.name
    form = SecretRenameForm(request.POST)
    if form.is_valid():
        try:
            services.secret_rename(secret=secret, new_name=form.cleaned_data["name"], actor=request.user)
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            if secret.name != old_name:
                messages.success(request, f"Renamed “{old_name}” to “{secret.name}”.")
            return redirect("functions:secrets", org_id=function.organization_id, name=function.name)
    return _edit_page(request, function, secret, rename_form=form, status=400)


@login_required
@require_POST
def secret_delete(request: HttpRequest, org_id: int, name: str, secret_id: int) -> HttpResponse:
    function, _ = function_for(request.user, org_id, name, write=True)
    secret = _secret_of(function, secret_id)
    services.secret_delete(secret=secret, actor=request.user)
    messages.success(request, f"Deleted the secret “{secret.name}”.")
    return redirect("functions:secrets", org_id=function.organization_id, name=function.name)
