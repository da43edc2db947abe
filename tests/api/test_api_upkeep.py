"""Stored Idempotency-Key answers and database rate counters are pruned once past their use."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from api.idempotency import idempotent_response, idempotent_responses_prune
from api.models import IdempotentResponse, RateCounter
from api.ratelimit import rate_counters_prune, rate_limit_hit
from api.tasks import prune_api_records

pytestmark = pytest.mark.django_db


def test_old_idempotent_answers_and_counters_are_pruned(api):
    idempotent_response(token=api.token, scope="s", key="k1", request_body={}, work=lambda: (200, {"data": 1}))
    idempotent_response(token=api.token, scope="s", key="k2", request_body={}, work=lambda: (200, {"data": 2}))
    IdempotentResponse.objects.filter(key="k1").update(created_at=timezone.now() - timedelta(hours=25))
    rate_limit_hit(key="old", limit=5, seconds=1, now=time.time() - 7200)
    rate_limit_hit(key="new", limit=5, seconds=1)
    assert prune_api_records() == {"idempotentResponses": 1, "rateCounters": 1}
    assert list(IdempotentResponse.objects.values_list("key", flat=True)) == ["k2"]
    assert list(RateCounter.objects.values_list("key", flat=True)) == ["new"]
    assert idempotent_responses_prune() == 0 and rate_counters_prune() == 0


def test_a_failed_request_is_not_remembered(api):
    def refuse():
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError):
        idempotent_response(token=api.token, scope="s", key="k", request_body={}, work=refuse)
    assert idempotent_response(token=api.token, scope="s", key="k", request_body={}, work=lambda: (200, {"ok": 1})) == (200, {"ok": 1})


def test_the_database_counter_counts_within_a_window(api):
    now = time.time()
    verdicts = [rate_limit_hit(key="k", limit=2, seconds=60, now=now) for _ in range(3)]
    assert [v.allowed for v in verdicts] == [True, True, False]
    assert 1 <= verdicts[-1].retry_after <= 60
    assert rate_limit_hit(key="k", limit=2, seconds=60, now=now + 60).allowed
