"""Read-side queries of the alert pages, kept out of the views."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count, Max, Prefetch, QuerySet
from django.db.models.functions import Lower

from accounts.models import Organization
from functions.models import FINISHED_STATUSES

from .models import AlertAction, AlertConfiguration, Incident, IncidentRun


def alert_list_rows(organization: Organization) -> QuerySet[AlertConfiguration]:
    """The organization's alerts by name, each with its actions' Functions, incident count and last incident."""
    return (
        AlertConfiguration.objects.of(organization)
        .annotate(incident_count=Count("incidents", distinct=True), last_incident_at=Max("incidents__created_at"))
        .prefetch_related(Prefetch("actions", queryset=AlertAction.objects.select_related("function")))
        .order_by(Lower("name"))
    )


def alert_actions(alert: AlertConfiguration) -> list[AlertAction]:
    return list(alert.actions.select_related("function", "function__deployed_version"))


def alert_incidents(alert: AlertConfiguration) -> QuerySet[Incident]:
    """The alert's incidents, newest first, with what each started (or why it could not)."""
    return (
        Incident.objects.filter(alert=alert)
        .newest_first()
        .select_related("duplicate_of", "replay_of", "actor")
        .prefetch_related(
            Prefetch(
                "action_runs",
                queryset=IncidentRun.objects.select_related("run", "run__function").order_by("id"),
            )
        )
    )


def incidents_finished(incidents: Iterable[Incident]) -> bool:
    """Whether every run the given incidents started has ended (the page stops polling)."""
    return all(
        action_run.run is None or action_run.run.status in FINISHED_STATUSES
        for incident in incidents
        for action_run in incident.action_runs.all()
    )
