"""Trigger-to-finished latency and throughput of runs, next to a bare interpreter doing the same work.

    .venv/bin/python bench/run_latency.py [--runs 30] [--burst 20] [--modes embedded,distributed]

For each mode (embedded: SQLite + the server-less broker; distributed:
PostgreSQL + Redis, which must be reachable at BENCH_DATABASE_URL /
BENCH_BROKER_URL) it starts a real Celery worker, then for each handler
(trivial; import boto3 and create an S3 client):
  * latency: runs one after another, trigger (row committed) to finished_at;
  * throughput: a burst of runs triggered together, runs per second until all end.
Baseline: the same handler called by a bare `python3.12 -c` subprocess.
Each mode runs in a child process of its own (Django settings are per process).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _support import runs_finished, stop_process, worker_argv  # noqa: E402

HANDLERS = {
    "trivial": "def handler(event, context):\n    return {'ok': True}\n",
    "boto3 client": (
        "import boto3\n"
        "def handler(event, context):\n"
        "    boto3.client('s3', region_name='us-west-2')\n"
        "    return {'ok': True}\n"
    ),
    # What a real Samsara Function does on every run: its secrets through the official SDK
    # (STS AssumeRole, then SSM GetParameter on the in-run endpoint), then an S3 client. The
    # bare baseline runs it "locally" (AWS_EXECUTION_ENV unset: the SDK reads no endpoint).
    "secrets + S3": (
        "import boto3\n"
        "from samsara.function import Function\n"
        "def handler(event, context):\n"
        "    secrets = Function().secrets().load()\n"
        "    boto3.client('s3')\n"
        "    return {'ok': True, 'secrets': len(secrets)}\n"
    ),
}
# Handlers that need the in-run AWS endpoint (a worker's), not the bare sandbox.
NEEDS_ENDPOINT = {"secrets + S3"}
DISTRIBUTED_DB = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_runs")
DISTRIBUTED_BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")


def percentile(values, fraction):
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def baseline(code, runs):
    """A bare python3.12 subprocess defining and calling the handler: what a run cannot beat."""
    from runtime.environment import DEFAULT_RUNTIME_ENV

    python = str(DEFAULT_RUNTIME_ENV / "bin" / "python")
    script = code + "\nhandler({}, None)\n"
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([python, "-c", script], check=True)
        times.append((time.perf_counter() - start) * 1000)
    return times


# --- the child: one mode --------------------------------------------------------------------


def child_setup(mode, prefix):
    """A child's own DATA_DIR, queue and (distributed) fresh database, Django set up and migrated;
    returns (env for the worker it starts, data_dir)."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"{prefix}-{mode}-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(DATA_DIR=str(data_dir), CELERY_QUEUE=f"{prefix}-{os.getpid()}", DJANGO_SETTINGS_MODULE="config.settings")
    if mode == "distributed":
        env.update(DATABASE_URL=DISTRIBUTED_DB, CELERY_BROKER_URL=DISTRIBUTED_BROKER)
        _recreate_postgres_database(DISTRIBUTED_DB)
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return env, data_dir


def child(mode, runs, burst, handlers):
    env, data_dir = child_setup(mode, "bench")
    from accounts.services import organization_create
    from functions.models import Run
    from functions.run_services import run_trigger
    from secrets_vault.services import secrets_replace
    from tests.factories import make_function

    org = organization_create(name=f"Bench {mode}")
    worker = subprocess.Popen(
        worker_argv(),
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    results = {}
    try:
        for label in handlers:
            code = HANDLERS[label]
            function = make_function(org, label.replace(" + ", "-").replace(" ", "-"), files={"main.py": code})
            secrets_replace(function=function, secrets={"API_TOKEN": "bench-secret-value"}, actor=None,
                            actor_label="bench")
            warm_every_process(function)
            latencies, phases = [], {"queue": [], "sandbox": [], "worker": []}
            for _ in range(runs):
                run = run_trigger(function=function, trigger="api")
                _wait_all([run.pk], Run)
                run.refresh_from_db()
                assert run.status == "succeeded", (run.status, run.reason)
                total = (run.finished_at - run.created_at).total_seconds() * 1000
                latencies.append(total)
                # Where the time went: committed -> claimed (broker hop, claim), the attempt in
                # the sandbox (payload to result), and the worker's own share around it.
                queued = (run.started_at - run.created_at).total_seconds() * 1000
                phases["queue"].append(queued)
                phases["sandbox"].append(run.duration_ms or 0)
                phases["worker"].append(total - queued - (run.duration_ms or 0))
            start = time.perf_counter()
            ids = [run_trigger(function=function, trigger="api").pk for _ in range(burst)]
            _wait_all(ids, Run)
            elapsed = time.perf_counter() - start
            results[label] = {"latency_ms": latencies, "runs_per_second": burst / elapsed,
                              "phases": {k: statistics.median(v) for k, v in phases.items()}}
    finally:
        stop_process(worker)
        shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(results))


def warm_every_process(function, concurrency=None):
    """Warm the worker's bundle cache and an environment of `function` in each of its processes
    (`concurrency`, else the product's default): bursts that keep every process busy, so that what
    is measured is a warm run whichever process takes it."""
    from django.conf import settings

    from functions.models import Run
    from functions.run_services import run_trigger

    for _ in range(3):
        burst = 2 * (concurrency or settings.CELERY_WORKER_CONCURRENCY)
        _wait_all([run_trigger(function=function, trigger="api").pk for _ in range(burst)], Run)


def _wait_all(ids, Run, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if runs_finished(Run, ids) == len(ids):
            return
        time.sleep(0.02)
    raise TimeoutError(f"runs {ids} did not finish in {timeout} s")


def _recreate_postgres_database(url):
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


# --- the parent: table ----------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="sequential runs per handler (latency)")
    parser.add_argument("--burst", type=int, default=20, help="runs triggered together (throughput)")
    parser.add_argument("--modes", default="embedded,distributed")
    parser.add_argument("--handlers", default=",".join(HANDLERS), help="comma-separated subset of: " + ", ".join(HANDLERS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.runs, args.burst, args.handlers.split(","))

    print(f"Run latency: {args.runs} sequential runs and a burst of {args.burst} per handler; medians of noisy machines vary.\n")
    handlers = args.handlers.split(",")
    base = {label: baseline(HANDLERS[label], args.runs) for label in handlers}
    rows = []
    for mode in args.modes.split(","):
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--runs", str(args.runs), "--burst", str(args.burst),
             "--handlers", args.handlers],
            cwd=ROOT, capture_output=True, text=True,
        )
        if out.returncode != 0:
            print(f"{mode}: failed\n{out.stderr[-3000:]}")
            continue
        for label, figures in json.loads(out.stdout.strip().splitlines()[-1]).items():
            latency = figures["latency_ms"]
            p50, p95 = statistics.median(latency), percentile(latency, 0.95)
            b50 = statistics.median(base[label])
            ph = figures["phases"]
            rows.append((mode, label, p50, p95, figures["runs_per_second"], b50, p50 / b50,
                         ph["queue"], ph["sandbox"], ph["worker"]))
    header = (f"{'mode':<12} {'handler':<13} {'p50 ms':>8} {'p95 ms':>8} {'runs/s':>7} {'bare p50 ms':>12} {'ratio':>6}"
              f" | {'queue':>6} {'sandbox':>8} {'worker':>7}")
    print(header)
    print("-" * len(header))
    for mode, label, p50, p95, rps, b50, ratio, queue, box, rest in rows:
        print(f"{mode:<12} {label:<13} {p50:>8.0f} {p95:>8.0f} {rps:>7.1f} {b50:>12.0f} {ratio:>5.1f}x"
              f" | {queue:>6.0f} {box:>8.0f} {rest:>7.0f}")
    print("\nqueue: trigger committed to claimed (broker hop and claim); sandbox: the attempt (payload to"
          " result); worker: set-up, output flush and recording the outcome (medians of the sequential runs).")


if __name__ == "__main__":
    main()
