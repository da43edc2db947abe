"""Scheduled upkeep of the API's records. Thin: the work is in idempotency.py and ratelimit.py."""

from config.celery import app

from .idempotency import idempotent_responses_prune
from .ratelimit import rate_counters_prune


@app.task(name="api.tasks.prune_api_records", ignore_result=True)
def prune_api_records():
    return {"idempotentResponses": idempotent_responses_prune(), "rateCounters": rate_counters_prune()}
