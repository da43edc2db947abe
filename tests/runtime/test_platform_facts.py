"""Platform facts come from the platform (issue 18, item 6): memory, duration and outcome are measured
outside the sandbox, never taken from what a Function can write; a run that reaches its timeout is timed out.
"""

from __future__ import annotations

import os
import signal

import pytest

from runtime.sandbox import Limits

from .test_warm import bundle, invoke, pool  # noqa: F401  (fixtures)

pytestmark = pytest.mark.sandbox

# The result channel is a pipe of the Function's own process: it can find it and write a
# "result" of its own, claiming a peak memory of 976,562 MB, then end before bootstrap does.
FORGE = """
import json, os
def handler(event, context):
    for fd in range(3, 64):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("pipe:"):
            try:
                header = {"type": "result", "status": "ok", "length": 4, "maxrss_kb": 999_999_999_999}
                os.write(fd, json.dumps(header).encode() + b"\\n" + b'"hi"')
            except OSError:
                pass
    os._exit(0)
"""


def test_a_forged_result_cannot_claim_memory_it_did_not_use(run_function):
    run = run_function(FORGE)
    peak = run.result.peak_memory_mb
    assert peak is None or peak < 2000, run.result
    assert run.result.duration_ms < 30_000


def test_a_warm_run_that_stops_its_parent_ends_its_environment(invoke, bundle, pool):
    # The zygote can no longer report the run's exit nor check what it left: the run did return
    # (its result and the end of its pipes say so), but its environment is ended, stopped
    # processes and all, and the next run starts a new one.
    code = bundle("""
        import os, signal
        def handler(event, context):
            os.kill(os.getppid(), signal.SIGSTOP)
            return {"claimed": "success"}
    """)
    result, value = invoke(code, limits=Limits(timeout_s=3))
    assert (result.outcome, value) == ("succeeded", {"claimed": "success"}), result
    stopped = pool.last_environment
    pool.wait_settled()
    assert stopped.dead
    again = bundle("""
        def handler(event, context):
            return "fine"
    """)
    second, value = invoke(again)
    assert second.outcome == "succeeded" and value == "fine"


def test_a_warm_run_that_stops_its_parent_before_returning_is_timed_out(invoke, bundle, pool):
    # Stopped with its pipes still open: nothing says the run is over before its timeout.
    code = bundle("""
        import os, signal, time
        def handler(event, context):
            os.kill(os.getppid(), signal.SIGSTOP)
            time.sleep(10)
            return {"claimed": "success"}
    """)
    result, _ = invoke(code, limits=Limits(timeout_s=3))
    assert result.outcome == "timed_out", result
    assert result.reason.startswith("Timed out after 3 s")
    assert result.return_value is None
    assert pool.last_environment.dead


def test_a_run_that_returns_after_its_timeout_is_timed_out_whatever_it_wrote(run_function):
    run = run_function("""
        import time
        def handler(event, context):
            time.sleep(5)
            return "too late"
    """, limits=Limits(timeout_s=2))
    assert run.result.outcome == "timed_out" and run.result.return_value is None
