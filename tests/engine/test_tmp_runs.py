"""A Function's /tmp size reaches its runs, and a full /tmp is said on the run (issue 18, item 1): real sandbox."""

import pytest

from functions.models import RunStatus
from functions.run_services import run_trigger
from tests.engine.test_run_engine import lines
from tests.factories import make_function

FILL = """
def handler(event, context):
    with open("/tmp/fill", "wb") as handle:
        for _ in range(64):
            handle.write(b"x" * (1024 * 1024))
            handle.flush()
"""


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_a_write_past_the_functions_tmp_size_fails_and_the_run_says_so(org, settings, warm, admin_client,
                                                                        run_to_end):
    settings.FUNCTIONS_WARM_ENVIRONMENTS = warm
    settings.FUNCTIONS_RETRY_BACKOFF_SECONDS = (0, 0)
    function = make_function(org, "filler", files={"main.py": FILL}, tmp_mb=8)
    run = run_to_end(run_trigger(function=function, trigger="manual"))
    assert run.status == RunStatus.FAILED
    assert "No space left on device" in run.reason and run.reason.endswith("/tmp full (8 MB limit)")
    assert any(line.startswith("/tmp reached its limit of 8 MB") for line in lines(run, "platform"))
    page = admin_client.get(f"/o/{org.id}/settings/developer/functions/filler/runs/{run.correlation_id}/")
    assert "/tmp full (8 MB limit)" in page.content.decode()
