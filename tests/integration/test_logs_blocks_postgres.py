"""A flood's staged blocks on the real PostgreSQL: the payload expanded byte-exact and in order (and a
block staged in the COPY text of before), a crash mid-way, and two indexers at once each taking blocks
the other does not (FOR UPDATE SKIP LOCKED)."""

import threading

import pytest
from django.db import connection
from django.utils import timezone

from functions.models import Run, RunStatus
from functions.run_services import run_trigger
from logs.models import LogBlock, LogEntry
from logs.services import log_block_stage, log_blocks_index
from tests.factories import make_function, make_run
from tests.integration.processes import wait_for
from tests.integration.test_worker import queue, start_worker  # noqa: F401  (fixtures: a real Celery worker)
from tests.unit.test_logs_blocks import (  # noqa: F401  the same tests, run here on PostgreSQL
    _rows,
    small_floods,
    test_a_retry_stages_all_its_lines_behind_an_earlier_attempts_blocks,
    test_above_the_threshold_every_line_is_stored_once_in_order_with_the_report_last,
    test_an_indexer_that_dies_mid_way_loses_and_duplicates_nothing,
    test_blocks_of_several_runs_are_indexed_each_in_its_lines_order,
    test_odd_characters_and_very_long_lines_survive_staging_exactly_as_the_direct_path_stores_them,
)


@pytest.mark.django_db(transaction=True)
def test_a_block_staged_in_copy_text_before_an_upgrade_is_indexed_in_order_with_the_json_blocks_after_it(function):
    """Blocks live seconds, but an upgrade may find some: those of before, whose payload was the COPY
    text itself (organization, Function, run, attempt, timestamp, stream, message a line), keep their lines."""
    run = make_run(function)
    moment = timezone.now()
    old = "".join(f"{run.organization_id}\t{run.function_id}\t{run.id}\t1\t{moment.isoformat()}\tstdout\t"
                  f"{message}\n" for message in ("old 0", "tab\\there", "old 2"))
    LogBlock.objects.create(organization_id=run.organization_id, function_id=run.function_id, run=run, attempt=1,
                            created_at=moment, lines=3, payload=old)
    log_block_stage(run=run, attempt=1, rows=_rows(2, start=3))
    assert LogBlock.objects.filter(run=run).last().payload.startswith("[")
    assert log_blocks_index().lines == 5
    entries = list(LogEntry.objects.filter(run=run).order_by("id").values_list("message", "stream", "timestamp"))
    assert [message for message, _, _ in entries] == ["old 0", "tab\there", "old 2", "line 3", "line 4"]
    assert entries[0][1:] == ("stdout", moment)


@pytest.mark.django_db(transaction=True)
def test_two_indexers_at_once_insert_each_line_once_and_each_run_in_order(function):
    runs = [make_run(function) for _ in range(3)]
    for start in range(0, 10_000, 500):
        for run in runs:
            log_block_stage(run=run, attempt=1, rows=_rows(500, start=start))
    assert connection.vendor == "postgresql"
    start_together = threading.Barrier(2)
    results, errors = [], []

    def indexer():
        try:
            start_together.wait()
            results.append(log_blocks_index())
        except Exception as error:  # reported below, on the test's thread
            errors.append(error)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=indexer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(result.blocks for result in results) == 60 and sum(result.lines for result in results) == 30_000
    assert not LogBlock.objects.exists()
    for run in runs:
        rows = list(LogEntry.objects.filter(run=run).order_by("id").values_list("message", flat=True))
        assert rows == [f"line {i}" for i in range(10_000)]


@pytest.mark.sandbox
@pytest.mark.usefixtures("runtime_env")
@pytest.mark.django_db(transaction=True)
def test_a_flood_through_a_real_worker_is_recorded_then_indexed_by_the_task_it_sends(org, start_worker):
    """50,000 lines, past the real threshold (20,000): the worker stages the rest, sends the indexer through
    Redis (runtime.tasks), and the indexer task on the same worker turns every block into entries."""
    function = make_function(org, "flooder", files={"main.py": (
        "def handler(event, context):\n    for i in range(50000):\n        print(f'line {i}')\n"
    )})
    start_worker(concurrency=2)
    run = run_trigger(function=function, trigger="manual")
    wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, what="the run to finish")
    assert Run.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED
    wait_for(lambda: not LogBlock.objects.filter(run=run).exists(), timeout=60, what="the indexer to expand every block")
    messages = list(LogEntry.objects.filter(run=run).order_by("id").values_list("message", flat=True))
    assert messages[:-1] == [f"line {i}" for i in range(50000)] and messages[-1].startswith("REPORT RequestId:")
