"""A flood of output stays one attempt's problem (issue 18, item 5): the real sandbox, cold and warm."""

import pytest
from django.utils import timezone

from functions.models import Attempt, RunStatus
from functions.run_services import run_trigger
from logs.models import LogEntry, LogVolume
from tests.engine.test_run_engine import lines
from tests.factories import make_function

FLOOD = "def handler(event, context):\n    for i in range(400_000):\n        print('flood line', i, 'x' * 40)\n"


@pytest.fixture(params=["cold", "warm"])
def start_kind(request, settings):
    settings.FUNCTIONS_WARM_ENVIRONMENTS = request.param == "warm"
    settings.FUNCTIONS_RETRY_BACKOFF_SECONDS = (0, 0)
    return request.param


@pytest.fixture
def execute(org, run_to_end):
    def execute(code, name="fn", organization=None):
        function = make_function(organization or org, name, files={"main.py": code})
        run = run_trigger(function=function, trigger="manual")
        return run_to_end(run)

    return execute


def test_a_run_stopped_for_its_output_is_not_retried_and_says_so(execute, start_kind, settings, admin_client, org):
    settings.FUNCTIONS_MAX_OUTPUT_MB = 2
    run = execute(FLOOD)
    assert run.status == RunStatus.FAILED and run.attempts == 1, (run.status, run.attempts, run.reason)
    assert run.reason.startswith("Output limit of 2 MB exceeded") and "not retried" in run.reason
    assert Attempt.objects.filter(run=run).count() == 1
    stored = LogEntry.objects.filter(run=run).count()
    assert 0 < stored < 400_000
    page = admin_client.get(
        f"/o/{org.id}/settings/developer/functions/fn/runs/{run.correlation_id}/"
    ).content.decode()
    assert "not retried: the Function&#x27;s own output stopped it" in page or "not retried: the Function's own output stopped it" in page


def test_an_organization_over_its_daily_log_volume_drops_lines_with_one_marker(execute, start_kind, settings, org, other_org):
    settings.LOGS_DAILY_VOLUME_MB = 1
    code = "def handler(event, context):\n    for i in range(30_000):\n        print('line', i, 'y' * 60)\n    return 'done'\n"
    run = execute(code)
    assert run.status == RunStatus.SUCCEEDED  # the Function itself is not punished
    stdout = lines(run, "stdout")
    assert stdout[0] == "line 0 " + "y" * 60
    assert 10_000 < len(stdout) < 30_000
    assert sum(len(line) for line in stdout) <= 1024 * 1024
    markers = [m for m in lines(run, "platform") if m.startswith("Output dropped from here")]
    assert len(markers) == 1 and "daily log volume of 1 MB" in markers[0]
    report = [m for m in lines(run, "platform") if m.startswith("REPORT")][0]
    dropped = 30_000 - len(stdout)
    assert f"Dropped lines: {dropped}" in report
    volume = LogVolume.objects.get(organization=org, day=timezone.now().date())
    assert volume.dropped_lines == dropped and volume.stored_bytes <= 1024 * 1024
    # The next run of the day keeps nothing but its platform lines; another organization is untouched.
    again = execute("def handler(event, context):\n    print('more ' * 40)\n", name="fn2")
    assert lines(again, "stdout") == [] and any(m.startswith("Output dropped") for m in lines(again, "platform"))
    elsewhere = execute("def handler(event, context):\n    print('hello')\n", name="fn3", organization=other_org)
    assert lines(elsewhere, "stdout") == ["hello"]
