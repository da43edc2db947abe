"""Settings → Alerts pages, every view for every role, and the Function pages' side of alerts."""

import pytest
from django.urls import reverse

from alerts import services
from alerts.models import AlertConfiguration, Incident, IncidentSource
from functions.models import Function, Run
from tests.conftest import READERS, WRITERS
from tests.factories import make_function

pytestmark = pytest.mark.django_db

# What each role gets: writers may change, readers only look.
DENIED_WRITE = {"read_only_admin": 403, "custom_functions_read": 403, "custom_none": 403, "outsider": 404}
DENIED_READ = {"custom_none": 403, "outsider": 404}


@pytest.fixture
def visible(org):
    return make_function(org, "notify", visible_to_customers=True)


@pytest.fixture
def hidden(org):
    return make_function(org, "internal")


@pytest.fixture
def alert(org, visible, users):
    return services.alert_create(organization=org, actor=None, name="Harsh braking", functions=[visible])


@pytest.fixture
def incident(alert):
    return services.incident_fire(
        alert=alert, driver_id="1", asset_id="2", source=IncidentSource.COMMAND, source_label="manage.py fire_alert"
    ).incident


def url(name, org, alert=None, **kwargs):
    if alert is not None:
        kwargs["alert_id"] = alert.pk
    return reverse(f"alerts:{name}", kwargs={"org_id": org.id, **kwargs})


def alert_fields(**fields):
    return {"name": "Speeding", "description": "", "enabled": "on", **fields}


# --- reading ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", WRITERS + READERS)
def test_members_who_read_functions_see_the_list_and_the_alert(member, org, alert, incident, role):
    client = member(role)
    listing = client.get(url("list", org)).content.decode()
    assert "Harsh braking" in listing and "notify" in listing
    page = client.get(url("detail", org, alert))
    assert page.status_code == 200
    body = page.content.decode()
    assert str(alert.pk) in body and "manage.py fire_alert" in body
    live = client.get(url("incidents_live", org, alert))
    assert live.status_code == 200 and "manage.py fire_alert" in live.json()["html"]
    # Write controls only for writers.
    assert ("Fire test incident</button>" in body) == (role in WRITERS)
    assert (">Replay</button>" in body) == (role in WRITERS)
    assert ("Create alert" in listing) == (role in WRITERS)


@pytest.mark.parametrize("role, status", DENIED_READ.items())
def test_members_without_functions_access_get_403_and_outsiders_404(member, org, alert, role, status):
    client = member(role)
    for address in (url("list", org), url("detail", org, alert), url("incidents_live", org, alert)):
        assert client.get(address).status_code == status, address


def test_another_organizations_alert_is_404_even_for_its_own_admin(member, org, other_org, alert):
    theirs = services.alert_create(
        organization=other_org, actor=None, name="Theirs",
        functions=[make_function(other_org, "x", visible_to_customers=True)],
    )
    client = member("full_admin")
    assert client.get(url("detail", org, theirs)).status_code == 404
    assert client.post(url("fire", org, theirs), {"driver_id": "1", "asset_id": "2"}).status_code == 404
    assert not Incident.objects.filter(alert=theirs).exists()


def test_the_settings_navigation_links_to_alerts_for_readers_only(member, org):
    body = member("custom_functions_read").get(url("list", org)).content.decode()
    assert f'href="/o/{org.id}/settings/alerts/" class="active">Alerts</a>' in body
    members_page = member("custom_none").get(reverse("accounts:members", kwargs={"org_id": org.id})).content.decode()
    assert ">Alerts</a>" not in members_page


def test_incidents_are_listed_newest_first_with_source_payload_and_run(admin_client, org, alert, users):
    services.incident_fire(alert=alert, driver_id="11", asset_id="", source=IncidentSource.USER, actor=users["full_admin"])
    services.incident_fire(alert=alert, driver_id="22", asset_id="33", alert_incident_time="1735689600000",
                           source=IncidentSource.API, source_label="token ci-bot")
    body = admin_client.get(url("detail", org, alert)).content.decode()
    assert body.index("API token: token ci-bot") < body.index("User: full_admin@example.com")
    assert "API token: token ci-bot" in body and "User: full_admin@example.com" in body
    # Shown in the organization's time zone (America/Chicago).
    assert "1735689600000" in body and "2024-12-31 18:00:00 CST" in body
    run = Run.objects.filter(event__driverId="22").get()
    assert f"/runs/{run.correlation_id}/" in body and "Queued" in body


def test_a_failed_run_and_a_repeat_are_marked(admin_client, org, alert, incident):
    Run.objects.update(status="failed", reason="ValueError: boom")
    services.incident_fire(alert=alert, driver_id="1", asset_id="2", source=IncidentSource.COMMAND)
    page = admin_client.get(url("detail", org, alert))
    body = page.content.decode()
    assert body.count('data-testid="incident-failed"') == 1 and "ValueError: boom" in body
    assert body.count('data-testid="incident-deduplicated"') == 1 and "Started nothing: it repeats" in body
    assert page.context["incidents_finished"] is True


# --- create, edit, delete ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", WRITERS)
def test_writers_create_an_alert_from_visible_functions(member, org, visible, role):
    response = member(role).post(url("create", org), alert_fields(functions=[visible.pk]))
    alert = AlertConfiguration.objects.get(name="Speeding")
    assert response.status_code == 302 and response["Location"] == url("detail", org, alert)
    assert list(alert.functions.all()) == [visible] and alert.enabled
    assert alert.created_by.email == f"{role}@example.com"


@pytest.mark.parametrize("role, status", DENIED_WRITE.items())
def test_other_roles_cannot_create_edit_delete_fire_or_replay(member, org, alert, incident, visible, role, status):
    client = member(role)
    before = (AlertConfiguration.objects.count(), Incident.objects.count(), Run.objects.count())
    requests = [
        ("get", url("create", org), None),
        ("post", url("create", org), alert_fields(functions=[visible.pk])),
        ("get", url("edit", org, alert), None),
        ("post", url("edit", org, alert), alert_fields(functions=[visible.pk])),
        ("get", url("delete", org, alert), None),
        ("post", url("delete", org, alert), {}),
        ("post", url("fire", org, alert), {"driver_id": "5", "asset_id": "6"}),
        ("post", url("replay", org, alert, incident_id=incident.pk), {}),
    ]
    for method, address, data in requests:
        assert getattr(client, method)(address, data or {}).status_code == status, (method, address)
    alert.refresh_from_db()
    assert alert.name == "Harsh braking"
    assert (AlertConfiguration.objects.count(), Incident.objects.count(), Run.objects.count()) == before


def test_the_form_offers_only_visible_functions_and_says_why_the_others_are_not(admin_client, org, visible, hidden):
    response = admin_client.get(url("create", org))
    choices = response.context["form"].fields["functions"].widget.choices
    assert [label for _, label in choices] == ["notify"]
    body = response.content.decode()
    assert f'value="{visible.pk}"' in body and f'value="{hidden.pk}"' not in body
    assert "Not offered, because they are not visible to customers" in body and ">internal</a>" in body


def test_a_hidden_function_posted_anyway_is_refused_with_the_reason(admin_client, org, hidden):
    response = admin_client.post(url("create", org), alert_fields(functions=[hidden.pk]))
    assert response.status_code == 400
    assert "internal is not visible to customers, and only visible Functions can be an alert&#x27;s action" in (
        response.content.decode()
    )
    assert not AlertConfiguration.objects.exists()


def test_the_form_says_when_no_function_is_visible(admin_client, org, hidden):
    body = admin_client.get(url("create", org)).content.decode()
    assert "No Function of Acme Fleet is visible to customers yet" in body


@pytest.mark.parametrize(
    "fields, says",
    [
        ({"name": ""}, "Give the alert a name."),
        ({"name": "harsh braking"}, "An alert named “harsh braking” already exists"),
        ({}, "Choose at least one Function for the alert to execute."),
    ],
)
def test_a_bad_form_says_what_to_fix_and_saves_nothing(admin_client, org, alert, fields, says):
    response = admin_client.post(url("create", org), alert_fields(**fields))
    assert response.status_code == 400 and says in response.content.decode()
    assert AlertConfiguration.objects.count() == 1


@pytest.mark.parametrize("role", WRITERS)
def test_writers_edit_an_alert(member, org, alert, visible, role):
    second = make_function(org, "escalate", visible_to_customers=True)
    client = member(role)
    page = client.get(url("edit", org, alert)).content.decode()
    assert 'value="Harsh braking"' in page
    response = client.post(url("edit", org, alert), {"name": "Braking", "description": "d", "functions": [second.pk]})
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.name == "Braking" and not alert.enabled and list(alert.functions.all()) == [second]


@pytest.mark.parametrize("role", WRITERS)
def test_writers_delete_an_alert(member, org, alert, incident, role):
    client = member(role)
    assert "1 incident" in client.get(url("delete", org, alert)).content.decode()
    response = client.post(url("delete", org, alert))
    assert response.status_code == 302 and response["Location"] == url("list", org)
    assert not AlertConfiguration.objects.exists() and Run.objects.count() == 1


# --- fire and replay ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", WRITERS)
def test_writers_fire_a_test_incident(member, org, alert, users, role):
    response = member(role).post(
        url("fire", org, alert), {"driver_id": "7", "asset_id": "8", "alert_incident_time": "1735689600000"}
    )
    incident = Incident.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"#incident-{incident.pk}")
    assert incident.source == IncidentSource.USER and incident.actor == users[role]
    run = Run.objects.get()
    assert run.event["driverId"] == "7" and run.triggered_by == users[role]


@pytest.mark.parametrize(
    "data, says",
    [
        ({"driver_id": "abc", "asset_id": "1"}, "driverId must contain only the digits 0-9"),
        ({"driver_id": "1", "asset_id": "1.5"}, "assetId must contain only the digits 0-9"),
        ({"driver_id": "1", "asset_id": "1", "alert_incident_time": "yesterday"}, "alertIncidentTime must be epoch milliseconds"),
        ({"driver_id": "1", "asset_id": "1", "alert_incident_time": "1735689600"}, "looks like epoch seconds"),
    ],
)
def test_a_bad_test_incident_says_what_to_fix_and_starts_nothing(admin_client, org, alert, data, says):
    response = admin_client.post(url("fire", org, alert), data)
    assert response.status_code == 400 and says in response.content.decode()
    assert not Incident.objects.exists() and not Run.objects.exists()
    # What was typed stays in the form.
    assert f'value="{data["driver_id"]}"' in response.content.decode()


def test_a_disabled_alert_refuses_a_test_incident_with_409(admin_client, org, alert):
    AlertConfiguration.objects.filter(pk=alert.pk).update(enabled=False)
    response = admin_client.post(url("fire", org, alert), {"driver_id": "1", "asset_id": "2"})
    assert response.status_code == 409
    assert "is disabled and accepts no incidents" in response.content.decode()
    assert not Incident.objects.exists()


def test_a_repeated_test_incident_says_it_was_deduplicated(admin_client, org, alert, incident):
    response = admin_client.post(url("fire", org, alert), {"driver_id": "1", "asset_id": "2"}, follow=True)
    assert "Deduplicated: an incident with the same driver, asset and incident time" in response.content.decode()
    assert Run.objects.count() == 1


@pytest.mark.parametrize("role", WRITERS)
def test_writers_replay_an_incident(member, org, alert, incident, role):
    response = member(role).post(url("replay", org, alert, incident_id=incident.pk))
    assert response.status_code == 302
    replay = Incident.objects.exclude(pk=incident.pk).get()
    assert replay.replay_of == incident and Run.objects.count() == 2


def test_replaying_an_incident_of_another_alert_is_404(admin_client, org, alert, incident, visible):
    other = services.alert_create(organization=org, actor=None, name="Other", functions=[visible])
    response = admin_client.post(url("replay", org, other, incident_id=incident.pk))
    assert response.status_code == 404 and Run.objects.count() == 1


def test_the_live_fragment_says_when_every_run_has_ended(admin_client, org, alert, incident):
    assert admin_client.get(url("incidents_live", org, alert)).json()["finished"] is False
    Run.objects.update(status="succeeded")
    data = admin_client.get(url("incidents_live", org, alert)).json()
    assert data["finished"] is True and "Succeeded" in data["html"]


# --- the Function pages' side ------------------------------------------------------------------------


def fn_url(name, org, function, **kwargs):
    return reverse(f"functions:{name}", kwargs={"org_id": org.id, "name": function.name, **kwargs})


def test_the_function_page_shows_the_alerts_it_is_an_action_of(admin_client, org, alert, visible):
    body = admin_client.get(fn_url("detail", org, visible)).content.decode()
    assert f'href="{url("detail", org, alert)}">Harsh braking</a>' in body
    assert "It can be neither hidden from customers nor deleted while they use it." in body


def test_the_visibility_setting_says_which_alerts_depend_on_it(admin_client, org, alert, visible):
    body = admin_client.get(fn_url("edit", org, visible)).content.decode()
    assert 'data-testid="visibility-dependents"' in body and ">Harsh braking</a>" in body


def test_hiding_an_action_function_on_its_edit_page_is_refused_with_the_alerts_names(admin_client, org, alert, visible):
    response = admin_client.post(
        fn_url("edit", org, visible),
        {"name": "notify", "description": "", "handler": visible.handler, "revision": visible.revision},
    )
    assert response.status_code == 400
    assert "notify is the action of the alert “Harsh braking”" in response.content.decode()
    visible.refresh_from_db()
    assert visible.visible_to_customers


def test_deleting_an_action_function_on_its_page_is_refused_with_the_alerts_names(admin_client, org, alert, visible):
    response = admin_client.post(fn_url("delete", org, visible))
    assert response.status_code == 400
    assert "notify is the action of the alert “Harsh braking”: remove it from the alert&#x27;s actions first" in (
        response.content.decode()
    )
    assert Function.objects.filter(pk=visible.pk).exists()


def test_the_run_page_of_an_alert_run_links_to_its_incident(admin_client, org, alert, incident, visible):
    run = Run.objects.get()
    body = admin_client.get(fn_url("run_detail", org, visible, correlation_id=run.correlation_id)).content.decode()
    assert f'{url("detail", org, alert)}#incident-{incident.pk}' in body


def test_the_run_page_of_a_manual_run_has_no_incident_link(admin_client, org, visible):
    from functions.run_services import run_trigger

    run = run_trigger(function=visible, trigger="manual")
    body = admin_client.get(fn_url("run_detail", org, visible, correlation_id=run.correlation_id)).content.decode()
    assert 'data-testid="run-incident"' not in body
