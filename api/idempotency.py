"""`Idempotency-Key`: a retry with the same key and body within 24 hours answers the first response.

Used by `POST /functions/{name}/runs` and by alert incidents. The caller's
work runs only when no answer is stored for (token, scope, key); the unique
constraint makes two concurrent first requests store one answer: the loser's
transaction rolls back (nothing it started is kept) and it replays the
winner's answer.

    status, body = idempotent_response(
        token=token, scope=f"runs:{function.pk}", key=request.headers.get("Idempotency-Key"),
        request_body=payload, work=lambda: (200, {"data": ...}),
    )
"""

import hashlib
import json
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import IdempotentResponse

KEY_MAX_LENGTH = 255
WINDOW = timedelta(hours=24)


class IdempotencyKeyReused(Exception):
    """The key was used within 24 hours with another request body (answer 422)."""


def _hash(request_body):
    return hashlib.sha256(json.dumps(request_body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _clean_key(key):
    if not isinstance(key, str) or not key.strip() or len(key) > KEY_MAX_LENGTH or not key.isprintable():
        raise ValidationError(
            {"Idempotency-Key": [f"The Idempotency-Key header must be 1 to {KEY_MAX_LENGTH} printable characters."]}
        )
    return key.strip()


def idempotent_response(*, token, scope, key, request_body, work):
    """(status, body): `work()`'s answer, or the stored answer of an earlier request with this key.

    `key` None means the client sent no key: `work()` runs as usual and nothing
    is stored. `work` must do its writes in the database (they commit with
    the stored answer, or roll back with it) and return (status, JSON-able body).
    Raises IdempotencyKeyReused when the key came with another body.
    """
    if key is None:
        return work()
    key = _clean_key(key)
    request_hash = _hash(request_body)
    now = timezone.now()
    stored = IdempotentResponse.objects.filter(token=token, scope=scope, key=key).first()
    if stored is not None and stored.created_at < now - WINDOW:
        # An expired key starts afresh.
        IdempotentResponse.objects.filter(pk=stored.pk).delete()
        stored = None
    if stored is None:
        try:
            with transaction.atomic():
                status, body = work()
                if status < 300:
                    IdempotentResponse.objects.create(
                        token=token, scope=scope, key=key, request_hash=request_hash, status_code=status, body=body
                    )
                return status, body
        except IntegrityError:
            stored = IdempotentResponse.objects.filter(token=token, scope=scope, key=key).first()
            if stored is None:
                raise
    if stored.request_hash != request_hash:
        raise IdempotencyKeyReused(
            f"The Idempotency-Key “{key[:60]}” was already used in the last 24 hours with another request body: "
            "send a new key for a new request."
        )
    return stored.status_code, stored.body


def idempotent_responses_prune(*, now=None):
    """Delete stored answers older than the window; how many went."""
    cutoff = (now or timezone.now()) - WINDOW
    deleted, _ = IdempotentResponse.objects.filter(created_at__lt=cutoff).delete()
    return deleted
