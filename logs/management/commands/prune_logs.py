import json

from django.core.management.base import BaseCommand, CommandError

from logs.services import PRUNE_BATCH, logs_prune


class Command(BaseCommand):
    help = (
        "Delete log entries older than LOGS_RETENTION_DAYS (in small batches) and mark the runs left without "
        "entries as \"logs expired\". The beat schedule does this hourly; run it by hand after lowering the retention."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=PRUNE_BATCH, help="entries per DELETE (default %(default)s)")

    def handle(self, *args, batch_size, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        result = logs_prune(batch_size=batch_size)
        self.stdout.write(json.dumps({
            "cutoff": result.cutoff.isoformat(), "deleted": result.deleted, "runsMarked": result.runs_marked,
            "batches": result.batches, "blocksDeleted": result.blocks_deleted,
        }))
