"""Ingestion: does storing a run's output slow the Function? 1 million short lines through the real engine.

    .venv/bin/python bench/ingest.py [--lines 1000000] [--repeats 3] [--backends sqlite,postgres]

The same handler runs three ways:
  * bare: `python3.12 -c '<handler>; handler({}, None)' > /dev/null`, the runtime
    environment's interpreter with its default buffering: the goal's baseline;
  * bare -u: the same, unbuffered, as the sandbox starts Functions (lines must
    reach the live tail as they are written), for reference;
  * engine: runtime.services.run_execute on a real database (SQLite file in a
    temporary DATA_DIR; PostgreSQL `bench_ingest` at BENCH_DATABASE_URL,
    created and dropped here): claim, sandbox, every line stored as a log
    entry, the REPORT line, the outcome recorded.

It prints the Function's own duration (what the sandbox measured: ingestion
must not slow the Function, the goal is under 2x bare), and the whole run until
the last line is stored, with lines per second. Every line must be in the
database, none dropped. On a machine with few cores the database's own work
(SQLite in the worker, or the PostgreSQL server) competes with the Function
for them: run it on an otherwise idle machine.
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


def child(lines, repeats):
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from functions.models import Run
    from functions.run_services import run_trigger
    from logs.models import LogEntry
    from runtime import services
    from runtime.environment import DEFAULT_RUNTIME_ENV, ensure_runtime_env
    from tests.factories import make_function
    from accounts.models import Organization

    call_command("migrate", verbosity=0)
    ensure_runtime_env(DEFAULT_RUNTIME_ENV)
    org = Organization.objects.create(name="Bench ingest")
    function = make_function(org, "printer", files={"main.py": handler_code(lines)}, timeout_seconds=900)
    results = []
    for _ in range(repeats):
        run = run_trigger(function=function, trigger="manual")  # the broker message is never read: we execute here
        started = time.perf_counter()
        services.run_execute(run_id=run.pk)
        total = time.perf_counter() - started
        run = Run.objects.get(pk=run.pk)
        stored = LogEntry.objects.filter(run=run).count()
        dropped = LogEntry.objects.filter(run=run, message__contains="log lines dropped").exists()
        assert run.status == "succeeded", (run.status, run.reason)
        assert stored == lines + 1 and not dropped, f"{stored} entries stored for {lines} lines (dropped: {dropped})"
        results.append({"total": total, "function": run.duration_ms / 1000, "stored": stored})
    print(json.dumps({"vendor": connection.vendor, "runs": results}))


def run_backend(backend, lines, repeats):
    data_dir = Path(tempfile.mkdtemp(prefix=f"bench-ingest-{backend}-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="config.settings")
    try:
        if backend == "postgres":
            _postgres(POSTGRES_URL, "create")
            env["DATABASE_URL"] = POSTGRES_URL
        done = subprocess.run(
            [sys.executable, __file__, "--child", "--lines", str(lines), "--repeats", str(repeats)],
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
    args = parser.parse_args()
    if args.child:
        return child(args.lines, args.repeats)

    buffered = statistics.median(bare(args.lines, args.repeats, unbuffered=False))
    unbuffered = statistics.median(bare(args.lines, args.repeats, unbuffered=True))
    print(f"{args.lines:,} short lines; medians of {args.repeats}")
    print(f"  bare python3.12 > /dev/null:    {buffered:6.2f} s   (the baseline)")
    print(f"  bare python3.12 -u > /dev/null: {unbuffered:6.2f} s")
    for backend in args.backends.split(","):
        data = run_backend(backend, args.lines, args.repeats)
        total = statistics.median(r["total"] for r in data["runs"])
        function = statistics.median(r["function"] for r in data["runs"])
        def verdict(seconds):
            return "ok" if seconds < 2 * buffered else "OVER"

        print(f"  engine on {data['vendor']}:")
        print(f"    the Function (as the sandbox timed it): {function:6.2f} s = {function / buffered:.2f}x bare   "
              f"goal < 2x: {verdict(function)}")
        print(f"    the whole run, until every line is stored: {total:6.2f} s = {total / buffered:.2f}x bare, "
              f"{args.lines / total:,.0f} lines/s   (< 2x: {verdict(total)})")


if __name__ == "__main__":
    main()
