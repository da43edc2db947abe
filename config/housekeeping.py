"""Deleting old rows in small batches, the way every retention job does (logs, runs).

Each batch is its own short transaction: ids first (from an index, oldest
first), then a delete by primary key, so no job holds a table for long
whatever its size. A job bounded by `max_seconds` stops early and says so;
the next run of the job continues.
"""

import time
from dataclasses import dataclass

from django.db import transaction


@dataclass(frozen=True)
class BatchedDelete:
    deleted: int
    batches: int
    finished: bool  # False when max_seconds stopped it


def delete_in_batches(*, next_ids, delete, batch_size, pause, max_seconds=None):
    """next_ids(batch_size) -> ids of the next batch; delete(ids) -> rows deleted. Both run in one transaction."""
    started = time.monotonic()
    deleted = batches = 0
    while True:
        with transaction.atomic():
            ids = list(next_ids(batch_size))
            if ids:
                deleted += delete(ids)
        if not ids:
            return BatchedDelete(deleted, batches, True)
        batches += 1
        if len(ids) < batch_size:
            return BatchedDelete(deleted, batches, True)
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            return BatchedDelete(deleted, batches, False)
        time.sleep(pause)
