"""Each attempt records how it started: the first run of a version starts its environment (cold),
the next forks from it (warm), each with its start-up time."""

import pytest

from functions.models import StartKind
from functions.run_services import run_trigger
from tests.unit.test_run_engine import execute, fast_retries, run_to_end, runtime_env  # noqa: F401  (fixtures)

pytestmark = pytest.mark.sandbox


def test_the_first_attempt_is_a_cold_start_and_the_next_run_a_warm_one(execute, django_capture_on_commit_callbacks):  # noqa: F811
    first = execute("def handler(event, context):\n    return 1\n", name="kinds")
    second = run_to_end(run_trigger(function=first.function, trigger="manual"), django_capture_on_commit_callbacks)
    cold, warm = first.attempt_rows.get(), second.attempt_rows.get()
    assert cold.start_kind == StartKind.COLD and warm.start_kind == StartKind.WARM
    assert cold.startup_ms is not None and warm.startup_ms is not None
    assert 0 < warm.startup_ms < cold.startup_ms


def test_process_mode_attempts_are_cold_starts(execute, settings):  # noqa: F811
    settings.FUNCTIONS_SANDBOX = "process"
    run = execute("def handler(event, context):\n    return 1\n", name="plain")
    attempt = run.attempt_rows.get()
    assert attempt.start_kind == StartKind.COLD and attempt.startup_ms >= 0
