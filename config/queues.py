"""The broker's two queues: the runs, and the platform's own tasks.

One message per queued run goes to the runs queue (``CELERY_QUEUE``). Everything else the platform
sends (schedule ticks, the reaper of lost runs, log indexing, failure notices, pruning and sweeps)
goes to ``<CELERY_QUEUE>-platform``. A broker's queue is first in, first out: with one queue, a tick
sent while another organization had 2,000 runs queued waited for all of them, and every
organization's schedules fired as late as the backlog took to drain. A worker consumes both queues,
taking from each in turn, so a platform task waits for a free worker process, not for the backlog;
`celery worker -Q <CELERY_QUEUE>-platform` gives them a worker of their own.
"""

RUNS_TASK = "runtime.tasks.execute_run"


def platform_queue(runs_queue: str) -> str:
    return f"{runs_queue}-platform"


def route(name, args, kwargs, options, task=None, **rest):
    """Celery's router (task_routes): read at every send, so a process that changes its default
    queue (a test's own) sends both kinds of task to its own pair of queues."""
    from celery import current_app

    runs = current_app.conf.task_default_queue
    return {"queue": runs if name == RUNS_TASK else platform_queue(runs)}
