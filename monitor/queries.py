"""The Monitor's aggregates, computed by the database: GROUP BY bucket, never runs loaded into Python.

Percentiles are percentile_cont on PostgreSQL. SQLite has no percentile
aggregate, so there the same value (linear interpolation between the two
nearest ranks, as percentile_cont defines it) comes from ROW_NUMBER() and
COUNT() windows: exact, and one sort per bucket. Every query reads the runs
of one Function (or one page of Functions) through the (function, created_at)
index.
"""

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

from django.db import connection

from functions.models import RunStatus

RUN = "functions_run"
ATTEMPT = "functions_attempt"
EXECUTED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT)
FAILED = (RunStatus.FAILED, RunStatus.TIMED_OUT)
# Index of the bucket that spans the whole range: the range's totals come from the same query.
TOTAL = -1


def _postgres():
    return connection.vendor == "postgresql"


def _time(value):
    return connection.ops.adapt_datetimefield_value(value)


def _quoted(values):
    return ", ".join(f"'{getattr(v, "value", v)}'" for v in values)  # fixed TextChoices values, never user input


def _percentile_parts(groups, p_values, source="v"):
    """(extra CTEs, SELECT) over `source(<groups>, v)`: count, max and the percentiles per group.

    The extra CTEs (SQLite's ranks) go after the caller's own, each led by a comma.
    """
    keys = ", ".join(groups)
    if _postgres():
        pcts = ", ".join(f"percentile_cont({p}) WITHIN GROUP (ORDER BY v)" for p in p_values)
        return "", f"SELECT {keys}, COUNT(*), MAX(v), {pcts} FROM {source} GROUP BY {keys}"
    pcts = []
    for p in p_values:
        rank = f"CAST(1 + {p} * (n - 1) AS INTEGER)"
        low = f"MAX(CASE WHEN rn = {rank} THEN v END)"
        high = f"MAX(CASE WHEN rn = {rank} + 1 THEN v END)"
        fraction = f"((1 + {p} * (MAX(n) - 1)) - CAST(1 + {p} * (MAX(n) - 1) AS INTEGER))"
        pcts.append(f"{low} + {fraction} * (COALESCE({high}, {low}) - {low})")
    ranked = f"{source}_ranked"
    ctes = (
        # One window (one sort): the rank, and the group's size over the whole frame.
        f", {ranked} AS (SELECT {keys}, v, ROW_NUMBER() OVER w AS rn, "
        f"COUNT(*) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS n FROM {source} "
        f"WINDOW w AS (PARTITION BY {keys} ORDER BY v))"
    )
    # Only the ranks the answer needs (the last, and each percentile's two neighbours) reach the GROUP BY.
    needed = " OR ".join(
        ["rn = n"] + [f"rn = CAST(1 + {p} * (n - 1) AS INTEGER) + {step}" for p in p_values for step in (0, 1)]
    )
    return ctes, f"SELECT {keys}, MAX(n), MAX(v), {', '.join(pcts)} FROM {ranked} WHERE {needed} GROUP BY {keys}"


def _fetch(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@dataclasses.dataclass
class Stats:
    count: int = 0
    max: float | None = None
    p50: float | None = None
    p95: float | None = None


@dataclasses.dataclass
class BucketFigures:
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    timed_out: int = 0
    dropped: int = 0
    in_progress: int = 0
    one_attempt: int = 0
    two_attempts: int = 0
    three_attempts: int = 0
    duration: Stats = dataclasses.field(default_factory=Stats)
    memory: Stats = dataclasses.field(default_factory=Stats)
    lag: Stats = dataclasses.field(default_factory=Stats)
    cold: Stats = dataclasses.field(default_factory=Stats)   # start-up time of cold attempts
    warm: Stats = dataclasses.field(default_factory=Stats)

    @property
    def finished(self):
        return self.succeeded + self.failed + self.timed_out

    @property
    def success_rate(self):
        """Succeeded out of the runs that executed and ended; dropped runs never executed."""
        return 100.0 * self.succeeded / self.finished if self.finished else None

    @property
    def retried(self):
        return self.two_attempts + self.three_attempts

    @property
    def attempts_per_run(self):
        runs = self.one_attempt + self.two_attempts + self.three_attempts
        return (self.one_attempt + 2 * self.two_attempts + 3 * self.three_attempts) / runs if runs else None


# What BucketFigures counts, in its field order (total, then these): over a row of the Function's runs.
_EXECUTED_SQL = f"status IN ({_quoted(EXECUTED)})"
_COUNTED = (
    f"status = '{RunStatus.SUCCEEDED.value}'", f"status = '{RunStatus.FAILED.value}'",
    f"status = '{RunStatus.TIMED_OUT.value}'", f"status = '{RunStatus.DROPPED.value}'",
    f"status IN ('{RunStatus.QUEUED.value}', '{RunStatus.RUNNING.value}')",
    f"{_EXECUTED_SQL} AND attempts = 1", f"{_EXECUTED_SQL} AND attempts = 2", f"{_EXECUTED_SQL} AND attempts >= 3",
)


def _bucket_case(column, buckets):
    """(SQL, params): the bucket index of `column`, by binary search over the bucket edges.

    About five comparisons a row for 30 buckets, where a join against a table
    of buckets compares every row with every bucket.
    """
    cast = "CAST(%s AS timestamptz)" if _postgres() else "%s"
    params = []

    def node(lo, hi):
        if lo == hi:
            return str(lo)
        mid = (lo + hi + 1) // 2
        params.append(_time(buckets[mid].start))
        text = f"CASE WHEN {column} < {cast} THEN "
        left = node(lo, mid - 1)
        right = node(mid, hi)
        return f"{text}{left} ELSE {right} END"

    return node(0, len(buckets) - 1), params


def _lag_expression():
    if _postgres():
        return "CAST(EXTRACT(EPOCH FROM (r.started_at - r.scheduled_for)) * 1000 AS double precision)"
    return "ROUND((julianday(r.started_at) - julianday(r.scheduled_for)) * 86400000.0)"


def monitor_figures(*, function, buckets):
    """{bucket index (TOTAL for the whole range): BucketFigures} for one Function, in three statements.

    One index range scan of the Function's runs feeds every bucket and the
    range's total (each row once with its bucket, once as TOTAL).
    """
    start, end = buckets[0].start, buckets[-1].end
    bucket, bucket_params = _bucket_case("r.created_at", buckets)
    in_range = "r.function_id = %s AND r.created_at >= %s AND r.created_at < %s"
    range_params = [function.pk, _time(start), _time(end)]
    columns = "status, attempts, duration_ms, peak_memory_mb, lag"
    runs_cte = (
        f"rr AS (SELECT {bucket} AS idx, r.status AS status, r.attempts AS attempts, r.duration_ms AS duration_ms, "
        f"r.peak_memory_mb AS peak_memory_mb, CASE WHEN r.trigger = 'schedule' THEN {_lag_expression()} END AS lag "
        f"FROM {RUN} r WHERE {in_range}), "
        f"rows AS (SELECT idx, {columns} FROM rr UNION ALL SELECT {TOTAL}, {columns} FROM rr)"
    )
    params = bucket_params + range_params
    figures = {b.index: BucketFigures() for b in buckets}
    figures[TOTAL] = BucketFigures()

    executed = _EXECUTED_SQL
    counts = ", ".join(f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)" for condition in _COUNTED)
    counts_sql = f"WITH {runs_cte} SELECT idx, COUNT(*), {counts} FROM rows GROUP BY idx"
    if _postgres():
        return _monitor_figures_postgres(figures, bucket, in_range, params)
    for idx, *values in _fetch(counts_sql, params):
        f = figures[idx]
        (f.total, f.succeeded, f.failed, f.timed_out, f.dropped, f.in_progress,
         f.one_attempt, f.two_attempts, f.three_attempts) = (int(v or 0) for v in values)

    metrics = (
        ("duration", "duration_ms", f"{executed} AND duration_ms IS NOT NULL"),
        ("memory", "peak_memory_mb", f"{executed} AND peak_memory_mb IS NOT NULL"),
        ("lag", "lag", "lag IS NOT NULL"),
    )
    ctes, selects = [runs_cte], []
    for name, value, condition in metrics:
        extra, select = _percentile_parts(["idx"], (0.5, 0.95), source=f"m_{name}")
        ctes.append(f"m_{name} AS (SELECT idx, {value} AS v FROM rows WHERE {condition}){extra}")
        selects.append(f"SELECT '{name}' AS metric, p.* FROM ({select}) AS p")
    metrics_sql = "WITH " + ", ".join(ctes) + " " + " UNION ALL ".join(selects)
    for name, idx, n, top, p50, p95 in _fetch(metrics_sql, params):
        setattr(figures[idx], name, Stats(int(n), _num(top), _num(p50), _num(p95)))

    extra, select = _percentile_parts(["idx", "kind"], (0.5, 0.95), source="starts")
    startup_sql = (
        f"WITH sa AS (SELECT {bucket} AS idx, a.start_kind AS kind, a.startup_ms AS v FROM {RUN} r "
        f"JOIN {ATTEMPT} a ON a.run_id = r.id WHERE {in_range} "
        "AND a.startup_ms IS NOT NULL AND a.start_kind IN ('cold', 'warm')), "
        f"starts AS (SELECT idx, kind, v FROM sa UNION ALL SELECT {TOTAL}, kind, v FROM sa){extra} {select}"
    )
    for idx, kind, n, top, p50, p95 in _fetch(startup_sql, params):
        setattr(figures[idx], kind, Stats(int(n), _num(top), _num(p50), _num(p95)))
    return figures


def _monitor_figures_postgres(figures, bucket, in_range, params):
    """PostgreSQL reads the runs once for everything: FILTERed aggregates, and GROUPING SETS for the total."""
    executed = _EXECUTED_SQL

    def stats(value, condition):
        return ", ".join(
            [f"COUNT({value}) FILTER (WHERE {condition})", f"MAX({value}) FILTER (WHERE {condition})"]
            + [f"percentile_cont({p}) WITHIN GROUP (ORDER BY {value}) FILTER (WHERE {condition})" for p in (0.5, 0.95)]
        )

    sql = (
        "SELECT GROUPING(idx), idx, COUNT(*), "
        + "".join(f"COUNT(*) FILTER (WHERE {condition}), " for condition in _COUNTED) +
        f"{stats('duration_ms', executed)}, {stats('peak_memory_mb', executed)}, {stats('lag', 'TRUE')} "
        f"FROM (SELECT {bucket} AS idx, r.status, r.attempts, r.duration_ms, r.peak_memory_mb, "
        f"CASE WHEN r.trigger = 'schedule' THEN {_lag_expression()} END AS lag FROM {RUN} r WHERE {in_range}) AS s "
        "GROUP BY GROUPING SETS ((idx), ())"
    )
    for row in _fetch(sql, params):
        grouped, idx, counts, rest = row[0], row[1], row[2:11], row[11:]
        f = figures[TOTAL if grouped else idx]
        (f.total, f.succeeded, f.failed, f.timed_out, f.dropped, f.in_progress,
         f.one_attempt, f.two_attempts, f.three_attempts) = (int(v or 0) for v in counts)
        for name, (n, top, p50, p95) in zip(("duration", "memory", "lag"), (rest[0:4], rest[4:8], rest[8:12])):
            if n:
                setattr(f, name, Stats(int(n), _num(top), _num(p50), _num(p95)))
    sql = (
        "SELECT GROUPING(idx), idx, kind, COUNT(*), MAX(v), "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY v), percentile_cont(0.95) WITHIN GROUP (ORDER BY v) "
        f"FROM (SELECT {bucket} AS idx, a.start_kind AS kind, a.startup_ms AS v FROM {RUN} r "
        f"JOIN {ATTEMPT} a ON a.run_id = r.id WHERE {in_range} "
        "AND a.startup_ms IS NOT NULL AND a.start_kind IN ('cold', 'warm')) AS s "
        "GROUP BY GROUPING SETS ((idx, kind), (kind))"
    )
    for grouped, idx, kind, n, top, p50, p95 in _fetch(sql, params):
        setattr(figures[TOTAL if grouped else idx], kind, Stats(int(n), _num(top), _num(p50), _num(p95)))
    return figures


def _aware(value):
    """A raw row's time: SQLite hands back naive UTC (or text), PostgreSQL an aware datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _uuid(value):
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _num(value):
    return None if value is None else float(value)


# --- the Functions list ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Mark:
    status: str
    created_at: object
    duration_ms: int | None
    reason: str
    correlation_id: object

    @property
    def label(self):
        return RunStatus(self.status).label


@dataclasses.dataclass
class ListHealth:
    marks: list = dataclasses.field(default_factory=list)   # Marks, newest first
    finished_24h: int = 0
    succeeded_24h: int = 0
    p50_24h: float | None = None
    last_error: tuple | None = None   # (created_at, reason, correlation_id)

    @property
    def success_rate_24h(self):
        return 100.0 * self.succeeded_24h / self.finished_24h if self.finished_24h else None


MARKS = 10


def _newest_per_function(function_ids, columns, condition, limit):
    """The newest `limit` runs of each Function: one index walk per Function, in one statement."""
    parts = [
        f"SELECT * FROM (SELECT function_id, {columns} FROM {RUN} WHERE function_id = %s{condition} "
        f"ORDER BY created_at DESC, id DESC LIMIT {int(limit)}) AS t{i}"
        for i, _ in enumerate(function_ids)
    ]
    return _fetch(" UNION ALL ".join(parts), list(function_ids))


def function_list_health(function_ids, *, now):
    """{function id: ListHealth} for one page of the Functions list: three statements for the page."""
    health = {pk: ListHealth() for pk in function_ids}
    if not function_ids:
        return health
    columns = "status, created_at, duration_ms, reason, correlation_id"
    for function_id, status, created_at, duration_ms, reason, correlation_id in _newest_per_function(
        function_ids, columns, "", MARKS
    ):
        health[function_id].marks.append(Mark(status, _aware(created_at), duration_ms, reason, _uuid(correlation_id)))
    failed = f" AND status IN ({_quoted(FAILED)})"
    for function_id, created_at, reason, correlation_id in _newest_per_function(
        function_ids, "created_at, reason, correlation_id", failed, 1
    ):
        health[function_id].last_error = (_aware(created_at), reason, _uuid(correlation_id))
    since = now - timedelta(hours=24)
    placeholders = ", ".join(["%s"] * len(function_ids))
    ctes, percentile = _percentile_parts(["fid"], (0.5,), source="d")
    sql = (
        # The status is tested after the range is read: as a WHERE term beside the range, SQLite's
        # planner (no statistics) would walk the status index over the whole table instead.
        f"WITH r AS (SELECT function_id AS fid, status, duration_ms FROM {RUN} "
        f"WHERE function_id IN ({placeholders}) AND created_at >= %s), "
        f"v AS (SELECT fid, status, duration_ms FROM r WHERE {_EXECUTED_SQL}), "
        "d AS (SELECT fid, duration_ms AS v FROM v WHERE duration_ms IS NOT NULL)"
        f"{ctes}, p(fid, n, top, p50) AS ({percentile}), "
        "c AS (SELECT fid, COUNT(*) AS finished, "
        f"SUM(CASE WHEN status = '{RunStatus.SUCCEEDED.value}' THEN 1 ELSE 0 END) AS ok FROM v GROUP BY fid) "
        "SELECT c.fid, c.finished, c.ok, p.p50 FROM c LEFT JOIN p ON p.fid = c.fid"
    )
    for fid, finished, ok, p50 in _fetch(sql, list(function_ids) + [_time(since)]):
        h = health[fid]
        h.finished_24h, h.succeeded_24h, h.p50_24h = int(finished), int(ok or 0), _num(p50)
    return health
