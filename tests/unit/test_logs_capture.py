"""Capture: a run's output lines stored by logs.services.log_entries_write, and through the real engine."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from functions.models import RunStatus
from functions.run_services import run_trigger
from logs.models import LogBlock, LogEntry, LogVolume
from logs.services import log_blocks_index, log_entries_write, log_volume_admit
from runtime import services
from tests.factories import make_function


def test_rows_are_stored_exactly_with_their_run_attempt_and_time(run):
    shared = datetime(2026, 11, 26, 1, 2, 3, 456789, tzinfo=UTC)
    whole_second = datetime(2026, 11, 26, 1, 2, 4, tzinfo=UTC)
    rows = [(shared, "stdout", "first"), (shared, "stderr", "it's “quoted” ' \" ; -- DROP"), (whole_second, "stdout", "ü €")]
    assert log_entries_write(run=run, attempt=2, rows=rows) == 3
    stored = list(LogEntry.objects.order_by("id").values_list(
        "organization_id", "function_id", "run_id", "attempt", "timestamp", "stream", "message"))
    fixed = (run.organization_id, run.function_id, run.id, 2)
    assert stored == [(*fixed, *row) for row in rows]
    # Stored the way Django stores them, so range queries compare correctly.
    assert LogEntry.objects.filter(timestamp__gt=shared).count() == 1
    assert LogEntry.objects.filter(timestamp=whole_second).count() == 1


def test_nothing_to_write_is_a_no_op(run):
    assert log_entries_write(run=run, attempt=1, rows=[]) == 0
    assert not LogEntry.objects.exists()


def test_a_nul_character_is_stored_as_a_replacement_character(run):
    log_entries_write(run=run, attempt=1, rows=[(datetime.now(UTC), "stdout", "a\x00b")])
    assert LogEntry.objects.get().message == "a\ufffdb"


def test_a_batch_larger_than_one_statement_is_split(run, monkeypatch):
    monkeypatch.setattr(type(connection.features), "max_query_params", 30)  # 10 rows per INSERT
    start = datetime.now(UTC)
    rows = [(start + timedelta(microseconds=i), "stdout", f"line {i}") for i in range(95)]
    log_entries_write(run=run, attempt=1, rows=rows)
    assert list(LogEntry.objects.order_by("id").values_list("message", flat=True)) == [f"line {i}" for i in range(95)]


@pytest.mark.sandbox
@pytest.mark.slow
@pytest.mark.usefixtures("runtime_env")
def test_a_function_printing_fast_has_every_line_stored_in_order(org, django_capture_on_commit_callbacks):
    function = make_function(org, "printer", files={
        "main.py": "def handler(event, context):\n    for i in range(50000):\n        print(f'line {i}')\n",
    })
    with django_capture_on_commit_callbacks(execute=False):
        run = run_trigger(function=function, trigger="manual")
    recorded = services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    # Past the first LOG_STAGING_THRESHOLD lines, the flood was staged: searchable once indexed.
    assert recorded.logs_staged and LogBlock.objects.filter(run=run).exists()
    log_blocks_index()
    messages = list(LogEntry.objects.filter(run=run, stream="stdout").order_by("id").values_list("message", flat=True))
    assert messages == [f"line {i}" for i in range(50000)]
    assert not LogEntry.objects.filter(run=run, message__contains="dropped").exists()
    times = list(LogEntry.objects.filter(run=run).order_by("id").values_list("timestamp", flat=True))
    assert times == sorted(times)


def test_the_line_splitter_gives_the_same_lines_however_the_output_is_cut():
    """runtime.sandbox.output.LineSplitter reads whole chunks at once when it can; the lines must be exactly
    those of reading line by line: UTF-8 split across reads, invalid bytes, \\r\\n, empty lines."""
    import random

    from runtime.sandbox.output import LineSplitter

    rng = random.Random(8)
    pieces = [b"plain", "é😀 ü".encode(), b"\xff\xfe", "€".encode()[:2], b"\r", b"", b"tab\there", b"x" * 50]
    stream = b"".join(rng.choice(pieces) + rng.choice([b"\n", b"\r\n", b"", b"\n\n"]) for _ in range(3000)) + b"tail"
    expected = []
    for raw in stream.split(b"\n"):
        text = raw.decode("utf-8", "replace")
        expected.append(text[:-1] if text.endswith("\r") else text)
    for trial in range(20):
        splitter, got, position = LineSplitter("stdout", 256 * 1024), [], 0
        while position < len(stream):
            size = rng.choice([1, 2, 3, 7, 64, 1000, 65536])
            got += splitter.feed(stream[position : position + size], None)
            position += size
        got += splitter.finish(None)
        assert [line.message for line in got] == expected, f"trial {trial}"
        assert {line.stream for line in got} == {"stdout"}


def test_the_daily_volume_counts_what_a_function_prints_and_never_the_platforms_own_lines(org):
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    report = (now, "platform", "REPORT RequestId: x")
    # A run that printed nothing: its REPORT line alone needs no volume at all (not even a row).
    assert log_volume_admit(organization_id=org.id, rows=[report], now=now) == ([report], 0)
    assert not LogVolume.objects.exists()
    printed = (now, "stdout", "twelve bytes")
    assert log_volume_admit(organization_id=org.id, rows=[printed, report], now=now) == ([printed, report], 0)
    assert LogVolume.objects.get(organization=org).stored_bytes == len("twelve bytes")


# Lines a Function may print that the COPY text format (PostgreSQL) must escape, and others.
ODD_MESSAGES = [
    "tab\there\tand\tthere", "back\\slash \\N \\. \\\\ \\t", "carriage\rreturn", "ends with a backslash\\",
    "\\", "\t", "", " ", "new\nline inside (the platform's own multi-line entries)", "\\.",
    "ü € 日本語 😀 \u200b zero width", "quote ' \" ; -- DROP TABLE", "\x1b[31mcolour\x1b[0m", "nul\x00byte",
    "a" * 256 * 1024, "\\" * 70_000 + "\t" * 1000,
]


def test_odd_characters_and_very_long_lines_are_stored_exactly(run):
    """What log_entries_write takes in is what a page reads back (NUL aside: U+FFFD), in order; on
    PostgreSQL this is the COPY path (tests/integration/test_logs_postgres.py runs it there too)."""
    start = datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC)
    shared = start + timedelta(microseconds=7)
    # Runs of lines sharing a timestamp and stream, as the sandbox hands them over, and lines that do not.
    rows = [(shared if i % 3 else start + timedelta(seconds=i), "stderr" if i % 5 == 0 else "stdout", message)
            for i, message in enumerate(ODD_MESSAGES)]
    rows.append((start + timedelta(seconds=99), "platform", "REPORT RequestId: x"))
    assert log_entries_write(run=run, attempt=1, rows=rows) == len(rows)
    stored = list(LogEntry.objects.filter(run=run).order_by("id").values_list("timestamp", "stream", "message"))
    assert stored == [(ts, stream, message.replace("\x00", "\ufffd")) for ts, stream, message in rows]


def test_the_daily_log_volume_counts_every_batch_and_keeps_a_prefix_at_the_limit(run, settings):
    settings.LOGS_DAILY_VOLUME_MB = 1  # 1,048,576 characters
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    org_id = run.organization_id
    line = (now, "stdout", "x" * 1000)
    admitted, dropped = log_volume_admit(organization_id=org_id, rows=[line] * 1000, now=now)  # creates the day's row
    assert (len(admitted), dropped) == (1000, 0)
    admitted, dropped = log_volume_admit(organization_id=org_id, rows=[line] * 40, now=now)  # fits: one UPDATE
    assert (len(admitted), dropped) == (40, 0)
    platform = (now, "platform", "p" * 5000)
    admitted, dropped = log_volume_admit(organization_id=org_id, rows=[line] * 10 + [platform] + [line] * 10, now=now)
    # 1,048,576 - 1,040,000 leaves room for 8 of the 20 lines; the platform's line is always kept and not counted.
    assert dropped == 12 and admitted == [line] * 8 + [platform]
    volume = LogVolume.objects.get(organization_id=org_id, day=now.date())
    assert (volume.stored_bytes, volume.dropped_lines, volume.dropped_bytes) == (1_048_000, 12, 12_000)
    admitted, dropped = log_volume_admit(organization_id=org_id, rows=[(now, "stdout", "x" * 500)], now=now)
    assert (admitted, dropped) == ([(now, "stdout", "x" * 500)], 0)  # 576 characters were still free
    assert LogVolume.objects.get(pk=volume.pk).stored_bytes == 1_048_500


def _channel(function):
    queued = run_trigger(function=function, trigger="manual")
    run, attempt = services.run_claim(run_id=queued.pk)
    return run, services.AttemptChannel(run, attempt, services.redactor_for(run.function))


def test_the_channel_masks_secrets_line_by_line_whether_a_batch_holds_one_or_not(org):
    """A batch in which the Redactor finds nothing is queued as it came; any other is redacted line by
    line, exactly as each line on its own (a value split across lines of one batch is not one)."""
    from secrets_vault.services import secret_set
    from runtime.sandbox import OutputLine

    function = make_function(org, "leaky")
    secret_set(function=function, name="TOKEN", value="hunter2-secret", actor=None)
    secret_set(function=function, name="PEM", value="-----BEGIN KEY-----\nabcdefgh\n-----END KEY-----", actor=None)
    run, channel = _channel(function)
    now = datetime.now(UTC)
    clean = [OutputLine(now, "stdout", f"line {i}") for i in range(100)]
    leaky = [OutputLine(now, "stdout", text) for text in (
        "plain", "token hunter2-secret here", "hunter2-", "secret", "-----END KEY-----", "a\rb", "abcdefgh!",
    )]
    channel(clean)
    channel(leaky)
    channel.close()
    channel.serve_until_closed()
    messages = list(LogEntry.objects.filter(run=run).order_by("id").values_list("message", flat=True))
    assert messages == [f"line {i}" for i in range(100)] + [
        "plain", "token **** here", "hunter2-", "secret", "****", "a\rb", "****!",
    ]


def test_the_channel_collects_garbage_less_often_only_while_it_serves(org):
    import gc
    import threading

    run, channel = _channel(make_function(org, "printer"))
    before = gc.get_threshold()
    seen = {}

    def during():  # on the channel's own thread, while it serves
        seen["threshold"] = gc.get_threshold()
        channel.close()

    thread = threading.Thread(target=lambda: channel.call(during))
    thread.start()
    channel.serve_until_closed()
    thread.join()
    assert seen["threshold"][0] == max(before[0], services.AttemptChannel.GC_FIRST_GENERATION)
    assert seen["threshold"][1:] == before[1:]
    assert gc.get_threshold() == before


def test_an_attempts_last_lines_are_stored_with_its_outcome_in_one_transaction(org):
    """run_execute's channel keeps the batch that ends the attempt (its REPORT line and any output
    that came with it) for run_record_attempt, which stores it in the transaction that records the
    outcome: also when the reaper already declared the attempt lost and nothing else is written."""
    from functions.models import Attempt, AttemptOutcome, Run
    from runtime.sandbox import AttemptResult, OutputLine

    function = make_function(org, "tidy")
    for lost in (False, True):
        queued = run_trigger(function=function, trigger="manual")
        run, attempt = services.run_claim(run_id=queued.pk)
        channel = services.AttemptChannel(run, attempt, services.redactor_for(run.function), keep_last_batch=True)
        result = AttemptResult(outcome="succeeded", reason=None, return_value="1", error=None, exit_code=0,
                               duration_ms=5, peak_memory_mb=None)
        channel([OutputLine(datetime.now(UTC), "stdout", "last words")])
        channel.add_report_line(lambda dropped: services.report_line(run, attempt, result, dropped_lines=dropped))
        channel.close()
        channel.serve_until_closed()
        assert not LogEntry.objects.filter(run=run).exists()
        volume_before = LogVolume.objects.filter(organization=org).values_list("stored_bytes", flat=True).first() or 0
        if lost:
            Attempt.objects.filter(pk=attempt.pk).update(outcome=AttemptOutcome.WORKER_LOST)
        services.run_record_attempt(run=run, attempt=attempt, result=result, redact=channel.redact,
                                    write_last_batch=channel.write_last_batch)
        # The batch is counted against the daily volume in that transaction too.
        assert LogVolume.objects.get(organization=org).stored_bytes == volume_before + len("last words")
        messages = list(LogEntry.objects.filter(run=run).order_by("id").values_list("message", flat=True))
        assert messages[0] == "last words" and messages[1].startswith("REPORT RequestId:") and len(messages) == 2
        assert Run.objects.get(pk=run.pk).status == ("running" if lost else "succeeded")
