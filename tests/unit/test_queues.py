"""Which queue each task goes to (config/queues.py), read from the real Celery app and the Procfile."""

import os
import shlex
import subprocess

import pytest
from celery import Celery
from celery._state import get_current_app
from django.conf import settings

from config.celery import app
from config.queues import all_queues, platform_queue, schedules_queue
from runtime.tasks import execute_run, send_failure_notice
from tests.integration.processes import procfile_command, sending_to


def queue_of(task_name):
    return app.amqp.router.route({}, task_name)["queue"].name


def test_runs_ticks_and_the_platforms_other_tasks_each_go_to_a_queue_of_their_own():
    runs = settings.CELERY_TASK_DEFAULT_QUEUE
    assert queue_of("runtime.tasks.execute_run") == runs
    assert queue_of("schedules.tasks.tick") == schedules_queue(runs)
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        if entry["task"] != "schedules.tasks.tick":
            # The hourly prunes (up to 45 minutes each) among them: never ahead of a tick.
            assert queue_of(entry["task"]) == platform_queue(runs), entry["task"]
    for name in ("logs.tasks.index_log_blocks", "runtime.tasks.send_failure_notice", "runtime.tasks.reap_lost_runs"):
        assert queue_of(name) == platform_queue(runs)


def test_the_queues_have_distinct_names_and_routing_keys_and_a_worker_without_q_takes_all_three():
    queues = settings.CELERY_TASK_QUEUES
    assert [q.name for q in queues] == list(all_queues(settings.CELERY_TASK_DEFAULT_QUEUE))
    # One routing key each: a shared key would bind every queue to every message sent by it.
    assert len({q.routing_key for q in queues}) == 3
    assert set(app.amqp.queues) >= set(all_queues(settings.CELERY_TASK_DEFAULT_QUEUE))


def test_a_process_with_another_default_queue_routes_to_its_own_three():
    with sending_to("tenant-b"):  # as a test, or a process sharing the broker, sets it
        assert queue_of("runtime.tasks.execute_run") == "tenant-b"
        assert queue_of("schedules.tasks.tick") == "tenant-b-schedules"
        assert queue_of("logs.tasks.prune_logs") == "tenant-b-platform"


def test_another_celery_app_made_in_the_process_changes_neither_the_queues_nor_the_app_that_sends():
    # Made current by default, as a test's or a library's app is: the product reads its own.
    other = Celery("someone-else", broker="memory://", set_as_current=True)
    other.conf.task_default_queue = "q"
    try:
        assert get_current_app() is other
        assert queue_of("runtime.tasks.execute_run") == settings.CELERY_TASK_DEFAULT_QUEUE
        assert queue_of("schedules.tasks.tick") == schedules_queue(settings.CELERY_TASK_DEFAULT_QUEUE)
        assert execute_run.app is app and send_failure_notice.app is app
    finally:
        app.set_current()
        other.close()


@pytest.mark.parametrize("queue", [None, "tenant-b"])
def test_the_procfiles_schedules_worker_takes_the_ticks_queue_alone(queue):
    env = {k: v for k, v in os.environ.items() if k != "CELERY_QUEUE"} | ({"CELERY_QUEUE": queue} if queue else {})
    # The shell's expansion, as honcho and Procfile hosts run the line.
    words = shlex.split(subprocess.run(["/bin/sh", "-c", f"echo {procfile_command('schedules')}"], env=env,
                                       capture_output=True, text=True, check=True).stdout)
    assert words[words.index("-Q") + 1] == schedules_queue(queue or "functions")
    assert "worker" in words and "--pool" in words and words[words.index("--pool") + 1] == "solo"
