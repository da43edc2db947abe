"""Retention: entries past LOGS_RETENTION_DAYS are deleted in batches; their runs stay, marked "logs expired"."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.celery import app
from functions.models import Run, RunStatus
from logs import tasks
from logs.models import LogEntry
from logs.services import logs_prune
from tests.factories import add_log_lines, make_run


@pytest.fixture
def now():
    return timezone.now()


def test_entries_older_than_the_window_are_deleted_and_newer_ones_kept(function, now):
    old_run = make_run(function, finished_at=now - timedelta(days=8))
    new_run = make_run(function, finished_at=now - timedelta(hours=1))
    add_log_lines(old_run, *[(now - timedelta(days=8, seconds=i), f"old {i}") for i in range(25)])
    add_log_lines(new_run, (now - timedelta(days=6, hours=23), "almost old"), (now - timedelta(hours=1), "new"))
    result = logs_prune(now=now, batch_size=10, pause=0)
    assert result.deleted == 25 and result.batches == 3 and result.finished
    assert sorted(LogEntry.objects.values_list("message", flat=True)) == ["almost old", "new"]


def test_runs_left_without_entries_are_marked_and_kept(function, now):
    expired = make_run(function, finished_at=now - timedelta(days=8))
    straddling = make_run(function, finished_at=now - timedelta(days=6))  # finished inside the window
    running = make_run(function, status=RunStatus.RUNNING)
    add_log_lines(expired, (now - timedelta(days=8), "gone"))
    add_log_lines(straddling, (now - timedelta(days=7, hours=1), "first line, past the window"), (now - timedelta(days=6), "last"))
    add_log_lines(running, (now - timedelta(days=8), "a very long run's first line"))
    result = logs_prune(now=now, pause=0)
    assert result.deleted == 3 and result.runs_marked == 1
    assert set(Run.objects.filter(logs_expired=True)) == {expired}
    assert Run.objects.count() == 3
    # Marked once: a second prune finds nothing to do.
    again = logs_prune(now=now, pause=0)
    assert (again.deleted, again.runs_marked) == (0, 0)


def test_the_window_follows_the_setting(function, now, settings):
    settings.LOGS_RETENTION_DAYS = 2
    run = make_run(function, finished_at=now - timedelta(days=3))
    add_log_lines(run, (now - timedelta(days=3), "three days old"))
    assert logs_prune(now=now, pause=0).deleted == 1
    assert Run.objects.get(pk=run.pk).logs_expired


def test_each_batch_is_its_own_short_delete(function, now):
    run = make_run(function, finished_at=now - timedelta(days=9))
    add_log_lines(run, *[(now - timedelta(days=9, seconds=i), "x") for i in range(30)])
    with CaptureQueriesContext(connection) as captured:
        logs_prune(now=now, batch_size=10, pause=0)
    deletes = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 3
    assert all("logs_logentry" in sql and '"id" IN (' in sql for sql in deletes)
    # One transaction per batch (test_logs_retention runs inside the test's transaction, so
    # they show as savepoints): the write lock is released between batches. (One more: the look
    # for unindexed blocks, which finds none.)
    assert sum(1 for q in captured.captured_queries if q["sql"].startswith("SAVEPOINT")) == 4 + 1


def test_a_time_bound_prune_stops_between_batches_and_the_next_continues(function, now):
    run = make_run(function, finished_at=now - timedelta(days=9))
    add_log_lines(run, *[(now - timedelta(days=9, seconds=i), "x") for i in range(30)])
    first = logs_prune(now=now, batch_size=10, pause=0, max_seconds=0)
    assert (first.deleted, first.finished, first.runs_marked) == (10, False, 0)
    rest = logs_prune(now=now, batch_size=10, pause=0)
    assert (rest.deleted, rest.finished, rest.runs_marked) == (20, True, 1)


def test_the_command_prints_what_it_did(function, now):
    run = make_run(function, finished_at=now - timedelta(days=9))
    add_log_lines(run, (now - timedelta(days=9), "x"))
    out = StringIO()
    call_command("prune_logs", stdout=out)
    printed = json.loads(out.getvalue())
    assert (printed["deleted"], printed["runsMarked"]) == (1, 1)
    with pytest.raises(CommandError, match="at least 1"):
        call_command("prune_logs", "--batch-size", "0")


def test_the_task_prunes_and_is_scheduled_hourly(function, now):
    run = make_run(function, finished_at=now - timedelta(days=9))
    add_log_lines(run, (now - timedelta(days=9), "x"))
    assert tasks.prune_logs() == {"deleted": 1, "runsMarked": 1, "finished": True, "blocksDeleted": 0}
    entry = settings.CELERY_BEAT_SCHEDULE["prune-expired-logs"]
    assert entry == {"task": "logs.tasks.prune_logs", "schedule": 3600.0}
    assert "logs.tasks.prune_logs" in app.tasks


def test_the_run_page_says_when_its_logs_expired(admin_client, function, now):
    from django.urls import reverse

    run = make_run(function, finished_at=now - timedelta(days=9))
    add_log_lines(run, (now - timedelta(days=9), "x"))
    logs_prune(now=now, pause=0)
    page = admin_client.get(reverse("functions:run_detail", kwargs={
        "org_id": function.organization_id, "name": "hello", "correlation_id": run.correlation_id})).content.decode()
    assert "logs expired" in page.lower()
