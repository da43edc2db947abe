"""The message order's index: each organization's entries by the first 64 characters of their
message, compared by code point (logs/queries.py, MessageKey). The organization-wide Logs page
sorted by message then reads a page from the index instead of sorting a week of entries
(bench/logs.py: 5 million entries took 850 ms).

A prefix, not the whole message: a PostgreSQL index entry holds at most about 2.7 KB, and a
Function may print lines of 256 KB, whose insert would fail; and a short key keeps each insert
cheap (bench/ingest.py). Entries sharing a prefix are put in order by the query itself.

On PostgreSQL built CONCURRENTLY (hence atomic = False) so upgrading a live installation does
not block the runs writing their output while it builds.
"""

from django.db import migrations

INDEX = "log_org_message_idx"
KEY_LENGTH = 64  # logs.queries.MESSAGE_KEY_LENGTH when this was written; queries must use the same


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # A concurrent build that failed half-way leaves an INVALID index behind: start clean.
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY {INDEX} ON logs_logentry "
            f'(organization_id, (substr(message, 1, {KEY_LENGTH}) COLLATE "C"))'
        )
    else:
        # With the timestamp: SQLite then tests the page's time range in the index itself, without
        # reading each entry's row (logs/queries.py walks this index only for ranges that hold many).
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON logs_logentry "
            f"(organization_id, substr(message, 1, {KEY_LENGTH}), timestamp)"
        )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
    else:
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("logs", "0005_daily_log_volume")]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
