"""A flood's lines past an attempt's first LOG_STAGING_THRESHOLD: staged in blocks, then indexed as entries.

The threshold and the worker's batch size are made small here so a few hundred lines are a flood.
tests/integration/test_logs_blocks_postgres.py runs the storage tests again on PostgreSQL (the COPY
path) and two indexers at once.
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from config.celery import app
from functions.models import Function, Run, RunStatus
from functions.run_services import run_trigger
from functions.services import function_delete
from logs import services as log_services
from logs import tasks
from logs.models import LogBlock, LogEntry, LogVolume
from logs.queries import lines_pending
from logs.services import AttemptLog, log_block_stage, log_blocks_index, log_entries_write, logs_prune
from runtime import services
from runtime.sandbox import AttemptResult, OutputLine
from tests.factories import make_function, make_run
from tests.unit.test_logs_capture import ODD_MESSAGES

THRESHOLD = 100


@pytest.fixture(autouse=True)
def small_floods(monkeypatch):
    monkeypatch.setattr(log_services, "LOG_STAGING_THRESHOLD", THRESHOLD)
    monkeypatch.setattr(services, "LOG_BATCH_SIZE", 40)


def _rows(count, *, start=0, at=None):
    at = at or datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    return [(at + timedelta(microseconds=i), "stdout", f"line {i}") for i in range(start, start + count)]


def _attempt(function, batches, *, on_blocks_staged=None):
    """One attempt through the worker's channel as run_execute drives it: output in `batches`, the REPORT
    line, the last batch stored with the outcome. The run, recorded."""
    queued = run_trigger(function=function, trigger="manual")
    run, attempt = services.run_claim(run_id=queued.pk)
    channel = services.AttemptChannel(run, attempt, services.redactor_for(run.function), keep_last_batch=True,
                                      on_blocks_staged=on_blocks_staged)
    result = AttemptResult(outcome="succeeded", reason=None, return_value="1", error=None, exit_code=0,
                           duration_ms=5, peak_memory_mb=None)
    for batch in batches:
        channel([OutputLine(*row) for row in batch])
    channel.add_report_line(lambda dropped: services.report_line(run, attempt, result, dropped_lines=dropped))
    channel.close()
    channel.serve_until_closed()
    services.run_record_attempt(run=run, attempt=attempt, result=result, redact=channel.redact,
                                write_last_batch=channel.write_last_batch)
    return Run.objects.get(pk=run.pk)


def _messages(run):
    return list(LogEntry.objects.filter(run=run).order_by("id").values_list("message", flat=True))


def test_below_the_threshold_nothing_is_staged_and_no_statement_is_added(function):
    with CaptureQueriesContext(connection) as captured:
        run = _attempt(function, [_rows(THRESHOLD - 1)])
    assert run.status == RunStatus.SUCCEEDED
    assert _messages(run)[:-1] == [f"line {i}" for i in range(THRESHOLD - 1)]
    assert not LogBlock.objects.exists()
    assert not [q for q in captured.captured_queries if "logs_logblock" in q["sql"]]


def test_above_the_threshold_every_line_is_stored_once_in_order_with_the_report_last(function):
    sends = []
    rows = _rows(1000)
    run = _attempt(function, [rows[i : i + 40] for i in range(0, 1000, 40)], on_blocks_staged=lambda: sends.append(1))
    # Recorded as finished with the flood staged: the first lines are entries already, the rest in blocks.
    assert run.status == RunStatus.SUCCEEDED
    written = LogEntry.objects.filter(run=run).count()
    assert THRESHOLD <= written < THRESHOLD + 40
    assert lines_pending(run=run) == 1001 - written
    # One indexer sent while it printed (the next would be due LOG_INDEX_DELAY_SECONDS later).
    assert sends == [1]
    result = log_blocks_index()
    assert result.finished and result.lines == 1001 - written
    entries = list(LogEntry.objects.filter(run=run).order_by("id").values_list("id", "message", "stream"))
    assert [message for _, message, _ in entries[:-1]] == [f"line {i}" for i in range(1000)]
    assert entries[-1][1].startswith("REPORT RequestId:") and entries[-1][2] == "platform"
    assert [entry_id for entry_id, _, _ in entries] == sorted(entry_id for entry_id, _, _ in entries)
    assert not LogBlock.objects.exists() and lines_pending(run=run) == 0
    assert log_blocks_index() == log_services.IndexResult(blocks=0, lines=0, finished=True)


def test_staged_lines_are_redacted_and_counted_against_the_daily_volume_as_entries_are(org, other_org, settings):
    """The same output through the direct path (threshold out of reach) and staged (threshold 0):
    the same stored lines, the same drop marker and count, the same daily volume."""
    from secrets_vault.services import secret_set

    settings.LOGS_DAILY_VOLUME_MB = 1
    outcomes = []
    for organization, threshold in ((org, 10**9), (other_org, 0)):
        log_services.LOG_STAGING_THRESHOLD = threshold
        function = make_function(organization, "leaky")
        secret_set(function=function, name="TOKEN", value="hunter2-secret", actor=None)
        at = datetime.now(UTC)
        batches = [[(at, "stdout", f"token hunter2-secret {i} " + "x" * 1000) for i in range(j, j + 40)]
                   for j in range(0, 1200, 40)]
        run = _attempt(function, batches)
        assert bool(LogBlock.objects.filter(run=run).exists()) == (threshold == 0)
        log_blocks_index()
        messages = _messages(run)
        volume = LogVolume.objects.get(organization=organization)
        outcomes.append((messages[:-1], messages[-1].rpartition("Dropped lines:")[2],
                         volume.stored_bytes, volume.dropped_lines))
    direct, staged = outcomes
    assert staged == direct
    kept, dropped_in_report, _, dropped_lines = direct
    assert kept[0] == "token **** 0 " + "x" * 1000 and "hunter2" not in "".join(kept)
    assert kept[-1].startswith("Output dropped from here") and dropped_lines == int(dropped_in_report) > 0


def test_an_indexer_that_dies_mid_way_loses_and_duplicates_nothing(run, monkeypatch):
    rows = _rows(300)
    for start in range(0, 300, 100):
        log_block_stage(run=run, attempt=1, rows=rows[start : start + 100])
    expand, calls = log_services._block_expand, []

    def dies_after_one_block(*args):
        calls.append(1)
        expand(*args)  # the lines are inserted in the block's transaction, and then the worker dies
        if len(calls) == 2:
            raise RuntimeError("worker killed")

    monkeypatch.setattr(log_services, "_block_expand", dies_after_one_block)
    with pytest.raises(RuntimeError):
        log_blocks_index()
    assert _messages(run) == [f"line {i}" for i in range(100)]
    assert LogBlock.objects.filter(run=run).count() == 2
    monkeypatch.setattr(log_services, "_block_expand", expand)
    assert log_blocks_index().lines == 200
    assert _messages(run) == [f"line {i}" for i in range(300)]
    assert not LogBlock.objects.exists()


def test_a_retry_stages_all_its_lines_behind_an_earlier_attempts_blocks(run):
    first = AttemptLog(run=run, attempt=1)
    first.write(_rows(THRESHOLD))
    first.write(_rows(50, start=THRESHOLD))
    assert first.staged == 1
    retry = AttemptLog(run=run, attempt=2)
    retry.write([(timezone.now(), "stdout", "retry's first line")])
    assert retry.staged == 1  # not written as an entry ahead of attempt 1's staged lines
    log_blocks_index()
    assert _messages(run) == [f"line {i}" for i in range(THRESHOLD + 50)] + ["retry's first line"]
    # Once nothing is pending, a retry writes entries as a first attempt does.
    third = AttemptLog(run=run, attempt=3)
    third.write([(timezone.now(), "stdout", "third")])
    assert third.staged == 0 and _messages(run)[-1] == "third"


def test_odd_characters_and_very_long_lines_survive_staging_exactly_as_the_direct_path_stores_them(function):
    start = datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC)
    rows = [(start + timedelta(microseconds=7 * (i % 3)), "stderr" if i % 5 == 0 else "stdout", message)
            for i, message in enumerate(ODD_MESSAGES)]
    rows.append((start + timedelta(seconds=99), "platform", "REPORT RequestId: x"))
    direct, staged = make_run(function), make_run(function)
    log_entries_write(run=direct, attempt=1, rows=rows)
    assert log_block_stage(run=staged, attempt=1, rows=rows) == len(rows)
    log_blocks_index()

    def stored(run):
        return list(LogEntry.objects.filter(run=run).order_by("id").values_list("attempt", "timestamp", "stream", "message"))

    assert stored(staged) == stored(direct)
    assert [message for _, _, _, message in stored(staged)] == [m.replace("\x00", "\ufffd") for _, _, m in rows]
    # Stored as Django stores times: range queries compare them correctly.
    assert LogEntry.objects.filter(run=staged, timestamp__gt=start).count() == LogEntry.objects.filter(
        run=direct, timestamp__gt=start).count()


def test_blocks_of_several_runs_are_indexed_each_in_its_lines_order(function):
    runs = [make_run(function) for _ in range(3)]
    for start in range(0, 200, 50):
        for run in runs:
            log_block_stage(run=run, attempt=1, rows=_rows(50, start=start))
    log_blocks_index()
    for run in runs:
        assert _messages(run) == [f"line {i}" for i in range(200)]


def test_deleting_a_run_or_its_function_deletes_its_blocks(org):
    function = make_function(org, "flooder")
    runs = [make_run(function) for _ in range(2)]
    for run in runs:
        log_block_stage(run=run, attempt=1, rows=_rows(10))
    runs[0].delete()
    assert list(LogBlock.objects.values_list("run_id", flat=True)) == [runs[1].pk]
    function_delete(function=Function.objects.get(pk=function.pk), actor=None)
    assert not LogBlock.objects.exists()


def test_retention_prunes_blocks_no_indexer_reached(run):
    now = timezone.now()
    log_block_stage(run=run, attempt=1, rows=_rows(10))
    log_block_stage(run=run, attempt=1, rows=_rows(10, start=10))
    LogBlock.objects.filter(pk=LogBlock.objects.order_by("id").first().pk).update(created_at=now - timedelta(days=8))
    result = logs_prune(now=now, pause=0)
    assert result.blocks_deleted == 1
    assert LogBlock.objects.get().lines == 10 and LogBlock.objects.get().created_at > now - timedelta(minutes=1)


def test_the_task_indexes_and_beat_sweeps_for_blocks_left_behind(run):
    log_block_stage(run=run, attempt=1, rows=_rows(10))
    assert tasks.index_log_blocks() == {"blocks": 1, "lines": 10}
    entry = settings.CELERY_BEAT_SCHEDULE["index-log-blocks"]
    assert entry["task"] == "logs.tasks.index_log_blocks" and entry["schedule"] <= 60
    assert "logs.tasks.index_log_blocks" in app.tasks


def test_the_run_page_its_live_log_and_the_logs_pages_say_lines_are_still_being_indexed(admin_client, function):
    run = make_run(function)
    log_entries_write(run=run, attempt=1, rows=_rows(THRESHOLD))
    log_block_stage(run=run, attempt=1, rows=_rows(1234, start=THRESHOLD))
    kwargs = {"org_id": function.organization_id, "name": function.name, "correlation_id": run.correlation_id}
    notice = "The last 1,234 lines of this run's output are still being indexed and will appear within a few seconds."
    shown = notice.replace("'", "&#x27;")

    page = admin_client.get(reverse("functions:run_detail", kwargs=kwargs)).content.decode()
    assert shown in page
    assert 'data-finished="false"' in page  # the finished run's page keeps following its output
    live = admin_client.get(reverse("functions:run_live", kwargs=kwargs), {"after": 0}).json()
    assert live["pending_text"] == notice and not live["finished"]

    logs_kwargs = {"org_id": function.organization_id, "name": function.name}
    by_run = admin_client.get(reverse("functions:logs", kwargs=logs_kwargs), {"run": str(run.correlation_id)})
    assert shown in by_run.content.decode()
    whole = admin_client.get(reverse("functions:logs", kwargs=logs_kwargs)).content.decode()
    assert "1,234 lines printed just now are still being indexed and will appear in these results within a few seconds." in whole
    org_wide = admin_client.get(reverse("logs:org", kwargs={"org_id": function.organization_id})).content.decode()
    assert "1,234 lines printed just now are still being indexed and will appear in these results within a few seconds." in org_wide
    download = admin_client.get(reverse("functions:logs_json", kwargs=logs_kwargs), {"run": str(run.correlation_id)})
    assert download["X-Logs-Lines-Pending"] == "1234"
    assert len(b"".join(download.streaming_content)) > 0

    log_blocks_index()
    page = admin_client.get(reverse("functions:run_detail", kwargs=kwargs)).content.decode()
    assert "still being indexed" not in page and 'data-finished="true"' in page
    live = admin_client.get(reverse("functions:run_live", kwargs=kwargs), {"after": 0}).json()
    assert live["pending_text"] == "" and live["finished"] is False  # more lines than one batch: it reads on
    last = LogEntry.objects.filter(run=run).order_by("-id").values_list("id", flat=True).first()
    assert admin_client.get(reverse("functions:run_live", kwargs=kwargs), {"after": last}).json()["finished"]
    download = admin_client.get(reverse("functions:logs_json", kwargs=logs_kwargs), {"run": str(run.correlation_id)})
    assert download["X-Logs-Lines-Pending"] == "0"


def test_run_function_wait_names_lines_still_being_indexed(run):
    from functions.management.commands.run_function import run_summary

    log_entries_write(run=run, attempt=1, rows=_rows(3))
    assert "pendingLines" not in run_summary(run)
    log_block_stage(run=run, attempt=1, rows=_rows(5, start=3))
    summary = run_summary(run)
    assert summary["pendingLines"] == 5 and len(summary["logs"]) == 3


@pytest.mark.parametrize(("lines", "of_run", "text"), [
    (0, True, ""),
    (0, False, ""),
    (1, True, "The last line of this run's output is still being indexed and will appear within a few seconds."),
    (2, True, "The last 2 lines of this run's output are still being indexed and will appear within a few seconds."),
    (1, False, "1 line printed just now is still being indexed and will appear in these results within a few "
               "seconds."),
    (25000, False, "25,000 lines printed just now are still being indexed and will appear in these results within a "
                   "few seconds."),
])
def test_the_pending_notice_reads_well_for_one_line_and_for_many(lines, of_run, text):
    from logs.display import pending_text

    assert pending_text(lines, of_run=of_run) == text
