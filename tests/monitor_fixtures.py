"""A small, hand-computed set of runs for the Monitor's aggregates (used on SQLite and on PostgreSQL).

now is 2026-11-29 15:30 UTC (09:30 in the fixture organization's America/Chicago);
the 24-hour range's last bucket is 15:00-16:00 UTC, the one before 14:00-15:00.
"""

from datetime import UTC, datetime, timedelta

from functions.models import Attempt, Run, RunStatus, StartKind

NOW = datetime(2026, 11, 29, 15, 30, tzinfo=UTC)
LAST = NOW.replace(minute=0)            # the last hourly bucket's start
PREVIOUS = LAST - timedelta(hours=1)


def add_run(function, *, at, status=RunStatus.SUCCEEDED, duration_ms=None, memory=None, attempts=1,
            trigger="manual", lag_ms=None, reason="", kinds=()):
    """One run created at `at`; `kinds` are (start kind, start-up ms) of its attempts."""
    run = Run.objects.create(
        organization=function.organization, function=function, code_version=function.deployed_version,
        trigger=trigger, timeout_seconds=900, memory_mb=1769, status=status, attempts=attempts,
        duration_ms=duration_ms, peak_memory_mb=memory, reason=reason,
    )
    started = at + timedelta(seconds=1)
    fields = {"created_at": at, "started_at": started if status != RunStatus.DROPPED else None,
              "finished_at": started + timedelta(milliseconds=duration_ms or 0)}
    if lag_ms is not None:
        fields["scheduled_for"] = started - timedelta(milliseconds=lag_ms)
    Run.objects.filter(pk=run.pk).update(**fields)
    for number, (kind, startup) in enumerate(kinds, start=1):
        Attempt.objects.create(run=run, number=number, outcome="succeeded", start_kind=kind, startup_ms=startup)
    run.refresh_from_db()
    return run


def build(function):
    at = LAST + timedelta(minutes=1)
    S, F, T, D = RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.DROPPED
    add_run(function, at=at, duration_ms=100, memory=50, kinds=[(StartKind.COLD, 400)])
    add_run(function, at=at, duration_ms=200, memory=60, trigger="schedule", lag_ms=1000, kinds=[(StartKind.WARM, 10)])
    add_run(function, at=at, duration_ms=300, memory=70, trigger="schedule", lag_ms=3000, kinds=[(StartKind.WARM, 20)])
    add_run(function, at=at, duration_ms=400, memory=80, attempts=2,
            kinds=[(StartKind.COLD, 600), (StartKind.WARM, 30)])
    add_run(function, at=at, status=F, duration_ms=1000, memory=90, attempts=3, reason="Handler raised KeyError: 'x'")
    add_run(function, at=at, status=T, duration_ms=5000, memory=100, attempts=3, reason="Timed out after 5 s")
    add_run(function, at=at, status=D, attempts=0, trigger="schedule", reason="overlap")
    add_run(function, at=PREVIOUS + timedelta(minutes=59, seconds=59), duration_ms=10, memory=10)
    add_run(function, at=PREVIOUS, duration_ms=20, memory=20)
    # Outside the 24-hour range (just before its first bucket): counted nowhere.
    add_run(function, at=LAST - timedelta(hours=23, seconds=1), duration_ms=99999, memory=999)


def assert_figures(figures, approx):
    from monitor.queries import TOTAL

    last, previous, total = figures[23], figures[22], figures[TOTAL]
    assert (last.total, last.succeeded, last.failed, last.timed_out, last.dropped) == (7, 4, 1, 1, 1)
    assert last.success_rate == approx(400 / 6)
    assert (last.one_attempt, last.two_attempts, last.three_attempts) == (3, 1, 2)
    assert last.attempts_per_run == approx(11 / 6)
    assert (last.duration.count, last.duration.p50, last.duration.p95, last.duration.max) == (6, 350, approx(4000), 5000)
    assert (last.memory.p50, last.memory.p95, last.memory.max) == (75, approx(97.5), 100)
    assert (last.lag.count, last.lag.p50, last.lag.p95, last.lag.max) == (2, 2000, approx(2900), 3000)
    assert (last.cold.count, last.cold.p50, last.cold.max) == (2, 500, 600)
    assert (last.warm.count, last.warm.p50, last.warm.p95) == (3, 20, approx(29))
    assert (previous.total, previous.duration.p50, previous.duration.max) == (2, 15, 20)
    assert figures[0].total == 0 and figures[0].duration.p50 is None
    assert total.total == 9 and total.success_rate == approx(600 / 8)
    # ranks 4.5 and 7.65 of [10, 20, 100, 200, 300, 400, 1000, 5000]
    assert (total.duration.p50, total.duration.p95) == (250, approx(3600))
