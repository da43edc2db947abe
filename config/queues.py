"""The broker's three queues: the runs, the schedule ticks, and the platform's other tasks.

One message per queued run goes to the runs queue (``CELERY_QUEUE``). A broker's queue is first in,
first out: with one queue, a tick sent while another organization had 2,000 runs queued waited for
all of them, and every organization's schedules fired as late as the backlog took to drain. So:

* schedule ticks go to ``<CELERY_QUEUE>-schedules``;
* everything else the platform sends (the reaper of lost runs, log indexing, failure notices,
  pruning and sweeps) goes to ``<CELERY_QUEUE>-platform``.

A worker started without ``-Q`` consumes all three, taking from each in turn, so a tick waits for a
free worker process, not for the backlog. Ticks have a queue apart from the platform's other tasks
because some of those are long (an hourly prune may take 45 minutes, indexing a flood's logs
seconds): a worker of their own (the Procfile's ``schedules``, ``-Q <CELERY_QUEUE>-schedules``)
keeps schedules on time whatever the runs and the other tasks do.
"""

RUNS_TASK = "runtime.tasks.execute_run"
TICK_TASK = "schedules.tasks.tick"


def schedules_queue(runs_queue: str) -> str:
    return f"{runs_queue}-schedules"


def platform_queue(runs_queue: str) -> str:
    return f"{runs_queue}-platform"


def all_queues(runs_queue: str) -> tuple[str, str, str]:
    return runs_queue, schedules_queue(runs_queue), platform_queue(runs_queue)


def route(name, args, kwargs, options, task=None, **rest):
    """Celery's router (task_routes): read at every send, so a process that changes its default
    queue (a test's own) sends every kind of task to its own set of queues.

    The product's own app, not Celery's "current" one: any other Celery app made in the process
    (a test's, a library's) becomes current and would route the product's tasks to its queues."""
    from config.celery import app  # not at import: the settings import this module before the app exists

    runs = app.conf.task_default_queue
    if name == RUNS_TASK:
        return {"queue": runs}
    return {"queue": schedules_queue(runs) if name == TICK_TASK else platform_queue(runs)}
