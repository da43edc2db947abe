"""Alert configurations and incidents through alerts.services: the rules every surface shares."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from alerts import services
from alerts.models import AlertAction, AlertConfiguration, Incident, IncidentKey, IncidentRun, IncidentSource
from functions import services as function_services
from functions.models import AuditEntry, Function, Run, TriggerSource
from tests.factories import make_function

pytestmark = pytest.mark.django_db


@pytest.fixture
def visible(org):
    return make_function(org, "notify", visible_to_customers=True, params={"channel": "ops"})


@pytest.fixture
def second(org):
    return make_function(org, "escalate", visible_to_customers=True)


@pytest.fixture
def alert(org, visible):
    return services.alert_create(organization=org, actor=None, name="Harsh braking", functions=[visible])


def fire(alert, **fields):
    payload = {"driver_id": "123", "asset_id": "456", "alert_incident_time": "1735689600000", **fields}
    return services.incident_fire(alert=alert, source=IncidentSource.COMMAND, **payload)


def refusal(call, **kwargs):
    with pytest.raises(ValidationError) as info:
        call(**kwargs)
    return info.value


def state():
    return (
        AlertConfiguration.objects.count(), AlertAction.objects.count(), Incident.objects.count(),
        IncidentRun.objects.count(), IncidentKey.objects.count(), Run.objects.count(),
    )


# --- configurations -----------------------------------------------------------------------------


def test_an_alert_is_created_enabled_with_its_actions_in_order(org, visible, second):
    alert = services.alert_create(
        organization=org, actor=None, name="  Speeding ", description="over 80", functions=[second, visible]
    )
    assert alert.name == "Speeding" and alert.enabled and alert.description == "over 80"
    assert [a.function.name for a in alert.actions.all()] == ["escalate", "notify"]


def test_only_functions_visible_to_customers_are_accepted_as_actions(org, visible):
    hidden = make_function(org, "internal")
    before = state()
    error = refusal(services.alert_create, organization=org, actor=None, name="A", functions=[visible, hidden])
    assert error.message_dict["functions"] == [
        "internal is not visible to customers, and only visible Functions can be an alert's action: "
        "turn on “Visible to customers” on its Edit page first."
    ]
    assert state() == before


def test_another_organizations_function_is_refused(org, other_org):
    theirs = make_function(other_org, "theirs", visible_to_customers=True)
    error = refusal(services.alert_create, organization=org, actor=None, name="A", functions=[theirs])
    assert "There is no Function named “theirs” in Acme Fleet" in error.message_dict["functions"][0]
    assert not AlertConfiguration.objects.exists()


@pytest.mark.parametrize(
    "fields, field, says",
    [
        ({"name": ""}, "name", "Give the alert a name."),
        ({"name": "x" * 101}, "name", "the limit is 100"),
        ({"name": "harsh BRAKING"}, "name", "An alert named “harsh BRAKING” already exists in Acme Fleet"),
        ({"functions": []}, "functions", "Choose at least one Function"),
        ({"description": "d" * 2001}, "description", "the limit is 2,000"),
    ],
)
def test_a_bad_configuration_says_what_to_fix_and_saves_nothing(org, alert, visible, fields, field, says):
    before = state()
    kwargs = {"organization": org, "actor": None, "name": "New", "functions": [visible], **fields}
    error = refusal(services.alert_create, **kwargs)
    assert says in " ".join(error.message_dict[field])
    assert state() == before


def test_an_update_replaces_the_actions_and_keeps_the_name_rule(org, alert, visible, second):
    services.alert_update(alert=alert, actor=None, name="Harsh braking v2", functions=[second], enabled=False)
    alert.refresh_from_db()
    assert alert.name == "Harsh braking v2" and not alert.enabled
    assert [a.function.name for a in alert.actions.all()] == ["escalate"]
    other = services.alert_create(organization=org, actor=None, name="Other", functions=[visible])
    error = refusal(services.alert_update, alert=other, actor=None, name="HARSH braking V2", functions=[visible])
    assert "already exists" in error.message_dict["name"][0]
    # Its own name, in another case, is fine.
    services.alert_update(alert=alert, actor=None, name="harsh braking v2", functions=[second])


def test_deleting_an_alert_keeps_the_runs_its_incidents_started(alert):
    result = fire(alert)
    services.alert_delete(alert=alert, actor=None)
    assert not Incident.objects.exists() and not IncidentKey.objects.exists()
    assert Run.objects.filter(pk=result.runs[0].run_id).exists()


def test_each_functions_history_says_when_it_became_or_stopped_being_an_action(org, users, visible, second):
    def history(function):
        return list(AuditEntry.objects.filter(function=function).order_by("id").values_list("action", "summary", "actor_label"))

    admin = users["full_admin"]
    alert = services.alert_create(organization=org, actor=admin, name="Harsh braking", functions=[visible])
    assert history(visible) == [("alert_action_added", "Added as an action of the alert “Harsh braking”", admin.email)]
    # A swap: one removed, one added; the one kept gets no entry.
    services.alert_update(alert=alert, actor=None, actor_label="API token “ci”", name="Harsh braking",
                          functions=[second])
    assert history(visible)[-1] == (
        "alert_action_removed", "Removed from the actions of the alert “Harsh braking”", "API token “ci”")
    assert history(second) == [("alert_action_added", "Added as an action of the alert “Harsh braking”", "API token “ci”")]
    services.alert_update(alert=alert, actor=admin, name="Renamed", functions=[second])
    assert len(history(second)) == 1
    services.alert_delete(alert=alert, actor=admin)
    assert history(second)[-1][:2] == ("alert_action_removed", "No longer an action: the alert “Renamed” was deleted")


# --- the Function side: hide and delete refused ---------------------------------------------------


def test_hiding_a_function_that_is_an_action_is_refused_with_the_alerts_names(org, alert, visible):
    services.alert_create(organization=org, actor=None, name="Another alert", functions=[visible])
    error = refusal(
        function_services.function_update, function=visible, actor=None, revision=visible.revision,
        description="", handler=visible.handler, event_parameters=visible.event_parameters,
        visible_to_customers=False,
    )
    assert error.message_dict["visible_to_customers"] == [
        "notify is the action of the alerts “Another alert”, “Harsh braking”: an alert's action must be visible "
        "to customers. Remove it from the alert's actions first, then hide it."
    ]
    visible.refresh_from_db()
    assert visible.visible_to_customers and visible.revision == 1


def test_deleting_a_function_that_is_an_action_is_refused_with_the_alerts_name(alert, visible):
    error = refusal(function_services.function_delete, function=visible, actor=None)
    assert error.messages == [
        "notify is the action of the alert “Harsh braking”: remove it from the alert's actions first, then delete it."
    ]
    assert Function.objects.filter(pk=visible.pk).exists()


def test_once_no_alert_uses_it_the_function_can_be_hidden_and_deleted(alert, visible, second):
    services.alert_update(alert=alert, actor=None, name=alert.name, functions=[second])
    function_services.function_update(
        function=visible, actor=None, revision=visible.revision, description="", handler=visible.handler,
        event_parameters=visible.event_parameters, visible_to_customers=False,
    )
    function_services.function_delete(function=visible, actor=None)
    assert not Function.objects.filter(pk=visible.pk).exists()


def test_the_database_refuses_deleting_an_action_function_behind_the_service(alert, visible):
    from django.db.models import RestrictedError

    Function.objects.filter(pk=visible.pk).update(deployed_version=None)
    with pytest.raises(RestrictedError):
        Function.objects.filter(pk=visible.pk).delete()


def test_deleting_the_organization_deletes_its_alerts_and_functions(org, alert):
    # (A deployed version protects its Function on its own, whatever alerts do.)
    Function.objects.update(deployed_version=None)
    org.delete()
    assert not AlertConfiguration.objects.exists() and not Function.objects.exists()


# --- incidents ------------------------------------------------------------------------------------


def test_an_incident_starts_one_alert_run_per_action_with_the_payload_in_its_event(org, visible, second):
    alert = services.alert_create(organization=org, actor=None, name="Two", functions=[visible, second])
    result = fire(alert)
    assert not result.deduplicated and result.first == result.incident
    runs = [r.run for r in result.runs]
    assert [r.function.name for r in runs] == ["notify", "escalate"]
    run = runs[0]
    assert run.trigger == TriggerSource.ALERT
    assert list(run.event.items()) == [
        ("channel", "ops"),
        ("alertConfigurationId", str(alert.pk)),
        ("driverId", "123"),
        ("assetId", "456"),
        ("alertIncidentTime", "1735689600000"),
        ("SamsaraFunctionTriggerSource", "alert"),
        ("SamsaraFunctionCorrelationId", str(run.correlation_id)),
    ]
    incident = result.incident
    assert incident.source == IncidentSource.COMMAND and incident.payload == {
        "alertConfigurationId": str(alert.pk), "driverId": "123", "assetId": "456",
        "alertIncidentTime": "1735689600000",
    }


def test_an_incident_without_a_time_leaves_it_out_of_the_event_and_allows_empty_ids(alert):
    result = fire(alert, driver_id="", asset_id="", alert_incident_time=None)
    event = result.runs[0].run.event
    assert event["driverId"] == "" and event["assetId"] == "" and "alertIncidentTime" not in event


def test_the_runs_are_enqueued_once_the_incident_commits(alert, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        fire(alert)
    assert len(callbacks) == 1


def test_a_repeat_within_24_hours_starts_nothing_and_answers_the_first_incidents_runs(alert):
    first = fire(alert)
    again = fire(alert)
    assert again.deduplicated and again.first == first.incident
    assert [r.run_id for r in again.runs] == [r.run_id for r in first.runs]
    assert Run.objects.count() == 1 and Incident.objects.count() == 2
    assert again.incident.duplicate_of == first.incident and not again.incident.action_runs.exists()


@pytest.mark.parametrize(
    "change", [{"driver_id": "124"}, {"asset_id": "457"}, {"alert_incident_time": "1735689600001"},
               {"alert_incident_time": None}],
)
def test_another_driver_asset_or_time_is_another_incident(alert, change):
    fire(alert)
    assert not fire(alert, **change).deduplicated
    assert Run.objects.count() == 2


def test_an_incident_of_another_alert_is_not_a_repeat(org, alert, visible):
    other = services.alert_create(organization=org, actor=None, name="Other", functions=[visible])
    fire(alert)
    assert not fire(other).deduplicated


def test_after_24_hours_the_same_incident_runs_again(alert):
    first = fire(alert)
    IncidentKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    later = fire(alert)
    assert not later.deduplicated and later.runs[0].run_id != first.runs[0].run_id
    key = IncidentKey.objects.get()
    assert key.incident == later.incident and key.expires_at > timezone.now() + timedelta(hours=23)
    assert fire(alert).first == later.incident


def test_the_window_counts_from_the_first_incident_not_the_repeats(alert):
    fire(alert)
    expires = IncidentKey.objects.get().expires_at
    fire(alert)
    assert IncidentKey.objects.get().expires_at == expires


def test_a_replay_fires_the_same_payload_as_a_new_incident_never_deduplicated(alert):
    first = fire(alert)
    replay = services.incident_replay(incident=first.incident, source=IncidentSource.USER)
    assert not replay.deduplicated and replay.incident.replay_of == first.incident
    assert replay.incident.payload == first.incident.payload
    assert replay.runs[0].run_id != first.runs[0].run_id and Run.objects.count() == 2
    # The original still owns the key: a delivery repeats it, not the replay.
    assert fire(alert).first == first.incident


def test_a_disabled_alert_refuses_incidents_and_saves_nothing(org, visible):
    alert = services.alert_create(organization=org, actor=None, name="Off", functions=[visible], enabled=False)
    before = state()
    with pytest.raises(services.AlertDisabled, match="The alert “Off” is disabled and accepts no incidents"):
        fire(alert)
    assert state() == before


def test_a_replay_of_a_disabled_alert_is_refused(alert):
    first = fire(alert)
    AlertConfiguration.objects.filter(pk=alert.pk).update(enabled=False)
    with pytest.raises(services.AlertDisabled):
        services.incident_replay(incident=first.incident, source=IncidentSource.USER)


def test_an_alert_with_no_actions_refuses_incidents(alert):
    AlertAction.objects.filter(alert=alert).delete()
    before = state()
    error = refusal(fire, alert=alert)
    assert error.messages == ["The alert “Harsh braking” has no actions: add a Function for it to execute first."]
    assert state() == before


def test_an_action_without_deployed_code_is_recorded_with_the_reason_and_the_others_run(org, visible):
    empty = make_function(org, "undeployed", visible_to_customers=True)
    Function.objects.filter(pk=empty.pk).update(deployed_version=None)
    alert = services.alert_create(organization=org, actor=None, name="Mixed", functions=[empty, visible])
    result = fire(alert)
    skipped, started = result.runs
    assert skipped.run is None and skipped.function_name == "undeployed"
    assert skipped.reason == "undeployed has no deployed code yet: upload a code package first."
    assert started.run.function == visible
    assert result.incident.failed


@pytest.mark.parametrize(
    "fields, key, says",
    [
        ({"driver_id": 123}, "driverId", "driverId must be a string of digits (the driver's id), not a number."),
        ({"driver_id": None}, "driverId", "not null"),
        ({"asset_id": "12a"}, "assetId", "assetId must contain only the digits 0-9 (the asset's id), or be empty; got “12a”."),
        ({"asset_id": "-1"}, "assetId", "only the digits 0-9"),
        ({"asset_id": "١٢"}, "assetId", "only the digits 0-9"),
        ({"driver_id": "1" * 65}, "driverId", "the limit is 64"),
        ({"alert_incident_time": 1735689600000}, "alertIncidentTime", "not a number"),
        ({"alert_incident_time": "2025-01-01T00:00:00Z"}, "alertIncidentTime", "must be epoch milliseconds"),
        ({"alert_incident_time": "1735689600.5"}, "alertIncidentTime", "must be epoch milliseconds"),
        ({"alert_incident_time": "1735689600"}, "alertIncidentTime", "looks like epoch seconds"),
        ({"alert_incident_time": "9" * 16}, "alertIncidentTime", "after the year 9999"),
        ({"alert_incident_time": ""}, "alertIncidentTime", "must be epoch milliseconds"),
    ],
)
def test_a_bad_payload_names_the_field_and_saves_and_starts_nothing(alert, fields, key, says):
    before = state()
    error = refusal(fire, alert=alert, **fields)
    assert says in " ".join(error.message_dict[key])
    assert state() == before


@pytest.mark.parametrize(
    "body, key, says",
    [
        ({"assetId": "1"}, "driverId", "driverId is required"),
        ({"driverId": "1"}, "assetId", "assetId is required"),
        ({"driverId": "1", "assetId": "2", "vehicleId": "3"}, "vehicleId", "“vehicleId” is not a field of an incident"),
        ({"driverId": "1", "assetId": "2", "alertConfigurationId": "x"}, "alertConfigurationId", "not a field"),
    ],
)
def test_a_body_with_a_missing_or_extra_field_is_refused(body, key, says):
    error = refusal(services.incident_payload_parse, data=body)
    assert says in " ".join(error.message_dict[key])


def test_a_body_that_is_not_an_object_is_refused():
    error = refusal(services.incident_payload_parse, data=["1", "2"])
    assert "must be a JSON object" in error.messages[0]


def test_a_good_body_parses_to_the_services_arguments():
    assert services.incident_payload_parse({"driverId": "1", "assetId": ""}) == {
        "driver_id": "1", "asset_id": "", "alert_incident_time": None,
    }


def test_expired_keys_are_pruned_and_live_ones_kept(org, alert, visible):
    fire(alert)
    fire(alert, driver_id="999")
    IncidentKey.objects.filter(driver_id="123").update(expires_at=timezone.now() - timedelta(seconds=1))
    assert services.incident_keys_prune(batch_size=1) == 1
    assert list(IncidentKey.objects.values_list("driver_id", flat=True)) == ["999"]
    # The pruned incident, delivered again, is a new incident; the live one still deduplicates.
    assert not fire(alert).deduplicated and fire(alert, driver_id="999").deduplicated


def test_beat_prunes_the_keys_hourly(settings):
    from alerts.tasks import prune_incident_keys

    entry = settings.CELERY_BEAT_SCHEDULE["prune-incident-keys"]
    assert entry == {"task": prune_incident_keys.name, "schedule": 3600.0}
