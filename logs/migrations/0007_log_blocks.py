"""Staged blocks of a flood's lines (logs.models.LogBlock).

On PostgreSQL the payload (up to ~600 KB of COPY text a block) is compressed with lz4 instead of
the default pglz: measured, a million lines staged in 1.10 s of wall time instead of 1.45 s (the
server's compression competing with the Function for the cores). A server built without lz4 keeps pglz.
"""

import django.db.models.deletion
from django.db import migrations, models


def payload_lz4(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)")
        if cursor.fetchone():
            cursor.execute("ALTER TABLE logs_logblock ALTER COLUMN payload SET COMPRESSION lz4")


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_apitoken'),
        ('functions', '0010_run_dispatch'),
        ('logs', '0006_message_order_index'),
    ]

    operations = [
        migrations.CreateModel(
            name='LogBlock',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('attempt', models.PositiveSmallIntegerField()),
                ('created_at', models.DateTimeField()),
                ('lines', models.PositiveIntegerField()),
                ('payload', models.TextField()),
                ('function', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='functions.function')),
                ('organization', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.organization')),
                ('run', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='log_blocks', to='functions.run')),
            ],
            options={
                'indexes': [models.Index(fields=['run', 'id'], name='log_block_run_idx'), models.Index(fields=['function'], name='log_block_function_idx'), models.Index(fields=['organization'], name='log_block_org_idx'), models.Index(fields=['created_at'], name='log_block_time_idx')],
            },
        ),
        migrations.RunPython(payload_lz4, migrations.RunPython.noop, elidable=True),
    ]
