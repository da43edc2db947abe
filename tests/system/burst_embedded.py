"""The embedded default under a burst, run as a script of its own (Django settings are per process):

    .venv/bin/python tests/system/burst_embedded.py DATA_DIR COUNT

Migrates a fresh SQLite database in DATA_DIR, starts a real Celery worker on the
embedded broker (as bin/run does: prefork, WORKER_CONCURRENCY's default),
triggers COUNT runs at once, waits for them all, and prints one JSON line of
what the test checks. Used by test_burst_embedded.py.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = "def handler(event, context):\n    print('ran', context.aws_request_id)\n    return event['n']\n"


def main(data_dir, count):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(DATA_DIR=data_dir, CELERY_QUEUE=f"burst-{os.getpid()}", DJANGO_SETTINGS_MODULE="config.settings")
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db.models import Count

    from accounts.services import organization_create
    from functions.models import Attempt, Run
    from functions.run_services import run_trigger
    from logs.models import LogEntry
    from tests.factories import make_function

    call_command("migrate", verbosity=0)
    function = make_function(organization_create(name="Burst"), "burst", files={"main.py": CODE})
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "worker",
                               "--loglevel", "WARNING"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        ids = [run_trigger(function=function, trigger="api", overrides={"n": str(n)}).pk for n in range(count)]
        deadline = time.monotonic() + 1500
        while Run.objects.filter(pk__in=ids, finished_at__isnull=False).count() < count:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        runs = Run.objects.filter(pk__in=ids)
        attempts = Attempt.objects.filter(run__in=ids).values("run").annotate(n=Count("id"))
        lines = list(LogEntry.objects.filter(run__in=ids, stream="stdout").values_list("run__correlation_id", "message"))
        print(json.dumps({
            "finished": runs.filter(finished_at__isnull=False).count(),
            "succeeded_first_attempt": runs.filter(status="succeeded", attempts=1).count(),
            "values": sorted(int(json.loads(v)) for v in runs.values_list("return_value", flat=True) if v),
            "attempts_per_run": sorted({row["n"] for row in attempts}),
            "runs_with_attempts": len(attempts),
            "lines": len(lines),
            "lines_match": all(message == f"ran {cid}" for cid, message in lines),
        }))
    finally:
        worker.terminate()  # the main process only (see bench/run_latency.py)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
