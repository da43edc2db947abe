"""The Schedule tab for every role, its form (errors at the row, what was typed kept), and scheduled runs on the Runs tab."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from functions.models import Run, RunStatus, TriggerSource
from schedules import services
from schedules.models import Schedule
from tests.conftest import READERS, ROLES, WRITERS
from tests.factories import make_function

NON_WRITERS = [r for r in ROLES if r not in WRITERS]
STATUS_GET = {"full_admin": 200, "standard_admin": 200, "read_only_admin": 200, "custom_functions_read": 200,
              "custom_none": 403, "outsider": 404}
STATUS_POST = {"read_only_admin": 403, "custom_functions_read": 403, "custom_none": 403, "outsider": 404}


@pytest.fixture
def fn(org, users):
    return make_function(org, "nightly")


def url(org, fn, name="schedule", **kwargs):
    return reverse(f"functions:{name}", kwargs={"org_id": org.id, "name": fn.name, **kwargs})


def weekday_form(time="09:15", **extra):
    data = {"enabled": "1", "timezone": "org", "entry_count": "1", "cron_count": "1", "save": "1",
            "entry-0-time": time, "cron-0": ""}
    for day in range(1, 6):
        data[f"entry-0-day-{day}"] = "1"
    data.update(extra)
    return data


@pytest.mark.parametrize("role", ROLES)
def test_the_tab_answers_each_role_as_its_permissions_say(member, org, fn, role):
    services.schedule_set(function=fn, enabled=True, items=["*/30 * * * *"])
    response = member(role).get(url(org, fn))
    assert response.status_code == STATUS_GET[role]
    if response.status_code == 200:
        body = response.content.decode()
        assert "Every 30 minutes" in body and "Next 10 occurrences" in body
        assert ('data-testid="schedule-form"' in body) == (role in WRITERS)


@pytest.mark.parametrize("role", WRITERS)
def test_write_roles_save_a_weekday_schedule(member, org, fn, role):
    response = member(role).post(url(org, fn), weekday_form())
    assert response.status_code == 302
    schedule = Schedule.objects.get(function=fn)
    assert schedule.enabled and schedule.timezone is None
    assert schedule.items == [{"kind": "entry", "daysOfWeek": [False, True, True, True, True, True, False],
                               "timeSinceMidnightMs": 33_300_000}]
    body = member(role).get(url(org, fn)).content.decode()
    assert "Every weekday at 09:15" in body and "UTC−0" in body


@pytest.mark.parametrize("role", NON_WRITERS)
def test_other_roles_cannot_change_the_schedule(member, org, fn, role):
    response = member(role).post(url(org, fn), weekday_form())
    assert response.status_code == STATUS_POST[role]
    assert not Schedule.objects.exists()


def test_a_bad_row_is_reported_beside_it_and_the_form_keeps_what_was_typed(admin_client, org, fn):
    services.schedule_set(function=fn, enabled=False, items=["0 9 * * *"])
    response = admin_client.post(url(org, fn), weekday_form(
        time="", cron_count="2", **{"cron-0": "0 0 * * * *", "cron-1": "*/15 * * * *",
                                    "entry-0-day-1": "1"},
    ))
    assert response.status_code == 400
    body = response.content.decode()
    assert "The time of day is missing" in body
    assert "seconds are not supported" in body
    assert 'value="0 0 * * * *"' in body and 'value="*/15 * * * *"' in body
    assert 'name="entry-0-day-1" value="1" checked' in body
    assert Schedule.objects.get(function=fn).items == [{"kind": "cron", "expression": "0 9 * * *"}]


@pytest.mark.parametrize(
    "form, says",
    [
        (weekday_form(**{f"entry-0-day-{d}": "" for d in range(7)}), "Choose at least one day"),
        (weekday_form(time="25:00"), "within the day"),
        (weekday_form(time="nine"), "is not a time"),
        (weekday_form(timezone="Mars/Base"), "is not an IANA time zone name"),
        (weekday_form(**{"cron-0": "0 24 * * *"}), "Field 2 (hour)"),
    ],
)
def test_each_bad_input_gets_its_message_and_nothing_is_saved(admin_client, org, fn, form, says):
    form = {k: v for k, v in form.items() if v != ""} | {"entry-0-time": form.get("entry-0-time", "")}
    response = admin_client.post(url(org, fn), form)
    assert response.status_code == 400
    assert says in response.content.decode()
    assert not Schedule.objects.exists()


def test_more_than_100_items_is_refused_at_the_form(admin_client, org, fn):
    form = weekday_form(cron_count="101", **{f"cron-{n}": "0 * * * *" for n in range(101)})
    response = admin_client.post(url(org, fn), form)
    assert response.status_code == 400 and "at most 100 items" in response.content.decode()


def test_adding_a_row_keeps_the_typed_rows_and_saves_nothing(admin_client, org, fn):
    response = admin_client.post(url(org, fn), {**weekday_form(), "add_cron": "1", "cron-0": "*/5 * * * *"})
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count('data-testid="cron-row"') == 2 and 'value="*/5 * * * *"' in body
    assert not Schedule.objects.exists()


def test_the_tab_marks_daylight_saving_changes_in_the_next_year(admin_client, org, fn):
    services.schedule_set(function=fn, enabled=True, timezone_name="America/Los_Angeles",
                          items=[{"daysOfWeek": [True] * 7, "timeSinceMidnightMs": 9_000_000}, "30 1 * * *"])
    body = admin_client.get(url(org, fn)).content.decode()
    assert "does not exist on" in body and "runs at 03:00" in body
    assert "occurs twice on" in body


def test_the_functions_list_shows_each_functions_next_run(admin_client, org, fn):
    make_function(org, "manual-only")
    services.schedule_set(function=fn, enabled=True, items=["0 9 * * *"])
    body = admin_client.get(reverse("functions:list", kwargs={"org_id": org.id})).content.decode()
    assert "Next run " in body and "09:00 (CST)" in body or "09:00 (CDT)" in body


def test_scheduled_and_dropped_runs_show_their_trigger_occurrence_and_reason(member, org, fn):
    services.schedule_set(function=fn, enabled=True, items=["* * * * *"], now=datetime(2026, 1, 5, 12, tzinfo=UTC))
    services.schedules_tick(now=datetime(2026, 1, 5, 12, 1, 0, 300_000, tzinfo=UTC))
    Run.objects.update(status=RunStatus.RUNNING)
    services.schedules_tick(now=datetime(2026, 1, 5, 12, 2, 0, 300_000, tzinfo=UTC))
    client = member("read_only_admin")
    body = client.get(url(org, fn, "runs")).content.decode()
    assert "status-dropped" in body and "previous scheduled run was still queued or running" in body
    assert "2026-01-05 06:02 CST" in body
    dropped = Run.objects.get(status=RunStatus.DROPPED)
    assert dropped.trigger == TriggerSource.SCHEDULE
    detail = client.get(url(org, fn, "run_detail", correlation_id=dropped.correlation_id)).content.decode()
    assert "Schedule" in detail and 'data-testid="run-occurrence"' in detail and "not started" in detail
    filtered = client.get(url(org, fn, "runs") + "?status=dropped").content.decode()
    assert filtered.count("status-dropped") == 1
