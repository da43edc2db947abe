"""Cold vs warm start of a run: the sandbox alone, and the whole engine, next to a bare interpreter.

    .venv/bin/python bench/warm_start.py [--runs 30] [--modes embedded,distributed] [--no-engine]

Direct: the trivial and the boto3 handler of bench/run_latency.py, run N times
with ``sandbox.execute`` (cold: a new sandbox per run) and N times with
``WarmPool.execute`` (warm: forked by the zygote of the version's environment,
made once, its start-up shown apart). Wall time of each call, medians and p95.
Engine: bench/run_latency.py's child (a real Celery worker, trigger to
finished_at) with FUNCTIONS_WARM_ENVIRONMENTS=false, then true.
Baseline: the same handler in a bare `python3.12 -c` subprocess.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run_latency import HANDLERS, NEEDS_ENDPOINT, baseline, percentile  # noqa: E402


def direct(runs):
    from runtime.environment import DEFAULT_RUNTIME_ENV, ensure_runtime_env
    from runtime.sandbox import Invocation, Limits, execute
    from runtime.warm import WarmPool

    python = ensure_runtime_env(DEFAULT_RUNTIME_ENV)
    work = Path(tempfile.mkdtemp(prefix="bench-warm-"))
    pool = WarmPool(size=4, idle_seconds=600, temp_root=work / "warm")
    figures = {}
    for label, code in HANDLERS.items():
        if label in NEEDS_ENDPOINT:
            continue  # the sandbox alone has no AWS endpoint; the engine rows below run it
        code_dir = work / label.replace(" + ", "-").replace(" ", "-")
        code_dir.mkdir()
        (code_dir / "main.py").write_text(code)

        def invocation():
            return Invocation(code_dir=code_dir, handler="main.handler", event={}, function_name="bench",
                              request_id=str(uuid.uuid4()), env={}, temp_dir=work / "tmp")

        def timed(call):
            start = time.perf_counter()
            result = call()
            assert result.outcome == "succeeded", result.reason
            return (time.perf_counter() - start) * 1000

        cold = [timed(lambda: execute(invocation(), Limits(timeout_s=60), lambda b: None, runtime_python=python))
                for _ in range(runs)]
        first = timed(lambda: pool.execute(invocation(), Limits(timeout_s=60), lambda b: None, owner=label,
                                           runtime_python=python))
        warm = [timed(lambda: pool.execute(invocation(), Limits(timeout_s=60), lambda b: None, owner=label,
                                           runtime_python=python)) for _ in range(runs)]
        assert pool.created == len(figures) + 1, "every warm run after the first reused the environment"
        figures[label] = {"cold": cold, "warm": warm, "first": first}
    pool.clear()
    return figures


def engine(mode, runs, warm):
    env = dict(os.environ, FUNCTIONS_WARM_ENVIRONMENTS="true" if warm else "false")
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "run_latency.py"), "--child", mode, "--runs", str(runs),
                          "--burst", "10"], cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def row(what, label, values, bare):
    p50, p95 = statistics.median(values), percentile(values, 0.95)
    print(f"{what:<28} {label:<13} {p50:>8.1f} {p95:>8.1f} {bare:>8.1f} {p50 / bare:>6.1f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--modes", default="embedded,distributed")
    parser.add_argument("--no-engine", action="store_true")
    args = parser.parse_args()
    bare = {label: statistics.median(baseline(code, args.runs)) for label, code in HANDLERS.items()}
    header = f"{'path':<28} {'handler':<13} {'p50 ms':>8} {'p95 ms':>8} {'bare ms':>8} {'ratio':>7}"
    print(f"Cold vs warm start, {args.runs} runs per row (wall time per call; engine: trigger to finished_at)\n")
    print(header)
    print("-" * len(header))
    for label, figures in direct(args.runs).items():
        row("sandbox.execute (cold)", label, figures["cold"], bare[label])
        row("WarmPool.execute (warm)", label, figures["warm"], bare[label])
        print(f"{'  environment start (once)':<28} {label:<13} {figures['first']:>8.1f}")
    if not args.no_engine:
        for mode in args.modes.split(","):
            for warm in (False, True):
                try:
                    results = engine(mode, args.runs, warm)
                except RuntimeError as error:
                    print(f"engine {mode}: failed: {error}")
                    continue
                for label, figures in results.items():
                    row(f"engine {mode} ({'warm' if warm else 'cold'})", label, figures["latency_ms"], bare[label])


if __name__ == "__main__":
    main()
