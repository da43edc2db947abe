"""The REST API's round trips: a synchronous run (`POST .../runs?wait=`) and `GET /functions/{name}`.

    .venv/bin/python bench/api.py [--runs 30] [--seconds 5] [--distributed]

Starts one gunicorn worker (port 8131) and one Celery worker on a fresh
DATA_DIR (embedded default: SQLite and the server-less broker; with
--distributed, PostgreSQL and Redis at BENCH_DATABASE_URL / BENCH_BROKER_URL),
then measures, through HTTP as a client sees it:
  * `POST /api/functions/{name}/runs?wait=30` round trips of a warm trivial
    Function and of one that loads its secrets with the official SDK
    (`samsara.function.Function().secrets().load()`), p50 and p95, beside a bare
    `python3.12 -c pass` measured in the same run;
  * requests per second of `GET /api/functions/{name}` on that one gunicorn
    worker (4 client threads), beside `GET /healthz` on the same worker.
The per-token rate limit is raised for the run so that it measures the server, not the limit.
"""

import argparse
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
sys.path.insert(0, str(ROOT / "bench"))

from _support import stop_process  # noqa: E402

PORT = int(os.environ.get("BENCH_PORT", "8131"))
DISTRIBUTED_DB = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/api_bench")
DISTRIBUTED_BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/3")
HANDLERS = {
    "trivial": "def handler(event, context):\n    return {'ok': True}\n",
    "secrets via SDK": (
        "from samsara.function import Function\n"
        "def handler(event, context):\n"
        "    secrets = Function().secrets().load()\n"
        "    return {'ok': len(secrets['TOKEN']) > 0}\n"
    ),
}


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def bare_python(runs):
    """`python3.12 -c pass`, with the Function runtime's own interpreter."""
    from runtime.environment import DEFAULT_RUNTIME_ENV

    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(DEFAULT_RUNTIME_ENV / "bin" / "python"), "-c", "pass"], check=True)
        times.append((time.perf_counter() - start) * 1000)
    return times


def _recreate_postgres_database(url):
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def requests_per_second(url, headers, seconds, threads=4):
    import requests

    counts, stop = [0] * threads, time.monotonic() + seconds

    def client(index):
        session = requests.Session()
        while time.monotonic() < stop:
            response = session.get(url, headers=headers, timeout=30)
            assert response.status_code == 200, (response.status_code, response.text[:300])
            counts[index] += 1

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.monotonic() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="synchronous runs per Function")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long each requests-per-second figure is measured")
    parser.add_argument("--distributed", action="store_true", help="PostgreSQL and Redis instead of the embedded default")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        DATA_DIR=str(data_dir), CELERY_QUEUE=f"bench-api-{os.getpid()}", DJANGO_SETTINGS_MODULE="config.settings",
        API_RATE_LIMIT_PER_SECOND="1000000", API_RUN_STARTS_PER_MINUTE="1000000",
    )
    if args.distributed:
        env.update(DATABASE_URL=DISTRIBUTED_DB, CELERY_BROKER_URL=DISTRIBUTED_BROKER)
        _recreate_postgres_database(DISTRIBUTED_DB)
    os.environ.update(env)
    import django

    django.setup()
    import requests
    from django.core.management import call_command

    from accounts.services import API_SCOPES, api_token_create, organization_create
    from secrets_vault.services import secrets_replace
    from tests.factories import make_function

    call_command("migrate", verbosity=0)
    org = organization_create(name="Bench API")
    _, raw = api_token_create(organization=org, name="bench", scopes=API_SCOPES)
    names = {}
    for label, code in HANDLERS.items():
        function = make_function(org, label.replace(" ", "-"), files={"main.py": code})
        secrets_replace(function=function, secrets={"TOKEN": "bench-secret-value"}, actor=None, actor_label="bench")
        names[label] = function.name

    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency", "1", "--loglevel", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    web = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{PORT}", "--workers", "1",
         "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    base = f"http://127.0.0.1:{PORT}"
    headers = {"Authorization": f"Bearer {raw}"}
    try:
        for _ in range(200):
            try:
                if requests.get(f"{base}/healthz", timeout=10).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.1)
        session = requests.Session()
        latencies = {}
        for label, name in names.items():
            url = f"{base}/api/functions/{name}/runs?wait=30"
            for _ in range(3):  # warm: the worker's bundle cache and warm environment
                session.post(url, json={"paramsOverride": {}}, headers=headers, timeout=60)
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                response = session.post(url, json={"paramsOverride": {}}, headers=headers, timeout=60)
                times.append((time.perf_counter() - start) * 1000)
                data = response.json()["data"]
                assert response.status_code == 200 and data["status"] == "success", response.text[:500]
                assert data["context"]["responsePayload"] == {"ok": True}, data
            latencies[label] = times
        bare = bare_python(args.runs)
        get_rps = requests_per_second(f"{base}/api/functions/{names['trivial']}", headers, args.seconds)
        health_rps = requests_per_second(f"{base}/healthz", {}, args.seconds)
    finally:
        stop_process(web)
        stop_process(worker)
        shutil.rmtree(data_dir, ignore_errors=True)

    mode = "PostgreSQL + Redis" if args.distributed else "embedded (SQLite, embedded broker)"
    print(f"REST API on one gunicorn worker and one Celery worker, {mode}; {args.runs} runs each.\n")
    bare50 = statistics.median(bare)
    print(f"{'POST .../runs?wait=30':<28} {'p50 ms':>8} {'p95 ms':>8} {'bare p50 ms':>12} {'ratio':>6}")
    for label, times in latencies.items():
        p50, p95 = statistics.median(times), percentile(times, 0.95)
        print(f"{label:<28} {p50:>8.0f} {p95:>8.0f} {bare50:>12.0f} {p50 / bare50:>5.1f}x")
    print(f"\n{'requests per second (4 threads)':<34} {'req/s':>8}")
    print(f"{'GET /api/functions/{name}':<34} {get_rps:>8.0f}")
    print(f"{'GET /healthz (baseline)':<34} {health_rps:>8.0f}")


if __name__ == "__main__":
    main()
