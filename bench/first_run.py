"""The first run after a worker starts: with its environment pre-started, against a cold start (the baseline).

    .venv/bin/python bench/first_run.py [--repeats 5] [--modes embedded,distributed]

For each mode (as in bench/run_latency.py) and each repeat: a fresh worker is
started, given SETTLE_SECONDS (a busy machine's worker start; as a worker
has before the first run after a restart, or within 10 s after a deploy), and one run of the 'secrets + S3' handler is timed from
trigger committed to finished. Baseline: the same with pre-starting off
(FUNCTIONS_WARM_PRESTART_RECENT_SECONDS=0), so the first run starts its
environment itself. Medians.
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

from _support import stop_process, worker_argv  # noqa: E402
from run_latency import HANDLERS, _wait_all, child_setup  # noqa: E402

HANDLER = "secrets + S3"
SETTLE_SECONDS = 15.0  # a worker here takes several seconds to start consuming when the machine is busy


def child(mode, repeats):
    env, data_dir = child_setup(mode, "bench-first")
    from accounts.services import organization_create
    from functions.models import Run
    from functions.run_services import run_trigger
    from secrets_vault.services import secrets_replace
    from tests.factories import make_function

    function = make_function(organization_create(name=f"First {mode}"), "first", files={"main.py": HANDLERS[HANDLER]})
    secrets_replace(function=function, secrets={"API_TOKEN": "bench-secret-value"}, actor=None, actor_label="bench")

    def first_run(prestart):
        worker_env = dict(env, FUNCTIONS_WARM_PRESTART_RECENT_SECONDS="3600" if prestart else "0")
        worker = subprocess.Popen(
            worker_argv(),
            cwd=ROOT, env=worker_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            time.sleep(SETTLE_SECONDS)
            run = run_trigger(function=function, trigger="api")
            _wait_all([run.pk], Run)
            run.refresh_from_db()
            assert run.status == "succeeded", (run.status, run.reason)
            return (run.finished_at - run.created_at).total_seconds() * 1000
        finally:
            stop_process(worker)

    try:
        first_run(False)  # a recent run, and the bundle in the worker's cache
        figures = {"cold": [], "prestarted": []}
        for _ in range(repeats):
            figures["cold"].append(first_run(False))
            figures["prestarted"].append(first_run(True))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(figures))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--modes", default="embedded,distributed")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.repeats)
    print(f"First run after a worker start ({HANDLER}), trigger to finished, medians of {args.repeats}:\n")
    print(f"{'mode':<12} {'cold (baseline) ms':>19} {'pre-started ms':>15} {'ratio':>6}")
    for mode in args.modes.split(","):
        out = subprocess.run([sys.executable, __file__, "--child", mode, "--repeats", str(args.repeats)],
                             cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{mode}: failed\n{out.stderr[-3000:]}")
            continue
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        cold, pre = statistics.median(figures["cold"]), statistics.median(figures["prestarted"])
        print(f"{mode:<12} {cold:>19.0f} {pre:>15.0f} {pre / cold:>5.2f}x")


if __name__ == "__main__":
    main()
