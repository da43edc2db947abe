"""Celery tasks, and the only module that talks to the broker.

The loop flows one way: a trigger's service (functions.run_services) writes
the Run row and calls run_enqueue_on_commit from here; the task imports the
worker's services inside its body and sends on whatever they say must be
sent again (a retry, a lost or forgotten run). The services never reach back
for the broker, so runtime.services needs nothing from functions' triggers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from celery.signals import task_prerun, worker_process_init
from django.db import close_old_connections, transaction

from config.celery import app

logger = logging.getLogger(__name__)


def run_enqueue_on_commit(*, run_id: int, countdown: int | None = None) -> None:
    """Send the run's id to a worker once the current transaction commits (at once outside one).

    After the commit, so a worker never looks for a row that is not there yet.
    """
    transaction.on_commit(lambda: execute_run.apply_async((run_id,), countdown=countdown))


def runs_enqueue(*, run_ids: Iterable[int]) -> None:
    """Send committed runs' ids to workers now (the schedule tick, once every batch is written)."""
    for run_id in run_ids:
        execute_run.apply_async((run_id,))


def schedules_tick_at(*, due: datetime, count: int = 1) -> None:
    """Queue ``count`` one-off schedule ticks for an instant between two beat ticks.

    Sent by name: the task lives with the schedules (schedules.tasks), which
    import this module, never the other way round.
    """
    for _ in range(count):
        app.send_task(
            "schedules.tasks.tick", kwargs={"wake_up": False, "due": due.isoformat()},
            eta=due, expires=due + timedelta(seconds=30),
        )


def log_indexer_send(*, delayed: bool = False) -> None:
    """Start the log indexer on the blocks a flood's attempt stages (logs.tasks.index_log_blocks).

    Sent by name: the task lives with the logs, whose services the worker's services import.
    ``delayed`` while the attempt still prints: when it stages its first block and then every
    LOG_INDEX_DELAY_SECONDS (logs.services says why it waits); at once when its run is recorded.
    A duplicate is harmless: the indexer takes each block under a lock.
    """
    from logs.services import LOG_INDEX_DELAY_SECONDS

    app.send_task("logs.tasks.index_log_blocks", countdown=LOG_INDEX_DELAY_SECONDS if delayed else None)


def _log_indexer_send_delayed() -> None:
    log_indexer_send(delayed=True)


def _send_again(resends: Iterable) -> None:
    for resend in resends:
        run_enqueue_on_commit(run_id=resend.run_id, countdown=resend.countdown)


@app.task(name="runtime.tasks.execute_run", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def execute_run(run_id: int) -> None:
    from functions.models import RunStatus
    from runtime.services import run_execute

    recorded = run_execute(run_id=run_id, on_blocks_staged=_log_indexer_send_delayed)
    if recorded is not None:
        _send_again(recorded.resend)
        if recorded.logs_staged:
            log_indexer_send()
        if recorded.run.status in (RunStatus.FAILED, RunStatus.TIMED_OUT):
            # Only a failure opens or joins a notice (monitor.services.failure_notice_note).
            _send_due_failure_notices(function_id=recorded.run.function_id)


@app.task(name="runtime.tasks.reap_lost_runs", ignore_result=True)
def reap_lost_runs() -> int:
    from runtime.services import runs_reap_lost

    reaped = runs_reap_lost()
    _send_again(reaped.resend)
    return reaped.lost


def _send_due_failure_notices(*, function_id: int | None = None) -> int:
    """A failure opened (or joined) a notice: send it now if its throttle window allows."""
    from monitor.services import failure_notices_due

    due = failure_notices_due(function_id=function_id)
    for notice_id in due:
        send_failure_notice.delay(notice_id)
    return len(due)


@app.task(name="runtime.tasks.send_failure_notice", ignore_result=True)
def send_failure_notice(notice_id: int) -> None:
    from monitor.services import failure_notice_send

    failure_notice_send(notice_id=notice_id)


@app.task(name="runtime.tasks.send_due_failure_notices", ignore_result=True)
def send_due_failure_notices() -> int:
    """Every minute from beat: notices whose throttle window has passed (and any a lost message left)."""
    return _send_due_failure_notices()


@task_prerun.connect
def _drop_unusable_connections(**_kwargs) -> None:
    """Before each task, as Django does before each request: close the connections past CONN_MAX_AGE
    or broken (a database restart), and health-check the rest on first use; the others are kept
    (CELERY_DB_REUSE_MAX keeps Celery from closing every one)."""
    close_old_connections()


@worker_process_init.connect
def _prestart_warm_environments_forever(**_kwargs) -> None:
    """Each worker process keeps its own warm pool: from its start on, it pre-starts the environments
    of recently run Functions, and of newly deployed versions, in a background thread.

    Not a task: a task goes to one process of one worker, and each process needs its own. A worker
    that does not take runs (the Procfile's ``schedules``, or ``-Q <CELERY_QUEUE>-platform``:
    config/queues.py) runs no Function and starts no environment.
    """
    from django.conf import settings

    from runtime.services import warm_environments_prestart

    if settings.CELERY_TASK_DEFAULT_QUEUE not in (app.amqp.queues.consume_from or {}):
        return
    every = settings.FUNCTIONS_WARM_PRESTART_EVERY_SECONDS

    def loop() -> None:
        time.sleep(0.5)  # let the process finish starting
        while True:
            try:
                warm_environments_prestart()
            except Exception:
                logger.exception("pre-starting warm environments failed")
            finally:
                close_old_connections()
            time.sleep(every)

    threading.Thread(target=loop, name="warm-prestart", daemon=True).start()
