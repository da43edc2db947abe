import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.models import Organization


class FunctionQuerySet(models.QuerySet):
    def of(self, organization):
        return self.filter(organization=organization)

    def named(self, name):
        return self.filter(name__iexact=name)


class Function(models.Model):
    """A customer's Function: configuration plus a pointer to the code version that runs."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="functions")
    # Unique per organization without regard to case; cannot change after creation.
    name = models.CharField(max_length=35)
    description = models.TextField(blank=True)
    handler = models.CharField(max_length=255)
    # [{"name": ..., "value": ...}] in the order the admin gave them (a JSON
    # object would lose its order in PostgreSQL's jsonb).
    event_parameters = models.JSONField(default=list, blank=True)
    visible_to_customers = models.BooleanField(default=False)
    # The Function's own lower wall-clock limit; None means the deployment's.
    timeout_seconds = models.PositiveIntegerField(null=True, blank=True)
    # The size of the run's /tmp in MB (FUNCTIONS_TMP_MB when empty), like Lambda's ephemeral storage.
    tmp_mb = models.PositiveIntegerField(null=True, blank=True)
    deployed_version = models.ForeignKey(
        "CodeVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Optimistic locking: every save of the configuration bumps it; a save
    # based on an older revision is refused.
    revision = models.PositiveIntegerField(default=1)
    # Schedule entries read from an imported bundle's import.metadata.json,
    # kept until schedules exist (a later issue turns them into real entries):
    # {"isSchedulingEnabled": bool, "entries": [{"timeSinceMidnightMs": int,
    # "daysOfWeek": [7 booleans, Sunday first]}]}, or None when nothing was imported.
    imported_schedule = models.JSONField(null=True, blank=True)

    objects = FunctionQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint("organization", Lower("name"), name="function_name_unique_per_org_ci"),
        ]

    def __str__(self):
        return self.name

    @property
    def parameters_dict(self):
        return {p["name"]: p["value"] for p in self.event_parameters}


class CodeVersion(models.Model):
    """One uploaded code package of a Function; immutable once stored."""

    function = models.ForeignKey(Function, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    uncompressed_size = models.PositiveBigIntegerField()
    file_count = models.PositiveIntegerField()
    # Where the zip lives in Django's storage; identical zips of an
    # organization share one object.
    storage_key = models.CharField(max_length=255)
    handler = models.CharField(max_length=255, help_text="The handler this package was validated against.")
    message = models.CharField(max_length=500, blank=True)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    # Who uploaded it when no user did (a command, an API token), as History labels it.
    uploaded_by_label = models.CharField(max_length=254, blank=True)
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["function", "number"], name="codeversion_function_number_unique"),
        ]
        indexes = [models.Index(fields=["sha256"], name="codeversion_sha256_idx")]

    def __str__(self):
        return f"{self.function.name} v{self.number}"


class AuditEntry(models.Model):
    """The Function's History tab: who changed what, when. Never a secret's value."""

    function = models.ForeignKey(Function, on_delete=models.SET_NULL, null=True, related_name="history")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    # Kept so the entry still reads right after the Function is deleted.
    function_name = models.CharField(max_length=35)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    actor_label = models.CharField(max_length=254, blank=True, help_text="e-mail, or the command / API token that acted")
    action = models.CharField(max_length=40)  # an audit.AuditAction
    summary = models.CharField(max_length=500)
    # {"field": {"from": ..., "to": ...}} or other structured details.
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["function", "-created_at"], name="audit_function_time_idx")]


# A run's and an attempt's reason hold the whole error message (wrapped on the
# run page), up to this many characters.
REASON_MAX_LENGTH = 2000


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    TIMED_OUT = "timed_out", "Timed out"
    # Never executed: an occurrence the scheduler skipped (overlap, downtime);
    # the reason says why, so the Runs tab shows the real cadence.
    DROPPED = "dropped", "Dropped"


FINISHED_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.DROPPED)


class TriggerSource(models.TextChoices):
    MANUAL = "manual", "Manual"
    API = "api", "API"
    SCHEDULE = "schedule", "Schedule"
    ALERT = "alert", "Alert"


class RunQuerySet(models.QuerySet):
    def of(self, organization):
        return self.filter(organization=organization)

    def unfinished(self):
        return self.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING])

    def with_total_duration(self):
        """``total_ms``: every attempt's duration added up, not only the last one's."""
        return self.annotate(total_ms=models.Sum("attempt_rows__duration_ms"))


class Run(models.Model):
    """One invocation of a Function: up to three attempts under one correlation id."""

    correlation_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    function = models.ForeignKey(Function, on_delete=models.CASCADE, related_name="runs")
    code_version = models.ForeignKey(CodeVersion, on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    trigger = models.CharField(max_length=10, choices=TriggerSource.choices)
    triggered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    # The event the handler receives (never secrets) and the overrides that went into it.
    event = models.JSONField(default=dict)
    overrides = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    timeout_seconds = models.PositiveIntegerField()
    # The /tmp size this run's attempts get, fixed when it was triggered (as the timeout is).
    tmp_mb = models.PositiveIntegerField(default=512)
    memory_mb = models.PositiveIntegerField()
    # JSON text of the handler's return value, as the handler returned it.
    return_value = models.TextField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    reason = models.CharField(max_length=REASON_MAX_LENGTH, blank=True)
    peak_memory_mb = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # When the next attempt may start (retry backoff); None when not waiting.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # For scheduled runs: the occurrence (UTC instant) the run was for.
    scheduled_for = models.DateTimeField(null=True, blank=True)
    logs_expired = models.BooleanField(default=False)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["function", "-created_at"], name="run_function_time_idx"),
            models.Index(fields=["status", "next_attempt_at"], name="run_status_next_idx"),
            # The organization-wide Runs page, newest first; run retention, oldest first, organization by
            # organization (an index on created_at alone would tempt SQLite's planner, which has no
            # statistics, away from the per-Function indexes for every "last 24 hours" query).
            models.Index(fields=["organization", "-created_at"], name="run_org_time_idx"),
            # Covers what the Monitor's aggregates read of a Function's runs in a time range
            # (monitor.queries): an index-only range scan instead of one table page per run.
            models.Index(
                fields=["function", "created_at", "status", "attempts", "trigger", "duration_ms", "peak_memory_mb",
                        "started_at", "scheduled_for", "id"],
                name="run_function_health_idx",
            ),
            # A Function's last error and its failure count, without walking its successes.
            models.Index(
                fields=["function", "-created_at"], name="run_function_failed_idx",
                condition=models.Q(status__in=["failed", "timed_out"]),
            ),
            # Which run a worker takes next (runtime.dispatch): the waiting and the executing runs
            # per organization. Partial, so they hold only the few runs not yet finished.
            models.Index(
                fields=["organization", "id"], name="run_queued_org_idx", condition=models.Q(status="queued"),
            ),
            models.Index(fields=["organization"], name="run_running_org_idx", condition=models.Q(status="running")),
        ]

    def __str__(self):
        return f"{self.function.name} {self.correlation_id}"

    @property
    def is_finished(self):
        return self.status in FINISHED_STATUSES


class RunTurn(models.Model):
    """When a worker last took one of an organization's queued runs: the turns between organizations.

    Among organizations with as few runs executing, the one served longest ago goes first
    (runtime.dispatch). Its row is also what a claim locks to count the organization's
    executing runs against FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION.
    """

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, primary_key=True, related_name="+")
    claimed_at = models.DateTimeField()


class AttemptOutcome(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    TIMED_OUT = "timed_out", "Timed out"
    WORKER_LOST = "worker_lost", "Worker lost"


class StartKind(models.TextChoices):
    COLD = "cold", "Cold start"
    WARM = "warm", "Warm start"


class Attempt(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="attempt_rows")
    number = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=12, choices=AttemptOutcome.choices, default=AttemptOutcome.RUNNING)
    reason = models.CharField(max_length=REASON_MAX_LENGTH, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    peak_memory_mb = models.FloatField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    # How the worker isolated this attempt, said plainly on the run page
    # (e.g. "bubblewrap; network: outbound, host loopback blocked").
    isolation = models.CharField(max_length=200, blank=True)
    # Whether the attempt was forked from a warm environment, and how long the
    # sandbox took from claim to the handler being called.
    start_kind = models.CharField(max_length=4, choices=StartKind.choices, blank=True)
    startup_ms = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    # Written by the worker while the attempt runs; a stale one means the worker is gone.
    heartbeat_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="attempt_run_number_unique")]
        indexes = [
            models.Index(fields=["outcome", "heartbeat_at"], name="attempt_outcome_heartbeat_idx"),
            # The Monitor's cold and warm starts, read by run without touching the table.
            models.Index(fields=["run", "start_kind", "startup_ms"], name="attempt_run_start_idx"),
        ]
