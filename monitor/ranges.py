"""The Monitor's time ranges and their buckets, in the organization's time zone.

Buckets are cut on the organization's wall clock (hours, six-hour blocks,
days), so "Tuesday" on the chart is Tuesday where the organization is, also on
the days its clocks change: a day bucket then spans 23 or 25 hours, and the
hour that repeats when clocks go back is two hourly buckets, each labelled
with its own offset.
"""

import dataclasses
from datetime import UTC, datetime, timedelta

from functions.run_filters import runs_retention_cutoff


class RangeError(ValueError):
    """A range or bucket the Monitor cannot show; the message says what to pick instead."""


@dataclasses.dataclass(frozen=True)
class Range:
    key: str
    label: str
    hours_per_bucket: int   # 1, 6 or 24
    bucket_count: int
    bucket_label: str


RANGES = {
    "24h": Range("24h", "Last 24 hours", 1, 24, "hour"),
    "7d": Range("7d", "Last 7 days", 6, 28, "6 hours"),
    "30d": Range("30d", "Last 30 days", 24, 30, "day"),
}
DEFAULT_RANGE = "24h"


@dataclasses.dataclass(frozen=True)
class Bucket:
    index: int
    start: datetime   # UTC, inclusive
    end: datetime     # UTC, exclusive
    label: str        # short, for the axis
    title: str        # full, for hover and the table
    retained: bool    # False when older runs than this bucket's start may already be deleted


def parse_range(value):
    key = (value or DEFAULT_RANGE).strip()
    if key not in RANGES:
        choices = ", ".join(RANGES)
        raise RangeError(f"Unknown range “{key[:20]}”: choose one of {choices}.")
    return RANGES[key]


def _to_utc(naive_local, zone):
    # fold=0: a wall time that occurs twice is its first occurrence; one that
    # does not exist (clocks jump forward) maps to the instant of the jump.
    return naive_local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _boundaries(range_, zone, now):
    """Bucket edges in UTC, oldest first; the last bucket holds `now`."""
    local = now.astimezone(zone)
    if range_.hours_per_bucket == 1:
        # Real hours (60 minutes each), aligned on the local hour: both
        # occurrences of a repeated hour get their own bucket.
        current = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        return [current - timedelta(hours=range_.bucket_count - 1 - i) for i in range(range_.bucket_count + 1)]
    step = range_.hours_per_bucket
    wall = local.replace(tzinfo=None, minute=0, second=0, microsecond=0)
    wall = wall.replace(hour=(wall.hour // step) * step)
    edges = {_to_utc(wall + timedelta(hours=step * (i - range_.bucket_count + 1)), zone)
             for i in range(range_.bucket_count + 1)}
    return sorted(edges)


def _label(start, end, zone, hours_per_bucket):
    a, b = start.astimezone(zone), end.astimezone(zone)
    if hours_per_bucket == 24:
        return a.strftime("%d %b"), a.strftime("%a %d %b %Y") + f" ({a:%Z})"
    if hours_per_bucket == 1:
        short = a.strftime("%H:%M")
    else:
        # Six-hour blocks: the axis names each day once, at its first block.
        short = a.strftime("%a %d") if a.hour == 0 else ""
    return short, f"{a:%a %d %b %Y %H:%M %Z} – {b:%H:%M %Z}"


def range_buckets(range_, *, zone, now=None):
    now = now or datetime.now(UTC)
    edges = _boundaries(range_, zone, now)
    cutoff = runs_retention_cutoff(now)
    buckets = []
    for index, (start, end) in enumerate(zip(edges, edges[1:])):
        label, title = _label(start, end, zone, range_.hours_per_bucket)
        buckets.append(Bucket(index, start, end, label, title, retained=start >= cutoff))
    return buckets
