"""What the benchmarks share: a throw-away database per backend, a child process per backend, percentiles.

Imported by the scripts beside it (`python bench/<name>.py` puts this folder on sys.path).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def worker_argv(concurrency=None):
    """A real Celery worker's command line, quiet; without ``concurrency``, the product's own default
    (WORKER_CONCURRENCY, config/settings.py), as bin/run and the Procfile start it."""
    argv = [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel", "WARNING"]
    return argv + (["--concurrency", str(concurrency)] if concurrency else [])


def concurrency_label(concurrency):
    return f"--concurrency {concurrency}" if concurrency else "the default concurrency (WORKER_CONCURRENCY)"


def runs_finished(Run, ids):
    """How many of the runs `ids` have finished.

    The benchmarks poll this while the worker they measure runs on the same machine: the
    ids of a burst are consecutive (one process triggers them one after another), so the
    question is an id range, on the primary key's index, instead of a list of thousands of
    ids compiled and sent many times a second.
    """
    if not ids:
        return 0
    first, last = min(ids), max(ids)
    runs = Run.objects.filter(pk__range=(first, last)) if last - first + 1 == len(ids) else Run.objects.filter(pk__in=ids)
    return runs.filter(finished_at__isnull=False).count()


def _postgres_admin(url):
    import psycopg

    return psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True)


def postgres_recreate(url):
    name = url.rsplit("/", 1)[1]
    with _postgres_admin(url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def postgres_drop(url):
    name = url.rsplit("/", 1)[1]
    with _postgres_admin(url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def backend_env(backend, data_dir, postgres_url):
    """The environment of a child measuring `backend`: its own DATA_DIR (SQLite), or the bench database."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="config.settings")
    if backend == "postgres":
        env["DATABASE_URL"] = postgres_url
    return env


def run_in_child(script, backend, arguments, *, postgres_url, prefix):
    """Run `script --child backend *arguments` on a fresh database; its last stdout line is JSON."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"{prefix}-{backend}-"))
    try:
        if backend == "postgres":
            postgres_recreate(postgres_url)
        done = subprocess.run(
            [sys.executable, script, "--child", backend, *arguments],
            env=backend_env(backend, data_dir, postgres_url), stdout=subprocess.PIPE, text=True, check=False,
        )
        if done.returncode:
            raise SystemExit(f"{backend}: the benchmark failed (exit {done.returncode})")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        if backend == "postgres":
            postgres_drop(postgres_url)


def stop_process(process, timeout=60):
    """Stop a worker, beat or server the benchmark started (in a session of its own).

    SIGTERM to the main process only: a Celery worker stops its pool children itself, and
    signalling the whole group can kill a child holding the pool's queue lock, after which the
    main process waits on that lock forever. The group is killed only if it does not stop.
    """
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
