"""Run health's writes: failure notices (opt-in, throttled per Function) and run retention."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.access import Area, may_read
from config.housekeeping import delete_in_batches
from accounts.models import Membership, Organization
from functions.models import FINISHED_STATUSES, Attempt, Run
from functions.run_filters import runs_retention_cutoff
from logs.models import LogEntry

from .models import FailureNotice, FailureSubscription

logger = logging.getLogger(__name__)

PRUNE_BATCH = 1000
PRUNE_PAUSE_SECONDS = 0.05


# --- subscriptions ---------------------------------------------------------------------------


def failure_subscription_set(*, function, user, subscribed):
    """Opt the member in or out of failure e-mails for this Function; idempotent."""
    if subscribed:
        try:
            with transaction.atomic():
                FailureSubscription.objects.get_or_create(function=function, user=user)
        except IntegrityError:  # a double click raced itself: the row is there
            pass
    else:
        FailureSubscription.objects.filter(function=function, user=user).delete()


def _recipients(function):
    """Subscribers who are still members allowed to read Functions, by e-mail."""
    memberships = {
        m.user_id: m
        for m in Membership.objects.filter(organization_id=function.organization_id).select_related("custom_role")
    }
    emails = []
    for subscription in FailureSubscription.objects.filter(function=function).select_related("user").order_by("user__email"):
        membership = memberships.get(subscription.user_id)
        if membership is not None and subscription.user.is_active and may_read(membership, Area.FUNCTIONS):
            emails.append(subscription.user.email)
    return emails


# --- notices ---------------------------------------------------------------------------------


def _window():
    return timedelta(minutes=settings.FAILURE_NOTICE_MINUTES)


def failure_notice_note(*, run, now=None):
    """A run failed after its last attempt: join it to the Function's pending notice, or open one.

    Call inside the transaction that finishes the run. Returns the notice to
    send now (its due time has come), or None when it waits for the throttle
    window or nobody is subscribed.
    """
    if not FailureSubscription.objects.filter(function_id=run.function_id).exists():
        return None
    now = now or timezone.now()
    last_sent = (
        FailureNotice.objects.filter(function_id=run.function_id, sent_at__isnull=False).order_by("-sent_at").first()
    )
    due = max(now, last_sent.sent_at + _window()) if last_sent else now
    pending = FailureNotice.objects.filter(function_id=run.function_id, sent_at__isnull=True).first()
    if pending is None:
        try:
            with transaction.atomic():
                pending = FailureNotice.objects.create(function_id=run.function_id, due_at=due)
        except IntegrityError:  # another worker opened it a moment ago
            pending = FailureNotice.objects.get(function_id=run.function_id, sent_at__isnull=True)
    pending.runs.add(run)
    return pending if pending.due_at <= now else None


def failure_notice_send(*, notice_id, now=None):
    """Send a due notice once: claimed by a conditional update, so two workers never both mail."""
    now = now or timezone.now()
    notice = FailureNotice.objects.select_related("function__organization").filter(pk=notice_id).first()
    if notice is None or notice.sent_at is not None or notice.due_at > now:
        return None
    if not FailureNotice.objects.filter(pk=notice.pk, sent_at__isnull=True).update(sent_at=now):
        return None
    function = notice.function
    failures = notice.runs.count()
    latest = notice.runs.order_by("-finished_at", "-id").first()
    recipients = _recipients(function)
    problem = "" if recipients else "Nobody was subscribed any more."
    if recipients:
        subject, body = _notice_text(function, failures, latest)
        try:
            send_mail(subject, body, None, recipients)
        except Exception as error:  # the mail server's refusal is shown, not retried into a flood
            logger.warning("failure notice %s for %s not sent: %s", notice.pk, function.name, error)
            problem = f"The mail server refused it: {type(error).__name__}: {str(error)[:300]}"
            recipients = []
    FailureNotice.objects.filter(pk=notice.pk).update(recipients=recipients, problem=problem)
    notice.refresh_from_db()
    return notice


def _notice_text(function, failures, latest):
    org = function.organization
    site = getattr(settings, "SITE_URL", "").rstrip("/")
    runs_url = site + reverse("functions:runs", kwargs={"org_id": org.id, "name": function.name}) + "?status=failed"
    noun = "run" if failures == 1 else "runs"
    subject = f"[{org.name}] {function.name}: {failures} {noun} failed"
    lines = [
        f"{failures} {noun} of {function.name} failed after their last attempt "
        f"since the last notice (at most one notice per {settings.FAILURE_NOTICE_MINUTES} minutes).",
        "",
    ]
    if latest is not None:
        run_url = site + reverse(
            "functions:run_detail",
            kwargs={"org_id": org.id, "name": function.name, "correlation_id": latest.correlation_id},
        )
        lines += [
            f"Latest: {latest.get_status_display()} at {timezone.localtime(latest.finished_at or latest.created_at):%Y-%m-%d %H:%M:%S %Z}",
            f"Reason: {latest.reason or '(none recorded)'}",
            f"Run: {run_url}",
        ]
    lines += [f"All failed runs: {runs_url}", "", "You get this because you asked to be told when this Function fails; "
              "turn it off on the Function's Monitor tab."]
    return subject, "\n".join(lines)


def failure_notices_due(*, function_id=None, now=None):
    """Ids of pending notices whose time has come (beat sends them; a lost message costs a minute)."""
    now = now or timezone.now()
    due = FailureNotice.objects.filter(sent_at__isnull=True, due_at__lte=now)
    if function_id is not None:
        due = due.filter(function_id=function_id)
    return list(due.values_list("pk", flat=True)[:500])


def run_notice_summary(run):
    """What the run page's header says about the failure e-mail of this run, or ""."""
    notice = run.failure_notices.order_by("-id").first()
    if notice is None:
        return ""
    if notice.sent_at is None:
        return (f"A failure e-mail is due {timezone.localtime(notice.due_at):%H:%M %Z} "
                f"(at most one per {settings.FAILURE_NOTICE_MINUTES} minutes).")
    if notice.recipients:
        return f"Failure e-mail sent to {', '.join(notice.recipients)}."
    return f"No failure e-mail went out: {notice.problem}"


# --- retention -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunPruneResult:
    cutoff: datetime
    deleted: int
    batches: int
    finished: bool


def runs_prune(*, now=None, batch_size=PRUNE_BATCH, pause=PRUNE_PAUSE_SECONDS, max_seconds=None):
    """Delete finished runs created before the retention window, oldest first, in small batches.

    Ids first (the created_at index), then a delete by primary key: each
    transaction is short whatever the table size. Runs still queued or
    running are left for the engine to finish.
    """
    cutoff = runs_retention_cutoff(now)
    organizations = iter(Organization.objects.order_by("pk").values_list("pk", flat=True))
    current = [next(organizations, None)]

    def next_ids(size):
        # Organization by organization, each on its (organization, created_at) index, oldest first;
        # a batch may span organizations, so a short one means there is nothing left anywhere.
        ids = []
        while current[0] is not None and len(ids) < size:
            found = list(
                Run.objects.filter(organization_id=current[0], created_at__lt=cutoff, status__in=FINISHED_STATUSES)
                .order_by("created_at").values_list("id", flat=True)[: size - len(ids)]
            )
            ids += found
            if len(ids) < size:
                current[0] = next(organizations, None)
        return ids

    def delete(ids):
        # Children first, by run id, so the collector never loads rows into Python.
        Attempt.objects.filter(run_id__in=ids).delete()
        FailureNotice.runs.through.objects.filter(run_id__in=ids).delete()
        _delete_logs_of(ids)
        return Run.objects.filter(id__in=ids).delete()[0]

    done = delete_in_batches(next_ids=next_ids, delete=delete, batch_size=batch_size, pause=pause, max_seconds=max_seconds)
    deleted, batches, finished = done.deleted, done.batches, done.finished
    if deleted:
        logger.info("runs: deleted %s runs created before %s in %s batches", deleted, cutoff.isoformat(), batches)
    return RunPruneResult(cutoff=cutoff, deleted=deleted, batches=batches, finished=finished)


def _delete_logs_of(run_ids):
    # Log entries keep a shorter retention of their own; a run this old has
    # none left unless LOGS_RETENTION_DAYS was raised above RUNS_RETENTION_DAYS.
    LogEntry.objects.filter(run_id__in=run_ids).delete()

