"""The attempt of a warm 'secrets + S3' run alone: the sandbox and the in-run endpoint, no Django, no broker.

    .venv/bin/python bench/warm_secrets.py [--runs 20] [--compare main]

Warm environments (runtime/warm.py) run bench/run_latency.py's "secrets + S3"
handler (the official SDK's ``Function().secrets().load()``: STS AssumeRole,
then SSM GetParameter, then an S3 client) against a real ``AwsEndpoint``
whose backend answers the secrets from memory (the database's share is in
bench/attempt_profile.py), and the trivial handler as the baseline. With
``--compare REV`` the same runs also go to environments started from
``runtime/bootstrap.py`` as it is at git revision REV (the sandbox side of
an older tree; the worker side is this tree's), alternating run by run so
both see the same machine. Per attempt, medians:

  * wall: ``WarmPool.execute``, from the worker's call to its return;
  * handler CPU: the run's process's CPU from the handler's first line to its
    return, and the page faults it took meanwhile: the figures to compare on a
    busy machine (a page the run writes first costs a fault and a copy);
  * worker CPU: this process's CPU over the attempt (the endpoint's threads,
    the attempt's pipes).

A run sleeps 50 ms before starting, as a worker waits between runs: what a
warm environment does between runs is then done.
"""

import argparse
import contextlib
import json
import secrets as token
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HANDLER = """
import resource, time
import boto3
from samsara.function import Function

def handler(event, context):
    faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
    secrets = Function().secrets().load()
    boto3.client("s3")
    return {"ok": secrets == {"API_TOKEN": "bench-secret"}, "cpu": (time.process_time() - start) * 1000,
            "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults}
"""
TRIVIAL = """
import resource, time

def handler(event, context):
    faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
    return {"ok": True, "cpu": (time.process_time() - start) * 1000,
            "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults}
"""
ENV = {
    "SamsaraFunctionName": "bench-secrets",
    "SamsaraFunctionOrgId": "42",
    "SamsaraFunctionExecRoleArn": "arn:aws:iam::123456789012:role/fn-run",
    "SamsaraFunctionSecretsPath": "/functions/42/bench-secrets",
    "SamsaraFunctionStorageName": "org-42-storage",
    "AWS_DEFAULT_REGION": "us-west-2",
    "AWS_REGION": "us-west-2",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
}


class MemoryBackend:
    """The secrets from memory: the endpoint's own cost without the database's."""

    def secrets(self):
        return json.dumps({"API_TOKEN": "bench-secret"}), datetime(2026, 1, 1, tzinfo=timezone.utc)


@contextlib.contextmanager
def open_aws(directory):
    """What runtime/aws/endpoint.attempt_endpoint does for a warm environment, with MemoryBackend."""
    from runtime.aws.server import AwsEndpoint, Identity
    from runtime.sandbox import AwsAccess

    endpoint = AwsEndpoint(Identity.from_environment(ENV), MemoryBackend(),
                           datetime.now(timezone.utc) + timedelta(seconds=60))
    path = Path(directory) / f"{token.token_hex(8)}.sock"
    endpoint.start(path)
    try:
        yield AwsAccess(socket_path=path, credentials=endpoint.base_credentials.environment())
    finally:
        endpoint.close()
        path.unlink(missing_ok=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--compare", metavar="REV", help="also run bootstrap.py as it is at this git revision")
    args = parser.parse_args()
    from runtime.environment import DEFAULT_RUNTIME_ENV, ensure_runtime_env
    from runtime.sandbox import Invocation, Limits, bwrap
    from runtime.warm import WarmPool

    python = ensure_runtime_env(DEFAULT_RUNTIME_ENV)
    work = Path(tempfile.mkdtemp(prefix="bench-warm-secrets-"))
    bootstraps = {"this tree": bwrap.BOOTSTRAP}
    if args.compare:
        old = work / "bootstrap.py"
        old.write_text(subprocess.run(["git", "show", f"{args.compare}:runtime/bootstrap.py"], cwd=ROOT,
                                      capture_output=True, text=True, check=True).stdout)
        bootstraps[args.compare] = old
    pool = WarmPool(size=2 * len(bootstraps) + 1, idle_seconds=600, temp_root=work / "warm")
    variants = []
    for tree, bootstrap in bootstraps.items():
        for label, code in (("trivial", TRIVIAL), ("secrets + S3", HANDLER)):
            code_dir = work / f"{label.replace(' + ', '-')}-{len(variants)}"
            code_dir.mkdir()
            (code_dir / "main.py").write_text(code)
            variants.append((tree, label, bootstrap, code_dir))

    def one(tree, label, bootstrap, code_dir):
        bwrap.BOOTSTRAP = bootstrap  # bound when the variant's environment starts
        invocation = Invocation(code_dir=code_dir, handler="main.handler", event={}, function_name=ENV["SamsaraFunctionName"],
                                request_id=str(uuid.uuid4()), env=dict(ENV), temp_dir=work / "tmp")
        time.sleep(0.05)
        wall, cpu = time.perf_counter(), time.process_time()
        result = pool.execute(invocation, Limits(timeout_s=60), lambda batch: None, owner=(tree, label),
                              runtime_python=python, open_aws=open_aws)
        wall, cpu = (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000
        assert result.outcome == "succeeded", (result.reason, result.error)
        value = json.loads(result.return_value)
        assert value["ok"], value
        return result.warm_start, {"wall": wall, "handler CPU": value["cpu"], "page faults": value["faults"],
                                   "worker CPU": cpu}

    rows = {(tree, label): [] for tree, label, _, _ in variants}
    try:
        for variant in variants:
            one(*variant)  # the environment's start
        for i in range(args.runs):
            for tree, label, bootstrap, code_dir in (variants if i % 2 == 0 else variants[::-1]):
                warm, figures = one(tree, label, bootstrap, code_dir)
                assert warm, "every measured run is warm"
                rows[(tree, label)].append(figures)
    finally:
        pool.clear()
    names = ["wall", "handler CPU", "page faults", "worker CPU"]
    print(f"Warm attempts, medians of {args.runs} (ms; faults: count), the endpoint answering secrets from memory\n")
    print(f"{'bootstrap':<12} {'handler':<14}" + "".join(f"{name:>13}" for name in names))
    medians = {key: {name: statistics.median(row[name] for row in values) for name in names}
               for key, values in rows.items()}
    for (tree, label), figures in medians.items():
        print(f"{tree:<12} {label:<14}" + "".join(f"{figures[name]:>13.1f}" for name in names))
    print()
    for tree in bootstraps:
        base, run = medians[(tree, "trivial")], medians[(tree, "secrets + S3")]
        print(f"{tree}: secrets + S3 over trivial, wall {run['wall'] / base['wall']:.1f}x")
    if args.compare:
        new, old = medians[("this tree", "secrets + S3")], medians[(args.compare, "secrets + S3")]
        print(f"secrets + S3, this tree over {args.compare}: wall {new['wall'] / old['wall']:.2f}x, "
              f"handler CPU {new['handler CPU'] / old['handler CPU']:.2f}x, "
              f"page faults {new['page faults'] / old['page faults']:.2f}x")


if __name__ == "__main__":
    main()
