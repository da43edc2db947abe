"""Run retention: finished runs older than RUNS_RETENTION_DAYS go, in batches, with their attempts
and notices' links; newer runs and unfinished ones stay; beat drives it hourly."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from functions.models import Attempt, Run, RunStatus
from logs.models import LogEntry
from monitor import services
from monitor.models import FailureNotice
from monitor.tasks import prune_runs
from tests.factories import make_function
from tests.monitor_fixtures import add_run

pytestmark = pytest.mark.django_db


def test_runs_older_than_retention_are_deleted_in_batches_with_what_hangs_off_them(org, other_org):
    function = make_function(org, "hello")
    now = timezone.now()
    old = [add_run(function, at=now - timedelta(days=91, minutes=i), duration_ms=1, kinds=[("cold", 5)]) for i in range(5)]
    kept = add_run(function, at=now - timedelta(days=89), duration_ms=1)
    stuck = add_run(function, at=now - timedelta(days=95), status=RunStatus.QUEUED)
    notice = FailureNotice.objects.create(function=function, due_at=now)
    notice.runs.add(old[0], kept)
    LogEntry.objects.create(organization=org, function=function, run=old[1], attempt=1, timestamp=now, stream="stdout", message="x")
    elsewhere = make_function(other_org, "theirs")
    theirs = [add_run(elsewhere, at=now - timedelta(days=100, minutes=i), duration_ms=1) for i in range(2)]
    result = services.runs_prune(now=now, batch_size=2, pause=0)
    assert result.deleted == 7 and result.batches == 4 and result.finished
    assert not Run.objects.filter(pk__in=[r.pk for r in theirs]).exists()
    assert set(Run.objects.values_list("pk", flat=True)) == {kept.pk, stuck.pk}
    assert not Attempt.objects.filter(run_id__in=[r.pk for r in old]).exists()
    assert list(notice.runs.all()) == [kept] and not LogEntry.objects.exists()
    assert services.runs_prune(now=now).deleted == 0   # idempotent


def test_the_retention_window_is_a_setting(org, settings):
    settings.RUNS_RETENTION_DAYS = 10
    function = make_function(org, "hello")
    add_run(function, at=timezone.now() - timedelta(days=11), duration_ms=1)
    assert prune_runs() == {"deleted": 1, "finished": True}


def test_beat_prunes_runs_hourly():
    assert settings.CELERY_BEAT_SCHEDULE["prune-expired-runs"] == {"task": "monitor.tasks.prune_runs", "schedule": 3600.0}
    assert settings.RUNS_RETENTION_DAYS == 90
