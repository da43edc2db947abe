"""Schedules: every change to a schedule, every preview and the tick go through here.

The Schedule tab, the import review, ``manage.py schedule_function`` and the
REST API call these functions, so a rule holds wherever a change comes from.
A refused change raises ValidationError keyed by ``enabled``, ``timezone``,
``items`` or ``items[N]`` (the N-th item as given) and writes nothing.

Exactly once: each Schedule row keeps its next occurrence in an indexed
column, recomputed in the transaction of every change. The tick locks the due
rows (FOR UPDATE SKIP LOCKED, so concurrent ticks share the work instead of
waiting), claims each occurrence by inserting its (Function, instant) row
under a unique constraint, creates the runs and moves the column on, all in
one transaction per batch; the task then has the runs sent. A second beat, a second worker or a retried tick finds the row
locked, the column moved or the claim taken, and does nothing.
"""

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from functions.audit import AuditAction, actor_user, audit_record
from functions.models import Run, TriggerSource
from functions.run_services import runs_trigger_scheduled

from . import rules
from .models import Occurrence, OccurrenceOutcome, Schedule

logger = logging.getLogger(__name__)

UNCHANGED = ...
# An occurrence this late when the tick reaches it was not merely waiting for
# the next tick: no scheduler was running (see "Downtime" in CONTRACT.md).
MISSED_AFTER = timedelta(seconds=60)
# Counting what an outage missed stops here (an every-minute schedule down for 69 days).
MAX_MISSED_COUNT = 100_000
PREVIEW_COUNT = 10
EDIT_GRACE = timedelta(seconds=2)


def _validation_error(exc):
    by_path = {}
    for path, message in exc.errors:
        by_path.setdefault(path, []).append(message)
    return ValidationError(by_path)


# --------------------------------------------------------------------------- reading


def schedule_of(function):
    """The Function's schedule, or an unsaved disabled one without items (nothing is written)."""
    try:
        return function.schedule
    except Schedule.DoesNotExist:
        return Schedule(function=function, enabled=False, timezone=None, items=[])


def schedule_zone(schedule):
    """The zone its times are in: its own, or its organization's (followed when that changes)."""
    return rules.zone(schedule.timezone or schedule.function.organization.timezone)


def schedule_items(schedule):
    """The stored items as rules.Entry / rules.Cron, in the admin's order."""
    return rules.parse_items(schedule.items)


def schedule_occurrences(*, schedule, after=None, count=PREVIEW_COUNT):
    """The next ``count`` occurrences after ``after`` (default now) as UTC instants, even while disabled."""
    after = after or timezone.now()
    return rules.first_occurrences(schedule_items(schedule), schedule_zone(schedule), after, count)


def schedule_next_occurrence(*, function, after=None):
    """When the Function's schedule fires next (the API's ``effects.nextScheduledAtTime``), or None when
    it is disabled or has no items."""
    schedule = schedule_of(function)
    if not schedule.enabled or not schedule.items:
        return None
    if after is None and schedule.pk is not None:
        return schedule.next_occurrence_at
    return rules.next_occurrence(schedule_items(schedule), schedule_zone(schedule), after or timezone.now())


@dataclass(frozen=True)
class PreviewRow:
    instant: datetime  # UTC
    local: datetime  # in the schedule's zone
    offset: str  # "UTC−07:00"
    note: str  # what a daylight-saving change does to it, or ""


def schedule_preview(*, schedule, after=None, count=PREVIEW_COUNT):
    """The next occurrences in the schedule's zone with their UTC offset, each marked when a
    daylight-saving change affects it."""
    after = after or timezone.now()
    tz = schedule_zone(schedule)
    items = schedule_items(schedule)
    instants = rules.first_occurrences(items, tz, after, count)
    notes = {}
    if instants:
        for note in rules.dst_notes(items, tz, after, instants[-1] + timedelta(seconds=1)):
            for instant in note.instants:
                notes.setdefault(instant, note.message)
    return [
        PreviewRow(instant, instant.astimezone(tz), rules.format_offset(instant.astimezone(tz).utcoffset()),
                   notes.get(instant, ""))
        for instant in instants
    ]


def schedule_dst_notes(*, schedule, after=None, days=366):
    """Every daylight-saving change in the next year and what it does to each item."""
    after = after or timezone.now()
    items = schedule_items(schedule)
    return rules.dst_notes(items, schedule_zone(schedule), after, after + timedelta(days=days))


def schedule_as_samsara(schedule):
    """Samsara's ``{entries, timezone}`` (the API's ``config.schedule``); cron items have no place there."""
    return rules.items_to_samsara(schedule_items(schedule), schedule_zone(schedule).key)


def schedule_describe(schedule):
    """[(item, plain English)] in the admin's order."""
    return [(item, rules.describe(item)) for item in schedule_items(schedule)]


# --------------------------------------------------------------------------- changing


def schedule_clean(*, timezone_name, items):
    """(timezone name or None, [items as stored JSON]) or ValidationError with every problem at its field."""
    errors = []
    tz_name = None
    if timezone_name not in (None, "", "org"):
        try:
            tz_name = rules.zone(timezone_name).key
        except rules.ScheduleError as exc:
            errors += exc.errors
    parsed = []
    try:
        parsed = rules.parse_items(items)
    except rules.ScheduleError as exc:
        errors += exc.errors
    if errors:
        raise _validation_error(rules.ScheduleError(errors))
    return tz_name, [item.as_json() for item in parsed]


def _next_after(schedule, after):
    if not schedule.enabled or not schedule.items:
        return None
    return rules.next_occurrence(schedule_items(schedule), schedule_zone(schedule), after)


def _recompute(schedule, now, grace=timedelta(0)):
    """Where the tick picks up: the first occurrence after ``now - grace``, never one already handled."""
    after = now - grace
    if schedule.last_occurrence_at is not None and schedule.last_occurrence_at > after:
        after = schedule.last_occurrence_at
    schedule.next_occurrence_at = _next_after(schedule, after)


def _describe_for_history(enabled, tz_name, items):
    parts = [describe for describe in (rules.describe(rules.parse_item(i, "items")) for i in items)]
    zone_text = tz_name or "the organization's time zone"
    return {
        "enabled": enabled,
        "timezone": zone_text,
        "items": parts,
    }


def schedule_set(
    *, function, enabled=UNCHANGED, timezone_name=UNCHANGED, items=UNCHANGED, actor=None, actor_label=None,
    now=None,
):
    """Change the Function's schedule; what is not given stays as it is. Takes effect at the next occurrence.

    ``items`` are Samsara entries (``{"daysOfWeek", "timeSinceMidnightMs"}``,
    optionally with ``"kind": "entry"``), cron strings or ``{"kind": "cron",
    "expression"}``; ``timezone_name`` is an IANA name, or None to follow the
    organization's. Returns the saved Schedule.
    """
    now = now or timezone.now()
    with transaction.atomic():
        schedule = Schedule.objects.select_for_update().filter(function=function).first()
        created = schedule is None
        if created:
            schedule = Schedule(function=function, enabled=False, timezone=None, items=[])
        before = (schedule.enabled, schedule.timezone, list(schedule.items))
        new_tz = schedule.timezone if timezone_name is UNCHANGED else timezone_name
        new_items = schedule.items if items is UNCHANGED else items
        if enabled is not UNCHANGED and not isinstance(enabled, bool):
            raise ValidationError({"enabled": ["Enabled must be true or false."]})
        tz_name, clean_items = schedule_clean(timezone_name=new_tz, items=new_items)
        schedule.timezone = tz_name
        schedule.items = clean_items
        if enabled is not UNCHANGED:
            schedule.enabled = enabled
        schedule.function = function
        schedule.updated_by = actor_user(actor)
        # An occurrence that came due a moment ago and that the tick has not reached yet still fires.
        _recompute(schedule, now, grace=EDIT_GRACE)
        schedule.save()
        after = (schedule.enabled, schedule.timezone, list(schedule.items))
        if created or after != before:
            old = _describe_for_history(*before)
            new = _describe_for_history(*after)
            changes = {key: {"from": None if created else old[key], "to": new[key]} for key in new
                       if created or old[key] != new[key]}
            audit_record(
                function=function, actor=actor, actor_label=actor_label, action=AuditAction.SCHEDULE_CHANGED,
                summary=_history_summary(schedule, new),
                changes=changes,
            )
    return schedule


def _history_summary(schedule, described):
    state = "enabled" if schedule.enabled else "disabled"
    count = len(schedule.items)
    return (
        f"Schedule {state}: {count} item{'' if count == 1 else 's'} in {described['timezone']}"
        + (f" ({'; '.join(described['items'])})" if described["items"] else "")
    )


def schedule_set_from_samsara(*, function, samsara_schedule=UNCHANGED, enabled=UNCHANGED, actor=None,
                              actor_label=None):
    """The REST API's ``config.schedule`` (``{entries, timezone}``) and ``isScheduleEnabled``.

    Samsara's shape has entries only: setting it replaces the entries and keeps
    any cron items. Errors are keyed ``schedule.entries[N]`` / ``schedule.timezone``.
    """
    items = timezone_name = UNCHANGED
    if samsara_schedule is not UNCHANGED and samsara_schedule is not None:
        try:
            entries, timezone_name = rules.items_from_samsara(samsara_schedule)
        except rules.ScheduleError as exc:
            raise _validation_error(exc) from None
        kept = [i for i in schedule_of(function).items if i.get("kind") == "cron"]
        items = [e.as_json() for e in entries] + kept
    return schedule_set(function=function, enabled=enabled, timezone_name=timezone_name, items=items, actor=actor,
                        actor_label=actor_label)


def schedule_import(*, function, imported, actor=None, actor_label=None):
    """An imported bundle's schedule (``Function.imported_schedule``) becomes the Function's, enabled as
    the file says, in the organization's time zone. Errors are keyed ``schedule.entries[N]``."""
    if not imported:
        return None
    try:
        entries, _ = rules.items_from_samsara({"entries": imported.get("entries") or []})
    except rules.ScheduleError as exc:
        raise _validation_error(exc) from None
    return schedule_set(
        function=function, enabled=bool(imported.get("isSchedulingEnabled")), timezone_name=None,
        items=[e.as_json() for e in entries], actor=actor, actor_label=actor_label,
    )


def schedules_follow_organization(*, organization, now=None):
    """After an organization's time zone changed: move the schedules that follow it. Returns how many."""
    now = now or timezone.now()
    moved = 0
    with transaction.atomic():
        for schedule in (
            Schedule.objects.select_for_update().filter(function__organization=organization, timezone__isnull=True)
            .select_related("function__organization")
        ):
            schedule.function.organization = organization
            _recompute(schedule, now)
            schedule.save(update_fields=["next_occurrence_at"])
            moved += 1
    return moved


# --------------------------------------------------------------------------- the tick


@dataclass
class TickResult:
    schedules: int = 0
    started: int = 0
    dropped: int = 0
    missed: int = 0
    # The next occurrence of any schedule, when it comes before the next regular tick.
    next_due: datetime | None = None
    # The runs started, committed: the caller has them sent to workers.
    run_ids: list = field(default_factory=list)

    def as_dict(self):
        return {"schedules": self.schedules, "started": self.started, "dropped": self.dropped, "missed": self.missed,
                "nextDue": self.next_due.isoformat() if self.next_due else None}


@dataclass
class _Plan:
    """What one due schedule asks for: occurrences to start, and the missed ones summed in one dropped run."""

    schedule: Schedule
    start: list
    missed: tuple | None  # (count, first, last) or None


def schedules_tick(*, now=None, batch_size=100, look_ahead=None):
    """Fire every due occurrence once; return what it did and the next occurrence within ``look_ahead``.

    Runs as often as beat drives it (``SCHEDULE_TICK_SECONDS``); any number
    may run at once. A batch of due schedules is locked, planned in Python and
    written with a handful of statements (claims, runs, the schedules' columns)
    whatever its size. The started runs' ids come back in ``run_ids``, every
    batch committed, for the task to send (schedules.tasks).
    """
    now = now or timezone.now()
    result = TickResult()
    to_enqueue = []
    while True:
        with transaction.atomic():
            batch = list(
                Schedule.objects.due(now)
                .select_related("function__organization")
                .select_for_update(skip_locked=True, of=("self",))[:batch_size]
            )
            if not batch:
                break
            to_enqueue += _fire_batch(batch, now, result)
        if len(batch) < batch_size:
            break
    result.run_ids = to_enqueue
    look_ahead = look_ahead if look_ahead is not None else timedelta(seconds=settings.SCHEDULE_TICK_SECONDS)
    upcoming = Schedule.objects.filter(next_occurrence_at__gt=now).aggregate(at=Min("next_occurrence_at"))["at"]
    if upcoming is not None and upcoming <= timezone.now() + look_ahead:
        result.next_due = upcoming
    return result


def _fire_batch(batch, now, result):
    """Claim, start, drop and advance a locked batch of due schedules; the ids of the runs started."""
    busy = set(
        Run.objects.filter(function_id__in=[s.function_id for s in batch], trigger=TriggerSource.SCHEDULE)
        .unfinished().values_list("function_id", flat=True)
    )
    plans, known = [], {}
    for schedule in batch:
        result.schedules += 1
        try:
            plans.append(_plan(schedule, now, known))
        except Exception:
            # Items that no longer parse (stored before a rule changed): stop this schedule rather
            # than fail every tick on it; the Schedule tab shows the error when the admin opens it.
            logger.exception("schedule of function %s cannot be evaluated; it is stopped", schedule.function_id)
            schedule.next_occurrence_at = None
    # Decide each occurrence's fate first, so its claim records it: a Function whose previous
    # scheduled run is still queued or running (or started a moment ago in this batch) drops it.
    decided = []
    for plan in plans:
        function_id = plan.schedule.function_id
        if plan.missed:
            decided.append((plan, plan.missed[1], OccurrenceOutcome.MISSED))
        for instant in plan.start:
            outcome = OccurrenceOutcome.OVERLAP if function_id in busy else OccurrenceOutcome.STARTED
            busy.add(function_id)
            decided.append((plan, instant, outcome))
    claimed = _claim_all([(plan.schedule.function_id, instant, outcome) for plan, instant, outcome in decided])
    start, dropped = [], []
    for plan, instant, outcome in decided:
        function = plan.schedule.function
        if (function.id, instant) not in claimed:
            continue  # handled already (another tick, or before an edit)
        tz = schedule_zone(plan.schedule)
        if outcome == OccurrenceOutcome.MISSED:
            count, first, last = plan.missed
            dropped.append((function, first, _missed_reason(count, first, last, tz)))
            result.missed += count
        elif outcome == OccurrenceOutcome.OVERLAP:
            dropped.append((function, instant, (
                "Not started: the previous scheduled run was still queued or running when the occurrence "
                f"of {_local_text(instant, tz)} came due."
            )))
        else:
            start.append((function, instant))
    runs = runs_trigger_scheduled(occurrences=start, dropped=dropped)
    result.started += len(runs)
    result.dropped += len(dropped)
    _save_columns(batch)
    return [run.id for run in runs]


def _save_columns(batch):
    """Write the batch's moved columns: one UPDATE per distinct (next, last) pair, which is few when many
    schedules fire at the same instant (bulk_update's CASE per row is quadratic in the batch)."""
    groups = {}
    for schedule in batch:
        groups.setdefault((schedule.next_occurrence_at, schedule.last_occurrence_at), []).append(schedule.pk)
    for (next_at, last_at), ids in groups.items():
        Schedule.objects.filter(pk__in=ids).update(next_occurrence_at=next_at, last_occurrence_at=last_at)


def _plan(schedule, now, known):
    """Which occurrences from the column up to now start, and which were missed (no scheduler was running).

    The most recent missed occurrence still starts when it is less than
    SCHEDULE_CATCH_UP_SECONDS late; the rest are summed up. Moves the
    schedule's columns on (the caller writes them). ``known`` remembers the
    answer for schedules with the same items, zone and columns: at a crowded
    instant most of them share a few common expressions.
    """
    tz = schedule_zone(schedule)
    key = (json.dumps(schedule.items, sort_keys=True), tz.key, schedule.next_occurrence_at, schedule.last_occurrence_at)
    if key in known:
        start, missed, schedule.next_occurrence_at, schedule.last_occurrence_at = known[key]
        return _Plan(schedule=schedule, start=list(start), missed=missed)
    plan = _plan_walk(schedule, tz, now)
    known[key] = (tuple(plan.start), plan.missed, schedule.next_occurrence_at, schedule.last_occurrence_at)
    return plan


def _plan_walk(schedule, tz, now):
    items = schedule_items(schedule)
    catch_up = timedelta(seconds=settings.SCHEDULE_CATCH_UP_SECONDS)
    # Only the first, the last and how many: an outage can miss a great many.
    count, first, last, previous_to_last, recent, latest, upcoming = 0, None, None, None, [], None, None
    for instant in rules.occurrences(items, tz, schedule.next_occurrence_at - timedelta(microseconds=1)):
        if instant > now:
            upcoming = instant  # the same walk gives the next occurrence
            break
        latest = instant
        if now - instant <= MISSED_AFTER:
            recent.append(instant)
            continue
        count += 1
        first = first or instant
        previous_to_last, last = last, instant
        if count >= MAX_MISSED_COUNT:
            break
    if not recent and last is not None and now - last < catch_up:
        recent, count, last = [last], count - 1, previous_to_last
    schedule.last_occurrence_at = max(filter(None, [latest, schedule.last_occurrence_at]), default=None)
    if upcoming is not None and upcoming > schedule.last_occurrence_at:
        schedule.next_occurrence_at = upcoming
    else:
        _recompute(schedule, now)
    return _Plan(schedule=schedule, start=recent, missed=(count, first, last) if count else None)


def _claim_all(claims):
    """Insert the occurrences' rows in one statement; the (function id, instant) pairs this caller claimed.

    The unique (function, instant) constraint is what makes an occurrence fire
    once: a pair already there (another tick, a retry) is not returned.
    """
    if not claims:
        return set()
    table = Occurrence._meta.db_table
    instant_field = Occurrence._meta.get_field("scheduled_for")
    created = Occurrence._meta.get_field("created_at").get_db_prep_value(timezone.now(), connection)
    params, rows = [], []
    for function_id, instant, outcome in claims:
        rows.append("(%s, %s, %s, %s)")
        params += [function_id, instant_field.get_db_prep_value(instant, connection), outcome, created]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (function_id, scheduled_for, outcome, created_at) VALUES {', '.join(rows)} "
            "ON CONFLICT (function_id, scheduled_for) DO NOTHING RETURNING function_id, scheduled_for",
            params,
        )
        returned = cursor.fetchall()
    return {(function_id, _as_instant(value)) for function_id, value in returned}


def _as_instant(value):
    """A timestamp as the database returned it (aware on PostgreSQL, text or naive UTC on SQLite)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _local_text(instant, tz):
    local = instant.astimezone(tz)
    return f"{local:%Y-%m-%d %H:%M} ({rules.format_offset(local.utcoffset())})"


def _missed_reason(count, first, last, tz):
    counted = f"{count:,}" + (" or more" if count >= MAX_MISSED_COUNT else "")
    noun = "occurrence" if count == 1 else "occurrences"
    span = f"at {_local_text(first, tz)}" if first == last else \
        f"between {_local_text(first, tz)} and {_local_text(last, tz)}"
    return f"Missed {counted} {noun} {span}: no scheduler was running."


def occurrences_prune(*, older_than=None, batch_size=5000):
    """Delete claims old enough that nothing can reach their instant again. Returns how many."""
    cutoff = timezone.now() - (older_than or timedelta(days=settings.SCHEDULE_OCCURRENCE_RETENTION_DAYS))
    deleted = 0
    while True:
        ids = list(Occurrence.objects.filter(created_at__lt=cutoff).values_list("id", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += Occurrence.objects.filter(id__in=ids).delete()[0]
