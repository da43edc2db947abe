"""A run's page as a person reads it, at 1440 and 390 pixels: the status first and large, the whole
error, the durations, its own logs, a copyable correlation id, and "Run again" with its values."""

import uuid

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from functions.models import Attempt, AttemptOutcome, Run, RunStatus
from functions.run_services import run_trigger
from runtime import tasks
from tests.factories import make_function

from .conftest import assert_fits

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sandbox]

FAILING = '''
import json

def handler(event, context):
    print("checking", json.dumps(event, sort_keys=True))
    raise ValueError("Parameter validation failed:\\nInvalid type for parameter Bucket, value: 5, type: <class 'int'>")
'''


def run_until_finished(run, callbacks):
    """Every attempt in this process, as a worker would; nothing goes through the broker."""
    for _ in range(run.max_attempts):
        with callbacks(execute=False):
            tasks.execute_run(run.pk)
        Run.objects.filter(pk=run.pk).update(next_attempt_at=None)
        run.refresh_from_db()
        if run.is_finished:
            return run
    return run


def test_a_failed_run_says_so_at_a_glance_with_its_whole_error(screen, users, org, settings, artifacts_dir,
                                                               django_capture_on_commit_callbacks, runtime_env):
    settings.FUNCTIONS_RETRY_BACKOFF_SECONDS = (0, 0)
    function = make_function(org, "uploader", files={"main.py": FAILING}, params={"bucket": "reports", "region": "north"})
    with django_capture_on_commit_callbacks(execute=False):
        run = run_trigger(function=function, trigger="manual", overrides={"region": "south", "note": "x" * 300})
    run = run_until_finished(run, django_capture_on_commit_callbacks)
    assert run.status == "failed" and run.attempts == 3

    screen.sign_in(users["full_admin"])
    screen.goto(f"/o/{org.id}/settings/developer/functions/uploader/runs/{run.correlation_id}/")
    hero = screen.get_by_test_id("run-hero")
    expect(hero).to_contain_text("Failed")
    expect(hero).to_contain_text("After 3 attempts")
    assert hero.evaluate("el => parseFloat(getComputedStyle(el.querySelector('.run-hero-title')).fontSize)") >= 22
    # The cause on the message's second line is shown, in the banner and in every attempt's reason.
    expect(screen.get_by_test_id("run-reason")).to_contain_text("Invalid type for parameter Bucket, value: 5")
    reasons = screen.get_by_test_id("attempts").locator("td.reason")
    expect(reasons).to_have_count(3)
    for index in range(3):
        expect(reasons.nth(index)).to_contain_text("Invalid type for parameter Bucket")
    # The run's duration is its three attempts', each of which is listed.
    expect(screen.get_by_test_id("run-duration")).to_contain_text("in 3 attempts")
    shown = [screen.get_by_test_id("attempts").locator("tbody tr").nth(i).locator("td").nth(3).inner_text()
             for i in range(3)]
    assert all(text.endswith((" ms", " s")) for text in shown), shown
    # Event and result wrap inside their cards instead of being cut on the right.
    for block in ("run-event", "run-traceback"):
        element = screen.get_by_test_id(block)
        assert element.evaluate("el => el.scrollWidth <= el.clientWidth + 1"), block
    assert_fits(screen, "the run page")
    screen.screenshot(path=artifacts_dir / "failed.png", full_page=True)

    # The correlation id is one click away from the clipboard.
    screen.context.grant_permissions(["clipboard-read", "clipboard-write"])
    screen.get_by_role("button", name="Copy the correlation id").click()
    expect(screen.get_by_role("button", name="Copy the correlation id")).to_have_text("Copied")
    assert screen.evaluate("navigator.clipboard.readText()") == str(run.correlation_id)

    # Its logs: only this run's entries, the traceback one entry in order.
    screen.get_by_test_id("run-logs-link").click()
    expect(screen.get_by_test_id("logs-summary")).to_contain_text(f"run {run.correlation_id}")
    errors = screen.get_by_test_id("logs").locator("td.msg", has_text="[ERROR] ValueError")
    expect(errors).to_have_count(3)
    text = errors.first.inner_text()
    assert text.index("Traceback (most recent call last):") < text.index('line 6, in handler')
    screen.screenshot(path=artifacts_dir / "run-logs.png", full_page=True)


def test_run_again_starts_from_the_runs_own_values(screen, users, org, artifacts_dir, django_capture_on_commit_callbacks):
    function = make_function(org, "greeter", params={"name": "fleet", "region": "north"})
    with django_capture_on_commit_callbacks(execute=False):
        run = run_trigger(function=function, trigger="manual", overrides={"region": "south", "extra": "1"})
    screen.sign_in(users["full_admin"])
    screen.goto(f"/o/{org.id}/settings/developer/functions/greeter/runs/{run.correlation_id}/")
    screen.get_by_role("link", name="Run again").click()
    expect(screen.get_by_test_id("run-again")).to_contain_text(str(run.correlation_id))
    expect(screen.get_by_label("Value of name")).to_have_value("fleet")
    expect(screen.get_by_label("Value of region")).to_have_value("south")
    expect(screen.get_by_label("Value of extra")).to_have_value("1")
    assert_fits(screen, "the trigger form")
    screen.screenshot(path=artifacts_dir / "run-again.png", full_page=True)


def make_run(function, status, *, attempts, durations=(), reason=""):
    now = timezone.now()
    run = Run.objects.create(
        correlation_id=uuid.uuid4(), organization_id=function.organization_id, function=function,
        code_version_id=function.deployed_version_id, trigger="manual", status=status, attempts=attempts,
        max_attempts=3, timeout_seconds=900, memory_mb=1769, reason=reason, started_at=now,
        finished_at=now if status not in (RunStatus.QUEUED, RunStatus.RUNNING) else None,
        event={"SamsaraFunctionTriggerSource": "manual"}, return_value='{"ok": true}' if status == "succeeded" else None,
    )
    outcomes = {"succeeded": AttemptOutcome.SUCCEEDED, "timed_out": AttemptOutcome.TIMED_OUT}
    for number, duration in enumerate(durations, start=1):
        last = number == len(durations)
        Attempt.objects.create(
            run=run, number=number, duration_ms=duration,
            outcome=(outcomes.get(status, AttemptOutcome.FAILED) if last else AttemptOutcome.FAILED)
            if duration is not None else AttemptOutcome.RUNNING,
            reason="" if last and status == "succeeded" else reason or "Handler raised KeyError: 'x'",
        )
    return run


@pytest.mark.parametrize("status, attempts, durations, reason, title, detail", [
    ("succeeded", 2, (1200, 43250), "", "Succeeded", "In 44.5 s, on attempt 2 of 3"),
    ("running", 2, (800, None), "", "Running", "Attempt 2 of 3"),
    ("queued", 1, (800,), "Handler raised KeyError: 'x'", "Queued", "Retrying: attempt 2 of 3 is next"),
    ("timed_out", 3, (900000, 900000, 900000), "Timed out after 900 s", "Timed out", "After 3 attempts, 45 min in all"),
    ("dropped", 0, (), "Skipped: the previous scheduled run was still running", "Dropped", "Never started"),
], ids=["succeeded", "running", "queued", "timed_out", "dropped"])
def test_every_status_has_its_coloured_header(screen, users, org, artifacts_dir, status, attempts, durations, reason,
                                              title, detail):
    function = make_function(org, "statuses")
    run = make_run(function, status, attempts=attempts, durations=durations, reason=reason)
    screen.sign_in(users["read_only_admin"])
    screen.goto(f"/o/{org.id}/settings/developer/functions/statuses/runs/{run.correlation_id}/")
    hero = screen.get_by_test_id("run-hero")
    expect(screen.get_by_test_id("run-status")).to_have_text(title)
    expect(hero).to_contain_text(detail)
    if reason:
        expect(screen.get_by_test_id("run-reason")).to_contain_text(reason)
    colours = {hero.evaluate("el => getComputedStyle(el).backgroundColor")}
    assert colours != {"rgba(0, 0, 0, 0)"}
    expect(screen.get_by_role("link", name="Run again")).to_have_count(0)  # a reader cannot start runs
    assert_fits(screen, f"a {status} run")
    screen.screenshot(path=artifacts_dir / f"{status}.png", full_page=True)


def test_the_runs_list_shows_each_runs_whole_duration(screen, users, org, artifacts_dir):
    function = make_function(org, "durations")
    make_run(function, "failed", attempts=3, durations=(1000, 1500, 2000))
    make_run(function, "succeeded", attempts=1, durations=(840,))
    screen.sign_in(users["full_admin"])
    screen.goto(f"/o/{org.id}/settings/developer/functions/durations/runs/")
    runs = screen.get_by_test_id("runs")
    expect(runs).to_contain_text("4.50 s")
    expect(runs).to_contain_text("840 ms")
    assert_fits(screen, "the runs list")
    screen.screenshot(path=artifacts_dir / "runs.png", full_page=True)
