import json
import time
import uuid

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.commands import organization_named
from alerts import services
from alerts.models import AlertConfiguration, IncidentSource


def alert_named(organization, name_or_id):
    alert = AlertConfiguration.objects.of(organization).named(name_or_id).first()
    if alert is None:
        try:
            alert = AlertConfiguration.objects.of(organization).filter(pk=uuid.UUID(name_or_id)).first()
        except ValueError:
            alert = None
    if alert is None:
        raise CommandError(
            f"No alert named (or with the id) “{name_or_id}” in {organization.name}: create it with "
            "manage.py create_alert first."
        )
    return alert


def run_rows(action_runs):
    """{function, correlationId, status} per action; an action that could not start says why."""
    rows = []
    for action_run in action_runs:
        if action_run.run is not None:
            rows.append({
                "function": action_run.function_name,
                "correlationId": str(action_run.run.correlation_id),
                "status": action_run.run.status,
            })
        else:
            rows.append({
                "function": action_run.function_name, "correlationId": None, "status": "not_started",
                "reason": action_run.reason,
            })
    return rows


class Command(BaseCommand):
    help = (
        "Fire an incident of an alert (name or id); prints {incidentId, deduplicated, runs: [{function, "
        "correlationId, status}]}, with --wait once those runs end."
    )

    def add_arguments(self, parser):
        parser.add_argument("alert", help="the alert's name or id")
        parser.add_argument("--org", required=True, help="the organization's name")
        parser.add_argument("--driver-id", default="", metavar="D", help="the driver's id (digits; default empty)")
        parser.add_argument("--asset-id", default="", metavar="A", help="the asset's id (digits; default empty)")
        parser.add_argument("--incident-time", metavar="MS", help="the incident time in epoch milliseconds")
        parser.add_argument("--wait", type=float, metavar="SECONDS", help="wait up to SECONDS for the runs to end")

    def handle(self, *args, alert, org, driver_id, asset_id, incident_time, wait, **options):
        if wait is not None and wait <= 0:
            raise CommandError("--wait takes a number of seconds greater than 0.")
        target = alert_named(organization_named(org), alert)
        try:
            result = services.incident_fire(
                alert=target, driver_id=driver_id, asset_id=asset_id, alert_incident_time=incident_time,
                source=IncidentSource.COMMAND, source_label="manage.py fire_alert",
            )
        except ValidationError as error:
            raise CommandError(_message(error)) from None
        runs = result.runs
        unfinished = []
        if wait is not None:
            deadline = time.monotonic() + wait
            while True:
                for action_run in runs:
                    if action_run.run is not None:
                        action_run.run.refresh_from_db()
                unfinished = [r for r in runs if r.run is not None and not r.run.is_finished]
                if not unfinished or time.monotonic() >= deadline:
                    break
                time.sleep(0.1)
        self.stdout.write(json.dumps({
            "incidentId": str(result.first.pk),
            "deduplicated": result.deduplicated,
            "runs": run_rows(runs),
        }, indent=2 if wait is not None else None))
        if unfinished:
            names = ", ".join(r.function_name for r in unfinished)
            raise CommandError(f"Runs of {names} have not ended after {wait:g} s.")


def _message(error):
    """Flag names for the payload's fields, so the operator knows which option to fix."""
    flags = {"driverId": "--driver-id", "assetId": "--asset-id", "alertIncidentTime": "--incident-time"}
    if hasattr(error, "error_dict"):
        return " ".join(
            f"{flags.get(key, key)}: {message}" for key, errors in error.message_dict.items() for message in errors
        )
    return " ".join(error.messages)
