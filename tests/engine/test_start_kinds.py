"""Each attempt records how it started: the first run of a version starts its environment (cold),
the next forks from it (warm), each with its start-up time (Monitor tab, "Cold and warm starts")."""

from functions.models import StartKind
from functions.run_services import run_trigger
from tests.factories import make_function

TRIVIAL = "def handler(event, context):\n    return 1\n"


def test_the_first_attempt_is_a_cold_start_and_the_next_run_a_warm_one(org, run_to_end):
    function = make_function(org, "kinds", files={"main.py": TRIVIAL})
    first = run_to_end(run_trigger(function=function, trigger="manual"))
    second = run_to_end(run_trigger(function=function, trigger="manual"))
    cold, warm = first.attempt_rows.get(), second.attempt_rows.get()
    assert cold.start_kind == StartKind.COLD and warm.start_kind == StartKind.WARM
    assert cold.startup_ms is not None and warm.startup_ms is not None
    assert 0 < warm.startup_ms < cold.startup_ms


def test_process_mode_attempts_are_cold_starts(org, run_to_end, settings):
    settings.FUNCTIONS_SANDBOX = "process"
    function = make_function(org, "plain", files={"main.py": TRIVIAL})
    attempt = run_to_end(run_trigger(function=function, trigger="manual")).attempt_rows.get()
    assert attempt.start_kind == StartKind.COLD and attempt.startup_ms >= 0
