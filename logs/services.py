"""Capture and retention of log entries.

Capture: log_entries_write stores a batch of a run's output lines as fast as
the database takes them (the worker's AttemptChannel calls it through
AttemptLog). A flood's lines past an attempt's first LOG_STAGING_THRESHOLD are
staged in blocks instead (log_block_stage) and become entries seconds later
(log_blocks_index, from logs.tasks).

Retention: log entries older than LOGS_RETENTION_DAYS are deleted; their runs stay, marked "logs expired".

Deletion goes in small batches, each its own short transaction, with a pause
between them: a worker writing a run's output (SQLite has one writer at a
time) or a page reading entries never waits behind one long DELETE, and an
interrupted prune simply continues at the next one.
"""

import contextlib
import json
import logging
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, groupby
from operator import itemgetter

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from config.housekeeping import delete_in_batches
from functions.models import Run

from .models import LogBlock, LogEntry, LogVolume, Stream
from .queries import retention_cutoff

logger = logging.getLogger(__name__)

_COLUMNS = ("organization_id", "function_id", "run_id", "attempt", "timestamp", "stream", "message")

PRUNE_BATCH = 10_000
PRUNE_PAUSE_SECONDS = 0.05


def log_volume_admit(*, organization_id: int, rows: list, now: datetime | None = None) -> tuple[list, int]:
    """The part of `rows` the organization may still store today, and the number of lines dropped.

    Each organization may store LOGS_DAILY_VOLUME_MB of output per UTC day;
    past it, lines are counted (LogVolume.dropped_lines) and dropped. The
    platform's own lines (a REPORT, a marker) are always kept and never
    counted. Sizes are the messages' lengths in characters, which costs
    nothing per line and equals bytes for ASCII output. Two workers of one
    organization may each store one batch past the limit, not more.
    """
    if all(row[1] == Stream.PLATFORM for row in rows):
        # Nothing to count (a run that printed nothing: its REPORT line alone): no look-up at all.
        return list(rows), 0
    limit = settings.LOGS_DAILY_VOLUME_MB * 1024 * 1024
    day = (now or timezone.now()).astimezone(UTC).date()
    # The usual batch: the Function's own lines, with room left for all of them. Counted without
    # a Python step per line, and stored with one conditional UPDATE (no read first): a batch
    # is one statement here instead of three (bench/ingest.py).
    total = sum(map(len, map(_MESSAGE, rows)))
    if Stream.PLATFORM.value not in map(_STREAM, rows):
        if LogVolume.objects.filter(
            organization_id=organization_id, day=day, stored_bytes__lte=limit - total
        ).update(stored_bytes=F("stored_bytes") + total):
            return list(rows), 0  # a list of its own, as below: the caller may add to it
    volume, _ = LogVolume.objects.get_or_create(organization_id=organization_id, day=day)
    room = limit - volume.stored_bytes
    admitted, stored, dropped, dropped_bytes, full = [], 0, 0, 0, False
    for row in rows:
        size = len(row[2])
        if row[1] == Stream.PLATFORM:
            admitted.append(row)
        elif not full and stored + size <= room:
            admitted.append(row)
            stored += size
        else:
            full = True  # once over, every later line is dropped too: what is kept is a prefix
            dropped += 1
            dropped_bytes += size
    if stored or dropped:
        LogVolume.objects.filter(pk=volume.pk).update(
            stored_bytes=F("stored_bytes") + stored,
            dropped_lines=F("dropped_lines") + dropped,
            dropped_bytes=F("dropped_bytes") + dropped_bytes,
        )
    return admitted, dropped


_TIMESTAMP, _STREAM, _MESSAGE = itemgetter(0), itemgetter(1), itemgetter(2)
_TIME_AND_STREAM = itemgetter(0, 1)
# What the COPY text format needs escaped (PostgreSQL text cannot hold NUL at all: see below).
_COPY_SPECIAL = re.compile(r"[\\\t\n\r\x00]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": "\ufffd"})


def log_entries_write(*, run: Run, attempt: int, rows: list[tuple[datetime, str, str]], joined: bool = False) -> int:
    """Store `rows`, (timestamp, stream, message) tuples of one attempt of `run`, in one transaction.

    ``joined``: in the caller's transaction instead (the worker writes an attempt's last lines
    with its outcome, one commit instead of two; _output_transaction says how each is committed).

    A Function may print a million lines, and this runs in the worker process
    that also reads the Function's pipes: the less Python per line, the less
    it slows the Function (bench/ingest.py). So no model instances and no
    Python step per line where C can take it: the run's fixed values are
    written into the statement (integers from the database), each distinct
    timestamp is converted once (the lines of one read of the pipe share one
    timestamp object), and the rows go to the database whole: on SQLite as
    multi-row INSERTs whose parameters C iterators lay out, on PostgreSQL as
    one COPY whose text is built for the whole batch at once.
    """
    if not rows:
        return 0
    fixed = _keys(run, attempt)
    table, quote = connection.ops.quote_name(LogEntry._meta.db_table), connection.ops.quote_name
    columns = ", ".join(quote(column) for column in _COLUMNS)
    messages = list(map(_MESSAGE, rows))
    if connection.vendor == "postgresql":
        runs = ((timestamp.isoformat(), stream, group) for timestamp, stream, group in _runs(rows, messages))
        data = _copy_text(fixed, runs)
        with _output_transaction(joined=joined), connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                copy.write(data)
        return len(rows)
    messages = _nul_replaced(messages)
    adapt = connection.ops.adapt_datetimefield_value
    texts = {timestamp: adapt(timestamp) for timestamp in set(map(_TIMESTAMP, rows))}
    params = list(chain.from_iterable(zip(map(texts.__getitem__, map(_TIMESTAMP, rows)), map(_STREAM, rows), messages)))
    values = "({}, {}, {}, {}, ?, ?, ?)".format(*fixed)
    # Multi-row INSERTs, as many rows a statement as SQLite takes parameters: measured twice as
    # fast as executemany, which pays a reset, a bind and a step per row from Python's side.
    per_statement = max(1, (connection.features.max_query_params or 999) // 3)
    with _output_transaction(joined=joined), connection.cursor() as cursor, connection.wrap_database_errors:
        for start in range(0, len(rows), per_statement):
            count = min(per_statement, len(rows) - start)
            # sqlite3's own execute with "?" placeholders: Django's wrapper would
            # first rewrite every "%s" of a statement thousands of rows long.
            sqlite3.Cursor.execute(
                cursor.cursor, f"INSERT INTO {table} ({columns}) VALUES {', '.join([values] * count)}",
                params[start * 3 : (start + count) * 3],
            )
    return len(rows)


def _keys(run: Run, attempt: int) -> tuple[int, int, int, int]:
    """The values every stored line of this attempt shares: organization, Function, run, attempt (_COLUMNS)."""
    return (int(run.organization_id), int(run.function_id), int(run.id), int(attempt))


@contextlib.contextmanager
def _output_transaction(*, joined: bool = False) -> Iterator[None]:
    """The transaction a batch of output lines is written in.

    ``joined``: the caller's, which commits them with the rest of its work, durably (a SET LOCAL
    here would make all of it asynchronous). Otherwise one of their own, in which output lines are
    not worth a disk flush each: a database crash may lose the last fraction of a second of them,
    never corrupt anything (PostgreSQL's synchronous_commit off for this transaction).
    """
    if joined:
        assert connection.in_atomic_block, "joined: the caller's transaction must be open"
        yield
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        yield


def _nul_replaced(messages: list[str]) -> list[str]:
    """NUL, which PostgreSQL text cannot hold (_copy_text), replaced by U+FFFD on SQLite too."""
    if "\x00" in "".join(messages):
        return [message.replace("\x00", "\ufffd") for message in messages]
    return messages


def _copy_text(fixed: tuple[int, ...], runs: Iterable[tuple[str, str, list[str]]]) -> str:
    """Rows in COPY's text format, tab-separated columns, a line per row: the columns every line shares
    (``fixed``, _keys) and ``runs`` of lines sharing a timestamp (as text) and a stream.

    The lines of a run (a read of the pipe) share the text before their
    message, so a run is one str.join. Backslash, tab, newline and carriage
    return are escaped; NUL, which PostgreSQL text cannot hold and a Function
    may print, becomes U+FFFD as on SQLite.
    """
    head = "\t".join(map(str, fixed)) + "\t"
    parts = []
    for timestamp, stream, messages in runs:
        if _COPY_SPECIAL.search("".join(messages)):
            messages = [message.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(message) else message
                        for message in messages]
        prefix = f"{head}{timestamp}\t{stream}\t"
        parts.append(prefix + ("\n" + prefix).join(messages))
    parts.append("")
    return "\n".join(parts)


def _runs(rows: list, messages: list[str]) -> Iterator[tuple[datetime, str, list[str]]]:
    """The rows as runs of lines sharing a timestamp and stream (a read of the pipe): (timestamp, stream,
    their messages). A few dozen a batch, so the work per run is Python's, per line C's."""
    start = 0
    for (timestamp, stream), group in groupby(rows, key=_TIME_AND_STREAM):
        end = start + len(list(group))
        yield timestamp, stream, messages[start:end]
        start = end


# --- floods: staged in blocks, indexed seconds later -------------------------------------------------

# An attempt's first this-many lines are stored as entries at once (searchable as they come, and the
# run page's live tail shows them); every later batch of it is staged as one LogBlock. Per line,
# PostgreSQL's indexes of an entry cost several times what the Function took to print it (the trigram
# index alone 5.2 s a million), so a flood written as entries cannot be recorded as finished within
# 2x of the Function's own time; staged, it can, and the lines become searchable seconds later.
# Lines below the threshold still pay the full cost inline: 20,000 of them take about 0.25 s on
# PostgreSQL (0.06 s on SQLite), a tenth of the 2x budget of a million-line flood, while every run
# printing less than that (nearly all of them) never meets a block at all (bench/ingest.py).
LOG_STAGING_THRESHOLD = 20_000
# The indexer starts this long after an attempt stages its first block (and is sent again each time the
# attempt stages a block this long after the last send; the run's recording sends one at once). Measured
# on 2 cores (bench/ingest.py --no-index-during): an indexer expanding blocks while the flood still ran
# took its CPU from the Function (PostgreSQL's index work is several times the Function's own), and a
# million lines were recorded as finished in 3.2x the baseline instead of 1.95x, every line searchable
# no sooner (18.2 s against 18.5). A million lines take about 3 s to print: over before this delay,
# while a Function printing past the threshold for minutes still has its lines indexed as it goes.
LOG_INDEX_DELAY_SECONDS = 5.0
# Old blocks (an indexer never reached them) deleted per transaction: each holds up to a batch of lines.
PRUNE_BLOCKS_BATCH = 20


class AttemptLog:
    """Where one attempt's output lines go: entries until the attempt has written LOG_STAGING_THRESHOLD
    lines, blocks after that. The one home of that rule: the worker's AttemptChannel writes through it."""

    def __init__(self, *, run: Run, attempt: int):
        self.run, self.attempt = run, attempt
        self.written = 0
        self.staged = 0  # blocks this attempt has staged
        # A retry asks the database once, at its first write (see write); a first attempt never does.
        self._stage_from: int | None = LOG_STAGING_THRESHOLD if attempt == 1 else None
        self._indexer_due_at: float | None = None  # time.monotonic() from which the next block asks for an indexer

    def write(self, rows: list, *, joined: bool = False) -> bool:
        """Store `rows` as log_entries_write does (``joined`` likewise).

        True when they were staged and an indexer should be sent, to start LOG_INDEX_DELAY_SECONDS
        from now: at the attempt's first block, and at the first one each LOG_INDEX_DELAY_SECONDS after.
        """
        if not rows:
            return False
        if self._stage_from is None:
            # A run's lines are read in id order: an earlier attempt's blocks not yet indexed would get
            # ids after this attempt's entries. Then all of this attempt is staged, behind them.
            self._stage_from = 0 if LogBlock.objects.filter(run_id=self.run.id).exists() else LOG_STAGING_THRESHOLD
        if self.written < self._stage_from:
            log_entries_write(run=self.run, attempt=self.attempt, rows=rows, joined=joined)
            self.written += len(rows)
            return False
        log_block_stage(run=self.run, attempt=self.attempt, rows=rows, joined=joined)
        self.written += len(rows)
        self.staged += 1
        now = time.monotonic()
        if self._indexer_due_at is not None and now < self._indexer_due_at:
            return False
        self._indexer_due_at = now + LOG_INDEX_DELAY_SECONDS
        return True


def log_block_stage(*, run: Run, attempt: int, rows: list[tuple[datetime, str, str]], joined: bool = False) -> int:
    """Stage `rows` of one attempt of `run` as one LogBlock, for log_blocks_index to expand into entries.

    The same rows as log_entries_write takes, stored exactly as it would store them (NUL included),
    in the payload the expansion reads without a Python step per line (_block_payload).
    """
    if not rows:
        return 0
    fixed = _keys(run, attempt)
    payload = _block_payload(rows)
    with _output_transaction(joined=joined):
        LogBlock.objects.create(
            organization_id=fixed[0], function_id=fixed[1], run_id=fixed[2], attempt=fixed[3],
            created_at=timezone.now(), lines=len(rows), payload=payload,
        )
    return len(rows)


@dataclass(frozen=True)
class IndexResult:
    blocks: int
    lines: int
    finished: bool  # False when max_seconds stopped it with blocks left


def log_blocks_index(*, max_seconds: float | None = None) -> IndexResult:
    """Expand staged blocks into log entries, oldest first, until none is left to take.

    One block per transaction, deleted in the transaction that inserts its lines: a crash
    loses and duplicates nothing, and the next call continues. Short transactions (a block
    is at most one of the worker's batches): SQLite has one writer, and the worker staging
    a flood must not wait long behind this. Any number may run at once (the task sent when
    an attempt stages its first block, the one sent when the run is recorded, beat's sweep):
    a block is taken under a lock (FOR UPDATE SKIP LOCKED on PostgreSQL, SQLite's write
    lock), and a run's blocks one after the other, so its lines get ids in line order.
    """
    started = time.monotonic()
    blocks = lines = 0
    while True:
        with _output_transaction():
            expanded = _block_expand_next()
        if expanded is None:
            return IndexResult(blocks=blocks, lines=lines, finished=True)
        blocks += 1
        lines += expanded
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            return IndexResult(blocks=blocks, lines=lines, finished=False)


def _block_payload(rows: list) -> str:
    """The one format of a block's lines, which _block_expand reads: JSON,
    [[timestamp as text, stream, [message, ...]], ...], a run of lines sharing a timestamp and stream
    per element. The timestamp's text is the one the database takes (Django's as stored on SQLite,
    ISO 8601 for PostgreSQL's COPY); NUL is already U+FFFD (_nul_replaced).

    Only the messages, once each: the columns every line shares are the block's own, and the timestamp
    and stream are once a run, not once a line as in the COPY text the block becomes. The worker
    stages a flood while the Function still prints, on the same cores, and PostgreSQL then takes in
    (and logs) under a quarter of the bytes for about the same encoding time; the indexer lays out the
    rows after the run. Measured on a million lines (bench/ingest.py): PostgreSQL's CPU during the run
    0.40-0.54 s instead of 0.65-0.74, and the run recorded 0.25 s sooner."""
    adapt = connection.ops.adapt_datetimefield_value if connection.vendor == "sqlite" else datetime.isoformat
    runs = [(adapt(timestamp), stream, group)
            for timestamp, stream, group in _runs(rows, _nul_replaced(list(map(_MESSAGE, rows))))]
    return json.dumps(runs, ensure_ascii=False, separators=(",", ":"))


def _block_expand_next() -> int | None:
    """In the caller's transaction: take the oldest block no other indexer holds whose run has no
    earlier block, insert its lines as entries and delete it. Its line count; None when there is none."""
    table = connection.ops.quote_name(LogBlock._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # An earlier block of the same run still there (held by another indexer, not yet committed)
            # makes this one wait for the next call: a run's lines are inserted in order.
            cursor.execute(
                f"SELECT block.id, block.lines, block.payload, block.organization_id, block.function_id, "
                f"block.run_id, block.attempt FROM {table} block WHERE NOT EXISTS "
                f"(SELECT 1 FROM {table} earlier WHERE earlier.run_id = block.run_id AND earlier.id < block.id) "
                "ORDER BY block.id LIMIT 1 FOR UPDATE OF block SKIP LOCKED"
            )
        else:
            # BEGIN IMMEDIATE (settings) took the one write lock: the oldest block is no one else's.
            # json_each reads the payload, and the block's columns, in the statement (_block_expand).
            cursor.execute(f"SELECT id, lines, NULL FROM {table} ORDER BY id LIMIT 1")
        taken = cursor.fetchone()
        if taken is None:
            return None
        block_id, lines, payload, *fixed = taken
        _block_expand(cursor, block_id, payload, tuple(fixed))
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [block_id])
    return lines


def _block_expand(cursor, block_id: int, payload: str | None, fixed: tuple[int, ...]) -> None:
    """Insert the lines of the block as entries, in their order: on PostgreSQL a COPY of the rows laid
    out from the payload (``fixed``, read with it there: the block's organization, Function, run and
    attempt), on SQLite an INSERT ... SELECT over json_each; no Python step per line on either."""
    table, quote = connection.ops.quote_name(LogEntry._meta.db_table), connection.ops.quote_name
    columns = ", ".join(quote(column) for column in _COLUMNS)
    if connection.vendor == "postgresql":
        # A block staged before its payload became JSON is COPY text already, and its lines are kept.
        data = _copy_text(fixed, json.loads(payload)) if payload.startswith("[") else payload
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            copy.write(data)
        return
    blocks = connection.ops.quote_name(LogBlock._meta.db_table)
    # Each run's timestamp, stream and messages taken apart once (materialized): read from the run's
    # JSON for each of its lines instead, they made the expansion quadratic in the run's length.
    cursor.execute(
        f"WITH runs AS MATERIALIZED (SELECT runs.key, runs.value ->> 0 AS timestamp, runs.value ->> 1 AS stream, "
        f"runs.value -> 2 AS messages FROM {blocks} block, json_each(block.payload) runs WHERE block.id = %s) "
        f"INSERT INTO {table} ({columns}) SELECT block.organization_id, block.function_id, block.run_id, "
        f"block.attempt, runs.timestamp, runs.stream, line.value "
        f"FROM {blocks} block, runs, json_each(runs.messages) line WHERE block.id = %s ORDER BY runs.key, line.key",
        [block_id, block_id],
    )


@dataclass(frozen=True)
class PruneResult:
    cutoff: datetime
    deleted: int
    runs_marked: int
    batches: int
    finished: bool  # False when max_seconds stopped it; the next run continues
    blocks_deleted: int = 0


def logs_prune(
    *,
    now: datetime | None = None,
    batch_size: int = PRUNE_BATCH,
    pause: float = PRUNE_PAUSE_SECONDS,
    max_seconds: float | None = None,
) -> PruneResult:
    """Delete the entries older than the retention window, then mark the runs left without entries."""
    now = now or datetime.now(UTC)
    cutoff = retention_cutoff(now)

    # Blocks first: normally expanded seconds after they were staged, one this old was never reached.
    old_blocks = LogBlock.objects.filter(created_at__lt=cutoff).order_by("created_at").values_list("id", flat=True)
    blocks = delete_in_batches(
        next_ids=lambda size: old_blocks[:size],
        delete=lambda ids: LogBlock.objects.filter(id__in=ids).delete()[0],
        batch_size=PRUNE_BLOCKS_BATCH, pause=pause,
    )

    def next_ids(size):
        # The timestamp index, oldest first: bounded work on both databases, whatever the table size.
        return LogEntry.objects.filter(timestamp__lt=cutoff).order_by("timestamp").values_list("id", flat=True)[:size]

    def delete(ids):
        # Nothing refers to a log entry, so Django deletes without loading the rows.
        return LogEntry.objects.filter(id__in=ids).delete()[0]

    done = delete_in_batches(next_ids=next_ids, delete=delete, batch_size=batch_size, pause=pause, max_seconds=max_seconds)
    deleted, batches, finished = done.deleted, done.batches, done.finished
    runs_marked = runs_mark_logs_expired(cutoff=cutoff, batch_size=batch_size, pause=pause) if finished else 0
    if deleted or runs_marked or blocks.deleted:
        logger.info("logs: deleted %s entries and %s unindexed blocks older than %s in %s batches; %s runs marked "
                    "logs expired", deleted, blocks.deleted, cutoff.isoformat(), batches, runs_marked)
    return PruneResult(cutoff=cutoff, deleted=deleted, runs_marked=runs_marked, batches=batches, finished=finished,
                       blocks_deleted=blocks.deleted)


def runs_mark_logs_expired(
    *,
    cutoff: datetime,
    batch_size: int = PRUNE_BATCH,
    pause: float = PRUNE_PAUSE_SECONDS,
) -> int:
    """Mark the finished runs that ended before `cutoff` and have no entries left."""
    has_entries = LogEntry.objects.filter(run=OuterRef("pk"))
    candidates = (
        Run.objects.filter(logs_expired=False, finished_at__lt=cutoff)
        .exclude(Exists(has_entries))
        .order_by()
        .values_list("pk", flat=True)
    )
    marked = 0
    while True:
        ids = list(candidates[:batch_size])
        if not ids:
            return marked
        marked += Run.objects.filter(pk__in=ids, logs_expired=False).update(logs_expired=True)
        if len(ids) < batch_size:
            return marked
        time.sleep(pause)
