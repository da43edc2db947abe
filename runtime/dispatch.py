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
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from functions.models import Attempt, Run, RunStatus, RunTurn

# A claim can lose its run to another worker between choosing and taking it: choose again, a few times.
CLAIM_TRIES = 5


def _due(now: datetime) -> Q:
    return Q(status=RunStatus.QUEUED) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))


def run_next_fair(*, now: datetime, skip_organizations: frozenset[int] = frozenset()) -> tuple[int, int] | None:
    """(run id, organization id) of the run to take next (the module's rules 1-3), or None when no run
    may start now.

    One statement, in SQL because the ORM would evaluate the per-organization subqueries once per
    queued run rather than once per organization: the due runs grouped by organization (a partial
    index holds only the queued ones), joined to each organization's executing runs and last turn.
    """
    limit = settings.FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION
    runs, turns = Run._meta.db_table, RunTurn._meta.db_table
    skip = ""
    if skip_organizations:
        skip = f"AND organization_id NOT IN ({', '.join(['%s'] * len(skip_organizations))})"
    sql = f"""
        SELECT waiting.first_id, waiting.organization_id
        FROM (
            SELECT organization_id, MIN(id) AS first_id FROM {runs}
            WHERE status = %s AND (next_attempt_at IS NULL OR next_attempt_at <= %s) {skip}
            GROUP BY organization_id
        ) AS waiting
        LEFT JOIN (
            SELECT organization_id, COUNT(*) AS executing FROM {runs} WHERE status = %s GROUP BY organization_id
        ) AS running ON running.organization_id = waiting.organization_id
        LEFT JOIN {turns} AS turn ON turn.organization_id = waiting.organization_id
        WHERE %s = 0 OR COALESCE(running.executing, 0) < %s
        ORDER BY COALESCE(running.executing, 0), turn.claimed_at IS NOT NULL, turn.claimed_at, waiting.first_id
        LIMIT 1
    """
    params = [RunStatus.QUEUED, connection.ops.adapt_datetimefield_value(now), *sorted(skip_organizations), RunStatus.RUNNING, limit, limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def run_claim_next(*, worker: str, isolation: str) -> tuple[Run, Attempt] | tuple[None, None]:
    """Take the fairest due run and open its next attempt; (None, None) when none may start now."""
    skip: set[int] = set()
    for _ in range(CLAIM_TRIES):
        now = timezone.now()
        chosen = run_next_fair(now=now, skip_organizations=frozenset(skip))
        if chosen is None:
            return None, None
        run_id, organization_id = chosen
        run, attempt, organization_full = _claim(
            run_id=run_id, organization_id=organization_id, now=now, worker=worker, isolation=isolation)
        if run is not None:
            return run, attempt
        if organization_full is not None:
            # Another worker filled the organization's last place first: its other runs wait too.
            skip.add(organization_full)
    return None, None


def run_claim(*, run_id: int, worker: str, isolation: str) -> tuple[Run, Attempt] | tuple[None, None]:
    """Take this run (if still due and its organization has room) and open its next attempt."""
    organization_id = Run.objects.filter(pk=run_id).values_list("organization_id", flat=True).first()
    if organization_id is None:
        return None, None
    run, attempt, _full = _claim(
        run_id=run_id, organization_id=organization_id, now=timezone.now(), worker=worker, isolation=isolation)
    return run, attempt


def _claim(*, run_id: int, organization_id: int, now: datetime, worker: str, isolation: str):
    """(run, attempt, None) when taken; (None, None, organization id) when the organization is at its
    limit; (None, None, None) when another worker took the run or it is not due."""
    with transaction.atomic():
        # The organization's turn, written first: on PostgreSQL the row stays locked until the commit,
        # so two workers claiming for one organization count its executing runs one after the other
        # (SQLite's IMMEDIATE transactions already serialize every claim).
        RunTurn.objects.bulk_create(
            [RunTurn(organization_id=organization_id, claimed_at=now)],
            update_conflicts=True, unique_fields=["organization"], update_fields=["claimed_at"],
        )
        limit = settings.FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION
        if limit and Run.objects.filter(organization_id=organization_id, status=RunStatus.RUNNING).count() >= limit:
            transaction.set_rollback(True)
            return None, None, organization_id
        claimed = Run.objects.filter(Q(pk=run_id) & _due(now)).update(
            status=RunStatus.RUNNING, attempts=F("attempts") + 1, next_attempt_at=None,
            # started_at in the same statement: one round trip fewer than setting it after.
            started_at=Coalesce(F("started_at"), Value(now)),
        )
        if not claimed:
            transaction.set_rollback(True)
            return None, None, None
        run = Run.objects.select_related("function__organization", "code_version").get(pk=run_id)
        attempt = Attempt.objects.create(run=run, number=run.attempts, worker=worker, isolation=isolation,
                                         heartbeat_at=now)
    return run, attempt, None


def run_wake_up(*, organization_id: int, now: datetime | None = None) -> int | None:
    """After one of the organization's runs ended: the id of its next due run, to send a message for,
    when a limit may have left it waiting; None otherwise.

    Without a limit every queued run still has its own message coming, so nothing is sent.
    """
    if not settings.FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION:
        return None
    now = now or timezone.now()
    return (
        Run.objects.filter(_due(now), organization_id=organization_id)
        .order_by("pk").values_list("pk", flat=True).first()
    )
