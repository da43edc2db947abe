"""Run health at scale: one million runs over 30 days across 100 Functions, on SQLite and PostgreSQL.

    .venv/bin/python bench/monitor.py [--backends sqlite,postgres] [--runs 1000000] [--functions 100] [--repeats 30]

For each backend, a child process gets a database of its own (SQLite: a file in
a temporary DATA_DIR; PostgreSQL: the database `bench_monitor` at
BENCH_DATABASE_URL, created and dropped here, never a test database), migrates
it and seeds, in bulk (executemany in big transactions / COPY, indexes rebuilt
after), an organization whose 100 Functions have 1,000,000 runs spread over
the last 30 days (about 10,000 each; 1 in 12 retried, 1 in 25 failed, scheduled
ones with a lag) with their attempts (cold and warm starts), and a second
organization with the same 100 Functions and no runs: the baseline. It then
times, through the real code:

  * the Monitor tab's queries (monitor.queries.monitor_figures) for 24 hours and 30 days, one Function
    at a time, cycling through the Functions;
  * the Functions list's queries (its page of 25 with last run, failures, marks, success rate and p50);
  * the same pages whole, through the test client (queries plus rendering), for reference;

each beside the same measurement on the organization without runs, and prints
p50 and p95 against the goals (PostgreSQL under 100 ms, SQLite under 300 ms).
"""

import argparse
import json
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _support import percentile, run_in_child  # noqa: E402  (bench/ is on sys.path when run as a script)

POSTGRES_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_monitor")
GOALS_MS = {"sqlite": 300, "postgres": 100}


# --- seeding ----------------------------------------------------------------------------------

RUN_COLUMNS = (
    "id, correlation_id, organization_id, function_id, code_version_id, status, trigger, event, overrides, attempts, "
    "max_attempts, timeout_seconds, memory_mb, reason, peak_memory_mb, created_at, started_at, finished_at, "
    "duration_ms, scheduled_for, logs_expired, tmp_mb"
)
ATTEMPT_COLUMNS = (
    "run_id, number, outcome, reason, peak_memory_mb, worker, isolation, start_kind, startup_ms, started_at, "
    "heartbeat_at, finished_at, duration_ms"
)


def _organization(name, functions):
    from accounts.models import BuiltinRole, Membership, Organization, User
    from functions.models import CodeVersion, Function

    org = Organization.objects.create(name=name, timezone="America/Chicago")
    user, _ = User.objects.get_or_create(email="bench@example.com")
    Membership.objects.create(user=user, organization=org, builtin_role=BuiltinRole.FULL_ADMIN)
    made = []
    for i in range(functions):
        fn = Function.objects.create(organization=org, name=f"fn-{i:03d}", handler="main.handler", timeout_seconds=60)
        version = CodeVersion.objects.create(function=fn, number=1, sha256="0" * 64, size=1, uncompressed_size=1,
                                             file_count=1, storage_key="none", handler="main.handler")
        Function.objects.filter(pk=fn.pk).update(deployed_version=version)
        made.append((fn.pk, version.pk))
    return org, user, made


def _rows(org_id, functions, runs, now, sqlite):
    """(run rows, attempt rows) generators, oldest run first."""
    rng = random.Random(15)
    span = 30 * 86400
    start = now - timedelta(days=30)

    def when(value):
        return str(value.replace(tzinfo=None)) if sqlite else value

    runs_out, attempts_out = [], []
    for run_id in range(1, runs + 1):
        fn, version = functions[rng.randrange(len(functions))]
        created = start + timedelta(seconds=span * run_id / (runs + 1))
        roll = rng.random()
        scheduled = roll < 0.6
        status = "succeeded" if roll < 0.94 else "failed" if roll < 0.98 else "timed_out" if roll < 0.99 else "dropped"
        attempts = 0 if status == "dropped" else 3 if status != "succeeded" else (2 if rng.random() < 0.08 else 1)
        lag = rng.randint(20, 1500)
        started = None if status == "dropped" else created + timedelta(milliseconds=lag)
        duration = None if status == "dropped" else 60_000 if status == "timed_out" else int(rng.lognormvariate(6.5, 0.8))
        memory = None if duration is None else round(rng.uniform(40, 400), 1)
        finished = created if started is None else started + timedelta(milliseconds=duration)
        correlation = uuid.UUID(int=rng.getrandbits(128), version=4)
        runs_out.append((
            run_id, correlation.hex if sqlite else correlation, org_id, fn, version, status,
            "schedule" if scheduled else "api", "{}", "{}", attempts, 3, 60, 1769,
            "" if status == "succeeded" else "Handler raised ConnectionError: fleet API unavailable",
            memory, when(created), when(started) if started else None, when(finished), duration,
            when(created) if scheduled else None, False, 512,
        ))
        for number in range(1, attempts + 1):
            cold = rng.random() < 0.1
            attempts_out.append((
                run_id, number, "succeeded" if status == "succeeded" and number == attempts else "failed", "", memory,
                "bench", "bench", "cold" if cold else "warm", rng.randint(300, 900) if cold else rng.randint(4, 20),
                when(started), when(finished), when(finished), duration,
            ))
        if len(runs_out) >= 100_000:
            yield runs_out, attempts_out
            runs_out, attempts_out = [], []
    if runs_out:
        yield runs_out, attempts_out


def _indexes(connection, table):
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND sql IS NOT NULL", [table])
        else:
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT LIKE '%%pkey' "
                           "AND indexdef NOT LIKE '%%UNIQUE%%'", [table])
        return cursor.fetchall()


def seed(runs, functions):
    from django.db import connection

    org, user, fns = _organization("Bench Fleet", functions)
    empty, _, _ = _organization("Bench Empty", functions)
    now = datetime.now(UTC)
    sqlite = connection.vendor == "sqlite"
    started = time.perf_counter()
    indexes = _indexes(connection, "functions_run") + _indexes(connection, "functions_attempt")
    with connection.cursor() as cursor:
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
    if sqlite:
        raw = connection.connection
        raw.execute("PRAGMA synchronous=OFF")
        run_sql = f"INSERT INTO functions_run ({RUN_COLUMNS}) VALUES ({', '.join(['?'] * 22)})"
        attempt_sql = f"INSERT INTO functions_attempt ({ATTEMPT_COLUMNS}) VALUES ({', '.join(['?'] * 13)})"
        for run_rows, attempt_rows in _rows(org.id, fns, runs, now, True):
            raw.execute("BEGIN")
            raw.executemany(run_sql, run_rows)
            raw.executemany(attempt_sql, attempt_rows)
            raw.execute("COMMIT")
        for _, definition in indexes:
            raw.execute(definition)
        raw.execute("PRAGMA synchronous=NORMAL")
        # No ANALYZE: the application never runs it, so the planner works without statistics, as in use.
    else:
        with connection.cursor() as cursor:
            for run_rows, attempt_rows in _rows(org.id, fns, runs, now, False):
                with cursor.copy(f"COPY functions_run ({RUN_COLUMNS}) FROM STDIN") as copy:
                    for row in run_rows:
                        copy.write_row(row)
                with cursor.copy(f"COPY functions_attempt ({ATTEMPT_COLUMNS}) FROM STDIN") as copy:
                    for row in attempt_rows:
                        copy.write_row(row)
            cursor.execute("SELECT setval(pg_get_serial_sequence('functions_run', 'id'), (SELECT max(id) FROM functions_run))")
            cursor.execute("SET maintenance_work_mem = '512MB'")
            for _, definition in indexes:
                cursor.execute(definition)
            cursor.execute("VACUUM ANALYZE functions_run")
            cursor.execute("VACUUM ANALYZE functions_attempt")
    return org, empty, user, time.perf_counter() - started


# --- measuring ----------------------------------------------------------------------------------


def timed(function, repeats):
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        function(i)
        times.append((time.perf_counter() - started) * 1000)
    return times


def measure(org, empty, user, repeats):
    import zoneinfo

    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from functions.models import Function
    from functions.queries import function_list_rows
    from monitor.queries import function_list_health, monitor_figures
    from monitor.ranges import RANGES, range_buckets

    client = Client()
    client.force_login(user)
    zone = zoneinfo.ZoneInfo(org.timezone)
    results = []

    def figures(organization, range_key):
        functions = list(Function.objects.of(organization).order_by("name"))

        def one(i):
            monitor_figures(function=functions[i % len(functions)], buckets=range_buckets(RANGES[range_key], zone=zone))
        return one

    def list_queries(organization):
        def one(i):
            now = timezone.now()
            page = list(function_list_rows(organization, sort="failures" if i % 2 else "name", now=now)[:25])
            function_list_health([f.pk for f in page], now=now)
        return one

    def page(organization, view, **kwargs):
        def one(i):
            if view == "functions:monitor":
                name = f"fn-{i % 100:03d}"
                url = reverse(view, kwargs={"org_id": organization.id, "name": name}) + f"?range={kwargs['range']}"
            else:
                url = reverse(view, kwargs={"org_id": organization.id})
            response = client.get(url)
            assert response.status_code == 200, response.status_code
        return one

    cases = [
        ("Monitor queries, 24 hours", lambda o: figures(o, "24h"), False),
        ("Monitor queries, 30 days", lambda o: figures(o, "30d"), False),
        ("Functions list queries (25 with marks)", list_queries, False),
        ("Monitor tab page, 24 hours", lambda o: page(o, "functions:monitor", range="24h"), True),
        ("Monitor tab page, 30 days", lambda o: page(o, "functions:monitor", range="30d"), True),
        ("Functions list page", lambda o: page(o, "functions:list"), True),
    ]
    for label, make, whole_page in cases:
        for target in (org, empty):  # warm the caches once each
            make(target)(0)
        busy, baseline = timed(make(org), repeats), timed(make(empty), repeats)
        results.append({
            "label": label, "page": whole_page,
            "p50": percentile(busy, 0.5), "p95": percentile(busy, 0.95),
            "base_p50": percentile(baseline, 0.5), "base_p95": percentile(baseline, 0.95),
        })
    return results


# --- processes ---------------------------------------------------------------------------------


def child(backend, runs, functions, repeats):
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    org, empty, user, seconds = seed(runs, functions)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM functions_run")
        (count,) = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM functions_attempt")
        (attempts,) = cursor.fetchone()
    print(f"[{backend}] seeded {count:,} runs and {attempts:,} attempts in {seconds:.0f} s", file=sys.stderr, flush=True)
    results = measure(org, empty, user, repeats)
    print(json.dumps({"results": results, "seed_seconds": seconds, "runs": count, "attempts": attempts}))


def run_backend(backend, args):
    arguments = ["--runs", str(args.runs), "--functions", str(args.functions), "--repeats", str(args.repeats)]
    return run_in_child(__file__, backend, arguments, postgres_url=POSTGRES_URL, prefix="bench-monitor")


def report(backend, data, args):
    goal = GOALS_MS[backend]
    print(f"\n{backend}: {data['runs']:,} runs ({data['attempts']:,} attempts), {args.functions} Functions, 30 days "
          f"(seeded in {data['seed_seconds']:.0f} s); {args.repeats} repeats; baseline: the same with no runs")
    print(f"  {'measured':<42} {'p50 ms':>8} {'p95 ms':>8} {'base p50':>9} {'base p95':>9}  goal p95 < {goal} ms")
    for row in data["results"]:
        verdict = "(whole page, for reference)" if row["page"] else ("ok" if row["p95"] < goal else "OVER")
        print(f"  {row['label']:<42} {row['p50']:>8.1f} {row['p95']:>8.1f} {row['base_p50']:>9.1f} {row['base_p95']:>9.1f}  {verdict}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--functions", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.runs, args.functions, args.repeats)
    for backend in args.backends.split(","):
        report(backend, run_backend(backend, args), args)


if __name__ == "__main__":
    main()
