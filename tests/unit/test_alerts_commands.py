"""manage.py create_alert and fire_alert, as CONTRACT.md's operator commands table says."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from alerts import services
from alerts.models import AlertConfiguration, Incident, IncidentSource
from functions.models import Function, Run
from tests.factories import make_function

pytestmark = pytest.mark.django_db


@pytest.fixture
def visible(org):
    return make_function(org, "notify", visible_to_customers=True)


@pytest.fixture
def alert(org, visible):
    return services.alert_create(organization=org, actor=None, name="Harsh braking", functions=[visible])


def run(capsys, *args):
    call_command(*args)
    return json.loads(capsys.readouterr().out)


def test_create_alert_prints_id_name_and_functions(org, visible, capsys):
    second = make_function(org, "escalate", visible_to_customers=True)
    out = run(capsys, "create_alert", "--org", "acme fleet", "Speeding", "--function", "notify", "--function", "ESCALATE")
    alert = AlertConfiguration.objects.get()
    assert out == {"id": str(alert.pk), "name": "Speeding", "functions": ["notify", "escalate"]}
    assert alert.enabled and list(alert.functions.order_by("name")) == [second, visible]


@pytest.mark.parametrize(
    "args, says",
    [
        (["--org", "Nope", "A", "--function", "notify"], "No organization named “Nope”"),
        (["--org", "Acme Fleet", "A", "--function", "missing"], "No Function named “missing” in Acme Fleet"),
        (["--org", "Acme Fleet", "A", "--function", "internal"], "internal is not visible to customers"),
        (["--org", "Acme Fleet", "harsh braking", "--function", "notify"], "An alert named “harsh braking” already exists"),
        (["--org", "Acme Fleet", " ", "--function", "notify"], "Give the alert a name."),
    ],
)
def test_create_alert_refuses_bad_input_and_saves_nothing(org, alert, args, says):
    make_function(org, "internal")
    with pytest.raises(CommandError, match=says):
        call_command("create_alert", *args)
    assert AlertConfiguration.objects.count() == 1


def test_create_alert_needs_a_function(org):
    with pytest.raises(CommandError, match="--function"):
        call_command("create_alert", "--org", "Acme Fleet", "A")


def test_fire_alert_by_name_prints_the_incident_and_its_runs(alert, capsys):
    out = run(capsys, "fire_alert", "--org", "Acme Fleet", "harsh braking", "--driver-id", "12", "--asset-id", "34",
              "--incident-time", "1735689600000")
    incident, started = Incident.objects.get(), Run.objects.get()
    assert out == {
        "incidentId": str(incident.pk), "deduplicated": False,
        "runs": [{"function": "notify", "correlationId": str(started.correlation_id), "status": "queued"}],
    }
    assert incident.source == IncidentSource.COMMAND and incident.source_label == "manage.py fire_alert"
    assert started.event["alertIncidentTime"] == "1735689600000" and started.event["driverId"] == "12"


def test_fire_alert_by_id_twice_is_deduplicated_with_the_first_runs(alert, capsys):
    first = run(capsys, "fire_alert", "--org", "Acme Fleet", str(alert.pk))
    again = run(capsys, "fire_alert", "--org", "Acme Fleet", str(alert.pk))
    assert again == {**first, "deduplicated": True}
    assert Run.objects.count() == 1 and Incident.objects.count() == 2
    assert Run.objects.get().event["driverId"] == "" and "alertIncidentTime" not in Run.objects.get().event


def test_fire_alert_reports_an_action_that_could_not_start(org, alert, visible, capsys):
    Function.objects.filter(pk=visible.pk).update(deployed_version=None)
    out = run(capsys, "fire_alert", "--org", "Acme Fleet", "Harsh braking")
    assert out["runs"] == [{
        "function": "notify", "correlationId": None, "status": "not_started",
        "reason": "notify has no deployed code yet: upload a code package first.",
    }]


@pytest.mark.parametrize(
    "args, says",
    [
        (["Nope"], "No alert named \\(or with the id\\) “Nope” in Acme Fleet"),
        (["Harsh braking", "--driver-id", "x1"], "--driver-id: driverId must contain only the digits 0-9"),
        (["Harsh braking", "--asset-id", "1 2"], "--asset-id: assetId must contain only the digits"),
        (["Harsh braking", "--incident-time", "soon"], "--incident-time: alertIncidentTime must be epoch milliseconds"),
        (["Harsh braking", "--wait", "0"], "greater than 0"),
    ],
)
def test_fire_alert_refuses_bad_input_and_starts_nothing(alert, args, says):
    with pytest.raises(CommandError, match=says):
        call_command("fire_alert", "--org", "Acme Fleet", *args)
    assert not Incident.objects.exists() and not Run.objects.exists()


def test_fire_alert_of_another_organizations_alert_is_not_found(other_org, alert):
    make_function(other_org, "theirs", visible_to_customers=True)
    with pytest.raises(CommandError, match="No alert named"):
        call_command("fire_alert", "--org", "Other Org", str(alert.pk))


def test_fire_alert_refuses_a_disabled_alert(alert):
    AlertConfiguration.objects.update(enabled=False)
    with pytest.raises(CommandError, match="The alert “Harsh braking” is disabled and accepts no incidents"):
        call_command("fire_alert", "--org", "Acme Fleet", "Harsh braking")
    assert not Run.objects.exists()


def test_fire_alert_waiting_on_runs_no_worker_takes_fails_with_their_status(alert, capsys):
    with pytest.raises(CommandError, match="Runs of notify have not ended after 0.3 s"):
        call_command("fire_alert", "--org", "Acme Fleet", "Harsh braking", "--wait", "0.3")
    assert json.loads(capsys.readouterr().out)["runs"][0]["status"] == "queued"
