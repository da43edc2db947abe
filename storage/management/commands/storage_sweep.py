import json
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from storage.services import blob_sweep


class Command(BaseCommand):
    help = (
        "Delete storage blobs that no file points to (left by a write killed half-way); "
        "prints {swept: N} as JSON. Safe to run from cron while the platform runs."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than-minutes", type=int, default=60,
            help="only blobs at least this old, so writes in progress keep their bytes (default 60)",
        )

    def handle(self, *args, older_than_minutes, **options):
        if older_than_minutes < 1:
            raise CommandError("--older-than-minutes must be at least 1: a younger blob may belong to a write in progress.")
        swept = blob_sweep(older_than=timedelta(minutes=older_than_minutes))
        self.stdout.write(json.dumps({"swept": len(swept)}))
