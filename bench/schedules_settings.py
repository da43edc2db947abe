"""bench/schedules.py's settings: the real ones, with the runs sent to a queue no worker reads.

The benchmark measures the scheduler (occurrence to run created), so the
thousand runs it creates are not executed.
"""

import os

from config.settings import *  # noqa: F401,F403

CELERY_TASK_ROUTES = ({"runtime.tasks.execute_run": {"queue": os.environ["BENCH_RUNS_QUEUE"]}}, "config.queues.route")
