"""The Runs pages' filters (a Function's Runs tab, the organization's Runs page): status,
trigger, Function and time range, read from the query string with a message for every bad value.

The time range is what the Monitor's buckets link to: `start` and `end` in ISO
8601; a time without an offset is in the organization's time zone.
"""

import dataclasses
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from .models import Function, RunStatus, TriggerSource


@dataclasses.dataclass
class RunFilter:
    status: str = ""
    trigger: str = ""
    function: Function | None = None
    function_name: str = ""
    start: datetime | None = None
    end: datetime | None = None
    errors: list = dataclasses.field(default_factory=list)
    # The named Function is not one of this organization's: the page answers 404.
    unknown_function: bool = False
    # Set when the range reaches back past run retention (RUNS_RETENTION_DAYS).
    retention_note: str = ""

    @property
    def active(self):
        return bool(self.status or self.trigger or self.function or self.start or self.end)

    def apply(self, runs):
        if self.status:
            runs = runs.filter(status=self.status)
        if self.trigger:
            runs = runs.filter(trigger=self.trigger)
        if self.function is not None:
            runs = runs.filter(function=self.function)
        if self.start:
            runs = runs.filter(created_at__gte=self.start)
        if self.end:
            runs = runs.filter(created_at__lt=self.end)
        return runs

    def query(self, **extra):
        """The filter as query-string pairs (pagination links keep it)."""
        pairs = {"status": self.status, "trigger": self.trigger, "function": self.function_name,
                 "start": self.start.isoformat() if self.start else "", "end": self.end.isoformat() if self.end else ""}
        pairs.update(extra)
        return {k: v for k, v in pairs.items() if v}


def runs_retention_cutoff(now=None):
    return (now or timezone.now()) - timedelta(days=settings.RUNS_RETENTION_DAYS)


def _instant(raw, field):
    try:
        value = datetime.fromisoformat(raw.strip().replace(" ", "T", 1) if "T" not in raw else raw.strip())
    except ValueError:
        raise ValueError(
            f"“{raw[:40]}” is not a time for {field}: use ISO 8601, like 2026-03-08T14:00 or 2026-03-08T14:00:00+00:00."
        ) from None
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_current_timezone())
    return value.astimezone(UTC)


def run_filter_parse(params, *, organization, function=None, now=None):
    """A RunFilter from a query string; `function` fixes the Function (a Function's own Runs tab)."""
    found = RunFilter(function=function, function_name="" if function else params.get("function", "").strip())
    status = params.get("status", "").strip()
    if status and status not in RunStatus.values:
        found.errors.append(f"Unknown status “{status[:20]}”: use one of {', '.join(RunStatus.values)}.")
    else:
        found.status = status
    trigger = params.get("trigger", "").strip()
    if trigger and trigger not in TriggerSource.values:
        found.errors.append(f"Unknown trigger “{trigger[:20]}”: use one of {', '.join(TriggerSource.values)}.")
    else:
        found.trigger = trigger
    if found.function_name:
        found.function = Function.objects.of(organization).filter(name=found.function_name).first()
        if found.function is None:
            found.unknown_function = True
            found.errors.append(f"This organization has no Function named “{found.function_name[:35]}”.")
    for field in ("start", "end"):
        raw = params.get(field, "").strip()
        if raw:
            try:
                setattr(found, field, _instant(raw, field))
            except ValueError as problem:
                found.errors.append(str(problem))
    if found.start and found.end and found.end <= found.start:
        found.errors.append("The end of the time range must be after its start.")
        found.end = None
    cutoff = runs_retention_cutoff(now)
    if found.start and found.start < cutoff:
        local = timezone.localtime(cutoff)
        found.retention_note = (
            f"Runs are kept for {settings.RUNS_RETENTION_DAYS} days (RUNS_RETENTION_DAYS): nothing older than "
            f"{local:%Y-%m-%d %H:%M %Z} is left, so this range shows only what is newer."
        )
        if found.end and found.end <= cutoff:
            found.retention_note = (
                f"This range ends before {local:%Y-%m-%d %H:%M %Z}: runs are kept for {settings.RUNS_RETENTION_DAYS} "
                "days (RUNS_RETENTION_DAYS), so none of its runs are left. Pick a later range."
            )
    return found
