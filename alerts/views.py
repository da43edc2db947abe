"""Settings → Alerts: the list, create and edit, delete, one alert with its incidents,
"Fire test incident" and "Replay".

Thin on purpose: access through accounts.access (alerts are part of Functions:
read roles look, write roles change and fire), rules in services.py.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.access import Area, alert_for, may_write, require
from accounts.forms import apply_service_errors
from accounts.models import Organization

from . import queries, services
from .forms import AlertForm, FireForm
from .models import AlertConfiguration, IncidentSource

INCIDENTS_PAGE_SIZE = 25


@login_required
def alert_list(request: HttpRequest, org_id: int) -> HttpResponse:
    membership = require(request.user, org_id, Area.FUNCTIONS)
    return render(
        request,
        "alerts/list.html",
        {"alerts": queries.alert_list_rows(membership.organization), "can_write": may_write(membership, Area.FUNCTIONS)},
    )


def _save(
    request: HttpRequest, form: AlertForm, *, organization: Organization, alert: AlertConfiguration | None = None
) -> AlertConfiguration | None:
    """The service's outcome for a bound form: the alert, or None with the errors on the form."""
    if not form.is_valid():
        return None
    data = form.cleaned_data
    fields = dict(
        actor=request.user, name=data["name"], description=data["description"], enabled=data["enabled"],
        functions=list(data["functions"]),
    )
    try:
        if alert is None:
            return services.alert_create(organization=organization, **fields)
        return services.alert_update(alert=alert, **fields)
    except ValidationError as error:
        apply_service_errors(form, error)
        return None


@login_required
def alert_create(request: HttpRequest, org_id: int) -> HttpResponse:
    membership = require(request.user, org_id, Area.FUNCTIONS, write=True)
    organization = membership.organization
    if request.method == "POST":
        form = AlertForm(request.POST, organization=organization)
        alert = _save(request, form, organization=organization)
        if alert is not None:
            messages.success(request, f"Created the alert {alert.name}.")
            return redirect("alerts:detail", org_id=organization.id, alert_id=alert.pk)
    else:
        form = AlertForm(organization=organization, initial={"enabled": True})
    return render(request, "alerts/edit.html", {"form": form, "alert": None}, status=400 if form.errors else 200)


@login_required
def alert_edit(request: HttpRequest, org_id: int, alert_id: uuid.UUID) -> HttpResponse:
    alert, _ = alert_for(request.user, org_id, alert_id, write=True)
    if request.method == "POST":
        form = AlertForm(request.POST, organization=alert.organization)
        if _save(request, form, organization=alert.organization, alert=alert) is not None:
            messages.success(request, f"Saved the alert {alert.name}.")
            return redirect("alerts:detail", org_id=org_id, alert_id=alert.pk)
    else:
        form = AlertForm(
            organization=alert.organization,
            initial={
                "name": alert.name, "description": alert.description, "enabled": alert.enabled,
                "functions": [action.function_id for action in alert.actions.all()],
            },
        )
    return render(request, "alerts/edit.html", {"form": form, "alert": alert}, status=400 if form.errors else 200)


@login_required
def alert_delete(request: HttpRequest, org_id: int, alert_id: uuid.UUID) -> HttpResponse:
    alert, _ = alert_for(request.user, org_id, alert_id, write=True)
    if request.method == "POST":
        services.alert_delete(alert=alert, actor=request.user)
        messages.success(request, f"Deleted the alert {alert.name}.")
        return redirect("alerts:list", org_id=org_id)
    return render(request, "alerts/delete.html", {"alert": alert, "incident_count": alert.incidents.count()})


def _incidents_context(request: HttpRequest, alert: AlertConfiguration, can_write: bool) -> dict[str, Any]:
    page = Paginator(queries.alert_incidents(alert), INCIDENTS_PAGE_SIZE).get_page(request.GET.get("page"))
    incidents = list(page.object_list)
    return {
        "alert": alert, "can_write": can_write, "page": page, "incidents": incidents,
        "incidents_finished": queries.incidents_finished(incidents),
    }


def _render_detail(
    request: HttpRequest, alert: AlertConfiguration, can_write: bool, *, fire_form: FireForm | None = None,
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "alerts/detail.html",
        {
            **_incidents_context(request, alert, can_write),
            "actions": queries.alert_actions(alert),
            "fire_form": fire_form or FireForm(),
        },
        status=status,
    )


@login_required
def alert_detail(request: HttpRequest, org_id: int, alert_id: uuid.UUID) -> HttpResponse:
    alert, can_write = alert_for(request.user, org_id, alert_id)
    return _render_detail(request, alert, can_write)


@login_required
@require_GET
def incidents_live(request: HttpRequest, org_id: int, alert_id: uuid.UUID) -> JsonResponse:
    """The incidents list as an HTML fragment, for the page to follow its runs live."""
    alert, can_write = alert_for(request.user, org_id, alert_id)
    context = _incidents_context(request, alert, can_write)
    return JsonResponse(
        {
            "finished": context["incidents_finished"],
            "html": render_to_string("alerts/_incidents.html", context, request=request),
        }
    )


def _fired(request: HttpRequest, org_id: int, alert: AlertConfiguration, result: services.FireResult) -> HttpResponse:
    if result.deduplicated:
        messages.info(
            request,
            "Deduplicated: an incident with the same driver, asset and incident time came in the last 24 hours, "
            "so nothing new was started. Use Replay on it to run its actions again.",
        )
    else:
        started = sum(1 for r in result.runs if r.run_id)
        messages.success(request, f"Fired an incident: {started} run{'s' if started != 1 else ''} started.")
        for action_run in result.runs:
            if action_run.reason:
                messages.error(request, f"{action_run.function_name}: {action_run.reason}")
    url = reverse("alerts:detail", kwargs={"org_id": org_id, "alert_id": alert.pk})
    return redirect(f"{url}#incident-{result.incident.pk}")


@require_POST
@login_required
def incident_fire(request: HttpRequest, org_id: int, alert_id: uuid.UUID) -> HttpResponse:
    alert, can_write = alert_for(request.user, org_id, alert_id, write=True)
    form = FireForm(request.POST)
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        try:
            result = services.incident_fire(
                alert=alert, driver_id=data["driver_id"], asset_id=data["asset_id"],
                alert_incident_time=data["alert_incident_time"] or None,
                source=IncidentSource.USER, actor=request.user,
            )
        except services.AlertDisabled as error:
            form.add_error(None, error)
            status = 409
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                error = ValidationError(
                    {FireForm.SERVICE_FIELDS.get(key, key): value for key, value in error.error_dict.items()}
                )
            apply_service_errors(form, error)
        else:
            return _fired(request, org_id, alert, result)
    return _render_detail(request, alert, can_write, fire_form=form, status=status)


@require_POST
@login_required
def incident_replay(
    request: HttpRequest, org_id: int, alert_id: uuid.UUID, incident_id: uuid.UUID
) -> HttpResponse:
    alert, _ = alert_for(request.user, org_id, alert_id, write=True)
    incident = get_object_or_404(alert.incidents.all(), pk=incident_id)
    try:
        result = services.incident_replay(incident=incident, source=IncidentSource.USER, actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("alerts:detail", org_id=org_id, alert_id=alert.pk)
    return _fired(request, org_id, alert, result)
