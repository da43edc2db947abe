"""Schedules at scale: 10,000 Functions with schedules, 1,000 due at the same instant, on PostgreSQL + Redis.

    .venv/bin/python bench/schedules.py [--functions 10000] [--due 1000] [--empty-ticks N]

Starts a real Celery worker (the product's default concurrency, WORKER_CONCURRENCY, as bin/run
and the Procfile start it) and a real beat on
BENCH_DATABASE_URL / BENCH_BROKER_URL, lets beat drive the tick, and reports:
  * lag from the scheduled instant to the run row created: p50, p95, max;
  * duplicates (an occurrence with two runs) and misses (a due schedule without one);
  * the time of one tick with 1,000 due (in this process) beside its baseline, an empty tick
    over the same 10,000 schedules;
  * beat's resident memory with 10,000 schedules (it holds none of them: one entry drives all).
The runs themselves go to a queue no worker reads: this measures the scheduler, not the sandbox
(bench/run_latency.py measures that).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _support import stop_process  # noqa: E402
from config.queues import all_queues  # noqa: E402

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_schedules")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/4")


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def recreate_database(url):
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def children_rss_mb(pid):
    """(resident MB of ``pid`` and its children, how many children)."""
    total = rss_mb(pid) or 0
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        total += rss_mb(int(child)) or 0
    return total, len(children)


def populate(functions, due, due_at):
    """``functions`` Functions with a deployed version and an enabled schedule; ``due`` of them fire at ``due_at``."""
    from accounts.models import Organization
    from functions.models import CodeVersion, Function
    from schedules import rules
    from schedules.models import Schedule

    org = Organization.objects.create(name="Bench", timezone="UTC")
    made = Function.objects.bulk_create(
        [Function(organization=org, name=f"fn-{i:05d}", handler="main.handler") for i in range(functions)],
        batch_size=2000,
    )
    versions = CodeVersion.objects.bulk_create(
        [CodeVersion(function=f, number=1, sha256="0" * 64, size=1, uncompressed_size=1, file_count=1,
                     storage_key="packages/none.zip", handler="main.handler") for f in made],
        batch_size=2000,
    )
    for function, version in zip(made, versions):
        function.deployed_version = version
    Function.objects.bulk_update(made, ["deployed_version"], batch_size=2000)
    now = datetime.now(UTC)
    schedules = []
    for i, function in enumerate(made):
        if i < due:
            items = [{"kind": "cron", "expression": f"{due_at.minute} {due_at.hour} * * *"}]
        elif i % 2:
            # Elsewhere in the day, never in the hour measured.
            items = [{"kind": "cron", "expression": f"{i % 60} {(due_at.hour + 2 + i % 20) % 24} * * *"}]
        else:
            hour = (due_at.hour + 2 + i % 20) % 24
            items = [{"kind": "entry", "daysOfWeek": [True] * 7, "timeSinceMidnightMs": (hour * 60 + i % 60) * 60_000}]
        parsed = rules.parse_items(items)
        schedules.append(Schedule(function=function, enabled=True, items=items,
                                  next_occurrence_at=rules.next_occurrence(parsed, UTC, now)))
    Schedule.objects.bulk_create(schedules, batch_size=2000)
    return org


def start(kind, env, log_dir):
    args = {"worker": ["worker", "-n", f"bench-{uuid.uuid4().hex[:6]}@%h"],
            "beat": ["beat", "--pidfile=", "-s", str(log_dir / "beat-schedule")]}[kind]
    log = open(log_dir / f"{kind}.log", "w")
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", *args, "--loglevel", os.environ.get("BENCH_LOGLEVEL", "WARNING")],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _drop_queues(url, names):
    """The runs nobody executes and the ticks' leftovers go with the benchmark."""
    import redis

    client = redis.Redis.from_url(url)
    client.delete(*names)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--functions", type=int, default=10_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--empty-ticks", type=int, default=50)
    options = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-schedules-"))
    print(f"logs in {data_dir}", flush=True)
    queue = f"bench-schedules-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(DATA_DIR=str(data_dir), DATABASE_URL=DATABASE_URL, CELERY_BROKER_URL=BROKER_URL, CELERY_QUEUE=queue,
               DJANGO_SETTINGS_MODULE="bench.schedules_settings", BENCH_RUNS_QUEUE=f"{queue}-runs")
    recreate_database(DATABASE_URL)
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from functions.models import Run, TriggerSource
    from schedules import services
    from schedules.models import Schedule

    call_command("migrate", verbosity=0)
    # The instant measured: the start of a minute far enough ahead for everything to be up.
    due_at = (datetime.now(UTC) + timedelta(seconds=150)).replace(second=0, microsecond=0)
    started = time.perf_counter()
    populate(options.functions, options.due, due_at)
    print(f"{options.functions:,} Functions with schedules made in {time.perf_counter() - started:.1f} s; "
          f"{options.due:,} due at {due_at:%H:%M:%S} UTC", flush=True)

    # Baseline: a tick with nothing due, over all the schedules.
    empty = []
    for _ in range(options.empty_ticks):
        t = time.perf_counter()
        services.schedules_tick()
        empty.append((time.perf_counter() - t) * 1000)
    connection.close()

    worker = start("worker", env, data_dir)
    beat = start("beat", env, data_dir)
    try:
        time.sleep(20)
        beat_idle = rss_mb(beat.pid)
        wait = (due_at - datetime.now(UTC)).total_seconds() + 15
        print(f"beat and worker up; waiting {wait:.0f} s for the occurrence and after", flush=True)
        time.sleep(max(wait, 0))
        beat_after = rss_mb(beat.pid)
        worker_rss, worker_pool = children_rss_mb(worker.pid)
    finally:
        stop_process(beat)
        stop_process(worker)

    runs = list(Run.objects.filter(trigger=TriggerSource.SCHEDULE, scheduled_for=due_at)
                .values_list("function_id", "created_at"))
    functions_fired = {f for f, _ in runs}
    lags = sorted((created - due_at).total_seconds() * 1000 for _, created in runs)
    early = sum(1 for lag in lags if lag < 0)
    others = Run.objects.filter(trigger=TriggerSource.SCHEDULE).exclude(scheduled_for=due_at).count()

    # One tick with `due` schedules due, in this process (beat and worker stopped): the same
    # schedules one day on, their earlier runs out of the way so none is dropped as an overlap.
    second_at = due_at + timedelta(days=1)
    Run.objects.all().delete()
    Schedule.objects.exclude(next_occurrence_at=second_at).update(next_occurrence_at=second_at + timedelta(days=30))
    t = time.perf_counter()
    result = services.schedules_tick(now=second_at + timedelta(milliseconds=100))
    full_tick_ms = (time.perf_counter() - t) * 1000
    from runtime.tasks import runs_enqueue

    t = time.perf_counter()
    runs_enqueue(run_ids=result.run_ids)
    publish_ms = (time.perf_counter() - t) * 1000
    Run.objects.all().delete()
    _drop_queues(BROKER_URL, [*all_queues(queue), env["BENCH_RUNS_QUEUE"]])

    print()
    print(f"| figure | value |")
    print(f"|---|---|")
    print(f"| runs created for the {options.due:,} due schedules | {len(functions_fired):,} "
          f"(duplicates {len(runs) - len(functions_fired)}, misses {options.due - len(functions_fired)}, "
          f"early {early}, other scheduled runs {others}) |")
    if lags:
        print(f"| lag scheduled → run created, p50 / p95 / max | {percentile(lags, .5):.0f} / "
              f"{percentile(lags, .95):.0f} / {lags[-1]:.0f} ms |")
    print(f"| empty tick over {options.functions:,} schedules (baseline), p50 / p95 | "
          f"{statistics.median(empty):.1f} / {percentile(empty, .95):.1f} ms |")
    print(f"| one tick with {result.started:,} due, in this process (claims, runs, columns) | "
          f"{full_tick_ms:.0f} ms ({full_tick_ms / max(result.started, 1):.2f} ms per run) |")
    print(f"| then handing those {result.started:,} runs to Redis (runtime.tasks.runs_enqueue) | {publish_ms:.0f} ms |")
    print(f"| beat's resident memory with {options.functions:,} schedules, at start / after the minute | "
          f"{beat_idle:.0f} / {beat_after:.0f} MB |")
    print(f"| worker (main + {worker_pool} pool processes) resident memory | {worker_rss:.0f} MB |")


if __name__ == "__main__":
    main()
