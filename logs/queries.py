"""The one query over log entries.

The Logs tab of a Function, the organization-wide Logs page, the JSON
download and the run pages all go through here:

    query = parse_log_query(request.GET, organization=org, function=fn)   # or log_query_build(...)
    entries, next_cursor = log_page(query)                                # one page, at most query.limit
    for entry in log_stream(query): ...                                   # every entry, constant memory

Pages are keyset-paginated: a cursor names the sort key of the last entry
shown (time and id, or the entry's id for the message order), so "load more"
continues exactly where the page ended even when many entries share a
timestamp or a message, and rows arriving meanwhile never shift a page.
Cursors are signed: a changed or truncated one is refused, never guessed at.
"""

from __future__ import annotations

import re
import uuid
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.db.models import CharField, DateTimeField, F, Func, Q, QuerySet, TextField

from accounts.models import Organization
from functions.models import Function, Run

from .models import LogBlock, LogEntry, Stream
from .search import MessageContains

# CONTRACT.md, "Logs": a query covers at most 7 days and returns at most 1,000 entries.
MAX_RANGE = timedelta(days=7)
MAX_LIMIT = 1000
MAX_TEXT_LENGTH = 1000
# Longer date inputs are not dates; refusing them early keeps messages short.
MAX_DATE_INPUT = 64
# A start this much before the retention window is still accepted: the pruning
# task runs hourly, and a "last 7 days" link (or its "load more") must keep
# working for a while after it was made.
RETENTION_GRACE = timedelta(hours=1)
# Rows per round trip when streaming a download.
STREAM_CHUNK = 5000
# Entries one search may read on SQLite (see _scan_budget).
SQLITE_SCAN_BUDGET = 300_000

PRESETS = {
    "15m": (timedelta(minutes=15), "Last 15 minutes"),
    "1h": (timedelta(hours=1), "Last hour"),
    "24h": (timedelta(hours=24), "Last 24 hours"),
    "7d": (timedelta(days=7), "Last 7 days"),
}
DEFAULT_PRESET = "24h"
CUSTOM_RANGE = "custom"

_CURSOR_SALT = "logs.cursor"
_LOST_PLUS = re.compile(r"^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d(?::?\d\d)?)$")


class LogSort(models.TextChoices):
    NEWEST = "-time", "Newest first"
    OLDEST = "time", "Oldest first"
    MESSAGE = "message", "Message (A to Z)"


# The message order's index (migration 0006, log_org_message_idx) holds each message's first
# MESSAGE_KEY_LENGTH characters: a whole message may be far longer than a PostgreSQL index
# entry may be (about 2.7 KB), and a long key would make every insert dearer. The order is
# (that prefix, the whole message, id), which is exactly the order of (message, id) because the
# comparison is by code point (COLLATE "C" on PostgreSQL, SQLite's BINARY): a prefix never
# sorts after a text it begins. The index gives the first key; the database sorts only the
# entries that share a prefix (PostgreSQL's incremental sort, SQLite's sort of the right part
# of the ORDER BY), so a page of the organization's week no longer sorts all of it.
MESSAGE_KEY_LENGTH = 64


class MessageKey(Func):
    """The message's first MESSAGE_KEY_LENGTH characters, compared by code point: the index's expression."""

    output_field = TextField()
    template = f"substr(%(expressions)s, 1, {MESSAGE_KEY_LENGTH})"

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        template = f'(substr(%(expressions)s, 1, {MESSAGE_KEY_LENGTH}) COLLATE "C")'
        return self.as_sql(compiler, connection, template=template)


class MessageText(Func):
    """The whole message, compared by code point (on PostgreSQL, whatever the database's collation)."""

    output_field = TextField()
    template = "%(expressions)s"

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        return self.as_sql(compiler, connection, template='(%(expressions)s COLLATE "C")')


class _NotIndexed(Func):
    """The column's value, which SQLite's planner cannot look up by index (a unary plus):
    how a query tells it which of two usable indexes to walk."""

    template = "+%(expressions)s"

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        return compiler.compile(self.get_source_expressions()[0])


# SQLite has no statistics to choose, for an organization's message order, between sorting
# the range (its time index) and walking the message index until a page of entries in range
# is found. Walking wins when the range holds many entries; sorting, when it holds few (the
# walk could read the whole week to find them). So a bounded count of the range decides:
# from this many entries, the walk.
SQLITE_MESSAGE_WALK_FROM = 20_000


_ORDER = {
    LogSort.NEWEST: ("-timestamp", "-id"),
    LogSort.OLDEST: ("timestamp", "id"),
    LogSort.MESSAGE: (MessageKey("message").asc(), MessageText("message").asc(), "id"),
}


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the sort key of its last entry."""

    sort: str
    id: int
    timestamp: datetime | None = None  # the time orders
    message: str | None = None  # the message order; looked up from the entry, never carried in the address


@dataclass(frozen=True)
class LogQuery:
    """One validated query. `function` None means every Function of the organization."""

    organization: object
    function: object | None
    start: datetime  # inclusive, aware
    end: datetime  # exclusive, aware
    text: str = ""
    sort: str = LogSort.NEWEST
    correlation_id: uuid.UUID | None = None
    after: Cursor | None = None
    limit: int = MAX_LIMIT
    # The preset that produced start and end ("" when given explicitly), for the form.
    preset: str = ""
    # One stream (stdout, stderr, platform) or "" for all.
    stream: str = ""

    def without_cursor(self) -> LogQuery:
        return replace(self, after=None)

    def address_params(self, *, after: Any = None) -> dict[str, str]:
        """The query string of this query with absolute times (UTC), for links that must mean the same entries later."""
        params = {"start": _address_time(self.start), "end": _address_time(self.end)}
        if self.text:
            params["q"] = self.text
        if self.sort != LogSort.NEWEST:
            params["sort"] = self.sort
        if self.correlation_id:
            params["run"] = str(self.correlation_id)
        if self.stream:
            params["stream"] = self.stream
        if after:
            params["after"] = after
        return params


@dataclass(frozen=True)
class LogPage:
    """One page; unpacks as (entries, next_cursor)."""

    entries: list  # dicts: id, timestamp (aware UTC), correlation_id, attempt, stream, message, function (its name)
    next_cursor: str | None  # None on the last page
    # When a bounded search stopped before filling the page: the time of the last entry it read.
    searched_until: datetime | None = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.entries, self.next_cursor))


# --- time -----------------------------------------------------------------------------


def organization_tz(organization: Organization) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(organization.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC


def retention_cutoff(now: datetime | None) -> datetime:
    """Entries older than this are deleted by the retention task (logs.services.logs_prune)."""
    return now - timedelta(days=settings.LOGS_RETENTION_DAYS)


def format_utc(value: datetime, *, seconds: bool = False) -> str:
    """RFC 3339 in UTC with a Z: milliseconds for entries, whole seconds for addresses."""
    text = value.astimezone(UTC).isoformat(timespec="seconds" if seconds else "milliseconds")
    return text.removesuffix("+00:00") + "Z"


def _address_time(value: datetime) -> str:
    """UTC with a Z, exact: whole seconds when there is no fraction (a preset's times), else microseconds."""
    text = value.astimezone(UTC).isoformat(timespec="seconds" if not value.microsecond else "microseconds")
    return text.removesuffix("+00:00") + "Z"


def parse_timestamp(value: str, tz: zoneinfo.ZoneInfo) -> datetime:
    """An ISO 8601 date and time; without an offset it is read in `tz` (the organization's time zone).

    Raises ValueError with a message fit for the user.
    """
    text = value.strip()
    # An unescaped "+01:00" in a typed address arrives as " 01:00".
    text = _LOST_PLUS.sub(r"\1+\2", text)
    example = f"use ISO 8601, for example 2026-11-26T14:30:00Z, or 2026-11-26T08:30 in {tz}"
    if not text or len(text) > MAX_DATE_INPUT:
        raise ValueError(f"This is not a date and time: {example}.")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"“{text}” is not a date and time: {example}.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def _describe(delta: timedelta) -> str:
    days, seconds = delta.days, delta.seconds
    hours, minutes = seconds // 3600, seconds % 3600 // 60
    parts = [f"{days} day{'s' if days != 1 else ''}"] if days else []
    if hours:
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    if minutes and not days:
        parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    return " ".join(parts) or "less than a minute"


def _local(value: datetime, tz: zoneinfo.ZoneInfo) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


# --- cursors --------------------------------------------------------------------------------


def cursor_encode(cursor: Cursor | None) -> str:
    """A Cursor as an opaque, signed string for addresses."""
    payload = {"s": str(cursor.sort), "i": cursor.id}
    if cursor.sort != LogSort.MESSAGE:
        payload["t"] = cursor.timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return signing.Signer(salt=_CURSOR_SALT).sign_object(payload)


_BAD_CURSOR = "This “load more” cursor is not valid (it was changed or cut short): run the query again from its first page."


def cursor_decode(value: str, *, sort: str, organization: Organization) -> Cursor:
    """The Cursor in `value` for a query in `sort` order; ValueError with the user's message otherwise."""
    if not value or len(value) > 500:
        raise ValueError(_BAD_CURSOR)
    try:
        payload = signing.Signer(salt=_CURSOR_SALT).unsign_object(value)
    except (signing.BadSignature, ValueError, TypeError):
        raise ValueError(_BAD_CURSOR) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("i"), int) or payload.get("s") not in LogSort.values:
        raise ValueError(_BAD_CURSOR)
    if payload["s"] != sort:
        raise ValueError(
            f"This cursor continues a query sorted by “{LogSort(payload['s']).label}”, not by “{LogSort(sort).label}”: "
            "run the query again from its first page."
        )
    if sort == LogSort.MESSAGE:
        message = (
            LogEntry.objects.filter(organization=organization, pk=payload["i"]).values_list("message", flat=True).first()
        )
        if message is None:
            raise ValueError(
                "The entry this page ended at no longer exists (logs are kept "
                f"{settings.LOGS_RETENTION_DAYS} days): run the query again from its first page."
            )
        return Cursor(sort=sort, id=payload["i"], message=message)
    try:
        timestamp = datetime.fromisoformat(payload["t"]).replace(tzinfo=UTC)
    except (KeyError, TypeError, ValueError):
        raise ValueError(_BAD_CURSOR) from None
    return Cursor(sort=sort, id=payload["i"], timestamp=timestamp)


# --- building a query ---------------------------------------------------------------------------


def log_query_build(
    *,
    organization: Organization,
    function: Function | None = None,
    start: datetime | None,
    end: datetime | None,
    text: str = "",
    sort: str = LogSort.NEWEST,
    correlation_id: str | uuid.UUID | None = None,
    after: str | None = None,
    limit: int = MAX_LIMIT,
    preset: str = "",
    now: datetime | None = None,
    names: Mapping[str, str] | None = None,
    stream: str = "",
) -> LogQuery:
    """A validated LogQuery from typed values (aware datetimes, a cursor string or None).

    Raises ValidationError({field: [message]}) naming every bad field at once;
    `names` maps this module's field names (start, end, q, sort, run, after,
    limit) to the caller's (a caller with its own names, such as `startTime`, gets them in errors).
    """
    names = {**{k: k for k in ("start", "end", "q", "sort", "run", "after", "limit", "stream")}, **(names or {})}
    now = now or datetime.now(UTC)
    tz = organization_tz(organization)
    errors = {}
    for key, value in (("start", start), ("end", end)):
        if value is None:
            errors[names[key]] = [f"The {key} time is required."]
    if start is not None and end is not None:
        if end <= start:
            errors[names["end"]] = ["The end must be after the start."]
        elif end - start > MAX_RANGE:
            errors[names["end"]] = [f"A query covers at most 7 days; this range spans {_describe(end - start)}."]
    cutoff = retention_cutoff(now)
    if start is not None and start < cutoff - RETENTION_GRACE:
        errors.setdefault(names["start"], []).append(
            f"Logs are kept {settings.LOGS_RETENTION_DAYS} days: start at {_local(cutoff, tz)} ({tz}) or later."
        )
    text = text or ""
    if len(text) > MAX_TEXT_LENGTH:
        errors[names["q"]] = [f"The search text is {len(text):,} characters long; the limit is {MAX_TEXT_LENGTH:,}."]
    elif "\x00" in text:
        errors[names["q"]] = ["The search text cannot contain a NUL character."]
    elif not text.strip():
        text = ""
    if sort not in LogSort.values:
        errors[names["sort"]] = ["Sort by -time (newest first), time (oldest first) or message."]
    if stream and stream not in Stream.values:
        errors[names["stream"]] = ["Choose the stream stdout, stderr or platform (the platform's own lines, such as REPORT), or all."]
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        errors[names["limit"]] = [f"The limit must be a whole number from 1 to {MAX_LIMIT:,}."]
    cursor = None
    if after and names["sort"] not in errors:
        try:
            cursor = cursor_decode(after, sort=sort, organization=organization)
        except ValueError as problem:
            errors[names["after"]] = [str(problem)]
    if errors:
        raise ValidationError(errors)
    return LogQuery(
        organization=organization, function=function, start=start, end=end, text=text, sort=LogSort(sort),
        correlation_id=correlation_id, after=cursor, limit=limit, preset=preset, stream=stream or "",
    )


def parse_log_query(
    params: Mapping[str, str],
    *,
    organization: Organization,
    function: Function | None = None,
    now: datetime | None = None,
    limit: int = MAX_LIMIT,
) -> LogQuery:
    """The dashboard's query string (CONTRACT.md, "Dashboard addresses") as a LogQuery.

    Keys: `start`, `end` (ISO 8601; without an offset, in the organization's
    time zone), `q`, `sort`, `run`, `after`, `stream`, and `range`, a preset
    (15m, 1h, 24h, 7d) that wins over start and end. Nothing given means the
    last 24 hours; `range=custom` with an empty start or end says which is
    missing. Raises ValidationError({key: [message]}) for every bad key.
    """
    now = now or datetime.now(UTC)
    tz = organization_tz(organization)
    errors = {}
    preset = params.get("range", "") or ""
    start = end = None
    if preset and preset != CUSTOM_RANGE and preset not in PRESETS:
        errors["range"] = ["Choose one of the ranges offered, or Custom."]
        start, end = now - PRESETS[DEFAULT_PRESET][0], now  # only the range is wrong
    elif preset in PRESETS or (not preset and not params.get("start") and not params.get("end")):
        preset = preset or DEFAULT_PRESET
        # On the next whole second, so the links made from it (load more, the
        # download) name exactly this range in whole seconds.
        end = now if not now.microsecond else now.replace(microsecond=0) + timedelta(seconds=1)
        start = end - PRESETS[preset][0]
    else:
        custom = preset == CUSTOM_RANGE
        preset = ""
        for key in ("start", "end"):
            raw = params.get(key, "") or ""
            if not raw.strip():
                if custom:
                    # Chosen "Custom" and left a field empty: say so rather than guess a range.
                    errors[key] = [f"Enter the {key} of the custom range, or choose one of the ranges offered."]
                continue
            try:
                value = parse_timestamp(raw, tz)
            except ValueError as problem:
                errors[key] = [str(problem)]
            else:
                if key == "start":
                    start = value
                else:
                    end = value
        if end is None and "end" not in errors:
            end = now
        if start is None and "start" not in errors:
            # Unstated, the start is a day before the end, but never before the retention window.
            start = max((end or now) - PRESETS[DEFAULT_PRESET][0], retention_cutoff(now))
    correlation_id = None
    raw_run = (params.get("run", "") or "").strip()
    if raw_run:
        try:
            correlation_id = uuid.UUID(raw_run)
        except ValueError:
            errors["run"] = [f"“{raw_run[:60]}” is not a correlation id (a UUID such as 3f2b8c1e-5d4a-4c6e-9b7a-1e2d3c4b5a69)."]
    try:
        query = log_query_build(
            organization=organization, function=function, start=start, end=end, text=params.get("q", "") or "",
            sort=params.get("sort", "") or LogSort.NEWEST, correlation_id=correlation_id,
            after=params.get("after", "") or None, limit=limit, preset=preset, now=now,
            stream=(params.get("stream", "") or "").strip(),
        )
    except ValidationError as invalid:
        # A field that did not parse keeps its own message, not "required".
        for key, messages in invalid.message_dict.items():
            errors.setdefault(key, messages)
    if errors:
        raise ValidationError(errors)
    return query


# --- running a query ---------------------------------------------------------------------------


def _matching(query: LogQuery) -> QuerySet[LogEntry]:
    """The entries of the query's Function (or organization) and run; the time range and text are applied later."""
    if query.correlation_id is not None:
        # The run is looked up in the organization (and Function) first, then
        # its entries by run id alone: one equality the planner cannot
        # mistake for a range scan of the whole organization.
        runs = Run.objects.filter(organization=query.organization, correlation_id=query.correlation_id)
        if query.function is not None:
            runs = runs.filter(function=query.function)
        run_id = runs.values_list("pk", flat=True).first()
        if run_id is None:
            return LogEntry.objects.none()
        entries = LogEntry.objects.filter(run_id=run_id)
    elif query.function is not None:
        # The Function is already scoped to its organization; naming only it
        # keeps the planner on the (function, timestamp, id) index.
        entries = LogEntry.objects.filter(function=query.function)
    else:
        entries = LogEntry.objects.filter(organization=query.organization)
    if query.stream:
        entries = entries.filter(stream=query.stream)
    return entries


def _in_range(
    entries: QuerySet[LogEntry],
    query: LogQuery,
    cursor: Cursor | None,
    boundary: Cursor | None,
    *,
    time_indexed: bool = True,
) -> QuerySet[LogEntry]:
    """The query's time range, narrowed to what follows `cursor` and, for a bounded search, precedes `boundary`.

    Each side of the range is one bound on the timestamp, the tighter of the
    query's and the cursor's: with two lower bounds given as parameters,
    SQLite cannot tell which is tighter and walks the index from the looser
    one. Entries sharing the cursor's timestamp are told apart by id.
    """
    lower, upper = ("gte", query.start), ("lt", query.end)
    ties = Q()
    if cursor is not None and cursor.sort == LogSort.NEWEST:
        if cursor.timestamp < query.end:
            upper = ("lte", cursor.timestamp)
        ties &= Q(timestamp__lt=cursor.timestamp) | Q(timestamp=cursor.timestamp, id__lt=cursor.id)
    elif cursor is not None and cursor.sort == LogSort.OLDEST:
        if cursor.timestamp >= query.start:
            lower = ("gte", cursor.timestamp)
        ties &= Q(timestamp__gt=cursor.timestamp) | Q(timestamp=cursor.timestamp, id__gt=cursor.id)
    elif cursor is not None:
        m = cursor.message
        entries = entries.alias(message_key=MessageKey("message"), message_text=MessageText("message"))
        ties &= Q(message_text__gt=m) | Q(message_text=m, id__gt=cursor.id)
        # Implied by the ties, and where the index's range starts.
        entries = entries.filter(message_key__gte=m[:MESSAGE_KEY_LENGTH])
    if boundary is not None and boundary.sort == LogSort.NEWEST:
        lower = ("gte", max(lower[1], boundary.timestamp))
        ties &= Q(timestamp__gt=boundary.timestamp) | Q(timestamp=boundary.timestamp, id__gte=boundary.id)
    elif boundary is not None:
        upper = ("lte", boundary.timestamp) if boundary.timestamp <= upper[1] else upper
        ties &= Q(timestamp__lt=boundary.timestamp) | Q(timestamp=boundary.timestamp, id__lte=boundary.id)
    time = "timestamp"
    if not time_indexed:
        entries = entries.alias(time_not_indexed=_NotIndexed("timestamp", output_field=DateTimeField()))
        time = "time_not_indexed"
    return entries.filter(ties, **{f"{time}__{lower[0]}": lower[1], f"{time}__{upper[0]}": upper[1]})


def _walks_message_index(query: LogQuery) -> bool:
    """Whether SQLite should find a page of an organization's message order by walking the
    message index (see SQLITE_MESSAGE_WALK_FROM); PostgreSQL's planner chooses by itself.

    Counted over the whole range (not from the cursor), so every page of a query decides alike;
    both ways give the same order. A search reads every entry of the range either way, in
    the time index's order then, as before.
    """
    if query.sort != LogSort.MESSAGE or connection.vendor != "sqlite" or query.text:
        return False
    if query.function is not None or query.correlation_id is not None:
        return False  # a Function's or a run's entries: few enough to sort
    in_range = _in_range(_matching(query), query, None, None).order_by().values("id")
    return in_range[:SQLITE_MESSAGE_WALK_FROM].count() >= SQLITE_MESSAGE_WALK_FROM


def _scan_budget(query: LogQuery) -> int | None:
    """How many entries one search may read on this database, or None for no bound.

    SQLite has no search index (see migration 0003): a search reads the
    entries of the range in order and tests each. Reading at most this many
    per query keeps a page under about 100 ms even for text that matches
    nothing in a week of the whole organization; the page then ends early and
    its cursor continues from the last entry read. The message order needs
    the whole range, so it is not bounded.
    """
    if not query.text or query.sort == LogSort.MESSAGE or connection.vendor != "sqlite":
        return None
    return SQLITE_SCAN_BUDGET


class _UtcMillisText(Func):
    """A timestamp as the download writes it, RFC 3339 in UTC with milliseconds (truncated, as Python's
    isoformat does), made by the database: parsing and formatting a datetime per row in Python took
    a third of a download's time."""

    output_field = CharField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        # Stored as UTC text, "YYYY-MM-DD HH:MM:SS[.ffffff]".
        sql, params = compiler.compile(self.get_source_expressions()[0])
        return f"substr({sql}, 1, 10) || 'T' || substr({sql} || '.000', 12, 12) || 'Z'", [*params, *params]

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        sql, params = compiler.compile(self.get_source_expressions()[0])
        return f"""to_char({sql} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')""", params


# What a page shows, and what the download needs: ids instead of joined values
# (a run's or Function's rows share them; they are looked up once per chunk).
_PAGE_FIELDS = ("id", "timestamp", "run__correlation_id", "attempt", "stream", "message", "function__name")
_DOWNLOAD_FIELDS = ("id", "utc_text", "run_id", "attempt", "stream", "message", "function_id")


def _fetch(
    query: LogQuery,
    cursor: Cursor | None,
    limit: int,
    *,
    download: bool = False,
) -> tuple[list[tuple], Cursor | None, Cursor | None]:
    """(rows, next Cursor or None, boundary): up to `limit` rows after `cursor`.

    `boundary` is the last entry a bounded search read when it stopped before
    finding `limit` matches (the next page continues after it), else None.
    """
    matching = _matching(query)
    order = _ORDER[query.sort]
    boundary = None
    budget = _scan_budget(query)
    if budget:
        # An index-only walk finds where the budget ends; the search then reads that range and no further.
        walked = _in_range(matching, query, cursor, None).order_by(*order).values_list("timestamp", "id")
        edge = list(walked[budget - 1 : budget])
        if edge:
            boundary = Cursor(sort=query.sort, id=edge[0][1], timestamp=edge[0][0])
    entries = _in_range(
        matching, query, cursor, boundary, time_indexed=not _walks_message_index(query)
    ).order_by(*order)
    if query.text:
        entries = entries.filter(MessageContains(F("message"), query.text))
    if download:
        entries = entries.annotate(utc_text=_UtcMillisText("timestamp")).values_list(*_DOWNLOAD_FIELDS)
    else:
        entries = entries.values_list(*_PAGE_FIELDS)
    rows = list(entries[: limit + 1])
    if len(rows) <= limit:
        return rows, boundary, boundary
    last = rows[limit - 1]
    timestamp = last[1]
    if download and query.sort != LogSort.MESSAGE:
        # The exact time of the one row the next chunk continues from.
        timestamp = LogEntry.objects.filter(pk=last[0]).values_list("timestamp", flat=True).get()
    return rows[:limit], Cursor(sort=query.sort, id=last[0], timestamp=timestamp, message=last[5]), None


def _as_entry(row: tuple) -> dict[str, Any]:
    return {
        "id": row[0], "timestamp": row[1], "correlation_id": row[2], "attempt": row[3],
        "stream": row[4], "message": row[5], "function": row[6],
    }


def log_page(query: LogQuery) -> LogPage:
    """(entries, next_cursor): at most query.limit entries after query.after, and the cursor of the next page.

    next_cursor is None on the last page. A bounded search (SQLite) may end a
    page early with fewer entries and a cursor; page.searched_until then says
    how far it looked.
    """
    rows, after, boundary = _fetch(query, query.after, query.limit)
    return LogPage(
        entries=[_as_entry(row) for row in rows],
        next_cursor=cursor_encode(after) if after else None,
        searched_until=boundary.timestamp if boundary else None,
    )


def run_log_entries(run: Run, *, after_id: int = 0) -> QuerySet[LogEntry]:
    """One run's entries in the order they were written (by id), those after `after_id`.

    The run page, its live updates and `run_function --wait` read a run's lines
    here; slice the QuerySet for a page, or iterate it for all of them.
    """
    return LogEntry.objects.filter(run=run, id__gt=after_id).order_by("id")


def lines_pending(*, run: Run | None = None, query: LogQuery | None = None) -> int:
    """Lines staged in blocks and not yet indexed as entries (logs.services.log_blocks_index): those of
    `run`, or within the scope of `query` (its run, else its Function, else its organization), time
    range and filters aside. What the pages say is still on its way; a few rows per flood."""
    blocks = LogBlock.objects.all()
    if run is not None:
        blocks = blocks.filter(run=run)
    elif query.correlation_id is not None:
        blocks = blocks.filter(organization=query.organization, run__correlation_id=query.correlation_id)
    elif query.function is not None:
        blocks = blocks.filter(function=query.function)
    else:
        blocks = blocks.filter(organization=query.organization)
    return blocks.aggregate(pending=models.Sum("lines"))["pending"] or 0


def log_stream_chunks(query: LogQuery, *, chunk_size: int = STREAM_CHUNK) -> Iterator[list[dict[str, Any]]]:
    """Every entry of the query from its first page (query.after is ignored), in lists of at most chunk_size,
    as the download's dicts: {timestamp, correlationId, attempt, stream, message, function}.

    Each chunk is one short keyset query, so memory stays constant however
    many entries match and no transaction or server-side cursor stays open
    while the client reads.
    """
    cursor = None
    correlation_ids, names = {}, {}
    while True:
        rows, cursor, _ = _fetch(query, cursor, chunk_size, download=True)
        if len(correlation_ids) > 100_000:  # a long download must not grow without bound
            correlation_ids.clear()
        new_runs = {row[2] for row in rows} - correlation_ids.keys()
        if new_runs:
            runs = Run.objects.filter(pk__in=new_runs).values_list("pk", "correlation_id")
            correlation_ids.update((pk, str(correlation_id)) for pk, correlation_id in runs)
        new_functions = {row[6] for row in rows} - names.keys()
        if new_functions:
            names.update(Function.objects.filter(pk__in=new_functions).values_list("pk", "name"))
        chunk = [
            {"timestamp": row[1], "correlationId": correlation_ids[row[2]], "attempt": row[3], "stream": row[4],
             "message": row[5], "function": names[row[6]]}
            # As on the pages, an entry whose run is gone (deleted while it wrote) is left out.
            for row in rows if row[2] in correlation_ids and row[6] in names
        ]
        if chunk:
            yield chunk
        if cursor is None:
            return


def log_stream(query: LogQuery, *, chunk_size: int = STREAM_CHUNK) -> Iterator[dict[str, Any]]:
    """Every entry of the query as the download's dicts: {timestamp, correlationId, attempt, stream, message, function}."""
    for chunk in log_stream_chunks(query, chunk_size=chunk_size):
        yield from chunk
