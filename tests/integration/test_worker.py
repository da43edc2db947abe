"""Runs through a real Celery worker on Redis and PostgreSQL, including a worker killed mid-run."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, transaction

from functions.models import AttemptOutcome, Run, RunStatus
from functions.run_services import run_trigger
from logs.models import LogEntry
from runtime.tasks import reap_lost_runs
from config.queues import platform_queue
from tests.factories import make_function, make_run
from tests.integration.processes import descendants, sending_to, stop_process, wait_for

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sandbox, pytest.mark.usefixtures("runtime_env")]



@pytest.fixture
def queue(settings):
    """A queue of this test's own, so parallel tests never take each other's messages."""
    name = f"itest-{uuid.uuid4().hex[:10]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = name
    with sending_to(name):
        yield name


@pytest.fixture
def start_worker(queue, tmp_path):
    """Start a real worker process (prefork pool, as operators run it) on the test's database."""
    workers = []

    def start(concurrency=1, queues=(), **environment):
        """``environment``: more variables for the worker, e.g. FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION="1";
        ``queues``: only these of the test's queues (`-Q`), else all three."""
        db = connection.settings_dict
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "CELERY_QUEUE": queue,
            "DATA_DIR": str(settings.DATA_DIR),
            "FUNCTIONS_CACHE_DIR": str(tmp_path / "cache"),
            "FUNCTIONS_HEARTBEAT_TIMEOUT_SECONDS": "3",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            **environment,
        }
        log = open(tmp_path / f"worker-{len(workers)}.log", "w")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency", str(concurrency),
             *(["-Q", ",".join(queues)] if queues else []), "-n", f"{queue}-{len(workers)}@%h", "--loglevel", "INFO"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        workers.append(process)
        return process

    yield start
    for process in workers:
        stop_process(process)


def test_a_run_goes_through_the_broker_to_a_worker_and_back(org, start_worker):
    function = make_function(org, "hello", files={"main.py": "def handler(event, context):\n    print('hi from', event['who'])\n    return 42\n"}, params={"who": "worker"})
    start_worker()
    run = run_trigger(function=function, trigger="api")
    wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, what="the run to finish")
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.return_value == "42"
    assert LogEntry.objects.filter(run=run, stream="stdout").values_list("message", flat=True)[0] == "hi from worker"


def sleeper():
    """A handler that blocks in a child process whose command line is unique to this test."""
    mark = f"120.{uuid.uuid4().int % 10**9:09d}"
    code = (
        "import subprocess\n"
        "def handler(event, context):\n"
        "    print('started', flush=True)\n"
        f"    subprocess.run(['sleep', '{mark}'])\n"
    )
    return code, mark


def _kill_worker_mid_run(start_worker, run, mark):
    worker = start_worker()
    wait_for(lambda: LogEntry.objects.filter(run=run, message="started", attempt=Run.objects.get(pk=run.pk).attempts).exists(),
             what="the attempt to start")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    # Nothing of the killed attempt survives it: the sandbox dies with its parent.
    wait_for(lambda: subprocess.run(["pgrep", "-f", f"sleep {mark}"], capture_output=True).returncode == 1,
             timeout=10, what="the Function's processes to end with the worker")


def test_a_killed_worker_does_not_lose_the_run_it_is_retried(org, start_worker):
    code, mark = sleeper()
    function = make_function(org, "sleeper", files={"main.py": code})
    run = run_trigger(function=function, trigger="manual")
    _kill_worker_mid_run(start_worker, run, mark)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING  # nobody has noticed yet

    time.sleep(3.5)  # past the heartbeat timeout the worker was started with
    with settings_override(FUNCTIONS_HEARTBEAT_TIMEOUT_SECONDS=3):
        assert reap_lost_runs() == 1
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and run.reason == "Worker lost during attempt 1 of 3"
    assert run.attempt_rows.get(number=1).outcome == AttemptOutcome.WORKER_LOST

    start_worker()
    wait_for(lambda: Run.objects.get(pk=run.pk).attempts == 2 and Run.objects.get(pk=run.pk).status == RunStatus.RUNNING,
             what="a new worker to retry the run")


def test_a_run_whose_last_attempt_loses_its_worker_fails_with_worker_lost(org, start_worker):
    code, mark = sleeper()
    function = make_function(org, "sleeper", files={"main.py": code})
    with transaction.atomic():
        run = run_trigger(function=function, trigger="manual")
        Run.objects.filter(pk=run.pk).update(max_attempts=1)
    _kill_worker_mid_run(start_worker, run, mark)
    time.sleep(3.5)
    with settings_override(FUNCTIONS_HEARTBEAT_TIMEOUT_SECONDS=3):
        reap_lost_runs()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.reason == "Worker lost during attempt 1 of 1" and run.finished_at


def settings_override(**values):
    from django.test import override_settings

    return override_settings(**values)


def test_a_worker_for_the_platforms_tasks_alone_runs_no_function_and_starts_no_environment(org, start_worker, queue):
    # README, "Deploying across machines": a worker that keeps log indexing and the reaper from waiting on runs.
    function = make_function(org, "recent", files={"main.py": "def handler(event, context):\n    return 1\n"})
    make_run(function)  # run recently: what a worker's processes pre-start environments for
    worker = start_worker(concurrency=1, queues=[platform_queue(queue)], FUNCTIONS_WARM_PRESTART_EVERY_SECONDS="1")
    run = run_trigger(function=function, trigger="api")
    wait_for(lambda: len(descendants(worker.pid)) >= 1, what="the worker's pool process")
    time.sleep(4)  # several pre-start rounds, and time enough to take the run
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED
    assert len(descendants(worker.pid)) == 1, "only its pool process: no sandbox, no zygote"
