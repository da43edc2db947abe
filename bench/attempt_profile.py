"""Where a warm 'secrets + S3' attempt's time goes, inside the sandbox and in the worker's endpoint.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_attempt_profile \
        .venv/bin/python bench/attempt_profile.py [--runs 15] [--db sqlite|postgres]

Runs ``runtime.services.run_execute`` in this process (no broker), warm, with
the handler of bench/run_latency.py's "secrets + S3" row instrumented from the
inside (from the payload's send to the module imported and the handler
called; each botocore call: client made and request signed, then its round
trip through the relay and the endpoint) and the worker timed around each
step (the claim, the redactor's read, the endpoint's request handling, SigV4
check, the secrets read on the attempt's database thread, the recording).
Prints medians in ms (wall), and the worker process's CPU per run_execute.
``--plain``: the uninstrumented handler (wall and CPU only). SQLite: a fresh
file in a temporary DATA_DIR; PostgreSQL: BENCH_DATABASE_URL, dropped and made
again.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HANDLER = """
import time
T0 = time.time()
import boto3
from samsara.function import Function

def handler(event, context):
    marks = {"imported": T0, "handler": time.time()}
    calls = []
    def before(**kw):
        calls.append(["sent", time.time()])
    def after(event_name, **kw):
        calls.append(["answered " + event_name.rsplit(".", 1)[-1], time.time()])
    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-send", before)
    boto3.DEFAULT_SESSION.events.register("after-call", after)
    secrets = Function().secrets().load()
    marks["secrets"] = time.time()
    boto3.client("s3")
    marks["s3 client"] = time.time()
    return {"ok": True, "secrets": len(secrets), "marks": marks, "calls": calls}
"""

PLAIN = """
import boto3
from samsara.function import Function

def handler(event, context):
    secrets = Function().secrets().load()
    boto3.client("s3")
    return {"ok": True, "secrets": len(secrets)}
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--db", default="postgres", choices=("postgres", "sqlite"))
    parser.add_argument("--plain", action="store_true", help="the uninstrumented handler (wall and CPU only)")
    parser.add_argument("--gap", type=float, default=0.05,
                        help="seconds between runs (a worker waits for its next message; 0: back to back)")
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="attempt-profile-")
    os.environ.update(DATA_DIR=data_dir, DJANGO_SETTINGS_MODULE="config.settings")
    if args.db == "postgres":
        url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_attempt_profile")
        sys.path.insert(0, str(ROOT / "bench"))
        from run_latency import _recreate_postgres_database

        _recreate_postgres_database(url)
        os.environ["DATABASE_URL"] = url
    else:
        os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import runtime.tasks

    runtime.tasks.run_enqueue_on_commit = lambda **kw: None
    import functions.run_services

    functions.run_services.run_enqueue_on_commit = lambda **kw: None
    from accounts.services import organization_create
    from functions.models import Run
    from functions.run_services import run_trigger
    from runtime import services
    from runtime.aws import backend as aws_backend
    from runtime.aws import messages as aws_messages
    from runtime.aws import server as aws_server
    from secrets_vault.services import secrets_replace
    from tests.factories import make_function

    spans = defaultdict(list)     # name -> [ms] in the worker
    current = {}

    def timed(owner, name, label):
        original = getattr(owner, name)

        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                spans[label].append((time.perf_counter() - t) * 1000)

        setattr(owner, name, wrapper)

    timed(aws_server.AwsEndpoint, "dispatch", "endpoint: whole request (parsed to sent, and what follows it)")
    timed(aws_server.AwsEndpoint, "_authenticate", "endpoint: SigV4 check (incl. body read)")
    timed(aws_server.AwsEndpoint, "_send", "endpoint: response write")
    timed(aws_messages.Request, "__init__", "endpoint: Request()")
    timed(aws_backend.AttemptBackend, "secrets", "endpoint: GetParameter's wait for the secrets")
    timed(aws_backend.AttemptBackend, "prefetch_secrets", "endpoint: secrets read after AssumeRole")
    timed(aws_server, "verify", "endpoint: sigv4.verify")
    timed(services.AttemptChannel, "call", "channel.call (any)")
    from runtime.aws import endpoint as aws_endpoint

    timed(aws_endpoint.AwsEndpoint, "start", "endpoint: start (socket + thread)")
    timed(aws_endpoint.AwsEndpoint, "close", "endpoint: close")
    import http.server

    timed(http.server.BaseHTTPRequestHandler, "parse_request", "endpoint: parse_request (headers)")
    from runtime.warm import WarmLauncher

    original_start = WarmLauncher.start

    def start(self, *a, **kw):
        current["sent"] = time.time()
        return original_start(self, *a, **kw)

    WarmLauncher.start = start
    timed(services, "_execute_attempt", "worker: _execute_attempt")
    timed(services, "run_claim", "worker: run_claim")
    timed(services, "redactor_for", "worker: redactor_for")
    timed(services, "run_record_attempt", "worker: run_record_attempt")

    import socketserver

    conns = []
    original_pr = socketserver.ThreadingMixIn.process_request

    def process_request(self, request, address):
        conns.append(1)
        return original_pr(self, request, address)

    socketserver.ThreadingMixIn.process_request = process_request

    org = organization_create(name="Profile")
    function = make_function(org, "secrets-s3", files={"main.py": PLAIN if args.plain else HANDLER})
    secrets_replace(function=function, secrets={"API_TOKEN": "bench-secret-value"}, actor=None, actor_label="bench")
    inside = defaultdict(list)
    totals, cpu = [], []
    conn_counts = []
    for i in range(args.runs + 2):
        if i < 2:
            for values in spans.values():
                values.clear()
        run = run_trigger(function=function, trigger="api")
        time.sleep(args.gap)
        conns.clear()
        t, c = time.perf_counter(), time.process_time()
        services.run_execute(run_id=run.pk)
        wall, used = (time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000
        run.refresh_from_db()
        assert run.status == "succeeded", (run.status, run.reason)
        if i < 2:
            continue  # the environment's start and the first warm run
        totals.append(wall)
        cpu.append(used)
        conn_counts.append(len(conns))
        if args.plain:
            continue
        value = json.loads(run.return_value)
        marks, sent = value["marks"], current["sent"]
        inside["payload sent -> module imported"].append((marks["imported"] - sent) * 1000)
        inside["module imported -> handler"].append((marks["handler"] - marks["imported"]) * 1000)
        inside["handler -> secrets loaded"].append((marks["secrets"] - marks["handler"]) * 1000)
        inside["secrets -> s3 client made"].append((marks["s3 client"] - marks["secrets"]) * 1000)
        inside["run duration_ms (recorded)"].append(run.duration_ms)
        last = marks["handler"]
        for n, (what, at) in enumerate(value["calls"]):
            step = "client made, request signed" if what == "sent" else "round trip (relay, endpoint, parse)"
            inside[f"  call {n // 2 + 1}: {step}"].append((at - last) * 1000)
            last = at
    print(f"{args.runs} warm runs on {args.db}; medians (ms)")
    print(f"  run_execute wall {statistics.median(totals):.1f}  worker-process CPU {statistics.median(cpu):.1f}"
          f"  connections per run {statistics.median(conn_counts)}")
    for name, values in inside.items():
        print(f"  {name:<48} {statistics.median(values):7.2f}")
    for name, values in spans.items():
        if values:
            print(f"  {name:<48} {statistics.median(values):7.2f}  (n/run {len(values) / args.runs:.1f})")


if __name__ == "__main__":
    main()
