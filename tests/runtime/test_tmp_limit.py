"""/tmp has a hard size per attempt and is emptied after every run (issue 18, item 1): real sandbox, cold and warm."""

from __future__ import annotations

import pytest

from runtime.sandbox import Limits

from .test_warm import bundle, invoke, pool  # noqa: F401  (fixtures)

pytestmark = pytest.mark.sandbox

FILL = """
import errno, os
def handler(event, context):
    written, error = 0, None
    chunk = b"x" * (1024 * 1024)
    try:
        with open("/tmp/fill", "wb") as handle:
            for _ in range(int(event.get("mb", "64"))):
                handle.write(chunk)
                handle.flush()
                written += 1
    except OSError as exc:
        error = [exc.errno, exc.strerror]
    tmp = os.statvfs("/tmp")
    return {"written_mb": written, "error": error, "tmp_mb": tmp.f_blocks * tmp.f_frsize // (1024 * 1024)}
"""


def test_a_write_past_the_limit_fails_with_enospc_in_the_function(run_function):
    run = run_function(FILL, event={"mb": "64"}, limits=Limits(timeout_s=30, tmp_mb=16))
    assert run.result.outcome == "succeeded", run.result
    assert run.value["error"] == [28, "No space left on device"]
    assert 14 <= run.value["written_mb"] <= 16
    assert run.result.tmp_full
    # The Function's /tmp is a filesystem of its own of exactly that size, not the worker's disk (whose
    # usage other tests change meanwhile, so it cannot be compared before and after).
    assert run.value["tmp_mb"] == 16


def test_a_write_within_the_limit_succeeds_and_the_limit_is_not_reported(run_function):
    run = run_function(FILL, event={"mb": "8"}, limits=Limits(timeout_s=30, tmp_mb=16))
    assert run.value == {"written_mb": 8, "error": None, "tmp_mb": 16}
    assert not run.result.tmp_full


def test_tmp_is_emptied_after_a_warm_run_whatever_happened(invoke, bundle, pool):
    code = bundle("""
        import os
        from where import where
        def handler(event, context):
            seen = sorted(os.listdir("/tmp"))
            if event.get("write"):
                os.makedirs("/tmp/locked/deeper")
                open("/tmp/locked/deeper/secret", "w").write("run one")
                os.chmod("/tmp/locked/deeper", 0)
                os.chmod("/tmp/locked", 0)
                open("/tmp/plain", "w").write("x")
            if event.get("fail"):
                raise RuntimeError("failing after writing")
            return {"seen": seen, "where": where()}
    """)
    first, _ = invoke(code, event={"write": True, "fail": True})
    assert first.outcome == "failed"
    second, value = invoke(code)
    assert second.outcome == "succeeded"
    assert value["seen"] == [], value
    assert pool.created == 1, pool.created  # the same environment, emptied
