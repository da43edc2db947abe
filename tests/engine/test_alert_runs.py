"""An alert's run end to end: the incident's payload reaches the handler through the real sandbox."""

import json
import threading
import time

import pytest
from django.core.management import call_command

from alerts import services
from alerts.models import IncidentSource
from functions.models import Run, RunStatus
from runtime.services import run_execute
from tests.factories import make_function

ECHO = """
def handler(event, context):
    print("incident for driver", event["driverId"])
    return {"keys": list(event), "event": event, "requestId": context.aws_request_id}
"""


@pytest.mark.django_db
def test_the_handler_sees_parameters_payload_trigger_and_correlation_id_in_the_contracts_order(org, run_to_end):
    # A parameter named like a payload field: the payload wins, as CONTRACT.md's order says.
    function = make_function(
        org, "echo", files={"main.py": ECHO}, visible_to_customers=True,
        params={"channel": "ops", "driverId": "from-parameters"},
    )
    alert = services.alert_create(organization=org, actor=None, name="Echo", functions=[function])
    result = services.incident_fire(
        alert=alert, driver_id="123", asset_id="", alert_incident_time="1735689600000", source=IncidentSource.COMMAND,
    )
    run = run_to_end(result.runs[0].run, limit=1)
    assert run.status == RunStatus.SUCCEEDED, run.reason
    seen = json.loads(run.return_value)
    cid = str(run.correlation_id)
    assert seen["keys"] == [
        "channel", "driverId", "alertConfigurationId", "assetId", "alertIncidentTime",
        "SamsaraFunctionTriggerSource", "SamsaraFunctionCorrelationId",
    ]
    assert seen["event"] == {
        "channel": "ops",
        "driverId": "123",
        "alertConfigurationId": str(alert.pk),
        "assetId": "",
        "alertIncidentTime": "1735689600000",
        "SamsaraFunctionTriggerSource": "alert",
        "SamsaraFunctionCorrelationId": cid,
    }
    assert seen["requestId"] == cid


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("reads_without_table_locks")  # the worker's thread polls while the command writes
def test_fire_alert_waits_for_the_runs_and_prints_their_outcome(org, capsys):
    function = make_function(org, "echo", files={"main.py": ECHO}, visible_to_customers=True)
    services.alert_create(organization=org, actor=None, name="Echo", functions=[function])

    def worker():
        # The worker's part: take the run once the command's incident has committed it.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            run = Run.objects.first()
            if run is not None:
                run_execute(run_id=run.pk)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=worker)
    thread.start()
    call_command("fire_alert", "--org", "Acme Fleet", "Echo", "--driver-id", "9", "--wait", "30")
    thread.join()
    out = json.loads(capsys.readouterr().out)
    run = Run.objects.get()
    assert out["deduplicated"] is False
    assert out["runs"] == [{"function": "echo", "correlationId": str(run.correlation_id), "status": "succeeded"}]
