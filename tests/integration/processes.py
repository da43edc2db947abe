"""Helpers for tests that start real Celery processes."""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def stop_process(process):
    """Stop a worker or beat the way operators do: SIGTERM to the main process only (it stops its pool)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def wait_for(predicate, timeout=60, what="condition", interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def descendants(pid):
    """The processes below ``pid``, read from /proc (any of its threads may have started them)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parents[int(entry)] = int(handle.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    below, found = {pid}, True
    while found:
        found = {child for child, parent in parents.items() if parent in below and child not in below}
        below |= found
    return below - {pid}


@contextlib.contextmanager
def sending_to(queue):
    """This process sends its tasks to ``queue``'s own set of queues (config/queues.py), the ones a
    worker started with CELERY_QUEUE=queue takes, instead of the installation's."""
    from config.celery import app

    before = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    try:
        yield queue
    finally:
        app.conf.task_default_queue = before


def procfile_command(name):
    """The command of the Procfile's ``name`` line, as bin/run (honcho) and Procfile hosts run it."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} in the Procfile")
