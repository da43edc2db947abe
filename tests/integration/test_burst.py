"""A burst of 1,000 runs through a real worker on PostgreSQL and Redis: none lost, none run twice."""

import json

import pytest
from django.db.models import Count

from functions.models import Attempt, Run, RunStatus
from functions.run_services import run_trigger
from logs.models import LogEntry
from tests.factories import make_function

from .test_worker import queue, start_worker, wait_for  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sandbox, pytest.mark.slow,
              pytest.mark.usefixtures("runtime_env")]

BURST = 1000
CODE = "def handler(event, context):\n    print('ran', context.aws_request_id)\n    return event['n']\n"


def test_a_burst_of_a_thousand_runs_loses_none_and_runs_none_twice(org, start_worker):
    function = make_function(org, "burst", files={"main.py": CODE})
    start_worker()
    runs = [run_trigger(function=function, trigger="api", overrides={"n": str(n)}) for n in range(BURST)]
    ids = [run.pk for run in runs]
    wait_for(lambda: Run.objects.filter(pk__in=ids, finished_at__isnull=False).count() == BURST, timeout=1500,
             what=f"{BURST} runs to finish")

    finished = Run.objects.filter(pk__in=ids)
    assert finished.filter(status=RunStatus.SUCCEEDED, attempts=1).count() == BURST
    assert sorted(int(json.loads(value)) for value in finished.values_list("return_value", flat=True)) == list(range(BURST))
    # One attempt each, and each Function ran once: one "ran" line per run, carrying its own id.
    per_run = Attempt.objects.filter(run__in=ids).values("run").annotate(n=Count("id"))
    assert len(per_run) == BURST and {row["n"] for row in per_run} == {1}
    lines = LogEntry.objects.filter(run__in=ids, stream="stdout").values_list("run__correlation_id", "message")
    assert len(lines) == BURST
    assert all(message == f"ran {correlation_id}" for correlation_id, message in lines)
