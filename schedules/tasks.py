"""The schedule tick's Celery tasks: thin; the work is schedules.services, the sending runtime.tasks.

They live here rather than in runtime/tasks.py so that the import graph stays
one way: schedules -> functions.run_services -> runtime.tasks.
"""

import time
from datetime import datetime

from config.celery import app
from django.conf import settings
from django.utils import timezone

from runtime.tasks import runs_enqueue, schedules_tick_at

from . import services


@app.task(name="schedules.tasks.tick", ignore_result=True)
def tick(wake_up=True, due=None):
    """Fire due schedule occurrences (beat sends this every SCHEDULE_TICK_SECONDS).

    When an occurrence falls before the next beat tick, one-off ticks are
    queued for that instant (``due``), so runs start on time rather than up to
    a tick late; those arm nothing further. The worker's timer may run one a
    few milliseconds early, so it waits for the instant itself. Exactly once
    holds however many ticks run.
    """
    if due is not None:
        early = (datetime.fromisoformat(due) - timezone.now()).total_seconds()
        if 0 < early < 2:
            time.sleep(early)
    result = services.schedules_tick()
    runs_enqueue(run_ids=result.run_ids)
    if wake_up and result.next_due is not None:
        schedules_tick_at(due=result.next_due, count=settings.SCHEDULE_WAKE_UP_TICKS)
    return result.as_dict()


@app.task(name="schedules.tasks.prune_occurrences", ignore_result=True)
def prune_occurrences():
    return services.occurrences_prune()
