from django.db import models

from accounts.models import Organization


class Stream(models.TextChoices):
    STDOUT = "stdout", "stdout"
    STDERR = "stderr", "stderr"
    # Lines the platform itself adds to a run, like the closing REPORT line.
    PLATFORM = "platform", "platform"


def _unchecked_key(to: str | type[models.Model], related_name: str) -> models.ForeignKey:
    """A key to the run's rows that the database neither checks nor indexes (LogEntry says why)."""
    return models.ForeignKey(to, on_delete=models.CASCADE, related_name=related_name, db_index=False, db_constraint=False)


class LogEntry(models.Model):
    """One line a run wrote, with the time it was read."""

    # This is the busiest table: a run may write a million rows. So no
    # single-column index on the keys (the composite indexes below start with
    # each of them) and no database-level foreign key, whose per-row check
    # took half of PostgreSQL's insert time (bench/ingest.py). Rows are only
    # written by logs.services.log_entries_write with the ids of the run they
    # belong to; deleting a Function or run still deletes its entries
    # (Django's cascade), and retention removes any written after that.
    organization = _unchecked_key(Organization, "+")
    function = _unchecked_key("functions.Function", "log_entries")
    run = _unchecked_key("functions.Run", "log_entries")
    attempt = models.PositiveSmallIntegerField()
    timestamp = models.DateTimeField()
    stream = models.CharField(max_length=8, choices=Stream.choices)
    message = models.TextField()

    class Meta:
        ordering = ["timestamp", "id"]
        indexes = [
            # (time, id) is the cursor order: ties on time are broken by id.
            models.Index(fields=["function", "timestamp", "id"], name="log_function_time_idx"),
            models.Index(fields=["organization", "timestamp", "id"], name="log_org_time_idx"),
            models.Index(fields=["run", "id"], name="log_run_idx"),
            # Retention deletes by age across all organizations.
            models.Index(fields=["timestamp"], name="log_time_idx"),
        ]
        # On PostgreSQL, migration 0003 adds log_message_trgm_idx, a pg_trgm GIN
        # index on message for the case-insensitive search (logs/search.py).
        # Migration 0006 adds log_org_message_idx, the organization's entries by the
        # first 64 characters of their message (the message order, logs/queries.py):
        # an expression index, written in SQL of each database's own.


class LogVolume(models.Model):
    """What one organization's runs printed on one UTC day: stored, and dropped over its daily limit.

    One row per organization and day, updated once per batch of lines by the
    worker writing them (logs.services.log_volume_admit), so a flood in one
    organization cannot fill the shared database.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    stored_bytes = models.BigIntegerField(default=0)
    dropped_lines = models.BigIntegerField(default=0)
    dropped_bytes = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "day"], name="log_volume_org_day_uniq")]


class LogBlock(models.Model):
    """Lines of one attempt's flood waiting to become log entries: one batch, staged whole.

    Past its first LOG_STAGING_THRESHOLD lines (logs/services.py) an attempt's
    output is written here, a row per batch, instead of a row per line with
    the per-line indexes that cost PostgreSQL several times the Function's
    own time (bench/ingest.py); the run is recorded as finished once its
    blocks are committed, and logs.services.log_blocks_index expands them
    into LogEntry rows in id order seconds later. The payload's format is
    logs.services' (_block_payload): COPY text on PostgreSQL, JSON on SQLite.
    No database-level foreign keys, as for LogEntry: deleting a run or
    Function deletes its blocks through Django's cascade.
    """

    organization = _unchecked_key(Organization, "+")
    function = _unchecked_key("functions.Function", "+")
    run = _unchecked_key("functions.Run", "log_blocks")
    attempt = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField()
    lines = models.PositiveIntegerField()
    payload = models.TextField()

    class Meta:
        indexes = [
            # A run's blocks in order (the indexer expands a run's blocks one after the other) and
            # the pending notices of a run, a Function and an organization: a few rows per flood.
            models.Index(fields=["run", "id"], name="log_block_run_idx"),
            models.Index(fields=["function"], name="log_block_function_idx"),
            models.Index(fields=["organization"], name="log_block_org_idx"),
            # Retention deletes blocks an indexer never reached by age, as it does entries.
            models.Index(fields=["created_at"], name="log_block_time_idx"),
        ]
