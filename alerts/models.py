"""Alert configurations, their "Execute Function" actions, and the incidents that fire them.

The functions app never imports this module: it asks ``function.alert_actions``
(the reverse relation of AlertAction.function) whether a Function is an action,
so the dependency runs one way, alerts -> functions.
"""

import uuid
from datetime import UTC, datetime

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from accounts.models import Organization
from functions.models import FINISHED_STATUSES, Function, Run, RunStatus


class AlertConfigurationQuerySet(models.QuerySet):
    def of(self, organization):
        return self.filter(organization=organization)

    def named(self, name):
        return self.filter(name__iexact=name)


class AlertConfiguration(models.Model):
    """An alert of an organization; its id is the API's ``alertConfigurationId``."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="alerts")
    # Unique per organization without regard to case, as Function names are.
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    functions = models.ManyToManyField(Function, through="AlertAction", related_name="alerts")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AlertConfigurationQuerySet.as_manager()

    class Meta:
        ordering = [Lower("name")]
        constraints = [
            models.UniqueConstraint("organization", Lower("name"), name="alert_name_unique_per_org_ci"),
        ]

    def __str__(self):
        return self.name


class AlertAction(models.Model):
    """An "Execute Function" action: the alert's incidents each start one run of the Function."""

    alert = models.ForeignKey(AlertConfiguration, on_delete=models.CASCADE, related_name="actions")
    # RESTRICT, not PROTECT: deleting the organization (which cascades to both
    # sides) still works, while deleting the Function alone fails in the
    # database too, behind functions.services' readable refusal.
    function = models.ForeignKey(Function, on_delete=models.RESTRICT, related_name="alert_actions")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["alert", "function"], name="alertaction_alert_function_unique"),
        ]

    def __str__(self):
        return f"{self.alert.name}: execute {self.function.name}"


class IncidentSource(models.TextChoices):
    API = "api", "API token"
    USER = "user", "User"
    COMMAND = "command", "Command"


class IncidentQuerySet(models.QuerySet):
    def newest_first(self):
        return self.order_by("-created_at", "-pk")


class Incident(models.Model):
    """One delivery of an alert's incident, deduplicated or not, and what it started."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    alert = models.ForeignKey(AlertConfiguration, on_delete=models.CASCADE, related_name="incidents")
    driver_id = models.CharField(max_length=64, blank=True)
    asset_id = models.CharField(max_length=64, blank=True)
    # Epoch milliseconds as the sender wrote them; None when not given.
    alert_incident_time = models.CharField(max_length=20, null=True, blank=True)
    source = models.CharField(max_length=10, choices=IncidentSource.choices)
    # Who: the user's e-mail, the API token's name, or the command.
    source_label = models.CharField(max_length=254, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # A repeat of an incident of the last 24 hours: it started nothing and
    # answers with the first one's runs.
    duplicate_of = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="duplicates"
    )
    # An operator's replay of an earlier incident (never deduplicated).
    replay_of = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="replays")

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["alert", "-created_at"], name="incident_alert_time_idx")]

    def __str__(self):
        return f"{self.alert.name} incident {self.id}"

    @property
    def deduplicated(self):
        return self.duplicate_of_id is not None

    @property
    def failed(self):
        """Whether an action could not start or its run failed: the page marks the incident."""
        return any(action_run.failed for action_run in self.action_runs.all())

    @property
    def incident_time_at(self):
        """The incident time as an aware datetime, for people to read; None when not given."""
        if self.alert_incident_time is None:
            return None
        return datetime.fromtimestamp(int(self.alert_incident_time) / 1000, tz=UTC)

    @property
    def payload(self):
        """The alert payload as the Functions' events carry it (CONTRACT.md "Invocation")."""
        payload = {"alertConfigurationId": str(self.alert_id), "driverId": self.driver_id, "assetId": self.asset_id}
        if self.alert_incident_time is not None:
            payload["alertIncidentTime"] = self.alert_incident_time
        return payload


class IncidentRun(models.Model):
    """What an incident did for one action: the run it started, or why it could not start one.

    A table of its own (not a column on functions.Run) so runs know nothing of
    alerts; the run page finds its incident through the reverse relation.
    """

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="action_runs")
    # Kept by name too, so the record reads right after the Function is deleted.
    function = models.ForeignKey(Function, on_delete=models.SET_NULL, null=True, related_name="+")
    function_name = models.CharField(max_length=35)
    run = models.OneToOneField(Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="alert_incident_run")
    # Why no run was started (e.g. no deployed code); empty when one was.
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["id"]

    @property
    def failed(self):
        return bool(self.reason) or (
            self.run is not None and self.run.status in (RunStatus.FAILED, RunStatus.TIMED_OUT)
        )

    @property
    def finished(self):
        return self.run is None or self.run.status in FINISHED_STATUSES


class IncidentKey(models.Model):
    """The deduplication key: one row per (alert, driver, asset, incident time), owned by the
    incident that first claimed it, until ``expires_at`` (24 hours later).

    The unique constraint is what makes two concurrent deliveries of one
    incident start its runs once: the second INSERT waits for the first's
    transaction and then fails. An expired row is taken over by a conditional
    UPDATE (``... WHERE expires_at <= now``), which one delivery wins.
    """

    alert = models.ForeignKey(AlertConfiguration, on_delete=models.CASCADE, related_name="+")
    driver_id = models.CharField(max_length=64)
    asset_id = models.CharField(max_length=64)
    # "" when the incident has no alertIncidentTime (NULLs would never collide).
    incident_time = models.CharField(max_length=20)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "driver_id", "asset_id", "incident_time"], name="incidentkey_unique"
            ),
        ]
        indexes = [models.Index(fields=["expires_at"], name="incidentkey_expires_idx")]
