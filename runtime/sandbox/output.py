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
        # makes each OutputLine without the named tuple's Python-level __new__.
        text = data[: end + 1].decode("utf-8", "replace").replace("\r\n", "\n")
        stream, make = self.stream, tuple.__new__
        out += [make(OutputLine, (ts, stream, line)) for line in text.split("\n")]
        out.pop()  # the empty remainder after the last newline
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
    one background thread, in order, never concurrently."""

    def __init__(self, callback: Callable[[list[OutputLine]], None] | None):
        self.callback = callback
        self.cond = threading.Condition()
        self.queue: collections.deque[tuple[OutputLine, int]] = collections.deque()
        self.pending_bytes = 0
        self.oldest = 0.0
        self.dropped = 0
        self.closed = False
        self.delivered = 0
        self.thread = threading.Thread(target=self._run, name="sandbox-output", daemon=True)
        self.thread.start()

    def _append(self, line: OutputLine) -> None:
        size = len(line.message) + 100
        if self.pending_bytes + size > MAX_PENDING_BYTES:
            self.dropped += 1
            return
        if self.dropped:
            marker = OutputLine(line.timestamp, "stderr",
                                f"[{self.dropped} log lines dropped: the log consumer could not keep up]")
            self.dropped = 0
            self._append(marker)
        if not self.queue:
            self.oldest = time.monotonic()
        self.queue.append((line, size))
        self.pending_bytes += size

    def put(self, lines: list[OutputLine]) -> None:
        if not lines:
            return
        with self.cond:
            was_empty = not self.queue
            sizes = [len(line.message) + 100 for line in lines]
            total = sum(sizes)
            if not self.dropped and self.pending_bytes + total <= MAX_PENDING_BYTES:
                # The usual case, all at once: what _append does line by line.
                if was_empty:
                    self.oldest = time.monotonic()
                self.queue.extend(zip(lines, sizes))
                self.pending_bytes += total
            else:
                for line in lines:
                    self._append(line)
            # Wake the deliverer to start its timer, or for a full batch.
            if was_empty or len(self.queue) >= BATCH_LINES:
                self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.closed and len(self.queue) < BATCH_LINES:
                    if self.queue:
                        wait = self.oldest + BATCH_INTERVAL_S - time.monotonic()
                        if wait <= 0:
                            break
                        self.cond.wait(wait)
                    else:
                        self.cond.wait()
                if not self.queue:
                    if self.closed:
                        return
                    continue
                if len(self.queue) <= MAX_BATCH_LINES:
                    # Everything waiting fits one batch: take it at once.
                    batch = [line for line, _ in self.queue]
                    self.queue.clear()
                    self.pending_bytes = 0
                else:
                    batch = []
                while self.queue and len(batch) < MAX_BATCH_LINES:
                    line, size = self.queue.popleft()
                    self.pending_bytes -= size
                    batch.append(line)
                if self.queue:
                    self.oldest = time.monotonic()
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
        self.queue.append((marker, 0))

