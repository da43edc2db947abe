"""Read-side queries of the alert pages, kept out of the views."""

from django.db.models import Count, Max, Prefetch
from django.db.models.functions import Lower

from functions.models import FINISHED_STATUSES

from .models import AlertAction, AlertConfiguration, Incident, IncidentRun


def alert_list_rows(organization):
    """The organization's alerts by name, each with its actions' Functions, incident count and last incident."""
    return (
        AlertConfiguration.objects.of(organization)
        .annotate(incident_count=Count("incidents", distinct=True), last_incident_at=Max("incidents__created_at"))
        .prefetch_related(Prefetch("actions", queryset=AlertAction.objects.select_related("function")))
        .order_by(Lower("name"))
    )


def alert_actions(alert):
    return list(alert.actions.select_related("function", "function__deployed_version"))


def alert_incidents(alert):
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


def incidents_finished(incidents):
    """Whether every run the given incidents started has ended (the page stops polling)."""
    return all(
        action_run.run is None or action_run.run.status in FINISHED_STATUSES
        for incident in incidents
        for action_run in incident.action_runs.all()
    )
