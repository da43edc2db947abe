"""The engine end to end in one process: real sandbox, real database; the broker is bypassed
by calling the task for each message the trigger would have sent (tests/engine/conftest.py)."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from functions.models import Attempt, AttemptOutcome, Run, RunStatus
from functions.run_services import run_trigger
from logs.models import LogEntry
from runtime import sandbox, services, tasks
from tests.factories import make_function


@pytest.fixture(autouse=True)
def fast_retries(settings):
    settings.FUNCTIONS_RETRY_BACKOFF_SECONDS = (0, 0)


@pytest.fixture
def execute(org, run_to_end):
    def execute(code, *, name="fn", params=None, overrides=None, handler="main.handler", files=None, **fields):
        function = make_function(org, name, files={"main.py": code, **(files or {})}, handler=handler, params=params, **fields)
        run = run_trigger(function=function, trigger="manual", overrides=overrides)
        return run_to_end(run)

    return execute


def lines(run, stream=None):
    entries = LogEntry.objects.filter(run=run).order_by("id")
    if stream:
        entries = entries.filter(stream=stream)
    return [e.message for e in entries]


def test_a_handler_runs_and_its_return_value_and_output_are_recorded(execute):
    run = execute(
        "def handler(event, context):\n    print('hello', event['name'])\n    return {'n': 1, 'who': event['name']}\n",
        params={"name": "fleet"},
    )
    assert run.status == RunStatus.SUCCEEDED and run.attempts == 1
    assert json.loads(run.return_value) == {"n": 1, "who": "fleet"}
    assert lines(run, "stdout") == ["hello fleet"]
    report = lines(run, "platform")[0]
    assert report.startswith(f"REPORT RequestId: {run.correlation_id} Attempt: 1/3") and "Outcome: succeeded" in report
    assert run.duration_ms is not None and run.peak_memory_mb > 0 and run.finished_at >= run.started_at
    attempt = Attempt.objects.get(run=run)
    assert attempt.outcome == AttemptOutcome.SUCCEEDED and attempt.worker


def test_the_function_sees_the_contract_event_context_and_environment(execute, org):
    code = (
        "import json, os\n"
        "def handler(event, context):\n"
        "    return {'event': event, 'env': dict(os.environ), 'rid': context.aws_request_id,\n"
        "            'fn': context.function_name, 'mem': context.memory_limit_in_mb,\n"
        "            'left': context.get_remaining_time_in_millis()}\n"
    )
    run = execute(code, params={"a": "1", "b": "2"}, overrides={"b": "3"}, timeout_seconds=60)
    result = json.loads(run.return_value)
    cid = str(run.correlation_id)
    assert result["event"] == {"a": "1", "b": "3", "SamsaraFunctionTriggerSource": "manual", "SamsaraFunctionCorrelationId": cid}
    assert result["rid"] == cid and result["fn"] == "fn" and int(result["mem"]) == 1769
    assert 0 < result["left"] <= 60_000
    env = result["env"]
    assert env["SamsaraFunctionName"] == "fn" and env["SamsaraFunctionOrgId"] == str(org.id)
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-west-2" and env["AWS_EXECUTION_ENV"]
    for key in ("SamsaraFunctionCodePath", "SamsaraFunctionTempStoragePath", "SamsaraFunctionExecRoleArn",
                "SamsaraFunctionSecretsPath", "SamsaraFunctionStorageName"):
        assert env[key], key
    assert not any(k.startswith(("DJANGO", "DATABASE", "CELERY", "SECRET")) for k in env)


def test_a_raising_handler_is_tried_three_times_then_fails_with_its_traceback(execute):
    run = execute("def handler(event, context):\n    print('trying')\n    raise ValueError('boom')\n")
    assert run.status == RunStatus.FAILED and run.attempts == 3
    assert run.error["type"] == "ValueError" and run.error["message"] == "boom"
    assert "main.py" in run.error["traceback"] and "line 3" in run.error["traceback"]
    assert "ValueError" in run.reason
    assert [a.outcome for a in run.attempt_rows.all()] == [AttemptOutcome.FAILED] * 3
    assert lines(run, "stdout") == ["trying"] * 3


@pytest.mark.slow
def test_a_timeout_ends_the_run_as_timed_out(execute):
    run = execute("def handler(event, context):\n    while True:\n        pass\n", timeout_seconds=1)
    assert run.status == RunStatus.TIMED_OUT and run.attempts == 3 and "Timed out" in run.reason


def test_a_redelivered_message_does_not_run_a_finished_run_again(execute):
    run = execute("def handler(event, context):\n    print('once')\n")
    assert services.run_execute(run_id=run.pk) is None
    assert lines(run, "stdout") == ["once"] and Attempt.objects.filter(run=run).count() == 1


def test_a_missing_code_package_fails_without_retries_and_says_why(org, run_to_end):
    from django.core.files.storage import default_storage

    function = make_function(org, "gone", files={"main.py": "def handler(e, c):\n    return 1\n"})
    default_storage.delete(function.deployed_version.storage_key)
    run = run_to_end(run_trigger(function=function, trigger="api"))
    assert run.status == RunStatus.FAILED and run.attempts == 1
    assert "missing from storage" in run.reason


def test_a_tampered_code_package_is_refused(org, run_to_end, settings, tmp_path):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    settings.FUNCTIONS_CACHE_DIR = tmp_path
    function = make_function(org, "tampered", files={"main.py": "def handler(e, c):\n    return 1\n"})
    key = function.deployed_version.storage_key
    default_storage.delete(key)
    default_storage.save(key, ContentFile(b"not the zip that was uploaded"))
    run = run_to_end(run_trigger(function=function, trigger="api"))
    assert run.status == RunStatus.FAILED and "does not match its hash" in run.reason


def test_process_mode_runs_without_namespaces(execute, settings):
    settings.FUNCTIONS_SANDBOX = "process"
    run = execute("def handler(event, context):\n    return 'ok'\n")
    assert run.status == RunStatus.SUCCEEDED and json.loads(run.return_value) == "ok"


# --- lost workers -----------------------------------------------------------------------------


def _claimed(org, name="lost"):
    function = make_function(org, name, files={"main.py": "def handler(e, c):\n    return 1\n"})
    run = run_trigger(function=function, trigger="api")
    run, attempt = services.run_claim(run_id=run.pk)
    return run, attempt


def _stop_heartbeat(attempt, settings):
    """As if the attempt's worker had died: its last heartbeat is past the timeout."""
    stale = timezone.now() - timedelta(seconds=settings.FUNCTIONS_HEARTBEAT_TIMEOUT_SECONDS + 1)
    Attempt.objects.filter(pk=attempt.pk).update(heartbeat_at=stale)


def test_an_attempt_without_heartbeat_is_declared_lost_and_its_run_retried(org, django_capture_on_commit_callbacks, settings):
    run, attempt = _claimed(org)
    _stop_heartbeat(attempt, settings)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert tasks.reap_lost_runs() == 1
    run.refresh_from_db()
    attempt.refresh_from_db()
    assert attempt.outcome == AttemptOutcome.WORKER_LOST and run.status == RunStatus.QUEUED
    assert run.reason == "Worker lost during attempt 1 of 3" and len(callbacks) == 1


def test_a_live_heartbeat_is_left_alone(org):
    run, attempt = _claimed(org)
    assert tasks.reap_lost_runs() == 0
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_the_last_attempt_lost_fails_the_run_with_worker_lost(org, settings):
    run, attempt = _claimed(org)
    Run.objects.filter(pk=run.pk).update(attempts=3)
    Attempt.objects.filter(pk=attempt.pk).update(number=3)
    services.runs_reap_lost(now=timezone.now() + timedelta(seconds=settings.FUNCTIONS_HEARTBEAT_TIMEOUT_SECONDS + 1))
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.reason == "Worker lost during attempt 3 of 3" and run.finished_at


def test_a_result_arriving_after_the_attempt_was_declared_lost_is_discarded(org, settings):
    run, attempt = _claimed(org)
    services.runs_reap_lost(now=timezone.now() + timedelta(seconds=settings.FUNCTIONS_HEARTBEAT_TIMEOUT_SECONDS + 1))
    late = sandbox.AttemptResult(outcome="succeeded", reason="", return_value="1", error=None, exit_code=0, duration_ms=5, peak_memory_mb=1.0)
    services.run_record_attempt(run=run, attempt=attempt, result=late, redact=lambda t: t)
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and run.return_value is None


def test_a_run_forgotten_in_the_queue_is_sent_again(org, django_capture_on_commit_callbacks):
    function = make_function(org, "stuck", files={"main.py": "def handler(e, c):\n    return 1\n"})
    run = run_trigger(function=function, trigger="api")
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tasks.reap_lost_runs()
    assert len(callbacks) == 1


def test_the_worker_s_services_say_what_to_send_again_and_never_enqueue_it_themselves(
    org, django_capture_on_commit_callbacks, settings
):
    """Only runtime.tasks talks to the broker: a retry and a lost run come back as Resend values."""
    settings.FUNCTIONS_RETRY_BACKOFF_SECONDS = (7, 9)
    run, attempt = _claimed(org, "retried")
    failed = sandbox.AttemptResult(outcome="failed", reason="boom", return_value=None, error=None, exit_code=1,
                                   duration_ms=5, peak_memory_mb=1.0)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        recorded = services.run_record_attempt(run=run, attempt=attempt, result=failed, redact=lambda t: t)
    assert recorded.run.status == RunStatus.QUEUED and recorded.resend == (services.Resend(run_id=run.pk, countdown=7),)

    lost_run, lost_attempt = _claimed(org, "lost")
    _stop_heartbeat(lost_attempt, settings)
    with django_capture_on_commit_callbacks(execute=False) as more_callbacks:
        reaped = services.runs_reap_lost()
    assert reaped.lost == 1 and services.Resend(run_id=lost_run.pk) in reaped.resend
    assert callbacks == [] and more_callbacks == []


def test_the_attempt_channel_runs_other_threads_database_calls_on_its_own_thread(org):
    import threading

    run, attempt = _claimed(org, "channel")
    channel = services.AttemptChannel(run, attempt, lambda text: text)
    answers = {}

    def other_thread():
        answers["count"] = channel.call(lambda: Run.objects.filter(pk=run.pk).count())
        try:
            channel.call(lambda: Run.objects.get(pk=-1))
        except Run.DoesNotExist:
            answers["error"] = "raised in the caller"
        channel.close()

    thread = threading.Thread(target=other_thread)
    thread.start()
    channel.serve_until_closed()
    thread.join()
    assert answers == {"count": 1, "error": "raised in the caller"}


def test_secret_values_are_masked_in_output_return_value_and_traceback(org, run_to_end):
    from secrets_vault.services import secret_set

    code = (
        "def handler(event, context):\n"
        "    print('token is hunter2-secret, twice: hunter2-secret')\n"
        "    print('split', 'hunter2-' + 'secret')\n"
        "    raise RuntimeError('failed with hunter2-secret')\n"
    )
    function = make_function(org, "leaky", files={"main.py": code})
    secret_set(function=function, name="TOKEN", value="hunter2-secret", actor=None)
    run = run_to_end(run_trigger(function=function, trigger="api"))
    stored = " ".join(lines(run)) + run.reason + json.dumps(run.error)
    assert "hunter2-secret" not in stored, stored
    assert lines(run, "stdout")[:2] == ["token is ****, twice: ****", "split ****"]
    assert "failed with ****" in run.error["message"] and "failed with ****" in run.error["traceback"]


def test_the_run_page_says_how_the_attempt_was_isolated(execute, admin_client, org):
    from django.urls import reverse

    run = execute("def handler(event, context):\n    return 1\n", name="iso")
    attempt = run.attempt_rows.get()
    assert attempt.isolation.startswith("bubblewrap; network: ")
    url = reverse("functions:run_detail", kwargs={"org_id": org.id, "name": "iso", "correlation_id": run.correlation_id})
    assert attempt.isolation in admin_client.get(url).content.decode()


def test_process_mode_says_runs_are_not_isolated(execute, settings):
    settings.FUNCTIONS_SANDBOX = "process"
    run = execute("def handler(event, context):\n    return 1\n", name="unsafe")
    assert run.attempt_rows.get().isolation.startswith("none: FUNCTIONS_SANDBOX=process")


def test_output_waits_for_room_when_the_database_falls_behind(org, monkeypatch):
    import threading
    from datetime import datetime, timezone as tz

    from runtime.sandbox import OutputLine

    monkeypatch.setattr(services, "MAX_BACKLOG_LINES", 10)
    run, attempt = _claimed(org, "flood")
    channel = services.AttemptChannel(run, attempt, lambda text: text)
    batch = [OutputLine(datetime.now(tz.utc), "stdout", f"line {i}") for i in range(10)]
    delivered = []

    def sandbox_thread():
        channel(batch)
        delivered.append(1)
        channel(batch)  # no room until the database thread writes the first ten
        delivered.append(2)
        channel.close()

    thread = threading.Thread(target=sandbox_thread)
    thread.start()
    thread.join(timeout=0.5)
    assert delivered == [1] and thread.is_alive()
    channel.serve_until_closed()
    thread.join()
    assert delivered == [1, 2] and channel.backlog == 0
    assert LogEntry.objects.filter(run=run).count() == 20
