"""The engine end to end in one process: Django, the real database and the real sandbox.

Every test here runs real Function code (the folder marks them ``sandbox``);
the broker is bypassed by calling the task for each message the trigger
would have sent, which ``run_to_end`` does.
"""

import json

import pytest

from functions.models import Run
from functions.run_services import run_trigger
from runtime import tasks


@pytest.fixture(scope="session", autouse=True)
def _runtime_env(runtime_env):
    return runtime_env


@pytest.fixture
def run_to_end(django_capture_on_commit_callbacks):
    """run_to_end(run, limit=5): deliver the run's messages as a worker would, until it ends."""

    def run_to_end(run, limit=5):
        for _ in range(limit):
            with django_capture_on_commit_callbacks(execute=False) as callbacks:
                tasks.execute_run(run.pk)
            run.refresh_from_db()
            if run.is_finished:
                return run
            assert callbacks, "a retried run must enqueue its next attempt"
            Run.objects.filter(pk=run.pk).update(next_attempt_at=None)
        return run

    return run_to_end


@pytest.fixture
def run_value(run_to_end, settings):
    """run_value(function, overrides=None): a manual run of the Function, which must succeed; its return value."""
    settings.FUNCTIONS_RETRY_BACKOFF_SECONDS = (0, 0)

    def run_value(function, overrides=None):
        run = run_trigger(function=function, trigger="manual", overrides=overrides)
        run = run_to_end(run, limit=1)
        assert run.status == "succeeded", (run.reason, run.error and run.error.get("traceback"))
        return json.loads(run.return_value)

    return run_value
