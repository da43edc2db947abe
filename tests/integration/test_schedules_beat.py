"""Schedules through a real celery beat and worker on Redis and PostgreSQL: on time, edits picked up, once with two beats."""

import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from functions.models import Run, RunStatus, TriggerSource
from functions.run_services import run_trigger
from schedules import services
from schedules.models import Occurrence
from tests.factories import entry_at, make_function
from tests.integration.processes import descendants, procfile_command, sending_to, stop_process, wait_for

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sandbox, pytest.mark.usefixtures("runtime_env")]

HANDLER = "def handler(event, context):\n    print('tick', event['SamsaraFunctionTriggerSource'])\n    return 1\n"


@pytest.fixture
def processes(tmp_path, settings):
    """Start real worker and beat processes on the test's database and a queue of the test's own."""
    queue = f"itest-{uuid.uuid4().hex[:10]}"
    started = []
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_QUEUE": queue,
        "DATA_DIR": str(settings.DATA_DIR),
        "FUNCTIONS_CACHE_DIR": str(tmp_path / "cache"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }

    def start(kind, concurrency=2):
        n = len(started)
        log = open(tmp_path / f"{kind}-{n}.log", "w")
        if kind == "schedules":
            # The Procfile's own line, as bin/run and a Procfile host start it (a name of the test's own,
            # as parallel tests share the broker).
            argv = ["/bin/sh", "-c", f"exec {procfile_command('schedules')} -n {queue}-{n}@%h"]
        else:
            args = {
                "worker": ["worker", "--concurrency", str(concurrency), "-n", f"{queue}-{n}@%h"],
                "beat": ["beat", "--pidfile=", "-s", str(tmp_path / f"beat-{n}")],
            }[kind]
            argv = [sys.executable, "-m", "celery", "-A", "config", *args, "--loglevel", "INFO"]
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        started.append(process)
        return process

    start.queue = queue
    yield start
    for process in started:
        stop_process(process)


def scheduled(function):
    return Run.objects.filter(function=function, trigger=TriggerSource.SCHEDULE).order_by("scheduled_for")


def wait_until_ticking(function):
    """Beat and worker are up once a tick has moved a schedule's column; start-up time varies with load."""
    import zoneinfo

    tz = zoneinfo.ZoneInfo(function.organization.timezone)
    probe_at = (timezone.now() + timedelta(seconds=3)).replace(microsecond=0)
    services.schedule_set(function=function, enabled=True, items=[entry_at(probe_at, tz)])
    wait_for(lambda: scheduled(function).filter(scheduled_for=probe_at).exists(), timeout=90,
             what="beat and worker to start firing schedules")
    return tz


def test_a_real_beat_fires_a_schedule_on_time_and_picks_up_an_edit_without_a_restart(org, processes):
    function = make_function(org, "ticker", files={"main.py": HANDLER})
    processes("worker")
    processes("beat")
    tz = wait_until_ticking(function)

    due = (timezone.now() + timedelta(seconds=4)).replace(microsecond=0)
    services.schedule_set(function=function, items=[entry_at(due, tz)])
    run = wait_for(lambda: scheduled(function).filter(scheduled_for=due).first(), timeout=20, what="the scheduled run")
    lag = (run.created_at - due).total_seconds()
    assert 0 <= lag < 1.0, f"the run was created {lag:.3f} s after its occurrence"
    assert run.event["SamsaraFunctionTriggerSource"] == "schedule"
    wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, what="the scheduled run to finish")
    finished = Run.objects.get(pk=run.pk)
    assert finished.status == RunStatus.SUCCEEDED, (finished.status, finished.reason, finished.error)

    # An edit, with beat and worker left running: the new time fires, the old one no more.
    edited = (timezone.now() + timedelta(seconds=5)).replace(microsecond=0)
    services.schedule_set(function=function, items=[entry_at(edited, tz), "0 0 1 1 *"])
    wait_for(lambda: scheduled(function).filter(scheduled_for=edited).exists(), timeout=20, what="the edited schedule")
    services.schedule_set(function=function, enabled=False)
    time.sleep(2)
    assert scheduled(function).count() == 3
    assert scheduled(function).filter(status=RunStatus.DROPPED).count() == 0


def test_two_beats_fire_each_occurrence_once(org, processes):
    function = make_function(org, "twice", files={"main.py": HANDLER})
    processes("worker")
    processes("beat")
    processes("beat")
    tz = wait_until_ticking(function)

    start = (timezone.now() + timedelta(seconds=3)).replace(microsecond=0)
    instants = [start + timedelta(seconds=3 * n) for n in range(4)]
    services.schedule_set(function=function, items=[entry_at(i, tz) for i in instants])
    wait_for(lambda: scheduled(function).filter(scheduled_for=instants[-1]).exists(), timeout=30,
             what="the last occurrence")
    time.sleep(2.5)  # both beats tick a few more times
    runs = scheduled(function).filter(scheduled_for__in=instants)
    assert sorted(r.scheduled_for for r in runs) == instants  # each once
    assert Occurrence.objects.filter(function=function, scheduled_for__in=instants).count() == 4
    # The runs are 3 s apart and finish quickly, so none overlapped another.
    assert not runs.filter(status=RunStatus.DROPPED).exists()


BACKLOG = 2000


def test_a_schedule_fires_on_time_while_another_organization_has_2000_runs_queued(org, other_org, processes):
    # One message per queued run: on the runs' queue, a tick sent after them waited until the backlog
    # drained (tens of seconds here). Ticks go through a queue of their own (config/queues.py).
    from functions.run_services import runs_trigger_scheduled
    from runtime.tasks import runs_enqueue

    busy = make_function(org, "busy", files={"main.py": "def handler(event, context):\n    return 1\n"})
    ticker = make_function(other_org, "ticker", files={"main.py": HANDLER})
    processes("worker")
    processes("beat")
    tz = wait_until_ticking(ticker)

    backlog = runs_trigger_scheduled(occurrences=[(busy, timezone.now())] * BACKLOG)
    with sending_to(processes.queue):
        runs_enqueue(run_ids=[run.pk for run in backlog])
    wait_for(lambda: Run.objects.filter(function=busy, finished_at__isnull=False).count() > 20,
             what="the backlog to be under way")
    due = (timezone.now() + timedelta(seconds=3)).replace(microsecond=0)
    services.schedule_set(function=ticker, items=[entry_at(due, tz)])
    run = wait_for(lambda: scheduled(ticker).filter(scheduled_for=due).first(), timeout=120,
                   what="the scheduled run behind the backlog")
    left = Run.objects.filter(function=busy, status=RunStatus.QUEUED).count()
    Run.objects.filter(function=busy, status=RunStatus.QUEUED).update(status=RunStatus.DROPPED)

    assert left > 200, "the backlog ran out before the occurrence: nothing was measured"
    lag = (run.created_at - due).total_seconds()
    assert 0 <= lag < 2.0, f"the run was created {lag:.3f} s after its occurrence, {left} runs still queued"
    wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, what="the scheduled run to finish")
    assert Run.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED


def test_the_procfiles_schedules_worker_fires_on_time_while_every_run_worker_process_is_busy(
    org, other_org, processes, settings,
):
    # A tick waits for a free worker process: with every one busy with a long run, schedules fired only
    # when a run ended. The Procfile's schedules worker takes the ticks' queue alone (config/queues.py).
    settings.FUNCTIONS_MAX_ATTEMPTS = 1  # the long run times out once, not three times
    long_running = make_function(org, "long", timeout_seconds=25,
                                 files={"main.py": "import time\ndef handler(event, context):\n    time.sleep(60)\n"})
    ticker = make_function(other_org, "ticker", files={"main.py": HANDLER})
    processes("worker", concurrency=1)
    schedules_worker = processes("schedules")
    processes("beat")
    with sending_to(processes.queue):
        busy = run_trigger(function=long_running, trigger="api")
    wait_for(lambda: Run.objects.get(pk=busy.pk).status == RunStatus.RUNNING, timeout=60,
             what="the long run to take the worker's only process")
    # (A probe of its own: its run, queued behind the long one too, would make the ticker's an overlap.)
    tz = wait_until_ticking(make_function(other_org, "probe", files={"main.py": HANDLER}))

    due = (timezone.now() + timedelta(seconds=3)).replace(microsecond=0)
    services.schedule_set(function=ticker, enabled=True, items=[entry_at(due, tz)])
    run = wait_for(lambda: scheduled(ticker).filter(scheduled_for=due).first(), timeout=30,
                   what="the scheduled run while the worker is busy")
    assert Run.objects.get(pk=busy.pk).status == RunStatus.RUNNING, "the long run ended first: nothing was measured"
    lag = (run.created_at - due).total_seconds()
    assert 0 <= lag < 1.0, f"the run was created {lag:.3f} s after its occurrence"
    # It runs once the worker's process is free (the long run's timeout), like any queued run.
    wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, timeout=60, what="the scheduled run to finish")
    assert Run.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED
    assert Run.objects.get(pk=busy.pk).status == RunStatus.TIMED_OUT
    # Over 20 s of pre-start rounds with the long run recent: the ticks' worker started no environment.
    assert descendants(schedules_worker.pid) == set(), "the schedules worker started processes (a warm environment?)"
