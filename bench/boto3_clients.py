"""What a warm run pays to make the STS, SSM and S3 clients of a Samsara Function, by zygote kind.

    .runtime-env/bin/python bench/boto3_clients.py [--runs 15]

Runs under the Functions' runtime environment (not the app's). For each kind
of zygote (a parent process that already imported boto3, as a warm
environment does), forks children that each make the three clients the SDK's
``secrets().load()`` and a storage call make (sts, ssm with the assumed
role's keys, s3), and reports the children's CPU and wall time, medians:

  * baseline: boto3 imported only (the zygote before bootstrap._warm_aws_models);
  * shared models: one loader holding the sts/ssm/s3 models for every session;
  * shared models + handler table: sessions also copy a ready table of built-in handlers
    (what bootstrap's zygote does now).

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
KINDS = ("baseline", "shared models", "shared models + handler table")


def child(kind, runs):
    sys.path.insert(0, str(ROOT / "runtime"))
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-west-2",
                      **{f"AWS_ENDPOINT_URL_{s}": "http://127.0.0.1:9" for s in ("STS", "SSM", "S3")})
    import bootstrap

    for module in bootstrap.PRELOAD:
        __import__(module)
    if kind == "shared models":
        bootstrap._share_builtin_handlers = lambda: None
    if kind != "baseline":
        bootstrap._warm_aws_models()
    import gc

    import boto3

    gc.collect()
    gc.freeze()
    cpu, wall = [], []
    for _ in range(runs):
        read, write = os.pipe()
        if os.fork() == 0:
            t, c = time.perf_counter(), time.process_time()
            boto3.client("sts")
            boto3.client("ssm", aws_access_key_id="k", aws_secret_access_key="s", aws_session_token="t")
            boto3.client("s3")
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
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.runs)
    print(f"Three boto3 clients (sts, ssm, s3) in a forked run, medians of {args.runs}:\n")
    print(f"{'zygote':<32} {'CPU ms':>7} {'wall ms':>8} {'CPU vs baseline':>16}")
    base = None
    for kind in KINDS:
        out = subprocess.run([sys.executable, __file__, "--child", kind, "--runs", str(args.runs)],
                             capture_output=True, text=True, check=True)
        cpu, wall = map(float, out.stdout.split())
        base = base or cpu
        print(f"{kind:<32} {cpu:>7.1f} {wall:>8.1f} {cpu / base:>15.2f}x")


if __name__ == "__main__":
    main()
