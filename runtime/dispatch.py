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

from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from functions.models import Attempt, Run, RunStatus, RunTurn


def _due(now: datetime) -> Q:
    return Q(status=RunStatus.QUEUED) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))


def _due_of(organization_id: int, now: datetime):
    """The organization's due runs, oldest first: the order its runs start in."""
    return Run.objects.filter(_due(now), organization_id=organization_id).order_by("pk")


def _executing(organization_id: int) -> int:
    return Run.objects.filter(organization_id=organization_id, status=RunStatus.RUNNING).count()


def run_next_fair(*, now: datetime, skip_organizations: frozenset[int] = frozenset()) -> tuple[int, int] | None:
    """(run id, organization id) of the run to take next (the module's rules 1-3), or None when no run
    may start now.

    One statement whose cost follows the number of organizations waiting, not of runs waiting
    (2,000 queued runs cost a GROUP BY over all of them 2 ms a claim on PostgreSQL): a recursive
    walk of the partial index of queued runs finds each organization once, and per organization
    its oldest due run, its executing runs and its last turn are index look-ups. The statuses are
    literals, not parameters, because SQLite uses a partial index only for a literal match.
    """
    limit = settings.FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION
    runs, turns = Run._meta.db_table, RunTurn._meta.db_table
    queued, running = _literal(RunStatus.QUEUED), _literal(RunStatus.RUNNING)
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
                (SELECT id FROM {runs} AS r WHERE r.status = {queued} AND r.organization_id = waiting.organization_id
                 AND (r.next_attempt_at IS NULL OR r.next_attempt_at <= %s) ORDER BY r.id LIMIT 1) AS first_id,
                (SELECT COUNT(*) FROM {runs} AS r
                 WHERE r.status = {running} AND r.organization_id = waiting.organization_id) AS executing,
                (SELECT claimed_at FROM {turns} AS t WHERE t.organization_id = waiting.organization_id) AS turn
            FROM waiting WHERE organization_id IS NOT NULL
        )
        SELECT first_id, organization_id FROM candidates
        WHERE first_id IS NOT NULL AND (%s = 0 OR executing < %s) {_skip(skip_organizations)}
        ORDER BY executing, turn IS NOT NULL, turn, first_id
        LIMIT 1
    """
    params = [connection.ops.adapt_datetimefield_value(now), limit, limit, *sorted(skip_organizations)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


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
        chosen = run_next_fair(now=now, skip_organizations=frozenset(skip))
        if chosen is None:
            return None, None
        _run_id, organization_id = chosen
        run, attempt = _claim(organization_id=organization_id, now=now, worker=worker, isolation=isolation)
        if run is not None:
            return run, attempt
        # Other workers filled its places or took its due runs meanwhile: the next organization.
        skip.add(organization_id)


def run_claim(*, run_id: int, worker: str, isolation: str) -> tuple[Run, Attempt] | tuple[None, None]:
    """Take this run (if still due and its organization has room) and open its next attempt."""
    organization_id = Run.objects.filter(pk=run_id).values_list("organization_id", flat=True).first()
    if organization_id is None:
        return None, None
    return _claim(organization_id=organization_id, run_id=run_id, now=timezone.now(), worker=worker,
                  isolation=isolation)


def _claim(*, organization_id: int, now: datetime, worker: str, isolation: str, run_id: int | None = None):
    """Take the organization's oldest due run (or run_id, if due) when it has room; (None, None) if not."""
    with transaction.atomic():
        # The organization's turn, written first: the row stays locked until the commit, so the
        # organization's claims happen one after another. Each then counts the executing runs and
        # finds the oldest due run as the claims before it left them, and none loses a race for the
        # same run (PostgreSQL; SQLite's IMMEDIATE transactions serialize every claim anyway).
        RunTurn.objects.bulk_create(
            [RunTurn(organization_id=organization_id, claimed_at=now)],
            update_conflicts=True, unique_fields=["organization"], update_fields=["claimed_at"],
        )
        limit = settings.FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION
        if limit and _executing(organization_id) >= limit:
            transaction.set_rollback(True)
            return None, None
        due = _due_of(organization_id, now).select_related("function__organization", "code_version")
        run = (due.filter(pk=run_id) if run_id is not None else due).first()
        # Conditional still: a run dropped meanwhile (retention, a deleted Function) is not taken.
        if run is None or not Run.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, attempts=F("attempts") + 1, next_attempt_at=None,
            started_at=Coalesce(F("started_at"), Value(now)),
        ):
            transaction.set_rollback(True)
            return None, None
        # What the UPDATE wrote, without reading the row back.
        run.status, run.attempts, run.next_attempt_at = RunStatus.RUNNING, run.attempts + 1, None
        run.started_at = run.started_at or now
        attempt = Attempt.objects.create(run=run, number=run.attempts, worker=worker, isolation=isolation,
                                         heartbeat_at=now)
    return run, attempt


def run_wake_up(*, organization_id: int, now: datetime | None = None) -> int | None:
    """After one of the organization's runs ended: the id of its next due run, to send a message for,
    when a limit may have left it waiting; None otherwise.

    Without a limit every queued run still has its own message coming, so nothing is sent.
    """
    if not settings.FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION:
        return None
    return _due_of(organization_id, now or timezone.now()).values_list("pk", flat=True).first()


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
    executing = _executing(organization_id)
    return (executing, limit) if executing >= limit else None
