"""The search index: on PostgreSQL, a pg_trgm GIN index on the message, which
answers `message ILIKE '%text%'` (logs/search.py) without reading every row.

SQLite gets none on purpose: an FTS5 trigram table kept in step by triggers
cut the insert rate of a 5-million-entry table from about 100,000 to 7,000
rows per second and grew the file by a quarter (measured, bench/logs.py and
the report of issue #8); its searches stay fast by scanning one index range
at a time instead (logs/queries.py, SCAN_BUDGET).

Built CONCURRENTLY (hence atomic = False) so upgrading a live installation
does not block the runs writing their output while it builds.
"""

from django.db import migrations

INDEX = "log_message_trgm_idx"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # A concurrent build that failed half-way leaves an INVALID index behind: start clean.
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY {INDEX} ON logs_logentry USING gin (message gin_trgm_ops)"
    )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("logs", "0002_drop_redundant_key_indexes")]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
