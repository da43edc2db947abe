"""One organization's backlog against another's single runs, and how fast the backlog drains.

    .venv/bin/python bench/fairness.py [--backlog 2000] [--runs 15] [--modes distributed,embedded] [--concurrency N]

For each mode (as in bench/run_latency.py: embedded is SQLite and the server-less
broker; distributed is PostgreSQL + Redis at BENCH_DATABASE_URL / BENCH_BROKER_URL),
one real worker with the product's default concurrency (WORKER_CONCURRENCY, as bin/run and the
Procfile start it; --concurrency compares others):

  * idle (the baseline): a quiet organization's trivial run, trigger committed to
    finished, one after another on an otherwise idle worker: --runs before the
    backlog and --runs after it drained (this host's speed drifts over a minute);
  * under a backlog: the same while another organization has --backlog trivial runs
    queued ahead of it (queued at once, as a schedule tick does). Goal: within twice
    the idle latency (issue 17);
  * drain: the backlog's runs per second, from queued to the last one finished
    (goal: 100 runs/s on this 2-core machine with web, worker, PostgreSQL and Redis).
    Its baseline: as many messages that find no run to take (the broker, Celery and
    the claim's choice, without the run);
  * schedules (with a real beat): how late the quiet organization's scheduled run is
    created after its occurrence, idle (the baseline) and behind the backlog
    (--schedules of each; a tick sent behind the backlog used to wait for all of it).
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _support import concurrency_label, runs_finished, stop_process, worker_argv  # noqa: E402
from run_latency import child_setup, percentile  # noqa: E402

TRIVIAL = "def handler(event, context):\n    return 1\n"


def child(mode, backlog, runs, concurrency, schedules):
    env, data_dir = child_setup(mode, "bench-fair")
    import zoneinfo
    from datetime import timedelta

    from django.utils import timezone

    from accounts.services import organization_create
    from functions.models import Run
    from functions.run_services import run_trigger, runs_trigger_scheduled
    from runtime.tasks import execute_run, runs_enqueue
    from schedules.services import schedule_set
    from tests.factories import entry_at, make_function

    busy = make_function(organization_create(name="Busy"), "busy", files={"main.py": TRIVIAL})
    quiet = make_function(organization_create(name="Quiet"), "quiet", files={"main.py": TRIVIAL})
    worker = subprocess.Popen(
        worker_argv(concurrency),
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "--pidfile=", "-s", str(data_dir / "beat-schedule"),
         "--loglevel", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    zone = zoneinfo.ZoneInfo(quiet.organization.timezone)

    def finished(ids):
        return runs_finished(Run, ids)

    def wait(ids, timeout=600, interval=0.005):
        deadline = time.monotonic() + timeout
        while finished(ids) < len(ids):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(ids) - finished(ids)} runs did not finish")
            time.sleep(interval)

    def latency():
        run = run_trigger(function=quiet, trigger="api")
        wait([run.pk])
        run.refresh_from_db()
        assert run.status == "succeeded", run.reason
        # Trigger committed to finished, and of that the wait for a worker process (to the claim).
        return ((run.finished_at - run.created_at).total_seconds() * 1000,
                (run.started_at - run.created_at).total_seconds() * 1000)

    def schedule_lag():
        """The quiet Function scheduled 2 s ahead (a Samsara entry, every day): ms from the occurrence
        to its run created."""
        due = (timezone.now() + timedelta(seconds=2)).replace(microsecond=0)
        schedule_set(function=quiet, enabled=True, items=[entry_at(due, zone)])
        deadline = time.monotonic() + 600
        while (run := Run.objects.filter(function=quiet, trigger="schedule", scheduled_for=due).first()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError("the scheduled run was never created")
            time.sleep(0.005)
        return (run.created_at - due).total_seconds() * 1000

    try:
        # Both Functions warm in both worker processes.
        for function in (busy, quiet):
            wait([run_trigger(function=function, trigger="api").pk for _ in range(8)], timeout=300)
        idle = [latency() for _ in range(runs)]
        schedule_lag()  # beat up and ticking
        schedules_idle = [schedule_lag() for _ in range(schedules)]

        # Baseline for the drain: as many messages, each taking its turn and finding no run.
        started = time.perf_counter()
        for _ in range(backlog):
            execute_run.apply_async((0,))
        while _queue_length(env):  # (at most one message per worker process is still being taken)
            time.sleep(0.01)
        empty_rate = backlog / (time.perf_counter() - started)

        queued = runs_trigger_scheduled(occurrences=[(busy, timezone.now())] * backlog)
        ids = [run.pk for run in queued]
        started = time.perf_counter()
        runs_enqueue(run_ids=ids)
        while finished(ids) < min(100, backlog // 10):
            time.sleep(0.01)
        under = [latency() for _ in range(runs)]
        left = backlog - finished(ids)
        schedules_under = [schedule_lag() for _ in range(schedules)]
        left_after_schedules = backlog - finished(ids)
        wait(ids, interval=0.1)
        drain_rate = backlog / (time.perf_counter() - started)
        assert Run.objects.filter(pk__in=ids, status="succeeded").count() == backlog
        # Idle again: the baseline is taken on both sides of the backlog, so that a host whose speed
        # drifts over the minute between them moves the baseline as it moves the figure.
        idle += [latency() for _ in range(runs)]
    finally:
        stop_process(beat)
        stop_process(worker)
        shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps({"idle": idle, "under": under, "left": left, "drain": drain_rate, "empty": empty_rate,
                      "schedules_idle": schedules_idle, "schedules_under": schedules_under,
                      "left_after_schedules": left_after_schedules}))


def _queue_length(env):
    """Messages still in the broker's queue (Redis: the list; embedded: the kombu table)."""
    from config.celery import app

    from amqp.exceptions import ChannelError

    with app.connection_for_read() as connection:
        try:
            return connection.default_channel.queue_declare(queue=env["CELERY_QUEUE"], passive=True).message_count
        except ChannelError:  # Redis drops an empty queue's key: nothing left
            return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=15, help="the quiet organization's runs, idle and under the backlog")
    parser.add_argument("--modes", default="distributed,embedded")
    parser.add_argument("--concurrency", type=int, default=0, help="the worker's processes (default: the product's)")
    parser.add_argument("--schedules", type=int, default=3, help="scheduled runs of the quiet organization, idle "
                        "and behind the backlog")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.backlog, args.runs, args.concurrency, args.schedules)
    print(f"A quiet organization's trivial run, idle and behind {args.backlog:,} queued runs of another; "
          f"one worker, {concurrency_label(args.concurrency)}; medians of {args.runs}.\n")
    header = (f"{'mode':<12} {'idle p50':>9} {'(before/after)':>15} {'backlog p50':>12} {'p95':>6} {'ratio':>6} "
              f"{'claim idle/backlog':>19} | {'drain runs/s':>13} {'empty turns/s':>14}")
    rows, schedule_rows = [], []
    for mode in args.modes.split(","):
        out = subprocess.run([sys.executable, __file__, "--child", mode, "--backlog", str(args.backlog),
                              "--runs", str(args.runs), "--concurrency", str(args.concurrency),
                              "--schedules", str(args.schedules)], cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            rows.append(f"{mode}: failed\n{out.stderr[-3000:]}")
            continue
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        idle_total = [total for total, _claim in figures["idle"]]
        under_total = [total for total, _claim in figures["under"]]
        idle, under = statistics.median(idle_total), statistics.median(under_total)
        before, after = statistics.median(idle_total[:args.runs]), statistics.median(idle_total[args.runs:])
        claim_idle = statistics.median(claim for _total, claim in figures["idle"])
        claim_under = statistics.median(claim for _total, claim in figures["under"])
        rows.append(f"{mode:<12} {idle:>7.0f}ms {f'({before:.0f}/{after:.0f})':>15} {under:>10.0f}ms "
                    f"{percentile(under_total, 0.95):>4.0f}ms {under / idle:>5.1f}x "
                    f"{f'{claim_idle:.1f}/{claim_under:.1f}ms':>19} | {figures['drain']:>13.1f} {figures['empty']:>14.1f}")
        if figures["left"] < args.backlog // 4:
            rows.append(f"{'':<12} (only {figures['left']} of the backlog were left when the last quiet run ended)")
        late_idle, late_under = figures["schedules_idle"], figures["schedules_under"]
        schedule_rows.append(
            f"{mode:<12} {statistics.median(late_idle):>8.0f}ms {max(late_idle):>6.0f}ms | "
            f"{statistics.median(late_under):>10.0f}ms {max(late_under):>8.0f}ms "
            f"{figures['left_after_schedules']:>13,}")
    print(header)
    print("-" * len(header))
    print("\n".join(rows))
    schedule_header = (f"{'mode':<12} {'idle p50':>10} {'max':>8} | {'backlog p50':>12} {'max':>10} "
                       f"{'runs left':>13}")
    print(f"\nThe quiet organization's scheduled run, occurrence to run created (ms; {args.schedules} idle, "
          f"then {args.schedules} behind the backlog, with the backlog's runs still queued after them):\n")
    print(schedule_header)
    print("-" * len(schedule_header))
    print("\n".join(schedule_rows))
    print("\nidle: the quiet runs before the backlog and after it drained, together. claim: of each p50, trigger "
          "committed to the run claimed (the wait for a worker process).")
    print("ratio: backlog p50 / idle p50 (goal: at most 2x). drain: the backlog's runs per second (goal: 100); "
          "empty turns/s: the same number of messages that find no run (the baseline: broker, Celery, the claim).")


if __name__ == "__main__":
    main()
