"""Ingestion: does storing a run's output slow the Function? 1 million short lines through the real engine.

    .venv/bin/python bench/ingest.py [--lines 1000000] [--repeats 3] [--backends sqlite,postgres]

The same handler runs three ways:
  * bare: `python3.12 -c '<handler>; handler({}, None)' > /dev/null`, the runtime
    environment's interpreter with its default buffering: the goal's baseline;
  * bare -u: the same, unbuffered, as the sandbox starts Functions (lines must
    reach the live tail as they are written), for reference;
  * engine: runtime.services.run_execute on a real database (SQLite file in a
    temporary DATA_DIR; PostgreSQL `bench_ingest` at BENCH_DATABASE_URL,
    created and dropped here): claim, sandbox, the first lines stored as log
    entries and the rest of the flood staged in blocks (logs/services.py),
    the REPORT line, the outcome recorded; and the log indexer, in a process
    of its own started beforehand as a Celery worker's would be, told to
    start when run_execute says the attempt staged its first block and again
    once the run is recorded, as runtime.tasks sends it.

It prints the Function's own duration (what the sandbox measured), the run
"recorded as finished" (run_execute returned: the goal's figure, under 2x
bare), and "every line searchable" (the indexer expanded the last block), with
lines per second, each as a ratio to a bare run measured just before it (the
load of a shared machine drifts within one bench). Every line must be in the
database once, none dropped. On a
machine with few cores the database's own work (SQLite in the worker and the
indexer, or the PostgreSQL server) competes with the Function for them: run
it on an otherwise idle machine.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POSTGRES_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_ingest")


def handler_code(lines):
    return f"def handler(event, context):\n    for i in range({lines}):\n        print(f'line {{i}} ok')\n"


def bare(lines, repeats, unbuffered):
    from runtime.environment import DEFAULT_RUNTIME_ENV

    python = str(DEFAULT_RUNTIME_ENV / "bin" / "python")
    args = [python] + (["-u"] if unbuffered else []) + ["-c", handler_code(lines) + "handler({}, None)\n"]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(args, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return times


def _postgres(url, action):
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if action == "create":
            admin.execute(f'CREATE DATABASE "{name}"')


def indexer():
    """A stand-in for a Celery worker process: each line on stdin is one index_log_blocks task."""
    import django

    django.setup()
    from logs.services import log_blocks_index

    for _ in sys.stdin:
        log_blocks_index()
        print("indexed", flush=True)


def child(lines, repeats, index_during, threshold):
    import django

    django.setup()
    if threshold is not None:  # the worker runs in this process: its AttemptLog reads the constant at each attempt
        from logs import services as log_services

        log_services.LOG_STAGING_THRESHOLD = threshold
    from django.core.management import call_command
    from django.db import connection

    from functions.models import Run
    from functions.run_services import run_trigger
    from logs.models import LogBlock, LogEntry
    from runtime import services
    from runtime.environment import DEFAULT_RUNTIME_ENV, ensure_runtime_env
    from tests.factories import make_function
    from accounts.models import Organization

    call_command("migrate", verbosity=0)
    ensure_runtime_env(DEFAULT_RUNTIME_ENV)
    org = Organization.objects.create(name="Bench ingest")
    function = make_function(org, "printer", files={"main.py": handler_code(lines)}, timeout_seconds=900)
    from logs.services import LOG_INDEX_DELAY_SECONDS

    worker = subprocess.Popen([sys.executable, __file__, "--indexer"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    sent, timers = [], []
    lock = threading.Lock()

    def send_indexer():  # what runtime.tasks.log_indexer_send does, without a broker
        with lock:
            worker.stdin.write("index\n")
            worker.stdin.flush()
            sent.append(time.perf_counter())

    def send_indexer_delayed():  # the same with its countdown
        timer = threading.Timer(LOG_INDEX_DELAY_SECONDS, send_indexer)
        timer.start()
        timers.append(timer)

    results = []
    for _ in range(repeats):
        sent.clear()
        timers.clear()
        # The baseline again just before each engine run: on a shared machine the load drifts within a
        # bench, and each run is compared with its own baseline.
        baseline = bare(lines, 1, unbuffered=False)[0]
        run = run_trigger(function=function, trigger="manual")  # the broker message is never read: we execute here
        started = time.perf_counter()
        recorded = services.run_execute(run_id=run.pk, on_blocks_staged=send_indexer_delayed if index_during else None)
        finished = time.perf_counter() - started
        if recorded.logs_staged:
            send_indexer()
        while LogBlock.objects.filter(run=run).exists():
            time.sleep(0.01)
        searchable = time.perf_counter() - started
        for timer in timers:
            timer.join()
        for _ in sent:
            worker.stdout.readline()  # each "task" says when it has drained
        run = Run.objects.get(pk=run.pk)
        stored = LogEntry.objects.filter(run=run).count()
        dropped = LogEntry.objects.filter(run=run, message__contains="log lines dropped").exists()
        assert run.status == "succeeded", (run.status, run.reason)
        assert not LogBlock.objects.filter(run=run).exists()
        assert stored == lines + 1 and not dropped, f"{stored} entries stored for {lines} lines (dropped: {dropped})"
        results.append({"finished": finished, "searchable": searchable, "function": run.duration_ms / 1000,
                        "bare": baseline, "stored": stored, "tasks": len(sent)})
    worker.stdin.close()
    worker.wait()
    print(json.dumps({"vendor": connection.vendor, "runs": results}))


def run_backend(backend, lines, repeats, index_during=True, threshold=None):
    data_dir = Path(tempfile.mkdtemp(prefix=f"bench-ingest-{backend}-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="config.settings")
    try:
        if backend == "postgres":
            _postgres(POSTGRES_URL, "create")
            env["DATABASE_URL"] = POSTGRES_URL
        done = subprocess.run(
            [sys.executable, __file__, "--child", "--lines", str(lines), "--repeats", str(repeats)]
            + ([] if index_during else ["--no-index-during"])
            + ([] if threshold is None else ["--threshold", str(threshold)]),
            env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False,
        )
        if done.returncode:
            raise SystemExit(f"{backend}: the engine run failed (exit {done.returncode})")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        if backend == "postgres":
            _postgres(POSTGRES_URL, "drop")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--indexer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threshold", type=int, help="lines an attempt writes as entries before staging blocks "
                        "(default: logs.services.LOG_STAGING_THRESHOLD)")
    parser.add_argument("--no-index-during", dest="index_during", action="store_false",
                        help="start the indexer only once the run is recorded (for comparison)")
    args = parser.parse_args()
    if args.child:
        return child(args.lines, args.repeats, args.index_during, args.threshold)
    if args.indexer:
        return indexer()

    buffered = statistics.median(bare(args.lines, args.repeats, unbuffered=False))
    unbuffered = statistics.median(bare(args.lines, args.repeats, unbuffered=True))
    print(f"{args.lines:,} short lines; medians of {args.repeats}")
    print(f"  bare python3.12 > /dev/null:    {buffered:6.2f} s   (the baseline)")
    print(f"  bare python3.12 -u > /dev/null: {unbuffered:6.2f} s")
    for backend in args.backends.split(","):
        data = run_backend(backend, args.lines, args.repeats, args.index_during, args.threshold)

        def figure(key):
            # Each run against the baseline measured just before it (child); medians and ranges of both.
            values = sorted(r[key] for r in data["runs"])
            ratios = sorted(r[key] / r["bare"] for r in data["runs"])
            return (f"{statistics.median(values):6.2f} s, {statistics.median(ratios):.2f}x its baseline "
                    f"(range {values[0]:.2f}-{values[-1]:.2f} s, {ratios[0]:.2f}-{ratios[-1]:.2f}x)")

        finished = statistics.median(r["finished"] / r["bare"] for r in data["runs"])
        print(f"  engine on {data['vendor']} (baselines before each run: "
              f"{', '.join(f'{r['bare']:.2f}' for r in data['runs'])} s):")
        print(f"    the Function (as the sandbox timed it): {figure('function')}")
        print(f"    recorded as finished (the goal, < 2x):  {figure('finished')}   {'ok' if finished < 2 else 'OVER'}")
        print(f"    every line searchable:                  {figure('searchable')}, "
              f"{args.lines / statistics.median(r['searchable'] for r in data['runs']):,.0f} lines/s")


if __name__ == "__main__":
    main()
