"""POST /api/alerts/{alertConfigurationId}/incidents: token scopes, payload rules, deduplication, idempotency."""

import uuid

import pytest

from accounts.services import API_SCOPES
from alerts import services
from alerts.models import AlertConfiguration, Incident, IncidentSource
from functions.models import Function, Run
from tests.api.conftest import assert_error
from tests.factories import make_function

pytestmark = pytest.mark.django_db

BODY = {"driverId": "123", "assetId": "456", "alertIncidentTime": "1735689600000"}


@pytest.fixture
def visible(org):
    return make_function(org, "notify", visible_to_customers=True)


@pytest.fixture
def alert(org, visible):
    return services.alert_create(organization=org, actor=None, name="Harsh braking", functions=[visible])


def path(alert):
    return f"/alerts/{alert.pk}/incidents"


def test_an_incident_starts_the_actions_runs_and_answers_them(api, alert, visible):
    response = api.post(path(alert), BODY)
    assert response.status_code == 200, response.content
    run = Run.objects.get()
    incident = Incident.objects.get()
    assert response.json() == {"data": {
        "incidentId": str(incident.pk), "deduplicated": False,
        "runs": [{"name": "notify", "correlationId": str(run.correlation_id)}], "notStarted": [],
    }}
    assert run.trigger == "alert" and run.event["alertConfigurationId"] == str(alert.pk)
    assert run.event["alertIncidentTime"] == "1735689600000"
    assert incident.source == IncidentSource.API and incident.source_label == api.token.actor_label


def test_a_repeat_within_24_hours_answers_the_first_incident_deduplicated(api, alert):
    first = api.post(path(alert), BODY).json()["data"]
    again = api.post(path(alert), BODY).json()["data"]
    assert again == {**first, "deduplicated": True}
    assert Run.objects.count() == 1


def test_an_idempotency_key_replays_the_first_answer_and_records_nothing_more(api, alert):
    headers = {"HTTP_IDEMPOTENCY_KEY": "delivery-1"}
    first = api.post(path(alert), BODY, **headers)
    again = api.post(path(alert), BODY, **headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and first.json()["data"]["deduplicated"] is False
    assert Incident.objects.count() == 1 and Run.objects.count() == 1


def test_an_idempotency_key_reused_with_another_body_is_422(api, alert):
    headers = {"HTTP_IDEMPOTENCY_KEY": "delivery-1"}
    api.post(path(alert), BODY, **headers)
    assert_error(api.post(path(alert), {**BODY, "driverId": "9"}, **headers), 422, "Idempotency-Key")
    assert Run.objects.count() == 1


def test_an_action_without_deployed_code_is_answered_as_not_started(api, alert, visible):
    Function.objects.filter(pk=visible.pk).update(deployed_version=None)
    data = api.post(path(alert), BODY).json()["data"]
    assert data["runs"] == [] and data["notStarted"] == [
        {"name": "notify", "reason": "notify has no deployed code yet: upload a code package first."}
    ]


@pytest.mark.parametrize(
    "body, says",
    [
        ({"assetId": "1"}, "driverId"),
        ({"driverId": "1"}, "assetId"),
        ({"driverId": 1, "assetId": "2"}, "driverId must be a string of digits (the driver's id), not a number"),
        ({"driverId": "1", "assetId": "x"}, "assetId must contain only the digits 0-9"),
        ({"driverId": "1", "assetId": "2", "alertIncidentTime": "1735689600"}, "looks like epoch seconds"),
        ({"driverId": "1", "assetId": "2", "alertIncidentTime": 1735689600000}, "alertIncidentTime must be a string"),
        ({"driverId": "1", "assetId": "2", "vehicleId": "3"}, "“vehicleId” is not a field of an incident"),
        ("[1, 2]", "driverId"),
        ("not json", "body"),
    ],
)
def test_a_bad_body_is_400_naming_the_field_and_starts_nothing(api, alert, body, says):
    assert_error(api.post(path(alert), body), 400, says)
    assert not Incident.objects.exists() and not Run.objects.exists()


def test_a_disabled_alert_is_409(api, alert):
    AlertConfiguration.objects.update(enabled=False)
    assert_error(api.post(path(alert), BODY), 409, "The alert “Harsh braking” is disabled and accepts no incidents")
    assert not Incident.objects.exists()


def test_an_alert_with_no_actions_is_409(api, alert):
    alert.actions.all().delete()
    assert_error(api.post(path(alert), BODY), 409, "has no actions")


def test_an_unknown_or_another_organizations_alert_is_404(api, other_org, alert):
    theirs = services.alert_create(
        organization=other_org, actor=None, name="Theirs",
        functions=[make_function(other_org, "x", visible_to_customers=True)],
    )
    assert_error(api.post(path(theirs), BODY), 404)
    assert_error(api.post(f"/alerts/{uuid.uuid4()}/incidents", BODY), 404)
    assert_error(api.post("/alerts/not-a-uuid/incidents", BODY), 404)
    assert not Incident.objects.exists()


def test_a_token_without_write_functions_is_403_naming_the_scope(api_client, alert):
    reader = api_client(scopes=[s for s in API_SCOPES if s != "functions:write"])
    assert_error(reader.post(path(alert), BODY), 403, "functions:write")
    assert not Incident.objects.exists()


def test_deleting_a_function_that_is_an_action_is_409_naming_the_alert(api, alert, visible):
    assert_error(api.delete("/functions/notify"), 409, "notify is the action of the alert “Harsh braking”")
    assert Function.objects.filter(pk=visible.pk).exists()
