import json
import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.commands import function_named, organization_named
from functions.models import Run, TriggerSource
from functions.run_services import run_trigger
from logs.queries import lines_pending, run_log_entries


def parse_params(pairs):
    params = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--param {pair!r}: write it as KEY=VALUE.")
        params[key.strip()] = value
    return params


class Command(BaseCommand):
    help = "Start a manual run with parameter overrides; prints {correlationId, status} (with --wait, the outcome and logs)."

    def add_arguments(self, parser):
        parser.add_argument("function")
        parser.add_argument("--org", required=True, help="the organization's name")
        parser.add_argument("--param", action="append", metavar="KEY=VALUE", help="override a parameter for this run (repeatable)")
        parser.add_argument("--wait", type=float, metavar="SECONDS", help="wait up to SECONDS for the run to end")

    def handle(self, *args, function, org, param, wait, **options):
        fn = function_named(organization_named(org), function)
        if wait is not None and wait <= 0:
            raise CommandError("--wait takes a number of seconds greater than 0.")
        try:
            run = run_trigger(function=fn, trigger=TriggerSource.MANUAL, overrides=parse_params(param))
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        if wait is None:
            self.stdout.write(json.dumps({"correlationId": str(run.correlation_id), "status": run.status}))
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            run.refresh_from_db()
            # A flood's last lines are indexed seconds after the run ends (logs/services.py): wait for
            # them too, within the same time.
            if run.is_finished and not lines_pending(run=run):
                break
            time.sleep(0.1)
        run.refresh_from_db()
        self.stdout.write(json.dumps(run_summary(run), indent=2))
        if not run.is_finished:
            raise CommandError(f"The run {run.correlation_id} has not ended after {wait:g} s (status: {run.status}).")


def run_summary(run: Run):
    return_value = None
    if run.return_value is not None:
        try:
            return_value = json.loads(run.return_value)
        except ValueError:
            return_value = run.return_value
    pending = lines_pending(run=run)  # before the lines: an indexer may add some meanwhile, never remove
    summary = {
        "correlationId": str(run.correlation_id),
        "status": run.status,
        "reason": run.reason,
        "attempts": run.attempts,
        "durationMs": run.duration_ms,
        "returnValue": return_value,
        "logs": [
            {"timestamp": e.timestamp.isoformat(), "attempt": e.attempt, "stream": e.stream, "message": e.message}
            for e in run_log_entries(run).iterator()
        ],
    }
    if pending:  # only then: lines still being indexed, not in "logs" yet
        summary["pendingLines"] = pending
    return summary
