"""The rules of a schedule, without the database: items, occurrences, daylight saving, descriptions.

An item is a Samsara entry (days of the week and a time of day) or a 5-field
cron expression. Times are wall-clock times in the schedule's time zone,
resolved with ``zoneinfo`` as CONTRACT.md "Schedules" says:

- a time that does not exist that day (clocks jump forward) fires once, at the
  first minute after the jump (02:30 becomes 03:00);
- a time that occurs twice (clocks go back) fires once, at its first occurrence;
- an expression whose minute or hour field is a wildcard (``*/30 * * * *``,
  ``0 * * * *``) runs on real time, so it keeps its interval through both changes.

Cron expressions are evaluated by ``cronsim``, which follows Debian's cron in
exactly this (its "fixed time" jobs are those whose minute and hour fields do
not start with ``*``); entries are resolved here with the same rule. Every
failure is a ``ScheduleError`` listing ``(path, message)`` pairs, where a path
is ``timezone``, ``items`` or ``items[N]``.
"""

import functools
import heapq
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from cron_descriptor import ExpressionDescriptor, Options
from cronsim import CronSim, CronSimError
from cronsim.cronsim import Field

MAX_ITEMS = 100
MAX_TIME_SINCE_MIDNIGHT_MS = 86_399_999
MAX_CRON_LENGTH = 200
DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
DAY_ABBREVIATIONS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
WEEKDAYS = (False, True, True, True, True, True, False)
WEEKENDS = (True, False, False, False, False, False, True)
EVERY_DAY = (True,) * 7

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# (name, what it accepts) of the five fields, in order.
CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day of week", "0-7 (0 and 7 are Sunday) or SUN-SAT"),
)
_CRONSIM_FIELDS = (Field.MINUTE, Field.HOUR, Field.DAY, Field.MONTH, Field.DOW)
_NAMES_RE = re.compile(r"JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|SUN|MON|TUE|WED|THU|FRI|SAT")
_FIELD_CHARS_RE = re.compile(r"^[0-9*,/-]+$")


class ScheduleError(Exception):
    """Everything wrong with a schedule, as (path, message) pairs."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("; ".join(f"{path}: {message}" for path, message in self.errors))


# --------------------------------------------------------------------------- items


@dataclass(frozen=True)
class Entry:
    """A Samsara entry: the days it runs (Sunday first) and the time of day in milliseconds."""

    days_of_week: tuple[bool, ...]
    time_since_midnight_ms: int

    kind = "entry"

    @property
    def wall_time(self):
        seconds = self.time_since_midnight_ms // 1000
        return time(seconds // 3600, seconds // 60 % 60, seconds % 60)

    def as_json(self):
        return {"kind": "entry", "daysOfWeek": list(self.days_of_week), "timeSinceMidnightMs": self.time_since_midnight_ms}


@dataclass(frozen=True)
class Cron:
    """A 5-field cron expression, as the admin wrote it and as evaluated (macros expanded)."""

    expression: str
    fields: str

    kind = "cron"

    @property
    def fixed_time(self):
        """Debian cron's "fixed time" job: neither minute nor hour is a wildcard (cronsim's rule too)."""
        minute, hour = self.fields.split()[:2]
        return not minute.startswith("*") and not hour.startswith("*")

    def as_json(self):
        return {"kind": "cron", "expression": self.expression}


def zone(name, path="timezone"):
    """The ZoneInfo of an IANA name, or ScheduleError saying how to write one."""
    if not isinstance(name, str) or not name.strip():
        raise ScheduleError([(path, "Choose a time zone (an IANA name such as Europe/Berlin).")])
    name = name.strip()
    if name not in _available_zones():
        raise ScheduleError(
            [(path, f"“{name[:64]}” is not an IANA time zone name: use one such as Europe/Berlin or America/Los_Angeles.")]
        )
    return zoneinfo.ZoneInfo(name)


_ZONES = None


def _available_zones():
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(zoneinfo.available_timezones())
    return _ZONES


def parse_cron(text, path="items"):
    """A Cron from the admin's text, or ScheduleError naming the field at fault and its position."""
    if isinstance(text, str):
        try:
            return _parse_cron_cached(text)
        except ScheduleError as exc:
            raise ScheduleError([(path, message) for _, message in exc.errors]) from None
    return _parse_cron(text, path)


@functools.lru_cache(maxsize=4096)
def _parse_cron_cached(text):
    # The tick parses every due schedule's stored items; the same expressions come back all day.
    return _parse_cron(text, "items")


def _parse_cron(text, path):
    if not isinstance(text, str) or not text.strip():
        raise ScheduleError([(path, "Write a cron expression, for example */30 * * * * (every 30 minutes).")])
    expression = " ".join(text.split())
    if len(expression) > MAX_CRON_LENGTH:
        raise ScheduleError([(path, f"A cron expression is at most {MAX_CRON_LENGTH} characters long.")])
    shown = f"“{expression}”"
    if expression.startswith("@"):
        fields = MACROS.get(expression.lower())
        if fields is None:
            raise ScheduleError(
                [(path, f"{shown} is not a macro this scheduler knows: use one of {', '.join(MACROS)}, or 5 fields.")]
            )
    else:
        fields = expression
    written = fields.split()
    parts = fields.upper().split()
    if len(parts) == 6:
        raise ScheduleError(
            [(path, f"{shown} has 6 fields: seconds are not supported. Use 5 fields: minute, hour, day of month, "
                    "month and day of week (for example 0 9 * * 1-5).")]
        )
    if len(parts) != 5:
        raise ScheduleError(
            [(path, f"{shown} has {len(parts)} field{'' if len(parts) == 1 else 's'}: a cron expression has 5 "
                    "(minute, hour, day of month, month, day of week), for example 0 9 * * 1-5.")]
        )
    errors = []
    for position, (part, text_part, (name, accepts), field) in enumerate(
        zip(parts, written, CRON_FIELDS, _CRONSIM_FIELDS), start=1
    ):
        bare = _NAMES_RE.sub("0", part) if field in (Field.MONTH, Field.DOW) else part
        problem = None
        if not _FIELD_CHARS_RE.match(bare):
            problem = "is not supported"
        else:
            try:
                field.parse(part)
            except (CronSimError, ValueError):
                problem = "is out of range" if re.search(r"\d", part) else "is not valid"
        if problem:
            errors.append(
                (path, f"Field {position} ({name}) of {shown} is “{text_part}”, which "
                       f"{problem}: the {name} field takes {accepts}, with *, lists (1,2), ranges (1-5) and steps (*/15).")
            )
    if errors:
        raise ScheduleError(errors)
    try:
        next(CronSim(fields, datetime(2000, 1, 1, tzinfo=UTC)))
    except (CronSimError, StopIteration):
        raise ScheduleError([(path, f"{shown} never runs: no date has that day of the month in those months.")]) from None
    return Cron(expression=expression, fields=fields)


def parse_entry(raw, path="items"):
    """An Entry from Samsara's ``{daysOfWeek, timeSinceMidnightMs}``, or ScheduleError at its fields."""
    if not isinstance(raw, dict):
        raise ScheduleError([(path, "An entry needs daysOfWeek (7 booleans, Sunday first) and timeSinceMidnightMs.")])
    errors = []
    days = raw.get("daysOfWeek")
    if not isinstance(days, (list, tuple)) or len(days) != 7 or not all(isinstance(d, bool) for d in days):
        errors.append((path, "daysOfWeek must be 7 true/false values, Sunday first."))
    elif not any(days):
        errors.append((path, "Choose at least one day for this entry."))
    ms = raw.get("timeSinceMidnightMs")
    if isinstance(ms, bool) or not isinstance(ms, int):
        errors.append((path, "The time of day is missing: give it as HH:MM (timeSinceMidnightMs, a whole number)."))
    elif not 0 <= ms <= MAX_TIME_SINCE_MIDNIGHT_MS:
        errors.append(
            (path, f"The time of day must be within the day, 00:00 to 23:59:59 (timeSinceMidnightMs 0 to "
                   f"{MAX_TIME_SINCE_MIDNIGHT_MS}); got {ms}.")
        )
    if errors:
        raise ScheduleError(errors)
    return Entry(days_of_week=tuple(days), time_since_midnight_ms=ms)


def parse_item(raw, path):
    """One stored or submitted item: ``{"kind": "entry", ...}``, ``{"kind": "cron", "expression": ...}``,
    a bare Samsara entry, or a cron string."""
    if isinstance(raw, str):
        return parse_cron(raw, path)
    if isinstance(raw, dict) and raw.get("kind") == "cron":
        return parse_cron(raw.get("expression"), path)
    if isinstance(raw, dict) and raw.get("kind") in (None, "entry"):
        return parse_entry(raw, path)
    raise ScheduleError([(path, "Each item is an entry (days and a time) or a cron expression.")])


def parse_items(raw_items):
    """All items, every problem reported at once; more than 100 is refused."""
    if raw_items is None:
        return []
    if not isinstance(raw_items, (list, tuple)):
        raise ScheduleError([("items", "The schedule's items must be a list of entries and cron expressions.")])
    if len(raw_items) > MAX_ITEMS:
        raise ScheduleError(
            [("items", f"A schedule has at most {MAX_ITEMS} items (entries and cron expressions); this one has "
                       f"{len(raw_items)}. Combine times into one cron expression, e.g. 0 8,12,18 * * *.")]
        )
    items, errors = [], []
    for index, raw in enumerate(raw_items):
        try:
            items.append(parse_item(raw, f"items[{index}]"))
        except ScheduleError as exc:
            errors += exc.errors
    if errors:
        raise ScheduleError(errors)
    return items


def parse_entry_text(text, path="items"):
    """``DAYS@HH:MM[:SS]`` as the schedule_function command takes it: DAYS is daily, weekdays, weekends,
    or names and ranges such as mon,wed,fri or mon-fri."""
    days_text, sep, time_text = (text or "").strip().partition("@")
    if not sep:
        raise ScheduleError([(path, f"“{text}” is not DAYS@HH:MM (for example weekdays@09:15 or mon,wed,fri@18:00).")])
    days = _parse_days(days_text.strip().lower(), text, path)
    match = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", time_text.strip())
    if not match:
        raise ScheduleError([(path, f"The time in “{text}” must be HH:MM or HH:MM:SS (24-hour), for example 09:15.")])
    hours, minutes, seconds = int(match[1]), int(match[2]), int(match[3] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ScheduleError([(path, f"The time in “{text}” is outside the day: use 00:00 to 23:59:59.")])
    return Entry(days_of_week=days, time_since_midnight_ms=((hours * 60 + minutes) * 60 + seconds) * 1000)


_DAY_INDEX = {
    **{abbr: i for i, abbr in enumerate(DAY_ABBREVIATIONS)},
    **{name.lower(): i for i, name in enumerate(DAY_NAMES)},
    "tues": 2, "wednes": 3, "thur": 4, "thurs": 4,
}


def _parse_days(text, original, path):
    if text in ("daily", "everyday", "every day", "*"):
        return EVERY_DAY
    if text == "weekdays":
        return WEEKDAYS
    if text == "weekends":
        return WEEKENDS
    chosen = [False] * 7
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, dash, last = part.partition("-")
        start = _DAY_INDEX.get(first.strip())
        end = _DAY_INDEX.get(last.strip()) if dash else start
        if start is None or end is None:
            raise ScheduleError(
                [(path, f"“{part}” in “{original}” is not a day: use daily, weekdays, weekends, or day names and "
                        "ranges such as mon,wed,fri or mon-fri.")]
            )
        index = start
        while True:
            chosen[index] = True
            if index == end:
                break
            index = (index + 1) % 7
    if not any(chosen):
        raise ScheduleError([(path, f"“{original}” names no day: use daily, weekdays, weekends or day names.")])
    return tuple(chosen)


# --------------------------------------------------------------------------- Samsara's shape


def items_from_samsara(schedule, path="schedule"):
    """``{entries: [{daysOfWeek, timeSinceMidnightMs}], timezone}`` (Samsara's API and import shape) as
    (entries, timezone name or None)."""
    if not isinstance(schedule, dict):
        raise ScheduleError([(path, "must be an object with entries and timezone")])
    raw_entries = schedule.get("entries") or []
    if not isinstance(raw_entries, list):
        raise ScheduleError([(f"{path}.entries", "must be a list of {daysOfWeek, timeSinceMidnightMs}")])
    if len(raw_entries) > MAX_ITEMS:
        raise ScheduleError([(f"{path}.entries", f"at most {MAX_ITEMS} entries; got {len(raw_entries)}")])
    entries, errors = [], []
    for index, raw in enumerate(raw_entries):
        try:
            entries.append(parse_entry(raw, f"{path}.entries[{index}]"))
        except ScheduleError as exc:
            errors += exc.errors
    tz = schedule.get("timezone")
    if tz is not None:
        try:
            tz = zone(tz, f"{path}.timezone").key
        except ScheduleError as exc:
            errors += exc.errors
    if errors:
        raise ScheduleError(errors)
    return entries, tz


def items_to_samsara(items, timezone_name):
    """Samsara's shape of a schedule. Only entries have one there: cron items are left out."""
    return {
        "entries": [
            {"daysOfWeek": list(i.days_of_week), "timeSinceMidnightMs": i.time_since_midnight_ms}
            for i in items if isinstance(i, Entry)
        ],
        "timezone": timezone_name,
    }


# --------------------------------------------------------------------------- occurrences


def is_imaginary(local):
    """True when a wall-clock time does not exist in its zone (skipped by a jump forward)."""
    return local != local.astimezone(UTC).astimezone(local.tzinfo)


def resolve_wall_time(day, wall, tz):
    """The UTC instant of a wall-clock time on a day: the first minute after a jump when it does not
    exist, its first occurrence when it occurs twice."""
    local = datetime.combine(day, wall, tzinfo=tz)  # fold=0: the first of two
    if is_imaginary(local):
        local = local.replace(second=0)
        while is_imaginary(local):
            local += timedelta(minutes=1)
    return local.astimezone(UTC)


def _entry_occurrences(entry, tz, after):
    day = after.astimezone(tz).date() - timedelta(days=1)
    wall = entry.wall_time
    while True:
        if entry.days_of_week[(day.weekday() + 1) % 7]:
            instant = resolve_wall_time(day, wall, tz)
            if instant > after:
                yield instant
        day += timedelta(days=1)
        if day.year > after.year + 60:
            return


def _cron_occurrences(cron, tz, after):
    # cronsim's results are strictly after its start in wall-clock order; on the
    # second pass through a repeated hour the first pass's times can come back,
    # so anything not after `after` is dropped.
    try:
        for local in CronSim(cron.fields, after.astimezone(tz)):
            instant = local.astimezone(UTC)
            if instant > after:
                yield instant
    except CronSimError:
        return


def item_occurrences(item, tz, after):
    """An item's occurrences strictly after ``after`` (aware), ascending, as UTC instants."""
    if isinstance(item, Entry):
        return _entry_occurrences(item, tz, after)
    return _cron_occurrences(item, tz, after)


def occurrences(items, tz, after):
    """Every item's occurrences strictly after ``after``, merged, ascending, each instant once."""
    previous = None
    for instant in heapq.merge(*(item_occurrences(item, tz, after) for item in items)):
        if instant != previous:
            yield instant
            previous = instant


def next_occurrence(items, tz, after):
    return next(occurrences(items, tz, after), None)


def first_occurrences(items, tz, after, count):
    result = []
    for instant in occurrences(items, tz, after):
        result.append(instant)
        if len(result) >= count:
            break
    return result


# --------------------------------------------------------------------------- daylight saving


@dataclass(frozen=True)
class Transition:
    instant: datetime  # UTC, the first instant of the new offset
    before: timedelta  # UTC offset before
    after: timedelta  # UTC offset after

    @property
    def gap(self):
        return self.after > self.before

    @property
    def window(self):
        """(first, last exclusive) wall-clock times the change skips (gap) or repeats (fold), as naive datetimes."""
        if self.gap:
            start = (self.instant + self.before).replace(tzinfo=None)
        else:
            start = (self.instant + self.after).replace(tzinfo=None)
        return start, start + abs(self.after - self.before)


def transitions(tz, start, end):
    """The offset changes of ``tz`` between two instants (hour by hour, then to the second)."""
    found = []
    probe = start.replace(minute=0, second=0, microsecond=0)
    offset = probe.astimezone(tz).utcoffset()
    while probe < end:
        following = probe + timedelta(hours=1)
        next_offset = following.astimezone(tz).utcoffset()
        if next_offset != offset:
            low, high = probe, following
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(tz).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            instant = high.replace(microsecond=0)
            if start <= instant < end:
                found.append(Transition(instant=instant, before=offset, after=next_offset))
        probe, offset = following, next_offset
    return found


def _matching_wall_times(item, first, last):
    """Wall-clock times in [first, last) (naive) that the item names, each minute (or the entry's second)."""
    if isinstance(item, Entry):
        candidate = datetime.combine(first.date(), item.wall_time)
        if first <= candidate < last and item.days_of_week[(candidate.weekday() + 1) % 7]:
            return [candidate]
        return []
    sim = CronSim(item.fields, datetime(2000, 1, 1, tzinfo=UTC))
    matched = []
    wall = first.replace(second=0)
    while wall < last:
        if wall >= first and wall.month in sim.months and sim.match_day(wall.date()) and wall.hour in sim.hours \
                and wall.minute in sim.minutes:
            matched.append(wall)
        wall += timedelta(minutes=1)
    return matched


def _hm(wall):
    return wall.strftime("%H:%M:%S") if wall.second else wall.strftime("%H:%M")


def _day(d):
    return f"{d.day} {d:%B}"


def _and(words):
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def format_offset(offset):
    """UTC−07:00 style, as the Schedule tab shows it."""
    total = int(offset.total_seconds()) // 60
    sign = "+" if total >= 0 else "−"
    total = abs(total)
    return f"UTC{sign}{total // 60:02d}:{total % 60:02d}"


@dataclass(frozen=True)
class DstNote:
    item_index: int
    date: date
    message: str
    instants: tuple[datetime, ...]  # the occurrences (UTC) the change affects; empty when they are skipped


def dst_notes(items, tz, start, end):
    """What each daylight-saving change between two instants does to each item's occurrences."""
    notes = []
    for change in transitions(tz, start, end):
        first, last = change.window
        day = first.date()
        jump_to = (change.instant + change.after).replace(tzinfo=None)
        for index, item in enumerate(items):
            walls = _matching_wall_times(item, first, last)
            if not walls:
                continue
            times = _and(_hm(w) for w in walls)
            plural = len(walls) > 1
            fixed = isinstance(item, Entry) or item.fixed_time
            if change.gap and fixed:
                instant = resolve_wall_time(walls[0].date(), walls[0].time(), tz)
                local = instant.astimezone(tz)
                message = (
                    f"{times} {'do' if plural else 'does'} not exist on {_day(day)} (clocks jump from "
                    f"{_hm(first)} to {_hm(jump_to)}): runs {'once ' if plural else ''}at {_hm(local)}"
                )
                notes.append(DstNote(index, day, message, (instant,)))
            elif change.gap:
                message = (
                    f"{times} {'do' if plural else 'does'} not exist on {_day(day)} (clocks jump from "
                    f"{_hm(first)} to {_hm(jump_to)}): skipped, the interval carries on in real time"
                )
                notes.append(DstNote(index, day, message, ()))
            elif fixed:
                instants = tuple(datetime.combine(w.date(), w.time(), tzinfo=tz).astimezone(UTC) for w in walls)
                message = (
                    f"{times} {'occur' if plural else 'occurs'} twice on {_day(day)} (clocks go back from "
                    f"{_hm(last)} to {_hm(first)}): runs once, at the first ({format_offset(change.before)})"
                )
                notes.append(DstNote(index, day, message, instants))
            else:
                instants = tuple(
                    datetime.combine(w.date(), w.time(), tzinfo=tz).replace(fold=fold).astimezone(UTC)
                    for w in walls for fold in (0, 1)
                )
                message = (
                    f"{times} {'occur' if plural else 'occurs'} twice on {_day(day)} (clocks go back from "
                    f"{_hm(last)} to {_hm(first)}): runs both times, keeping its interval "
                    f"({format_offset(change.before)}, then {format_offset(change.after)})"
                )
                notes.append(DstNote(index, day, message, tuple(sorted(instants))))
    return notes


# --------------------------------------------------------------------------- descriptions


def describe_days(days):
    days = tuple(days)
    if days == EVERY_DAY:
        return "Every day"
    if days == WEEKDAYS:
        return "Every weekday"
    if days == WEEKENDS:
        return "Every Saturday and Sunday"
    return "Every " + _and(name for name, on in zip(DAY_NAMES, days) if on)


def describe(item):
    """Plain English: "Every weekday at 09:15", "Every 30 minutes"."""
    if isinstance(item, Entry):
        return f"{describe_days(item.days_of_week)} at {_hm(datetime.combine(date(2000, 1, 1), item.wall_time))}"
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        text = ExpressionDescriptor(item.fields, options).get_description()
    except Exception:  # the descriptor's own parser is stricter in places than cron; the expression stays valid
        return item.expression
    minute, hour, dom, month, dow = item.fields.split()
    if not dom.startswith("*") and not dow.startswith("*"):
        # Vixie cron: with both day fields restricted, either one matches (the descriptor says "only on").
        text = text.replace(", only on ", ", or on ")
    return text
