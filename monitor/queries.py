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


def _buckets_cte(buckets, start, end):
    """`b(idx, lo, hi)`: one row per bucket plus the TOTAL row spanning them all."""
    rows = [(TOTAL, start, end)] + [(b.index, b.start, b.end) for b in buckets]
    cast = "CAST(%s AS timestamptz)" if _postgres() else "%s"
    sql = "b(idx, lo, hi) AS (VALUES " + ", ".join(f"(%s, {cast}, {cast})" for _ in rows) + ")"
    params = [p for idx, lo, hi in rows for p in (idx, _time(lo), _time(hi))]
    return sql, params


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
        f", {ranked} AS (SELECT {keys}, v, ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY v) AS rn, "
        f"COUNT(*) OVER (PARTITION BY {keys}) AS n FROM {source})"
    )
    return ctes, f"SELECT {keys}, MAX(n), MAX(v), {', '.join(pcts)} FROM {ranked} GROUP BY {keys}"


def _percentile_select(groups, p_values):
    ctes, select = _percentile_parts(groups, p_values)
    return f"{ctes} {select}"


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


def monitor_figures(*, function, buckets):
    """{bucket index (TOTAL for the whole range): BucketFigures} for one Function, five queries in all."""
    start, end = buckets[0].start, buckets[-1].end
    cte, cte_params = _buckets_cte(buckets, start, end)
    runs_in = (
        f"FROM b JOIN {RUN} r ON r.created_at >= b.lo AND r.created_at < b.hi "
        "WHERE r.function_id = %s AND r.created_at >= %s AND r.created_at < %s"
    )
    base_params = cte_params + [function.pk, _time(start), _time(end)]
    figures = {b.index: BucketFigures() for b in buckets}
    figures[TOTAL] = BucketFigures()

    def count_when(condition):
        return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"

    executed = f"r.status IN ({_quoted(EXECUTED)})"
    counts_sql = (
        f"WITH {cte} SELECT b.idx, COUNT(*), "
        f"{count_when(f"r.status = '{RunStatus.SUCCEEDED.value}'")}, {count_when(f"r.status = '{RunStatus.FAILED.value}'")}, "
        f"{count_when(f"r.status = '{RunStatus.TIMED_OUT.value}'")}, {count_when(f"r.status = '{RunStatus.DROPPED.value}'")}, "
        f"{count_when(f"r.status IN ('{RunStatus.QUEUED.value}', '{RunStatus.RUNNING.value}')")}, "
        f"{count_when(f'{executed} AND r.attempts = 1')}, {count_when(f'{executed} AND r.attempts = 2')}, "
        f"{count_when(f'{executed} AND r.attempts >= 3')} "
        f"{runs_in} GROUP BY b.idx"
    )
    for idx, *values in _fetch(counts_sql, base_params):
        f = figures[idx]
        (f.total, f.succeeded, f.failed, f.timed_out, f.dropped, f.in_progress,
         f.one_attempt, f.two_attempts, f.three_attempts) = (int(v or 0) for v in values)

    if _postgres():
        lag = "CAST(EXTRACT(EPOCH FROM (r.started_at - r.scheduled_for)) * 1000 AS double precision)"
    else:
        lag = "ROUND((julianday(r.started_at) - julianday(r.scheduled_for)) * 86400000.0)"
    metrics = (
        ("duration", "r.duration_ms", f"{executed} AND r.duration_ms IS NOT NULL"),
        ("memory", "r.peak_memory_mb", f"{executed} AND r.peak_memory_mb IS NOT NULL"),
        ("lag", lag, "r.trigger = 'schedule' AND r.scheduled_for IS NOT NULL AND r.started_at IS NOT NULL"),
    )
    for name, value, condition in metrics:
        sql = f"WITH {cte}, v AS (SELECT b.idx AS idx, {value} AS v {runs_in} AND {condition})" + _percentile_select(
            ["idx"], (0.5, 0.95)
        )
        for idx, n, top, p50, p95 in _fetch(sql, base_params):
            setattr(figures[idx], name, Stats(int(n), _num(top), _num(p50), _num(p95)))

    startup_sql = (
        f"WITH {cte}, v AS (SELECT b.idx AS idx, a.start_kind AS kind, a.startup_ms AS v {runs_in.replace('WHERE', f'JOIN {ATTEMPT} a ON a.run_id = r.id WHERE', 1)} "
        "AND a.startup_ms IS NOT NULL AND a.start_kind IN ('cold', 'warm'))" + _percentile_select(["idx", "kind"], (0.5, 0.95))
    )
    for idx, kind, n, top, p50, p95 in _fetch(startup_sql, base_params):
        setattr(figures[idx], kind, Stats(int(n), _num(top), _num(p50), _num(p95)))
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
        f"WITH v AS (SELECT function_id AS fid, status, duration_ms FROM {RUN} "
        f"WHERE function_id IN ({placeholders}) AND created_at >= %s AND status IN ({_quoted(EXECUTED)})), "
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
