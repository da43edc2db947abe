"""CPU per run, by process family, during a burst of runs through a real worker.

    .venv/bin/python bench/run_cpu.py [--modes distributed,embedded] [--burst 400] [--handler trivial] [--concurrency N]

Throughput on a 2-core machine is bounded by the CPU a run costs across every
process it touches. For each mode (distributed: PostgreSQL + Redis at
BENCH_DATABASE_URL / BENCH_BROKER_URL; embedded: SQLite and the server-less
broker) this starts a real Celery worker (2 processes), warms the Function
up, triggers a burst, and reads every process's CPU from /proc before and
after: the whole machine's, and per family (the worker's pool processes and
main process, the sandbox (bwrap, zygotes, the runs' processes), PostgreSQL,
Redis, this process triggering and polling, the kernel's own threads).
Baseline: the same handler called by a bare `python3.12 -c` (CPU of the
child, the least a run could cost). A process that exits during the burst
counts in its parent once reaped, as /proc reports it.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _support import concurrency_label, stop_process, worker_argv  # noqa: E402
from run_latency import HANDLERS, _wait_all, child_setup, warm_every_process  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")


def _stat(pid):
    with open(f"/proc/{pid}/stat") as handle:
        text = handle.read()
    comm = text[text.index("(") + 1 : text.rindex(")")]
    rest = text[text.rindex(")") + 2 :].split()
    # utime stime cutime cstime; and the start time, which tells a process from a later one with its pid
    # (a name does not: a kernel worker's changes with the work it does).
    return comm, int(rest[1]), sum(int(x) for x in rest[11:15]), int(rest[19])


def _processes():
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                found[int(entry)] = _stat(entry)
            except (OSError, ValueError, IndexError):
                pass
    return found


def _machine_busy_ticks():
    with open("/proc/stat") as handle:
        values = [int(x) for x in handle.readline().split()[1:]]
    return sum(values[:3]) + sum(values[5:8])  # user nice system irq softirq steal


def _family(pid, comm, processes, worker_pid, me):
    chain = [pid]  # the process, then its ancestors up to init
    while chain[-1] in processes and processes[chain[-1]][1] > 1:
        chain.append(processes[chain[-1]][1])
    if chain[0] == me:
        return "this process (trigger, poll)"
    if chain[0] == worker_pid:
        return "Celery main process"
    if len(chain) > 1 and chain[1] == worker_pid and comm.startswith(("celery", "python")):
        return "Celery pool processes"
    if worker_pid in chain:
        return "sandbox (bwrap, zygotes, runs)"
    if comm.startswith("postgres"):
        return "PostgreSQL"
    if comm.startswith("redis"):
        return "Redis"
    if comm.startswith(("kworker", "ksoftirqd", "rcu_", "kswapd")):
        return "kernel threads"
    return "other"


def child(mode, burst, label, concurrency):
    env, data_dir = child_setup(mode, "cpu")
    from accounts.services import organization_create
    from functions.models import Run
    from functions.run_services import run_trigger
    from secrets_vault.services import secrets_replace
    from tests.factories import make_function

    function = make_function(organization_create(name=f"CPU {mode}"), "cpu-bench", files={"main.py": HANDLERS[label]})
    secrets_replace(function=function, secrets={"API_TOKEN": "bench-secret-value"}, actor=None, actor_label="bench")
    worker = subprocess.Popen(
        worker_argv(concurrency),
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        warm_every_process(function, concurrency)
        time.sleep(1)
        before, busy_before = _processes(), _machine_busy_ticks()
        started = time.perf_counter()
        ids = [run_trigger(function=function, trigger="api").pk for _ in range(burst)]
        _wait_all(ids, Run)
        elapsed = time.perf_counter() - started
        after, busy_after = _processes(), _machine_busy_ticks()
        assert Run.objects.filter(pk__in=ids, status="succeeded").count() == burst
        families = {}
        for pid, (comm, _ppid, ticks, start) in after.items():
            old = before.get(pid)
            spent = ticks - (old[2] if old and old[3] == start else 0)
            if spent > 0:
                name = _family(pid, comm, after, worker.pid, os.getpid())
                families[name] = families.get(name, 0) + spent
    finally:
        stop_process(worker)
    per_run = {name: ticks * 1000 / HZ / burst for name, ticks in families.items()}
    print(json.dumps({"runs_per_second": burst / elapsed, "machine_ms": (busy_after - busy_before) * 1000 / HZ / burst,
                      "families": per_run}))


def baseline(label, runs=20):
    from runtime.environment import DEFAULT_RUNTIME_ENV

    python = str(DEFAULT_RUNTIME_ENV / "bin" / "python")
    script = HANDLERS[label] + "\nhandler({}, None)\n"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(runs):
        subprocess.run([python, "-c", script], check=True, env={"AWS_DEFAULT_REGION": "us-west-2"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000 / runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="distributed,embedded")
    parser.add_argument("--burst", type=int, default=400)
    parser.add_argument("--handler", default="trivial", choices=[h for h in HANDLERS if h != "secrets + S3"])
    parser.add_argument("--concurrency", type=int, default=0, help="the worker's processes (default: the product's)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.burst, args.handler, args.concurrency)
    bare = baseline(args.handler)
    print(f"CPU per {args.handler} run in a burst of {args.burst}, one worker with {concurrency_label(args.concurrency)} "
          f"(baseline: the handler in a bare python3.12 -c, {bare:.1f} ms of CPU)\n")
    for mode in args.modes.split(","):
        out = subprocess.run([sys.executable, __file__, "--child", mode, "--burst", str(args.burst), "--handler", args.handler,
                              "--concurrency", str(args.concurrency)],
                             cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{mode}: failed\n{out.stderr[-3000:]}")
            continue
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{mode}: {figures['runs_per_second']:.1f} runs/s, the machine's CPU {figures['machine_ms']:.1f} ms a run "
              f"({figures['machine_ms'] / bare:.1f}x the bare handler)")
        for name, ms in sorted(figures["families"].items(), key=lambda item: -item[1]):
            if ms >= 0.05:
                print(f"  {name:<32} {ms:6.2f} ms")
        print()


if __name__ == "__main__":
    main()
