"""Triggering runs and the run pages, for every role. Execution itself: test_run_engine.py."""

import uuid

import pytest
from django.urls import reverse

from functions.models import Run, RunStatus
from functions.run_services import build_event, run_trigger, validate_overrides
from tests.conftest import READ_STATUS, ROLES, WRITERS
from tests.factories import make_function, make_run


@pytest.fixture
def function(org, users):
    return make_function(org, "hello", params={"name": "fleet", "region": "north"}, user=users["full_admin"])


def fn_url(view, function, **kwargs):
    return reverse(f"functions:{view}", kwargs={"org_id": function.organization_id, "name": function.name, **kwargs})


# --- the event, per CONTRACT.md ---------------------------------------------------


def test_the_event_is_built_in_the_contract_order(function):
    cid = uuid.uuid4()
    event = build_event(function=function, trigger="manual", correlation_id=cid, overrides={"region": "south", "extra": "1"})
    assert event == {
        "name": "fleet", "region": "south", "extra": "1",
        "SamsaraFunctionTriggerSource": "manual", "SamsaraFunctionCorrelationId": str(cid),
    }
    assert list(event)[-1] == "SamsaraFunctionCorrelationId"


def test_an_override_cannot_replace_the_correlation_id(function):
    cid = uuid.uuid4()
    event = build_event(function=function, trigger="api", correlation_id=cid, overrides={"SamsaraFunctionCorrelationId": "x"})
    assert event["SamsaraFunctionCorrelationId"] == str(cid)


def test_alert_payload_comes_after_parameters_and_before_the_trigger_source(function):
    event = build_event(
        function=function, trigger="alert", correlation_id=uuid.uuid4(),
        alert_payload={"alertConfigurationId": "a", "driverId": "12", "assetId": "", "name": "from-alert"},
        overrides={"name": "ignored"},
    )
    assert event["name"] == "from-alert" and event["SamsaraFunctionTriggerSource"] == "alert"


def test_schedule_runs_ignore_overrides(function):
    event = build_event(function=function, trigger="schedule", correlation_id=uuid.uuid4(), overrides={"name": "x"})
    assert event["name"] == "fleet"


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["a"], "must be an object"),
        ({"": "x"}, "needs a name"),
        ({"a": 1}, "must be a string, not int"),
        ({"a": None}, "must be a string, not NoneType"),
        ({"x" * 129: "v"}, "longer than 128"),
        ({"big": "x" * 300_000}, "256 KB"),
    ],
)
def test_bad_overrides_are_refused_with_a_message(overrides, message):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match=message):
        validate_overrides(overrides)


def test_triggering_creates_a_queued_run_and_enqueues_it_on_commit(function, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = run_trigger(function=function, trigger="manual", overrides={"name": "x"})
    assert run.status == RunStatus.QUEUED and run.attempts == 0 and run.max_attempts == 3
    assert run.code_version == function.deployed_version and run.overrides == {"name": "x"}
    assert run.timeout_seconds == 900 and run.memory_mb == 1769
    assert len(callbacks) == 1


def test_a_functions_own_lower_timeout_applies(function):
    function.timeout_seconds = 30
    function.save()
    assert run_trigger(function=function, trigger="api").timeout_seconds == 30


def test_overrides_are_never_saved_to_the_function(function):
    run_trigger(function=function, trigger="manual", overrides={"name": "temporary"})
    function.refresh_from_db()
    assert function.parameters_dict == {"name": "fleet", "region": "north"}


# --- the trigger page -----------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_only_write_roles_trigger_runs(member, function, role, django_capture_on_commit_callbacks):
    client = member(role)
    with django_capture_on_commit_callbacks(execute=False):
        get = client.get(fn_url("run_trigger", function))
        post = client.post(fn_url("run_trigger", function), {"param_name": ["name"], "param_value": ["x"]})
    if role in WRITERS:
        assert get.status_code == 200 and post.status_code == 302
        assert Run.objects.count() == 1
    else:
        expected = 404 if role == "outsider" else 403
        assert get.status_code == expected and post.status_code == expected
        assert Run.objects.count() == 0


def test_the_trigger_form_is_prefilled_with_the_parameters(admin_client, function):
    body = admin_client.get(fn_url("run_trigger", function)).content.decode()
    assert 'value="fleet"' in body and 'value="north"' in body


def test_the_trigger_form_records_only_changed_and_new_keys_as_overrides(admin_client, function, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(
            fn_url("run_trigger", function),
            {"param_name": ["name", "region", "newKey", ""], "param_value": ["fleet", "south", "v", ""]},
        )
    run = Run.objects.get()
    assert response["Location"] == fn_url("run_detail", function, correlation_id=run.correlation_id)
    assert run.overrides == {"region": "south", "newKey": "v"}
    assert run.event["region"] == "south" and run.event["name"] == "fleet" and run.triggered_by.email == "full_admin@example.com"


@pytest.mark.parametrize(
    "names,values,message",
    [
        (["", "x"], ["orphan", "1"], "has no name"),
        (["dup", "dup"], ["1", "2"], "given twice"),
        (["a"], ["1", "2"], "garbled"),
    ],
)
def test_the_trigger_form_refuses_bad_rows_and_keeps_the_input(admin_client, function, names, values, message):
    response = admin_client.post(fn_url("run_trigger", function), {"param_name": names, "param_value": values})
    assert response.status_code == 400 and message in response.content.decode()
    assert Run.objects.count() == 0


def test_a_function_without_deployed_code_cannot_run(admin_client, function):
    function.deployed_version = None
    function.save()
    response = admin_client.post(fn_url("run_trigger", function), {"param_name": [], "param_value": []})
    assert response.status_code == 400 and "no deployed code" in response.content.decode()


# --- runs list and run page ----------------------------------------------------------------


@pytest.fixture
def runs(function):
    made = [run_trigger(function=function, trigger=t) for t in ("manual", "api", "schedule")]
    Run.objects.filter(pk=made[0].pk).update(status=RunStatus.SUCCEEDED)
    Run.objects.filter(pk=made[1].pk).update(status=RunStatus.FAILED, reason="Handler raised ValueError: boom")
    return made


@pytest.mark.parametrize("role", ROLES)
def test_runs_pages_answer_each_role(member, function, runs, role):
    client = member(role)
    cid = runs[1].correlation_id
    for url in (fn_url("runs", function), fn_url("run_detail", function, correlation_id=cid), fn_url("run_live", function, correlation_id=cid)):
        assert client.get(url).status_code == READ_STATUS[role], url


def test_read_roles_see_runs_without_the_trigger_button(member, function, runs):
    body = member("read_only_admin").get(fn_url("runs", function)).content.decode()
    assert "Trigger Function run" not in body and str(runs[0].correlation_id)[:8] in body


def test_the_runs_list_filters_by_status_and_trigger(admin_client, function, runs):
    body = admin_client.get(fn_url("runs", function) + "?status=failed").content.decode()
    assert str(runs[1].correlation_id)[:8] in body and str(runs[0].correlation_id)[:8] not in body
    body = admin_client.get(fn_url("runs", function) + "?trigger=schedule").content.decode()
    assert str(runs[2].correlation_id)[:8] in body and str(runs[1].correlation_id)[:8] not in body


def test_the_runs_list_paginates(admin_client, function):
    for _ in range(55):
        run_trigger(function=function, trigger="api")
    first = admin_client.get(fn_url("runs", function)).content.decode()
    second = admin_client.get(fn_url("runs", function) + "?page=2").content.decode()
    assert "Page 1 of 2" in first and first.count("<tr>") == 51 and second.count("<tr>") == 6


def test_another_organizations_run_is_a_404(admin_client, other_org, function):
    foreign = make_function(other_org, "hello")
    run = run_trigger(function=foreign, trigger="api")
    # Same Function name, other organization: the address of ours does not reach theirs.
    assert admin_client.get(fn_url("run_detail", function, correlation_id=run.correlation_id)).status_code == 404


def test_the_run_page_shows_the_event_and_the_reason(admin_client, function, runs):
    body = admin_client.get(fn_url("run_detail", function, correlation_id=runs[1].correlation_id)).content.decode()
    assert "Handler raised ValueError: boom" in body and "SamsaraFunctionCorrelationId" in body


def test_the_live_endpoint_rejects_a_bad_cursor(admin_client, function, runs):
    response = admin_client.get(fn_url("run_live", function, correlation_id=runs[0].correlation_id) + "?after=x")
    assert response.status_code == 400 and "whole number" in response.json()["error"]


def test_the_live_endpoint_returns_status_and_new_lines(admin_client, function, runs):
    from django.utils import timezone

    from logs.models import LogEntry

    run = runs[2]
    first = LogEntry.objects.create(organization=function.organization, function=function, run=run, attempt=1, timestamp=timezone.now(), stream="stdout", message="one <b>")
    LogEntry.objects.create(organization=function.organization, function=function, run=run, attempt=1, timestamp=timezone.now(), stream="stdout", message="two")
    data = admin_client.get(fn_url("run_live", function, correlation_id=run.correlation_id) + f"?after={first.id}").json()
    assert "two" in data["lines_html"] and "one" not in data["lines_html"] and data["finished"] is False
    data = admin_client.get(fn_url("run_live", function, correlation_id=run.correlation_id)).json()
    assert "one &lt;b&gt;" in data["lines_html"]


def test_process_mode_shows_a_warning_banner_on_every_page(member, org, settings):
    settings.FUNCTIONS_SANDBOX = "process"
    body = member("read_only_admin").get(reverse("functions:list", kwargs={"org_id": org.id})).content.decode()
    assert "Runs are not isolated" in body


def test_the_isolated_default_shows_no_banner(member, org):
    body = member("read_only_admin").get(reverse("functions:list", kwargs={"org_id": org.id})).content.decode()
    assert "Runs are not isolated" not in body


def test_pages_show_times_in_the_organizations_time_zone(admin_client, function, runs):
    from django.utils import timezone as tz

    Run.objects.filter(pk=runs[0].pk).update(started_at=tz.datetime(2026, 1, 15, 18, 30, tzinfo=tz.UTC))
    body = admin_client.get(fn_url("run_detail", function, correlation_id=runs[0].correlation_id)).content.decode()
    # Acme Fleet is on America/Chicago: 18:30 UTC is 12:30 CST.
    assert "2026-01-15 12:30:00 CST" in body


def test_a_run_held_back_by_the_organizations_limit_says_why(admin_client, function, settings):
    settings.FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION = 1
    waiting = make_run(function, status=RunStatus.QUEUED)
    url = fn_url("run_detail", function, correlation_id=waiting.correlation_id)
    assert "Waiting for a worker" in admin_client.get(url).content.decode()
    make_run(function, status=RunStatus.RUNNING, attempts=1)
    body = admin_client.get(url).content.decode()
    assert "Waiting: 1 of this organization's runs are executing, the most it may run at once" in body
    settings.FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION = 0
    assert "Waiting for a worker" in admin_client.get(url).content.decode()
