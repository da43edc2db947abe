from django.db import models

from accounts.models import ApiToken


class IdempotentResponse(models.Model):
    """The first answer to a request sent with an `Idempotency-Key`, replayed to its retries for a day.

    Keys are the client's, so they are scoped to the token and the operation
    (e.g. "runs:<function id>"); the body's hash tells a retry from a reuse of
    the key with another request (422).
    """

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=100)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["token", "scope", "key"], name="idempotentresponse_token_scope_key_unique"),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotentresponse_created_idx")]


class RateCounter(models.Model):
    """Requests counted in one fixed window, when the broker is not Redis (see api/ratelimit.py)."""

    key = models.CharField(max_length=200)
    window = models.BigIntegerField(help_text="The window's start, in seconds since the epoch.")
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "window"], name="ratecounter_key_window_unique")]
        indexes = [models.Index(fields=["window"], name="ratecounter_window_idx")]
