"""Capture: a run's output lines stored by logs.services.log_entries_write, and through the real engine."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from functions.models import RunStatus
from functions.run_services import run_trigger
from logs.models import LogEntry, LogVolume
from logs.services import log_entries_write, log_volume_admit
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
    services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
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
