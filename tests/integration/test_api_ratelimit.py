"""With Redis as the broker, the API's rate counters live in that Redis, shared by every process."""

import pytest
from django.test import Client

from accounts.services import api_token_create
from api import ratelimit
from api.models import RateCounter

pytestmark = pytest.mark.django_db


def test_requests_per_second_are_counted_in_redis(org, settings):
    assert ratelimit.uses_redis()
    settings.API_RATE_LIMIT_PER_SECOND = 3
    _, raw = api_token_create(organization=org, name="flood", scopes=["functions:read"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    statuses = [client.get("/api/functions").status_code for _ in range(10)]
    assert 429 in statuses and statuses.count(200) >= 3
    assert not RateCounter.objects.exists()


def test_a_redis_counter_is_one_count_for_every_client(settings):
    settings.API_RATE_LIMIT_KEY_PREFIX = "functions-api:test-shared:"
    import time

    now = time.time()
    key = f"shared-{now}"
    first = [ratelimit.rate_limit_hit(key=key, limit=4, seconds=60, now=now).allowed for _ in range(3)]
    ratelimit._redis.cache_clear()  # another process: a new connection
    later = [ratelimit.rate_limit_hit(key=key, limit=4, seconds=60, now=now).allowed for _ in range(2)]
    assert first + later == [True, True, True, True, False]
