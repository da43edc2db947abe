"""Helpers for integration tests that start real Celery processes."""

import os
import signal
import subprocess
import time


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
