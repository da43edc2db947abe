"""runtime.sandbox.output.OutputSink: the reading loop's lines reach the worker in order, in bounded
batches, and a stuck consumer costs dropped lines (counted, marked), never a stalled Function."""

import threading
import time
from datetime import UTC, datetime

from runtime.sandbox import output
from runtime.sandbox.contract import OutputLine
from runtime.sandbox.output import MAX_BATCH_LINES, OutputSink

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def lines_of(start, count, stream="stdout"):
    return [OutputLine(NOW, stream, f"line {n}") for n in range(start, start + count)]


def stuck_sink(first_lines):
    """A sink whose consumer took its first batch (``first_lines``, one read) and hangs on it, as on a slow
    database, until ``release`` is set: (sink, the batches it was given, release)."""
    release, first_taken = threading.Event(), threading.Event()
    batches = []

    def consume(batch):
        batches.append(batch)
        first_taken.set()
        release.wait(10)

    sink = OutputSink(consume)
    sink.put(first_lines)
    assert first_taken.wait(output.BATCH_INTERVAL_S + 2)
    return sink, batches, release


def test_reads_of_any_size_arrive_whole_in_order_in_batches_of_at_most_the_bound():
    batches = []
    sink = OutputSink(batches.append)
    sizes = [1, 2_345, 999, MAX_BATCH_LINES, 7, 10_001, 3]  # reads across, within and at the bound
    start = 0
    for size in sizes:
        sink.put(lines_of(start, size))
        start += size
    sink.close()
    delivered = [line.message for batch in batches for line in batch]
    assert delivered == [f"line {n}" for n in range(start)]
    assert all(0 < len(batch) <= MAX_BATCH_LINES for batch in batches)
    assert sink.delivered == start
    assert (sink.pending_lines, sink.pending_bytes, len(sink.chunks)) == (0, 0, 0)


def test_slow_output_is_delivered_after_the_interval_without_waiting_for_a_full_batch():
    arrived = threading.Event()
    batches = []
    sink = OutputSink(lambda batch: (batches.append(batch), arrived.set()))
    sink.put(lines_of(0, 3))
    assert arrived.wait(output.BATCH_INTERVAL_S + 2), "three lines waited for more instead of the interval"
    assert [line.message for line in batches[0]] == ["line 0", "line 1", "line 2"]
    sink.close()


def test_a_stuck_consumer_makes_lines_past_the_bound_dropped_counted_and_marked_in_their_place(monkeypatch):
    monkeypatch.setattr(output, "MAX_PENDING_BYTES", 50 * (output.LINE_OVERHEAD_BYTES + 10))
    sink, batches, release = stuck_sink(lines_of(0, 1))  # nothing more is taken meanwhile
    sink.put(lines_of(1, 30))    # waits: room for about 50
    sink.put(lines_of(31, 30))   # past the bound from its 20th or so line on: those are dropped
    sink.put(lines_of(61, 30))   # still no room: all dropped
    assert 0 < sink.dropped < 60
    dropped = sink.dropped
    release.set()
    time.sleep(output.BATCH_INTERVAL_S * 3)  # the waiting lines go out: room again
    sink.put(lines_of(91, 2))
    sink.close()

    delivered = [line for batch in batches for line in batch]
    messages = [line.message for line in delivered]
    marker = f"[{dropped} log lines dropped: the log consumer could not keep up]"
    # What was kept is every line up to the bound, then the marker, then the lines after the gap.
    kept = messages[: messages.index(marker)]
    assert kept == [f"line {n}" for n in range(len(kept))]
    assert len(kept) + dropped == 91
    assert messages[messages.index(marker) + 1 :] == ["line 91", "line 92"]
    assert delivered[messages.index(marker)].stream == "stderr"


def test_lines_dropped_at_the_end_are_marked_when_the_sink_closes(monkeypatch):
    monkeypatch.setattr(output, "MAX_PENDING_BYTES", 10 * (output.LINE_OVERHEAD_BYTES + 10))
    sink, batches, release = stuck_sink(lines_of(0, 1))
    sink.put(lines_of(1, 25))
    dropped = sink.dropped
    assert dropped > 0
    release.set()
    sink.close()
    messages = [line.message for batch in batches for line in batch]
    assert messages[-1] == f"[{dropped} log lines dropped: the log consumer could not keep up]"
    assert messages[:-1] == [f"line {n}" for n in range(26 - dropped)]


def test_a_batch_taken_from_part_of_a_read_frees_its_room_at_once(monkeypatch):
    per_line = output.LINE_OVERHEAD_BYTES + len("line 0000")
    monkeypatch.setattr(output, "MAX_PENDING_BYTES", 3 * MAX_BATCH_LINES * per_line)
    # One read of more than a batch: the consumer took a batch of it.
    sink, batches, release = stuck_sink([OutputLine(NOW, "stdout", f"line {n:04}") for n in range(2_500)])
    assert len(batches[0]) == MAX_BATCH_LINES
    # 1,500 of the read still wait: room for 1,500 more, though the whole read never left.
    sink.put([OutputLine(NOW, "stdout", f"line {n:04}") for n in range(2_500, 3_950)])
    assert sink.dropped == 0
    release.set()
    sink.close()
    assert [line.message for batch in batches for line in batch] == [f"line {n:04}" for n in range(3_950)]
