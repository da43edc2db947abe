"""Failure e-mails: opt-in per member, at most one per Function per 15 minutes with the count since,
and the run page saying who was told."""

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from functions.models import Attempt, AttemptOutcome, RunStatus
from monitor import services
from monitor.models import FailureNotice
from runtime import sandbox
from runtime import services as runtime_services
from runtime import tasks
from tests.factories import make_function
from tests.monitor_fixtures import add_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def function(org):
    return make_function(org, "nightly-sync")


def fail(function, at):
    run = add_run(function, at=at, status=RunStatus.FAILED, duration_ms=5, attempts=3, reason="Handler raised ValueError: boom")
    return services.failure_notice_note(run=run, now=at)


def test_nobody_subscribed_means_no_notice(function):
    assert fail(function, timezone.now()) is None
    assert not FailureNotice.objects.exists()


def test_a_burst_of_failures_is_one_mail_now_and_one_mail_with_the_count_after_the_window(function, users):
    services.failure_subscription_set(function=function, user=users["read_only_admin"], subscribed=True)
    start = timezone.now()
    first = fail(function, start)
    assert first is not None
    services.failure_notice_send(notice_id=first.pk, now=start)
    assert len(mail.outbox) == 1 and "1 run failed" in mail.outbox[0].subject
    # Four more failures within the window: nothing is due, nothing is sent.
    for minute in range(1, 5):
        assert fail(function, start + timedelta(minutes=minute)) is None
    assert services.failure_notices_due(now=start + timedelta(minutes=10)) == []
    assert len(mail.outbox) == 1
    # Fifteen minutes after the first mail: one mail with the count.
    due = services.failure_notices_due(now=start + timedelta(minutes=15))
    assert len(due) == 1
    services.failure_notice_send(notice_id=due[0], now=start + timedelta(minutes=15))
    services.failure_notice_send(notice_id=due[0], now=start + timedelta(minutes=15))  # a redelivery sends nothing
    assert len(mail.outbox) == 2
    assert mail.outbox[1].subject == "[Acme Fleet] nightly-sync: 4 runs failed"
    assert "4 runs of nightly-sync failed after their last attempt" in mail.outbox[1].body
    assert mail.outbox[1].to == ["read_only_admin@example.com"]


def test_only_members_who_opted_in_and_may_still_read_get_the_mail(function, users):
    for role in ("full_admin", "custom_functions_read", "custom_none", "outsider"):
        services.failure_subscription_set(function=function, user=users[role], subscribed=True)
    notice = fail(function, timezone.now())
    services.failure_notice_send(notice_id=notice.pk)
    assert sorted(mail.outbox[0].to) == ["custom_functions_read@example.com", "full_admin@example.com"]


def test_a_member_who_opts_out_gets_nothing(function, users):
    services.failure_subscription_set(function=function, user=users["full_admin"], subscribed=True)
    services.failure_subscription_set(function=function, user=users["full_admin"], subscribed=True)  # twice is once
    services.failure_subscription_set(function=function, user=users["full_admin"], subscribed=False)
    assert fail(function, timezone.now()) is None and mail.outbox == []


def test_the_run_page_header_says_who_was_notified(function, users, member, org):
    services.failure_subscription_set(function=function, user=users["full_admin"], subscribed=True)
    notice = fail(function, timezone.now())
    services.failure_notice_send(notice_id=notice.pk)
    run = notice.runs.get()
    page = member("read_only_admin").get(reverse(
        "functions:run_detail", kwargs={"org_id": org.id, "name": function.name, "correlation_id": run.correlation_id}
    )).content.decode()
    assert "Failure e-mail sent to full_admin@example.com." in page


def test_a_refusing_mail_server_is_recorded_not_raised(function, users, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 1   # nothing listens there
    services.failure_subscription_set(function=function, user=users["full_admin"], subscribed=True)
    notice = services.failure_notice_send(notice_id=fail(function, timezone.now()).pk)
    assert notice.sent_at is not None and notice.recipients == []
    assert notice.problem.startswith("The mail server refused it: ConnectionRefusedError")
    assert services.run_notice_summary(notice.runs.get()).startswith("No failure e-mail went out: The mail server")


def test_the_engine_notes_a_run_failing_its_last_attempt_and_the_task_sends_it(function, users, monkeypatch):
    services.failure_subscription_set(function=function, user=users["full_admin"], subscribed=True)
    run = add_run(function, at=timezone.now(), status=RunStatus.RUNNING, attempts=3)
    attempt = Attempt.objects.create(run=run, number=3)
    failed = sandbox.AttemptResult(outcome="failed", reason="Handler raised ValueError: boom", return_value=None,
                                   error=None, exit_code=1, duration_ms=5, peak_memory_mb=1.0)
    recorded = runtime_services.run_record_attempt(run=run, attempt=attempt, result=failed, redact=lambda t: t)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.failure_notices.count() == 1
    assert Attempt.objects.get(pk=attempt.pk).outcome == AttemptOutcome.FAILED
    # The task that executed the run sends what is due, through the broker (eager here).
    monkeypatch.setattr(runtime_services, "run_execute", lambda run_id, **_options: recorded)
    monkeypatch.setattr(tasks.send_failure_notice, "delay", lambda notice_id: tasks.send_failure_notice(notice_id))
    tasks.execute_run(run.pk)
    assert len(mail.outbox) == 1 and "Handler raised ValueError: boom" in mail.outbox[0].body


def test_beat_sends_notices_whose_window_has_passed(function, users, monkeypatch):
    services.failure_subscription_set(function=function, user=users["full_admin"], subscribed=True)
    fail(function, timezone.now() - timedelta(minutes=1))
    sent = []
    monkeypatch.setattr(tasks.send_failure_notice, "delay", lambda notice_id: sent.append(notice_id))
    assert tasks.send_due_failure_notices() == 1 and len(sent) == 1
