"""Output: the Function's stdout and stderr as lines, and their bounded delivery to the worker.

The reading loop must never wait for the worker's consumer (a slow database
must not stall the Function's pipes), so lines go through a bounded queue
to one delivering thread; beyond the bound they are dropped and counted.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from datetime import datetime, timezone
from itertools import repeat
from operator import itemgetter
from typing import Callable

from .contract import OutputLine

log = logging.getLogger(__name__)

# Output delivery: a batch when this many lines are waiting or this long
# after the oldest waiting line, whichever first; at most MAX_BATCH_LINES per
# call; at most MAX_PENDING_BYTES waiting (beyond it lines are dropped and
# counted: a slow consumer must never stall the Function). A full batch, not
# a tenth of one, before waking the deliverer: every wake-up makes the reading
# thread wait for the GIL, and a Function printing flat out then waits on its
# pipe (bench/ingest.py). Slow output still goes out after BATCH_INTERVAL_S.
BATCH_LINES = 1000
BATCH_INTERVAL_S = 0.2
MAX_BATCH_LINES = 1000
MAX_PENDING_BYTES = 32 * 1024 * 1024
# What a waiting line counts beyond its message's length: its tuple and timestamp (roughly).
LINE_OVERHEAD_BYTES = 100
_MESSAGE = itemgetter(2)


class LineSplitter:
    """A stream's bytes as OutputLines: UTF-8 decoded, "\\r\\n" ended too, lines over max_line cut with a marker."""

    def __init__(self, stream: str, max_line: int):
        self.stream = stream
        self.max_line = max_line
        self.partial = bytearray()
        self.discarding = False  # inside the tail of a line already cut

    def _line(self, raw: bytes, ts: datetime, cut: bool) -> OutputLine:
        text = raw.decode("utf-8", "replace")
        if cut:
            text += f"... [line truncated at {self.max_line} bytes]"
        elif text.endswith("\r"):
            text = text[:-1]
        return OutputLine(ts, self.stream, text)

    def feed(self, data: bytes, ts: datetime) -> list[OutputLine]:
        out: list[OutputLine] = []
        if self.partial or self.discarding:
            # A read usually ends inside a line: finish that one line first.
            first = data.find(b"\n")
            if first < 0:
                return self._feed_lines(data, ts)
            out = self._feed_lines(data[: first + 1], ts)
            data = data[first + 1 :]
        end = data.rfind(b"\n")
        if end < 0 or len(data) > self.max_line:
            return out + self._feed_lines(data, ts)
        # The usual case: whole lines, none too long (none can be longer than
        # the chunk). One decode and one split for the chunk instead of one
        # per line, the same lines: a newline is never inside a UTF-8
        # sequence, and "\r\n" loses its "\r" as _line does. tuple.__new__
        # makes each OutputLine without the named tuple's Python-level __new__,
        # and map and zip call it without a Python step per line (a quarter
        # less CPU than a list comprehension, measured on a million lines).
        lines = data[: end + 1].decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
        lines.pop()  # the empty remainder after the last newline
        out += map(tuple.__new__, repeat(OutputLine), zip(repeat(ts), repeat(self.stream), lines))
        self.partial += data[end + 1 :]
        return out

    def _feed_lines(self, data: bytes, ts: datetime) -> list[OutputLine]:
        """Line by line: lines continued from an earlier read, and lines cut at max_line."""
        out: list[OutputLine] = []
        pieces = data.split(b"\n")
        rest = pieces.pop()
        for piece in pieces:
            if self.discarding:
                self.discarding = False
                continue
            if self.partial:
                piece = bytes(self.partial) + piece
                self.partial.clear()
            if len(piece) > self.max_line:
                out.append(self._line(piece[: self.max_line], ts, True))
            else:
                out.append(self._line(piece, ts, False))
        if rest and not self.discarding:
            self.partial += rest
            if len(self.partial) > self.max_line:
                out.append(self._line(bytes(self.partial[: self.max_line]), ts, True))
                self.partial.clear()
                self.discarding = True
        return out

    def finish(self, ts: datetime) -> list[OutputLine]:
        if self.partial and not self.discarding:
            line = self._line(bytes(self.partial), ts, False)
            self.partial.clear()
            return [line]
        return []


class OutputSink:
    """Bounded hand-over from the reading loop to ``on_output``, called from
    one background thread, in order, never concurrently.

    What waits is kept as the reads' lists of lines, not line by line: a flood
    hands over reads of thousands of lines, and each one queued, counted and
    taken out again on its own cost the worker as much CPU as splitting the
    output into lines (bench/ingest.py). A read is counted with C iterators
    and batches are sliced from it."""

    def __init__(self, callback: Callable[[list[OutputLine]], None] | None):
        self.callback = callback
        self.cond = threading.Condition()
        # The waiting lines: [lines, their bytes] per read, in order; the first read's lines before
        # `head` are delivered already, and its bytes are those of the rest.
        self.chunks: collections.deque[list] = collections.deque()
        self.head = 0
        self.pending_lines = 0
        self.pending_bytes = 0
        self.oldest = 0.0
        self.dropped = 0
        self.closed = False
        self.delivered = 0
        self.thread = threading.Thread(target=self._run, name="sandbox-output", daemon=True)
        self.thread.start()

    def _enqueue(self, lines: list[OutputLine], size: int) -> None:
        if not self.pending_lines:
            self.oldest = time.monotonic()
        self.chunks.append([lines, size])
        self.pending_lines += len(lines)
        self.pending_bytes += size

    def _append(self, line: OutputLine) -> None:
        size = len(line.message) + LINE_OVERHEAD_BYTES
        if self.pending_bytes + size > MAX_PENDING_BYTES:
            self.dropped += 1
            return
        if self.dropped:
            marker = OutputLine(line.timestamp, "stderr",
                                f"[{self.dropped} log lines dropped: the log consumer could not keep up]")
            self.dropped = 0
            self._append(marker)
        self._enqueue([line], size)

    def put(self, lines: list[OutputLine]) -> None:
        """Queue a read's lines (the list becomes the sink's)."""
        if not lines:
            return
        with self.cond:
            was_empty = not self.pending_lines
            size = _size(lines)
            if not self.dropped and self.pending_bytes + size <= MAX_PENDING_BYTES:
                self._enqueue(lines, size)  # the usual case, all at once: what _append does line by line
            else:
                for line in lines:
                    self._append(line)
            # Wake the deliverer to start its timer, or for a full batch.
            if was_empty or self.pending_lines >= BATCH_LINES:
                self.cond.notify()

    def _take(self) -> list[OutputLine]:
        """Up to MAX_BATCH_LINES of the waiting lines, the oldest first (under the lock)."""
        batch: list[OutputLine] = []
        while self.chunks and len(batch) < MAX_BATCH_LINES:
            chunk = self.chunks[0]
            lines, size = chunk
            end = min(len(lines), self.head + MAX_BATCH_LINES - len(batch))
            batch += lines[self.head : end]
            if end == len(lines):
                self.chunks.popleft()
                self.head = 0
                self.pending_bytes -= size
            else:
                # The bytes of a part of a read, in proportion: its lines are alike, and the bound
                # is on memory, not exact (every waiting line gone, it is 0 again).
                taken = size * (end - self.head) // (len(lines) - self.head)
                chunk[1] -= taken
                self.pending_bytes -= taken
                self.head = end
        self.pending_lines -= len(batch)
        if not self.pending_lines:
            self.pending_bytes = 0
        else:
            self.oldest = time.monotonic()
        return batch

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.closed and self.pending_lines < BATCH_LINES:
                    if self.pending_lines:
                        wait = self.oldest + BATCH_INTERVAL_S - time.monotonic()
                        if wait <= 0:
                            break
                        self.cond.wait(wait)
                    else:
                        self.cond.wait()
                if not self.pending_lines:
                    if self.closed:
                        return
                    continue
                batch = self._take()
            if self.callback is not None:
                try:
                    self.callback(batch)
                except Exception:
                    log.exception("on_output failed; %d lines lost", len(batch))
            self.delivered += len(batch)

    def close(self) -> None:
        with self.cond:
            if self.dropped:
                self._append_marker_at_close()
            self.closed = True
            self.cond.notify()
        self.thread.join()

    def _append_marker_at_close(self) -> None:
        n, self.dropped = self.dropped, 0
        marker = OutputLine(datetime.now(timezone.utc), "stderr",
                            f"[{n} log lines dropped: the log consumer could not keep up]")
        self._enqueue([marker], 0)


def _size(lines: list[OutputLine]) -> int:
    """What lines count against MAX_PENDING_BYTES: their messages' lengths and a line's overhead each."""
    return sum(map(len, map(_MESSAGE, lines))) + LINE_OVERHEAD_BYTES * len(lines)
