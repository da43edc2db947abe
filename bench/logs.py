"""Log queries at scale: 5 million entries across 100 Functions over 7 days, on SQLite and PostgreSQL.

    .venv/bin/python bench/logs.py [--backends sqlite,postgres] [--entries 5000000] [--functions 100] [--repeats 30]

For each backend, a child process gets a database of its own (SQLite: a file
in a temporary DATA_DIR; PostgreSQL: the database `bench_logs` at
BENCH_DATABASE_URL, created and dropped here, never the test database),
migrates it, seeds the entries, then measures through the real query service
(logs.queries) and the real views:

  * the default query: one Function, last 24 hours, newest first, 1,000 entries
  * a search matching 0.1% of the entries (one Function, last 24 hours and 7 days; organization-wide 24 hours)
  * sort by message (one Function, last 24 hours; first page, and the page after it alone)
  * the organization-wide default query, and the Logs tab as a whole page (query plus rendering)
  * organization-wide sort by message over 7 days (the message index, migration 0006, gives it a page at a time)
  * a full JSON download through the view (organization-wide, last 24 hours), in a process of its own:
    entries per second, and its memory (peak RSS from /proc, less the process before the download)

SQLite searches read at most logs.queries.SQLITE_SCAN_BUDGET entries per page, so an
organization-wide search may end its page early with a cursor (the entries column shows it).

and prints p50 and p95 next to the goals (PostgreSQL under 100 ms, SQLite under
300 ms; download over 100,000 entries/s in under 100 MB).
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import _support  # noqa: E402  (bench/ is on sys.path when run as a script)
from _support import percentile  # noqa: E402

POSTGRES_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_logs")
GOALS_MS = {"sqlite": 300, "postgres": 100}
NEEDLE = "quota-exceeded"  # in exactly 1 of every 1,000 entries
LINES_PER_RUN = 50


def django_setup():
    import django

    django.setup()


# --- seeding ----------------------------------------------------------------------------------

TEMPLATES = (
    "INFO fetched {a} vehicles from /fleet/vehicles in {b} ms",
    "DEBUG vehicle {id} odometer={a} fuel={b}%",
    "INFO route {id} assigned to driver {a}",
    "WARN retrying request {id} after HTTP 429 (attempt {b})",
    "INFO wrote {a} rows to storage key reports/{id}.csv",
    "DEBUG cache miss for asset {id}",
    "ERROR upstream returned 502 for {id}; giving up after {b} tries",
    "INFO sending alert digest to {a} recipients",
)


def _message(n, rng):
    if n % 1000 == 0:
        return f"ERROR {NEEDLE} for organization bucket {rng.getrandbits(32):08x}"
    template = TEMPLATES[rng.randrange(len(TEMPLATES))]
    return template.format(id=f"{rng.getrandbits(48):012x}", a=rng.randrange(1, 100000), b=rng.randrange(1, 900))


def seed(entries, functions):
    """Organization, Full Admin, Functions with a code version, runs, then the entries in bulk."""
    from django.db import connection

    from accounts.models import BuiltinRole, Membership, Organization, User
    from functions.models import CodeVersion, Function, Run, RunStatus

    rng = random.Random(8)
    org = Organization.objects.create(name="Bench Fleet", timezone="America/Chicago")
    user = User.objects.create_user("bench@example.com")  # signed in with force_login: no password
    Membership.objects.create(user=user, organization=org, builtin_role=BuiltinRole.FULL_ADMIN)
    fns = []
    for i in range(functions):
        fn = Function.objects.create(organization=org, name=f"fn-{i:03d}", handler="main.handler")
        version = CodeVersion.objects.create(
            function=fn, number=1, sha256="0" * 64, size=1, uncompressed_size=1, file_count=1,
            storage_key="none", handler="main.handler",
        )
        fns.append((fn, version))
    now = datetime.now(UTC)
    window_start = now - timedelta(days=7) + timedelta(minutes=30)
    span = (now - timedelta(minutes=1) - window_start).total_seconds()
    run_count = entries // LINES_PER_RUN
    starts = sorted(window_start + timedelta(seconds=rng.random() * span) for _ in range(run_count))
    runs = []
    for start in starts:
        fn, version = fns[rng.randrange(functions)]
        runs.append(Run(
            organization=org, function=fn, code_version=version, status=RunStatus.SUCCEEDED, trigger="schedule",
            event={}, attempts=1, timeout_seconds=900, memory_mb=1769, started_at=start,
            finished_at=start + timedelta(milliseconds=LINES_PER_RUN * 3), duration_ms=LINES_PER_RUN * 3,
        ))
    Run.objects.bulk_create(runs, batch_size=5000)
    run_rows = list(Run.objects.order_by("started_at", "id").values_list("id", "function_id", "started_at"))

    def rows():
        n = 0
        for run_id, function_id, started in run_rows:
            for line in range(LINES_PER_RUN):
                n += 1
                # Every third line shares its timestamp with the one before: ties are the cursor's hard case.
                ts = started + timedelta(milliseconds=line - line % 3)
                stream = "stderr" if line % 17 == 0 else "stdout"
                yield n, org.id, function_id, run_id, 1, ts, stream, _message(n, rng)

    started = time.perf_counter()
    if connection.vendor == "sqlite":
        _seed_sqlite(connection, rows())
    else:
        _seed_postgres(connection, rows())
    return org, user, time.perf_counter() - started


COLUMNS = "id, organization_id, function_id, run_id, attempt, timestamp, stream, message"


def _index_definitions(connection):
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'logs_logentry' AND sql IS NOT NULL")
        else:
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'logs_logentry' AND indexname NOT LIKE '%pkey'")
        return cursor.fetchall()


def _seed_sqlite(connection, rows):
    """executemany in big transactions with the secondary indexes dropped, then rebuilt (a sort each)."""
    import itertools

    raw = connection.connection if connection.connection else (connection.ensure_connection() or connection.connection)
    indexes = _index_definitions(connection)
    raw.execute("PRAGMA synchronous=OFF")
    for name, _ in indexes:
        raw.execute(f'DROP INDEX "{name}"')
    triggers = raw.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'logs_logentry'").fetchall()
    for name, _ in triggers:
        raw.execute(f'DROP TRIGGER "{name}"')
    sql = f"INSERT INTO logs_logentry ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    while True:
        batch = [
            (n, org, fn, run, attempt, str(ts.replace(tzinfo=None)), stream, message)
            for n, org, fn, run, attempt, ts, stream, message in itertools.islice(rows, 200_000)
        ]
        if not batch:
            break
        raw.execute("BEGIN")
        raw.executemany(sql, batch)
        raw.execute("COMMIT")
    for _, definition in indexes:
        raw.execute(definition)
    for _, definition in triggers:
        raw.execute(definition)
    # The search index, when the migration made one, is rebuilt from the table in one pass.
    if raw.execute("SELECT 1 FROM sqlite_master WHERE name = 'logs_logentry_fts'").fetchone():
        raw.execute("INSERT INTO logs_logentry_fts(logs_logentry_fts) VALUES ('rebuild')")
    # No ANALYZE: the application never runs it, so the planner works without statistics, as it will in use.
    raw.execute("PRAGMA synchronous=NORMAL")


def _seed_postgres(connection, rows):
    """COPY with the secondary indexes dropped, then rebuilt; ANALYZE, as autovacuum would soon."""
    indexes = _index_definitions(connection)
    with connection.cursor() as cursor:
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        with cursor.copy(f"COPY logs_logentry ({COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute("SELECT setval(pg_get_serial_sequence('logs_logentry', 'id'), (SELECT max(id) FROM logs_logentry))")
        cursor.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in indexes:
            cursor.execute(definition)
        cursor.execute("VACUUM ANALYZE logs_logentry")
        cursor.execute("ANALYZE functions_run")


# --- measuring ----------------------------------------------------------------------------------


def timed(function, repeats):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return times


def measure(org, user, repeats):
    from django.test import Client
    from django.urls import reverse

    from functions.models import Function
    from logs.queries import log_page, parse_log_query

    rng = random.Random(9)
    functions = list(Function.objects.filter(organization=org))
    results = []

    def case(label, params, *, org_wide=False, pages=1, repeats=repeats):
        """Time parse + one page; with pages=2 only the second page is timed, its cursor made beforehand."""
        counts, times = [], []
        for attempt in range(repeats + 1):
            fn = None if org_wide else rng.choice(functions)
            cursor = None
            if pages == 2:
                cursor = log_page(parse_log_query(params, organization=org, function=fn)).next_cursor
            started = time.perf_counter()
            query = parse_log_query({**params, **({"after": cursor} if cursor else {})}, organization=org, function=fn)
            entries, _ = log_page(query)
            elapsed = (time.perf_counter() - started) * 1000
            if attempt:  # the first warms the caches, as an operator's second query would find them
                times.append(elapsed)
                counts.append(len(entries))
        results.append({"label": label, "p50": percentile(times, 0.5), "p95": percentile(times, 0.95),
                        "entries": round(statistics.mean(counts))})

    case("default: one Function, 24 h, newest first", {})
    case("search 0.1%: one Function, 24 h", {"q": NEEDLE.upper()})
    case("search 0.1%: one Function, 7 days", {"q": NEEDLE, "range": "7d"})
    case("sort by message: one Function, 24 h", {"sort": "message"})
    case("sort by message: one Function, 24 h, 2nd page", {"sort": "message"}, pages=2)
    case("newest first: one Function, 7 days, 2nd page", {"range": "7d"}, pages=2)
    case("organization-wide: 24 h, newest first", {}, org_wide=True)
    case("organization-wide search 0.1%: 24 h", {"q": NEEDLE}, org_wide=True)
    case("organization-wide search 0.1%: 7 days", {"q": NEEDLE, "range": "7d"}, org_wide=True)
    # Once beyond the goal (every entry of the week sorted); now read from the message index.
    case("organization-wide sort by message: 7 days", {"sort": "message", "range": "7d"}, org_wide=True,
         repeats=max(3, repeats // 6))

    client = Client()
    client.force_login(user)
    fn = functions[0]
    url = reverse("functions:logs", kwargs={"org_id": org.id, "name": fn.name})
    client.get(url)
    times = timed(lambda: client.get(url), max(5, repeats // 3))
    results.append({"label": "Logs tab page (query + 1,000 rows rendered)", "p50": percentile(times, 0.5),
                    "p95": percentile(times, 0.95), "entries": 1000, "page": True})
    return results


def _status_kb(field):
    """From /proc/self/status: VmHWM is this process's peak RSS (getrusage's ru_maxrss would include the
    parent's, kept across exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def download(org_id):
    """The JSON download through the view, read as a client would: entries/s and this process's peak RSS."""
    from django.test import Client
    from django.urls import reverse

    from accounts.models import User

    client = Client()
    client.force_login(User.objects.get(email="bench@example.com"))
    baseline_kb = _status_kb("VmHWM")
    started = time.perf_counter()
    response = client.get(reverse("logs:org_json", kwargs={"org_id": org_id}))
    assert response.status_code == 200, response.content[:500]
    size = entries = 0
    tail = b""
    for chunk in response.streaming_content:
        size += len(chunk)
        entries += chunk.count(b'"correlationId"')
        tail = chunk[-2:]
    seconds = time.perf_counter() - started
    assert tail.endswith(b"]"), "the download must be one complete JSON array"
    peak_kb = _status_kb("VmHWM")
    return {
        "entries": entries, "seconds": seconds, "per_second": entries / seconds, "mb": size / 1e6,
        "peak_rss_mb": peak_kb / 1024, "baseline_rss_mb": baseline_kb / 1024,
        "disposition": response["Content-Disposition"],
    }


# --- processes ---------------------------------------------------------------------------------


def child(backend, entries, functions, repeats):
    django_setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    org, user, seconds = seed(entries, functions)
    print(f"[{backend}] seeded {entries:,} entries in {seconds:.0f} s", file=sys.stderr, flush=True)
    results = measure(org, user, repeats)
    size = None
    if connection.vendor == "sqlite":
        size = os.path.getsize(connection.settings_dict["NAME"]) / 1e6
    else:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_total_relation_size('logs_logentry')")
            size = cursor.fetchone()[0] / 1e6
    connection.close()
    done = subprocess.run(
        [sys.executable, __file__, "--download-child", str(org.id)], env=os.environ.copy(),
        capture_output=True, text=True, check=False,
    )
    if done.returncode:
        raise SystemExit(f"download child failed:\n{done.stderr}")
    print(json.dumps({"results": results, "download": json.loads(done.stdout.strip().splitlines()[-1]),
                      "seed_seconds": seconds, "db_mb": size}))


def download_child(org_id):
    django_setup()
    print(json.dumps(download(int(org_id))))


def run_backend(backend, args):
    arguments = ["--entries", str(args.entries), "--functions", str(args.functions), "--repeats", str(args.repeats)]
    return _support.run_in_child(__file__, backend, arguments, postgres_url=POSTGRES_URL, prefix="bench-logs")


def report(backend, data, args):
    goal = GOALS_MS[backend]
    print(f"\n{backend}: {args.entries:,} entries, {args.functions} Functions, 7 days "
          f"(seeded in {data['seed_seconds']:.0f} s; table and indexes {data['db_mb']:,.0f} MB); {args.repeats} repeats")
    print(f"  {'query':<52} {'entries':>7} {'p50 ms':>8} {'p95 ms':>8}  goal p95 < {goal} ms")
    for row in data["results"]:
        verdict = "ok" if row["p95"] < goal else "OVER (known, see the report)"
        if row.get("page"):
            verdict = "(whole page, for reference)"
        print(f"  {row['label']:<52} {row['entries']:>7} {row['p50']:>8.1f} {row['p95']:>8.1f}  {verdict}")
    d = data["download"]
    own_mb = d["peak_rss_mb"] - d["baseline_rss_mb"]
    ok = "ok" if d["per_second"] > 100_000 and own_mb < 100 else "OVER"
    print(f"  download, organization-wide 24 h: {d['entries']:,} entries, {d['mb']:.0f} MB in {d['seconds']:.1f} s = "
          f"{d['per_second']:,.0f} entries/s; the download's own memory {own_mb:.0f} MB (process peak RSS "
          f"{d['peak_rss_mb']:.0f} MB, of which Django and the test client before it {d['baseline_rss_mb']:.0f} MB)"
          f"  goal > 100,000/s in < 100 MB: {ok}")
    print(f"  file name: {d['disposition']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--entries", type=int, default=5_000_000)
    parser.add_argument("--functions", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--child")
    parser.add_argument("--download-child")
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.entries, args.functions, args.repeats)
    if args.download_child:
        return download_child(args.download_child)
    for backend in args.backends.split(","):
        report(backend, run_backend(backend, args), args)


if __name__ == "__main__":
    main()
