"""How a failed run reads: the whole error message in its reason, and the runtime's traceback as one
log entry with its lines in order, while what the Function prints stays a line per entry."""

import pytest

from functions.models import REASON_MAX_LENGTH
from logs.models import LogEntry

from functions.run_services import run_trigger
from tests.factories import make_function


@pytest.fixture
def execute(org, run_to_end, settings):
    settings.FUNCTIONS_RETRY_BACKOFF_SECONDS = (0, 0)

    def execute(code):
        function = make_function(org, "fails", files={"main.py": code})
        return run_to_end(run_trigger(function=function, trigger="manual"))

    return execute

CAUSE_ON_THE_SECOND_LINE = '''
def helper():
    raise ValueError("Parameter validation failed:\\nInvalid type for parameter Bucket, value: 5")

def handler(event, context):
    print("first line")
    print("second line")
    helper()
'''


def test_the_reason_keeps_the_whole_message(execute):
    run = execute(CAUSE_ON_THE_SECOND_LINE)
    assert run.status == "failed" and run.attempts == 3
    expected = "Handler raised ValueError: Parameter validation failed:\nInvalid type for parameter Bucket, value: 5"
    assert run.reason == expected
    assert [a.reason for a in run.attempt_rows.all()] == [expected] * 3


def test_the_runtime_logs_a_traceback_as_one_entry_in_order(execute, settings):
    settings.FUNCTIONS_MAX_ATTEMPTS = 1
    run = execute(CAUSE_ON_THE_SECOND_LINE)
    entries = list(LogEntry.objects.filter(run=run).order_by("id").values_list("stream", "message"))
    # What the Function printed: one entry per line.
    assert entries[:2] == [("stdout", "first line"), ("stdout", "second line")]
    errors = [message for stream, message in entries if "Traceback" in message or "[ERROR]" in message]
    assert len(errors) == 1, entries
    error = errors[0]
    assert ("stderr", error) in entries
    lines = error.splitlines()
    assert lines[:2] == ["[ERROR] ValueError: Parameter validation failed:", "Invalid type for parameter Bucket, value: 5"]
    assert lines[2] == "Traceback (most recent call last):"
    assert lines.index('  File "/var/task/main.py", line 8, in handler') < lines.index(
        '  File "/var/task/main.py", line 3, in helper')
    assert lines[-1] == "Invalid type for parameter Bucket, value: 5"
    # The REPORT line stays one line, quoting the reason's first.
    report = entries[-1]
    assert report[0] == "platform" and report[1].startswith("REPORT") and "\n" not in report[1]
    assert report[1].endswith("Reason: Handler raised ValueError: Parameter validation failed:")


def test_a_very_long_message_is_capped_in_the_reason(execute, settings):
    settings.FUNCTIONS_MAX_ATTEMPTS = 1
    run = execute('def handler(event, context):\n    raise RuntimeError("x" * 50000)\n')
    assert len(run.reason) == REASON_MAX_LENGTH and run.reason.endswith("…")
    assert run.reason.startswith("Handler raised RuntimeError: xxx")
