"""Fixed-window request counters that every gunicorn worker and machine sees.

With a Redis broker the counters live in that Redis (INCR and EXPIRE in one
round trip); otherwise in the database (one conditional UPDATE, or an INSERT
for a window's first request), so a count is shared however many processes
serve the API. Each key is its own counter: one token's flood never counts
against another's.
"""

import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from .models import RateCounter


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # whole seconds until the window ends (at least 1)


@lru_cache(maxsize=4)
def _redis(url):
    import redis

    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _count_redis(key, window, seconds):
    name = f"{settings.API_RATE_LIMIT_KEY_PREFIX}{key}:{window}"
    pipe = _redis(settings.CELERY_BROKER_URL).pipeline()
    pipe.incr(name)
    pipe.expire(name, seconds + 1)
    count, _ = pipe.execute()
    return count


def _count_database(key, window):
    with transaction.atomic():
        if RateCounter.objects.filter(key=key, window=window).update(count=F("count") + 1):
            return RateCounter.objects.filter(key=key, window=window).values_list("count", flat=True).get()
        try:
            with transaction.atomic():
                RateCounter.objects.create(key=key, window=window, count=1)
            return 1
        except IntegrityError:
            # Another process created the window's row first.
            RateCounter.objects.filter(key=key, window=window).update(count=F("count") + 1)
            return RateCounter.objects.filter(key=key, window=window).values_list("count", flat=True).get()


def uses_redis():
    return settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://"))


def rate_limit_hit(*, key, limit, seconds, now=None):
    """Count one request under `key`; a Verdict saying whether it is within `limit` per `seconds`."""
    now = time.time() if now is None else now
    window = int(now // seconds) * seconds
    count = _count_redis(key, window, seconds) if uses_redis() else _count_database(key, window)
    retry_after = max(1, int(window + seconds - now + 0.999))
    return Verdict(allowed=count <= limit, retry_after=retry_after)


def rate_counters_prune(*, now=None):
    """Delete database counters of windows that ended over an hour ago."""
    cutoff = (time.time() if now is None else now) - 3600
    deleted, _ = RateCounter.objects.filter(window__lt=cutoff).delete()
    return deleted
