"""What a warm run pays to make the STS, SSM and S3 clients of a Samsara Function, by zygote kind.

    .runtime-env/bin/python bench/boto3_clients.py [--runs 15]

Runs under the Functions' runtime environment (not the app's). For each kind
of zygote (a parent process that already imported boto3, as a warm
environment does), forks children that each make the three clients the SDK's
``secrets().load()`` and a storage call make (sts, ssm with the assumed
role's keys, s3), and reports the children's CPU and wall time, medians:

  * baseline: boto3 imported only (the zygote before bootstrap._warm_aws_models);
  * shared models: one loader holding the sts/ssm/s3 models for every session;
  * shared models + handler table: sessions also copy a ready table of built-in handlers;
  * all shared (what bootstrap's zygote does now): handler tables also copied on write,
    one cache of aliased event names, endpoint rule sets built once per service.

Each child first makes the three clients twice, as the spare's warm-up does before its
run arrives (the pages it will write are then its own), then is measured making them
again: what the run itself pays. ``--cold-pages`` measures the first three instead.

CPU time is the figure to read on a busy machine: wall time there mostly measures the queue for a core.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("baseline", "shared models", "shared models + handler table", "all shared")


def three_clients():
    """What a run makes: one session (boto3's default one, as the SDK uses), three clients."""
    import boto3.session

    session = boto3.session.Session()
    session.client("sts")
    session.client("ssm", aws_access_key_id="k", aws_secret_access_key="s", aws_session_token="t")
    session.client("s3")


def child(kind, runs, cold_pages):
    sys.path.insert(0, str(ROOT / "runtime"))
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-west-2",
                      **{f"AWS_ENDPOINT_URL_{s}": "http://127.0.0.1:9" for s in ("STS", "SSM", "S3")})
    import bootstrap

    for module in bootstrap.PRELOAD:
        __import__(module)
    if kind == "shared models":
        bootstrap._share_builtin_handlers = lambda: None
    if kind in ("shared models", "shared models + handler table"):
        bootstrap._copy_handler_tables_on_write = bootstrap._share_default_alias_names = lambda _: None
        bootstrap._build_rule_sets_once = lambda _: None
    if kind != "baseline":
        bootstrap._warm_aws_models()
    import gc

    gc.collect()
    gc.freeze()
    cpu, wall = [], []
    for _ in range(runs):
        read, write = os.pipe()
        if os.fork() == 0:
            if not cold_pages:
                three_clients()  # the spare's warm-up
                three_clients()
            t, c = time.perf_counter(), time.process_time()
            three_clients()
            os.write(write, f"{(time.process_time() - c) * 1000} {(time.perf_counter() - t) * 1000}".encode())
            os._exit(0)
        os.close(write)
        os.wait()
        c, w = os.read(read, 100).split()
        os.close(read)
        cpu.append(float(c))
        wall.append(float(w))
    print(statistics.median(cpu), statistics.median(wall))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--cold-pages", action="store_true", help="no warm-up in the child before the measured clients")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.runs, args.cold_pages)
    print(f"Three boto3 clients (sts, ssm, s3) in a forked run, medians of {args.runs}:\n")
    print(f"{'zygote':<32} {'CPU ms':>7} {'wall ms':>8} {'CPU vs baseline':>16}")
    base = None
    for kind in KINDS:
        out = subprocess.run([sys.executable, __file__, "--child", kind, "--runs", str(args.runs),
                              *(["--cold-pages"] if args.cold_pages else [])],
                             capture_output=True, text=True, check=True)
        cpu, wall = map(float, out.stdout.split())
        base = base or cpu
        print(f"{kind:<32} {cpu:>7.1f} {wall:>8.1f} {cpu / base:>15.2f}x")


if __name__ == "__main__":
    main()
