from django.db import models

from accounts.models import Organization


class Stream(models.TextChoices):
    STDOUT = "stdout", "stdout"
    STDERR = "stderr", "stderr"
    # Lines the platform itself adds to a run, like the closing REPORT line.
    PLATFORM = "platform", "platform"


class LogEntry(models.Model):
    """One line a run wrote, with the time it was read."""

    # No single-column index on the keys: the composite indexes below start
    # with each of them, and every extra index on this, the busiest table,
    # halves how fast a run's output can be written (bench/ingest.py).
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    function = models.ForeignKey(
        "functions.Function", on_delete=models.CASCADE, related_name="log_entries", db_index=False
    )
    run = models.ForeignKey("functions.Run", on_delete=models.CASCADE, related_name="log_entries", db_index=False)
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
