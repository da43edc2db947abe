"""A Function's schedule and the occurrences the tick has claimed.

Schedules scale by data, not by processes: each schedule keeps its next
occurrence in an indexed column, so the tick (schedules.services.schedules_tick)
finds what is due with one index range scan however many schedules exist,
and beat has a single entry for all of them.
"""

from django.conf import settings
from django.db import models

from functions.models import Function


class ScheduleQuerySet(models.QuerySet):
    def due(self, now):
        """Enabled schedules whose next occurrence has come (the tick's one indexed query)."""
        return self.filter(next_occurrence_at__lte=now).order_by("next_occurrence_at")


class Schedule(models.Model):
    """One per Function: enabled flag, time zone and up to 100 items (Samsara entries and cron expressions).

    ``items`` keeps the order the admin gave: ``{"kind": "entry", "daysOfWeek":
    [7 booleans, Sunday first], "timeSinceMidnightMs": int}`` or ``{"kind":
    "cron", "expression": "*/30 * * * *"}``.
    """

    function = models.OneToOneField(Function, on_delete=models.CASCADE, related_name="schedule")
    enabled = models.BooleanField(default=False)
    # An IANA name, or None to follow the organization's (also when that changes).
    timezone = models.CharField(max_length=64, null=True, blank=True)
    items = models.JSONField(default=list, blank=True)
    # The earliest occurrence not yet handled; None while disabled or without items.
    # Recomputed in the transaction of every change, advanced by the tick.
    next_occurrence_at = models.DateTimeField(null=True, blank=True)
    # The latest occurrence the tick handled (fired, dropped or summed as missed).
    last_occurrence_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")

    objects = ScheduleQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["next_occurrence_at"], name="schedule_next_occurrence_idx")]

    def __str__(self):
        return f"schedule of {self.function_id}"


class OccurrenceOutcome(models.TextChoices):
    STARTED = "started", "Started a run"
    OVERLAP = "overlap", "Dropped: the previous run was still going"
    MISSED = "missed", "Missed while no scheduler was running"
    FAILED = "failed", "Could not start"


class Occurrence(models.Model):
    """The claim on one occurrence: (Function, instant in UTC) is unique, so it fires once.

    Any number of beats, workers or retried ticks may reach the same
    occurrence; only the one whose INSERT succeeds starts (or drops) a run.
    Rows are kept for SCHEDULE_OCCURRENCE_RETENTION_DAYS, long past the point
    where anything could try the same instant again.
    """

    function = models.ForeignKey(Function, on_delete=models.CASCADE, related_name="+")
    scheduled_for = models.DateTimeField()
    outcome = models.CharField(max_length=10, choices=OccurrenceOutcome.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["function", "scheduled_for"], name="occurrence_function_instant_unique"),
        ]
        indexes = [models.Index(fields=["created_at"], name="occurrence_created_idx")]
