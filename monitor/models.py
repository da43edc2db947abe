"""Failure notices: who asked to be told when a Function's runs fail, and what was sent.

The Monitor's charts need no tables of their own: they are aggregates the
database computes from functions.Run and functions.Attempt (monitor/queries.py).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from functions.models import Function, Run


class FailureSubscription(models.Model):
    """One member's opt-in to an e-mail when a run of one Function fails after its last attempt."""

    function = models.ForeignKey(Function, on_delete=models.CASCADE, related_name="failure_subscriptions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="failure_subscriptions")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["function", "user"], name="failuresub_function_user_unique"),
        ]


class FailureNotice(models.Model):
    """One e-mail about a Function's failed runs, at most one per Function per throttle window.

    A failure opens the Function's pending notice (or joins the one already
    pending); the notice is due at once, or when the window since the last
    sent notice has passed, so a burst of failures becomes one mail with
    their count.
    """

    function = models.ForeignKey(Function, on_delete=models.CASCADE, related_name="failure_notices")
    created_at = models.DateTimeField(auto_now_add=True)
    due_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    # The e-mail addresses it went to, as the run page's header names them.
    recipients = models.JSONField(default=list, blank=True)
    # Why nothing was sent (nobody left subscribed, or the mail server refused).
    problem = models.CharField(max_length=500, blank=True)
    runs = models.ManyToManyField(Run, related_name="failure_notices")

    class Meta:
        constraints = [
            # The claim: one pending notice per Function, whichever worker saw the failure.
            models.UniqueConstraint(
                fields=["function"], condition=Q(sent_at__isnull=True), name="failurenotice_one_pending_per_function"
            ),
        ]
        indexes = [models.Index(fields=["sent_at", "due_at"], name="failurenotice_due_idx")]
