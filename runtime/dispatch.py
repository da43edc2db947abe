"""Which queued run a worker takes next, and taking it: fair between organizations.

A broker message names a run, but the broker's queue is first in, first out:
one organization's 2,000 queued runs would keep another's single run waiting
behind all of them. So a message is a turn, not an order: the worker that
receives it takes the run that is fairest now:

  1. among organizations with a run due (queued, its retry backoff over) and,
     when FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION is set, fewer runs executing
     than that,
  2. the one with the fewest runs executing; among those, the one whose runs
     were taken longest ago (RunTurn), so organizations take turns;
  3. and that organization's oldest due run: within an organization runs start
     in the order they were triggered.

There is one message per queued run (and per retry), so every run is taken by
some message. A run over its organization's limit is left queued; when one of
that organization's runs ends, the worker says so (run_wake_up) and a message
is sent for the next one.
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from accounts.models import Organization
from functions.models import Attempt, CodeVersion, Function, Run, RunStatus, RunTurn

from config.rows import RowReader, quoted_columns, statement_cursor


# The two rules every choice below shares, each written once, in SQL: an organization's oldest
# due run (the order its runs start in) and how many of its runs are executing. `organization`
# is SQL too: a column of the outer query, or a placeholder.


def _oldest_due_sql(organization: str, *, also: str = "") -> str:
    """The id of the organization's oldest due run meeting `also`, or NULL; its one parameter
    before those of `also`: now."""
    runs, queued = Run._meta.db_table, _literal(RunStatus.QUEUED)
    return (f"SELECT id FROM {runs} AS r WHERE r.status = {queued} AND r.organization_id = {organization} "
            f"AND (r.next_attempt_at IS NULL OR r.next_attempt_at <= %s) {also} ORDER BY r.id LIMIT 1")


def _executing_sql(organization: str) -> str:
    """How many of the organization's runs are executing."""
    runs, running = Run._meta.db_table, _literal(RunStatus.RUNNING)
    return f"SELECT COUNT(*) FROM {runs} AS e WHERE e.status = {running} AND e.organization_id = {organization}"


def _scalar(sql: str, params: list):
    """The first column of the statement's first row, or None."""
    with statement_cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None


def run_next_fair(*, now: datetime, skip_organizations: frozenset[int] = frozenset()) -> tuple[int, int] | None:
    """(run id, organization id) of the run to take next (the module's rules 1-3), or None when no run
    may start now."""
    sql, params = _fairest_sql(now=now, skip_organizations=skip_organizations)
    with statement_cursor() as cursor:
        cursor.execute(f"{sql} SELECT first_id, organization_id FROM fairest", params)
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def _fairest_sql(*, now: datetime, skip_organizations: frozenset[int]) -> tuple[str, list]:
    """A WITH clause whose last table, ``fairest``, holds (first_id, organization_id) of the run to
    take next, or no row: what run_next_fair reads and what a claim takes the turn of.

    One statement whose cost follows the number of organizations waiting, not of runs waiting
    (2,000 queued runs cost a GROUP BY over all of them 2 ms a claim on PostgreSQL): a recursive
    walk of the partial index of queued runs finds each organization once, and per organization
    its oldest due run, its executing runs and its last turn are index look-ups. The statuses are
    literals, not parameters, because SQLite uses a partial index only for a literal match.
    """
    limit = settings.FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION
    runs, turns = Run._meta.db_table, RunTurn._meta.db_table
    queued = _literal(RunStatus.QUEUED)
    # SQLite's planner, without statistics, would walk every queued run through the (status,
    # next_attempt_at) index instead: name the partial index (PostgreSQL finds it by itself).
    by_queued = "INDEXED BY run_queued_org_idx" if connection.vendor == "sqlite" else ""
    sql = f"""
        WITH RECURSIVE waiting(organization_id) AS (
            SELECT * FROM (SELECT organization_id FROM {runs} {by_queued} WHERE status = {queued}
                           ORDER BY organization_id LIMIT 1) AS lowest
            UNION ALL
            SELECT (SELECT organization_id FROM {runs} {by_queued} WHERE status = {queued}
                    AND organization_id > waiting.organization_id ORDER BY organization_id LIMIT 1)
            FROM waiting WHERE waiting.organization_id IS NOT NULL
        ), candidates AS (
            SELECT organization_id,
                ({_oldest_due_sql("waiting.organization_id")}) AS first_id,
                ({_executing_sql("waiting.organization_id")}) AS executing,
                (SELECT claimed_at FROM {turns} AS t WHERE t.organization_id = waiting.organization_id) AS turn
            FROM waiting WHERE organization_id IS NOT NULL
        ), fairest AS (
            SELECT first_id, organization_id FROM candidates
            WHERE first_id IS NOT NULL AND (%s = 0 OR executing < %s) {_skip(skip_organizations)}
            ORDER BY executing, turn IS NOT NULL, turn, first_id
            LIMIT 1
        )
    """
    return sql, [connection.ops.adapt_datetimefield_value(now), limit, limit, *sorted(skip_organizations)]


def _literal(status: str) -> str:
    assert status.isalpha()  # the statuses are the model's own constants: nothing to escape
    return f"'{status}'"


def _skip(organizations: frozenset[int]) -> str:
    return f"AND organization_id NOT IN ({', '.join(['%s'] * len(organizations))})" if organizations else ""


def run_claim_next(*, worker: str, isolation: str) -> tuple[Run, Attempt] | tuple[None, None]:
    """Take the fairest due run and open its next attempt; (None, None) when none may start now."""
    skip: set[int] = set()
    while True:  # at most once per organization: each one tried is skipped after
        now = timezone.now()
        with transaction.atomic():
            organization_id = _take_fairest_turn(now=now, skip_organizations=frozenset(skip))
            if organization_id is None:
                return None, None
            run, attempt = _take_due_run(organization_id=organization_id, now=now, worker=worker,
                                         isolation=isolation)
            if run is not None:
                return run, attempt
            transaction.set_rollback(True)  # the turn too: nothing was taken
        # Other workers filled its places or took its due runs meanwhile: the next organization.
        skip.add(organization_id)


def run_claim(*, run_id: int, worker: str, isolation: str) -> tuple[Run, Attempt] | tuple[None, None]:
    """Take this run (if still due and its organization has room) and open its next attempt."""
    organization_id = Run.objects.filter(pk=run_id).values_list("organization_id", flat=True).first()
    if organization_id is None:
        return None, None
    now = timezone.now()
    with transaction.atomic():
        _take_turn(organization_id=organization_id, now=now)
        run, attempt = _take_due_run(organization_id=organization_id, now=now, worker=worker, isolation=isolation,
                                     run_id=run_id)
        if run is None:
            transaction.set_rollback(True)
    return run, attempt


# How a claim goes, in one transaction:
#
#   1. The organization's turn is written first (RunTurn): the row stays locked until the commit,
#      so the organization's claims happen one after another. Each then counts the executing runs
#      and finds the oldest due run as the claims before it left them, and none loses a race for
#      the same run (PostgreSQL; SQLite's IMMEDIATE transactions serialize every claim anyway).
#      Taking the turn of the fairest organization is one statement on PostgreSQL (its choice made
#      before the lock is waited for, as it was when the choice was a statement of its own).
#   2. In a later statement, so that it sees what the claims before it committed: the run, if due
#      and its organization under the limit, is marked running by a conditional UPDATE (a run
#      dropped meanwhile, by retention or a deleted Function, is not taken), and its attempt opened.
#
# The statements are written by hand (config.rows says why): on PostgreSQL step 2 is one
# statement that also reads back the run with its Function, organization and code version.


def _take_fairest_turn(*, now: datetime, skip_organizations: frozenset[int]) -> int | None:
    """Step 1 for the fairest organization (the module's rules): its id, or None when no run may start."""
    fairest, params = _fairest_sql(now=now, skip_organizations=skip_organizations)
    turns = connection.ops.quote_name(RunTurn._meta.db_table)
    with statement_cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"{fairest} INSERT INTO {turns} (organization_id, claimed_at) SELECT organization_id, %s FROM fairest "
                "ON CONFLICT (organization_id) DO UPDATE SET claimed_at = EXCLUDED.claimed_at RETURNING organization_id",
                [*params, connection.ops.adapt_datetimefield_value(now)],
            )
            row = cursor.fetchone()
            return row[0] if row else None
        # SQLite (RETURNING needs 3.35): the transaction already holds the database's write lock.
        cursor.execute(f"{fairest} SELECT organization_id FROM fairest", params)
        row = cursor.fetchone()
    if row is None:
        return None
    _take_turn(organization_id=row[0], now=now)
    return row[0]


def _take_turn(*, organization_id: int, now: datetime) -> None:
    """Step 1 for this organization."""
    turns = connection.ops.quote_name(RunTurn._meta.db_table)
    with statement_cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {turns} (organization_id, claimed_at) VALUES (%s, %s) "
            "ON CONFLICT (organization_id) DO UPDATE SET claimed_at = EXCLUDED.claimed_at",
            [organization_id, connection.ops.adapt_datetimefield_value(now)],
        )


_RUNS, _FUNCTIONS, _ORGANIZATIONS, _VERSIONS, _ATTEMPTS = (
    RowReader(Run), RowReader(Function), RowReader(Organization), RowReader(CodeVersion), RowReader(Attempt))


def _take_due_run(*, organization_id: int, now: datetime, worker: str, isolation: str, run_id: int | None = None):
    """Step 2: (run, attempt), the run with its Function, organization and code version loaded as
    the run engine uses them, and ``run.executing_alongside`` (how many other runs of its organization
    were executing when it was taken: runtime.priority); (None, None) when no run may start."""
    at = connection.ops.adapt_datetimefield_value
    limit = settings.FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION
    sql = _take_sql(connection.vendor, by_id=run_id is not None, limited=bool(limit))
    pick = [organization_id, at(now), *([run_id] if run_id is not None else []),
            *([organization_id, limit] if limit else [])]
    # The attempt as Attempt.objects.create() would write it: the model's own defaults.
    opened = Attempt(run_id=0, number=0, worker=worker, isolation=isolation, started_at=now, heartbeat_at=now)
    values = [field.get_db_prep_save(getattr(opened, field.attname), connection) for field in _OPENED_FIELDS]
    with statement_cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(sql.take, [at(now), *pick, *values])
            row = cursor.fetchone()
            if row is None:
                return None, None
            attempt = _ATTEMPTS.read(row)
            run = _loaded(row, _ATTEMPTS.width)
            run.executing_alongside = row[-1]
        else:
            # SQLite: the transaction holds the write lock, so what is read here is what is updated.
            cursor.execute(sql.read, pick)
            row = cursor.fetchone()
            if row is None:
                return None, None
            run = _loaded(row, 0)
            run.executing_alongside = row[-1]
            cursor.execute(sql.take, [at(now), run.pk])
            if not cursor.rowcount:
                return None, None
            # What the UPDATE wrote, without reading the row back.
            run.status, run.attempts, run.next_attempt_at = RunStatus.RUNNING, run.attempts + 1, None
            run.started_at = run.started_at or now
            cursor.execute(sql.open, [run.pk, run.attempts, *values])
            opened.pk, opened.run_id, opened.number = cursor.lastrowid, run.pk, run.attempts
            opened._state.adding, opened._state.db = False, connection.alias
            attempt = opened
    attempt.run = run
    return run, attempt


# The attempt's columns a claim writes besides its run and number.
_OPENED_FIELDS = [field for field in Attempt._meta.concrete_fields if field.name not in ("id", "run", "number")]


@dataclasses.dataclass(frozen=True)
class _TakeSql:
    take: str  # PostgreSQL: the whole step; SQLite: the run's UPDATE, by id
    read: str = ""  # SQLite: the run to take, with its relations
    open: str = ""  # SQLite: the attempt's INSERT


@functools.cache
def _take_sql(vendor: str, *, by_id: bool, limited: bool) -> _TakeSql:
    """Step 2's statements, written once per database and shape (they cost nothing to send again)."""
    quote = connection.ops.quote_name
    runs, attempts = quote(Run._meta.db_table), quote(Attempt._meta.db_table)
    queued, running = _literal(RunStatus.QUEUED), _literal(RunStatus.RUNNING)
    # The organization's oldest due run (or run_id, if due), when it has room: its id or NULL.
    pick = _oldest_due_sql("%s", also=(" AND r.id = %s" if by_id else "")
                           + (f" AND ({_executing_sql('%s')}) < %s" if limited else ""))
    take = (f"UPDATE {runs} SET status = {running}, attempts = attempts + 1, next_attempt_at = NULL, "
            f"started_at = COALESCE(started_at, %s)")
    columns = ", ".join(quote(field.column) for field in _OPENED_FIELDS)
    placeholders = ", ".join(["%s"] * len(_OPENED_FIELDS))
    joined = (f"JOIN {quote(Function._meta.db_table)} AS f ON f.id = r.function_id "
              f"JOIN {quote(Organization._meta.db_table)} AS o ON o.id = f.organization_id "
              f"JOIN {quote(CodeVersion._meta.db_table)} AS v ON v.id = r.code_version_id")
    loaded = ", ".join(quoted_columns(model, alias) for model, alias in (
        (Run, "r"), (Function, "f"), (Organization, "o"), (CodeVersion, "v")))
    # The organization's other runs executing: counted before the run itself is marked running (on
    # PostgreSQL in the statement's snapshot, which its own UPDATE does not change; on SQLite by the
    # read before the UPDATE), so the run is never among them.
    loaded += f", ({_executing_sql('r.organization_id')})"
    if vendor == "postgresql":
        return _TakeSql(take=(
            f"WITH claimed AS ({take} WHERE id = ({pick}) AND status = {queued} RETURNING *), "
            f"opened AS (INSERT INTO {attempts} (run_id, number, {columns}) "
            f"SELECT id, attempts, {placeholders} FROM claimed RETURNING *) "
            f"SELECT {quoted_columns(Attempt, 'a')}, {loaded} "
            f"FROM claimed AS r JOIN opened AS a ON a.run_id = r.id {joined}"
        ))
    return _TakeSql(
        take=f"{take} WHERE id = %s AND status = {queued}",
        read=f"SELECT {loaded} FROM {runs} AS r {joined} WHERE r.id = ({pick})",
        open=f"INSERT INTO {attempts} (run_id, number, {columns}) VALUES (%s, %s, {placeholders})",
    )


def _loaded(row, start: int) -> Run:
    """The run read at row[start:], with the Function, organization and code version read after it."""
    run = _RUNS.read(row, start)
    start += _RUNS.width
    function = _FUNCTIONS.read(row, start)
    start += _FUNCTIONS.width
    function.organization = _ORGANIZATIONS.read(row, start)
    run.function = function
    run.code_version = _VERSIONS.read(row, start + _ORGANIZATIONS.width)
    return run


def run_wake_up(*, organization_id: int, now: datetime | None = None) -> int | None:
    """After one of the organization's runs ended: the id of its next due run, to send a message for,
    when a limit may have left it waiting; None otherwise.

    Without a limit every queued run still has its own message coming, so nothing is sent.
    """
    if not settings.FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION:
        return None
    now = connection.ops.adapt_datetimefield_value(now or timezone.now())
    return _scalar(_oldest_due_sql("%s"), [organization_id, now])


def organizations_at_limit() -> list[int]:
    """The organizations with FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION runs executing (none without a limit)."""
    limit = settings.FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION
    if not limit:
        return []
    return list(
        Run.objects.filter(status=RunStatus.RUNNING).values("organization_id").annotate(executing=Count("pk"))
        .filter(executing__gte=limit).values_list("organization_id", flat=True)
    )


def organization_at_limit(*, organization_id: int) -> tuple[int, int] | None:
    """(runs executing, the limit) when the organization is at FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION, so
    its queued runs wait for one to end (the run page says so); None otherwise."""
    limit = settings.FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION
    if not limit:
        return None
    executing = _scalar(_executing_sql("%s"), [organization_id])
    return (executing, limit) if executing >= limit else None
