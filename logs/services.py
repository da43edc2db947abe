"""Retention: log entries older than LOGS_RETENTION_DAYS are deleted; their runs stay, marked "logs expired".

Deletion goes in small batches, each its own short transaction, with a pause
between them: a worker writing a run's output (SQLite has one writer at a
time) or a page reading entries never waits behind one long DELETE, and an
interrupted prune simply continues at the next one.
"""

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef

from functions.models import Run

from .models import LogEntry
from .queries import retention_cutoff

logger = logging.getLogger(__name__)

PRUNE_BATCH = 10_000
PRUNE_PAUSE_SECONDS = 0.05


@dataclass(frozen=True)
class PruneResult:
    cutoff: datetime
    deleted: int
    runs_marked: int
    batches: int
    finished: bool  # False when max_seconds stopped it; the next run continues


def logs_prune(*, now=None, batch_size=PRUNE_BATCH, pause=PRUNE_PAUSE_SECONDS, max_seconds=None):
    """Delete the entries older than the retention window, then mark the runs left without entries."""
    now = now or datetime.now(UTC)
    cutoff = retention_cutoff(now)
    started = time.monotonic()
    deleted = batches = 0
    finished = True
    while True:
        with transaction.atomic():
            # Ids first (the timestamp index, oldest first), then a DELETE by
            # primary key: bounded work on both databases, whatever the table size.
            ids = list(
                LogEntry.objects.filter(timestamp__lt=cutoff).order_by("timestamp").values_list("id", flat=True)[:batch_size]
            )
            if ids:
                # Nothing refers to a log entry, so Django deletes without loading the rows.
                deleted += LogEntry.objects.filter(id__in=ids).delete()[0]
        if not ids:
            break
        batches += 1
        if len(ids) < batch_size:
            break
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            finished = False
            break
        time.sleep(pause)
    runs_marked = runs_mark_logs_expired(cutoff=cutoff, batch_size=batch_size, pause=pause) if finished else 0
    if deleted or runs_marked:
        logger.info("logs: deleted %s entries older than %s in %s batches; %s runs marked logs expired",
                    deleted, cutoff.isoformat(), batches, runs_marked)
    return PruneResult(cutoff=cutoff, deleted=deleted, runs_marked=runs_marked, batches=batches, finished=finished)


def runs_mark_logs_expired(*, cutoff, batch_size=PRUNE_BATCH, pause=PRUNE_PAUSE_SECONDS):
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
