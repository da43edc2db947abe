"""The schedule service and the tick on the database: saving, exactly once, overlap, downtime, changes."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from functions.models import AuditEntry, Run, RunStatus, TriggerSource
from schedules import services
from schedules.models import Occurrence, Schedule
from tests.factories import make_function

EVERY_MINUTE = "* * * * *"


@pytest.fixture
def function(org):
    return make_function(org, "nightly")


def at(*args):
    return datetime(*args, tzinfo=UTC)


def scheduled_runs(function):
    return list(Run.objects.filter(function=function, trigger=TriggerSource.SCHEDULE).order_by("scheduled_for", "id"))


def test_saving_a_schedule_computes_its_next_occurrence_in_the_organizations_zone(function):
    # Acme Fleet is in America/Chicago: 09:15 there is 15:15 UTC in winter.
    schedule = services.schedule_set(
        function=function, enabled=True, items=[{"daysOfWeek": [True] * 7, "timeSinceMidnightMs": 33_300_000}],
        now=at(2026, 1, 5, 12),
    )
    assert schedule.timezone is None
    assert schedule.next_occurrence_at == at(2026, 1, 5, 15, 15)
    assert AuditEntry.objects.filter(function=function, action="schedule_changed").count() == 1


def test_a_refused_schedule_saves_nothing_and_names_each_field(function):
    services.schedule_set(function=function, enabled=True, items=["0 9 * * *"], now=at(2026, 1, 5))
    with pytest.raises(ValidationError) as caught:
        services.schedule_set(function=function, timezone_name="Nowhere/Land", items=["0 9 * * *", "0 0 * * * *"])
    assert set(caught.value.message_dict) == {"timezone", "items[1]"}
    schedule = Schedule.objects.get(function=function)
    assert schedule.items == [{"kind": "cron", "expression": "0 9 * * *"}] and schedule.timezone is None


def test_disabling_clears_the_next_occurrence_and_the_tick_leaves_it_alone(function):
    services.schedule_set(function=function, enabled=True, items=[EVERY_MINUTE], now=at(2026, 1, 5, 12))
    services.schedule_set(function=function, enabled=False, now=at(2026, 1, 5, 12))
    assert Schedule.objects.get(function=function).next_occurrence_at is None
    services.schedules_tick(now=at(2026, 1, 5, 12, 5))
    assert scheduled_runs(function) == []


def test_the_tick_starts_one_run_per_occurrence_and_a_second_tick_starts_nothing(function):
    services.schedule_set(function=function, enabled=True, items=[EVERY_MINUTE], now=at(2026, 1, 5, 12, 0, 30))
    first = services.schedules_tick(now=at(2026, 1, 5, 12, 1, 0, 400_000))
    again = services.schedules_tick(now=at(2026, 1, 5, 12, 1, 0, 900_000))
    assert (first.started, again.started) == (1, 0)
    [run] = scheduled_runs(function)
    assert run.scheduled_for == at(2026, 1, 5, 12, 1)
    assert run.status == RunStatus.QUEUED
    assert run.event["SamsaraFunctionTriggerSource"] == "schedule"
    assert Schedule.objects.get(function=function).next_occurrence_at == at(2026, 1, 5, 12, 2)


def test_a_claimed_occurrence_never_fires_again_even_when_the_column_is_moved_back(function):
    services.schedule_set(function=function, enabled=True, items=[EVERY_MINUTE], now=at(2026, 1, 5, 12, 0, 30))
    services.schedules_tick(now=at(2026, 1, 5, 12, 1, 0, 500_000))
    # A stale tick (or an edit racing it) points the schedule at the same instant again.
    Schedule.objects.filter(function=function).update(next_occurrence_at=at(2026, 1, 5, 12, 1), last_occurrence_at=None)
    services.schedules_tick(now=at(2026, 1, 5, 12, 1, 0, 800_000))
    assert len(scheduled_runs(function)) == 1
    assert Occurrence.objects.filter(function=function).count() == 1


def test_an_occurrence_while_the_previous_run_is_going_is_recorded_as_dropped(function):
    services.schedule_set(function=function, enabled=True, items=[EVERY_MINUTE], now=at(2026, 1, 5, 12, 0, 30))
    services.schedules_tick(now=at(2026, 1, 5, 12, 1, 0, 200_000))
    Run.objects.filter(function=function).update(status=RunStatus.RUNNING)
    result = services.schedules_tick(now=at(2026, 1, 5, 12, 2, 0, 200_000))
    assert (result.started, result.dropped) == (0, 1)
    first, second = scheduled_runs(function)
    assert second.status == RunStatus.DROPPED and second.scheduled_for == at(2026, 1, 5, 12, 2)
    assert "previous scheduled run was still queued or running" in second.reason
    assert second.is_finished and second.attempts == 0
    # Once the earlier run is done, the next occurrence starts normally.
    Run.objects.filter(pk=first.pk).update(status=RunStatus.SUCCEEDED)
    assert services.schedules_tick(now=at(2026, 1, 5, 12, 3, 0, 200_000)).started == 1


def test_after_an_outage_only_the_latest_recent_occurrence_runs_and_the_rest_are_summed(function):
    services.schedule_set(function=function, enabled=True, items=["*/5 * * * *"], now=at(2026, 1, 5, 12, 0, 30))
    # No scheduler from 12:00:30 to 12:32:10: 12:05 ... 12:30 were missed (6 occurrences).
    result = services.schedules_tick(now=at(2026, 1, 5, 12, 32, 10))
    runs = scheduled_runs(function)
    assert [r.status for r in runs] == [RunStatus.DROPPED, RunStatus.QUEUED]
    summary, late = runs
    assert late.scheduled_for == at(2026, 1, 5, 12, 30)
    assert summary.reason == (
        "Missed 5 occurrences between 2026-01-05 06:05 (UTC−06:00) and 2026-01-05 06:25 (UTC−06:00): "
        "no scheduler was running."
    )
    assert (result.started, result.missed) == (1, 5)
    assert Schedule.objects.get(function=function).next_occurrence_at == at(2026, 1, 5, 12, 35)


def test_the_latest_missed_occurrence_runs_late_only_within_the_catch_up_window(function, settings):
    settings.SCHEDULE_CATCH_UP_SECONDS = 600
    services.schedule_set(function=function, enabled=True, items=["0 * * * *"], now=at(2026, 1, 5, 0, 30))
    services.schedules_tick(now=at(2026, 1, 5, 5, 9))  # 01:00 .. 05:00 missed; 05:00 is 9 minutes late
    runs = scheduled_runs(function)
    assert [r.status for r in runs] == [RunStatus.DROPPED, RunStatus.QUEUED]
    assert runs[0].reason.startswith("Missed 4 occurrences between 2026-01-04 19:00 (UTC−06:00) and 2026-01-04 22:00")
    assert runs[1].scheduled_for == at(2026, 1, 5, 5)
    Run.objects.filter(function=function).update(status=RunStatus.SUCCEEDED)
    services.schedules_tick(now=at(2026, 1, 5, 6, 11))  # 06:00 is 11 minutes late: outside the window
    [last] = scheduled_runs(function)[2:]
    assert last.status == RunStatus.DROPPED
    assert last.reason.startswith("Missed 1 occurrence at 2026-01-05 00:00 (UTC−06:00)")


def test_an_outage_whose_latest_occurrence_is_over_an_hour_old_runs_nothing_late(function):
    services.schedule_set(function=function, enabled=True, items=["0 9 * * *"], now=at(2026, 1, 5, 12))
    services.schedules_tick(now=at(2026, 1, 8, 18))  # 15:00 UTC on the 5th to the 8th; the last 3 hours old
    [summary] = scheduled_runs(function)
    assert summary.status == RunStatus.DROPPED
    assert summary.reason.startswith("Missed 4 occurrences between 2026-01-05 09:00 (UTC−06:00) and 2026-01-08 09:00")


def test_an_edit_takes_effect_at_the_next_occurrence(function):
    services.schedule_set(function=function, enabled=True, items=["0 9 * * *"], now=at(2026, 1, 5, 12))
    services.schedule_set(function=function, items=["*/10 * * * *"], now=at(2026, 1, 5, 12, 3))
    assert Schedule.objects.get(function=function).next_occurrence_at == at(2026, 1, 5, 12, 10)
    services.schedule_set(function=function, timezone_name="Asia/Tokyo", items=["0 9 * * *"], now=at(2026, 1, 5, 12, 3))
    assert Schedule.objects.get(function=function).next_occurrence_at == at(2026, 1, 6, 0)


def test_a_schedule_that_follows_the_organization_moves_when_its_zone_changes(function, org):
    services.schedule_set(function=function, enabled=True, items=["0 9 * * *"])
    pinned = make_function(org, "pinned")
    services.schedule_set(function=pinned, enabled=True, timezone_name="UTC", items=["0 9 * * *"])
    before = Schedule.objects.get(function=function).next_occurrence_at
    org.timezone = "Asia/Tokyo"
    org.save()
    after = Schedule.objects.get(function=function).next_occurrence_at
    assert after.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo")).hour == 9
    assert before != after
    assert Schedule.objects.get(function=pinned).next_occurrence_at.hour == 9


def test_deleting_the_function_stops_its_schedule(function):
    services.schedule_set(function=function, enabled=True, items=[EVERY_MINUTE], now=at(2026, 1, 5, 12))
    from functions import services as catalogue

    catalogue.function_delete(function=function, actor=None)
    assert not Schedule.objects.exists()
    assert services.schedules_tick(now=at(2026, 1, 5, 12, 5)).schedules == 0


def test_a_new_deploy_does_not_disturb_the_schedule(function, org):
    from functions import services as catalogue
    from tests.factories import HELLO, make_zip

    import io
    services.schedule_set(function=function, enabled=True, items=["0 9 * * *"], now=at(2026, 1, 5, 12))
    before = Schedule.objects.values_list("next_occurrence_at", "items", "enabled").get(function=function)
    catalogue.code_version_upload(function=function, actor=None, bundle=io.BytesIO(make_zip({"main.py": HELLO + "\n"})))
    assert Schedule.objects.values_list("next_occurrence_at", "items", "enabled").get(function=function) == before


def test_the_preview_shows_offsets_and_marks_the_changed_occurrence(function):
    services.schedule_set(function=function, enabled=False, timezone_name="America/Los_Angeles",
                          items=[{"daysOfWeek": [True] * 7, "timeSinceMidnightMs": 9_000_000}])  # 02:30
    rows = services.schedule_preview(schedule=Schedule.objects.get(function=function), after=at(2026, 3, 6, 12), count=3)
    assert [(r.local.isoformat(), r.offset) for r in rows] == [
        ("2026-03-07T02:30:00-08:00", "UTC−08:00"),
        ("2026-03-08T03:00:00-07:00", "UTC−07:00"),
        ("2026-03-09T02:30:00-07:00", "UTC−07:00"),
    ]
    assert [bool(r.note) for r in rows] == [False, True, False]
    assert rows[1].note.startswith("02:30 does not exist on 8 March")


def test_the_import_becomes_the_schedule_enabled_as_the_file_says(function):
    services.schedule_import(
        function=function,
        imported={"isSchedulingEnabled": True, "entries": [{"daysOfWeek": [False, True, True, True, True, True, False],
                                                            "timeSinceMidnightMs": 33_300_000}]},
    )
    schedule = Schedule.objects.get(function=function)
    assert schedule.enabled and schedule.timezone is None
    assert services.schedule_describe(schedule)[0][1] == "Every weekday at 09:15"


def test_the_api_shape_sets_entries_and_keeps_crons(function):
    services.schedule_set(function=function, enabled=True, items=["0 * * * *"])
    services.schedule_set_from_samsara(
        function=function, samsara_schedule={"entries": [{"daysOfWeek": [True] * 7, "timeSinceMidnightMs": 0}],
                                             "timezone": "Europe/Berlin"},
    )
    schedule = Schedule.objects.get(function=function)
    assert [i["kind"] for i in schedule.items] == ["entry", "cron"]
    assert services.schedule_as_samsara(schedule) == {
        "entries": [{"daysOfWeek": [True] * 7, "timeSinceMidnightMs": 0}], "timezone": "Europe/Berlin"}
    with pytest.raises(ValidationError) as caught:
        services.schedule_set_from_samsara(function=function, samsara_schedule={"entries": [{}], "timezone": "Europe/Berlin"})
    assert "schedule.entries[0]" in caught.value.message_dict
    assert services.schedule_next_occurrence(function=function) == schedule.next_occurrence_at


def test_old_claims_are_pruned(function):
    services.schedule_set(function=function, enabled=True, items=[EVERY_MINUTE], now=at(2026, 1, 5, 12, 0, 30))
    services.schedules_tick(now=at(2026, 1, 5, 12, 1, 0, 500_000))
    Occurrence.objects.update(created_at=at(2026, 1, 1))
    assert services.occurrences_prune(older_than=timedelta(days=1)) == 1
    assert not Occurrence.objects.exists()


def test_schedules_sharing_an_expression_each_fire_for_themselves(function, org):
    other = make_function(org, "other")
    berlin = make_function(org, "berlin")
    for f in (function, other):
        services.schedule_set(function=f, enabled=True, items=[EVERY_MINUTE], now=at(2026, 1, 5, 12, 0, 30))
    services.schedule_set(function=berlin, enabled=True, timezone_name="Europe/Berlin", items=["1 13 * * *"],
                          now=at(2026, 1, 5, 11, 0, 30))
    services.schedules_tick(now=at(2026, 1, 5, 12, 1, 0, 100_000))
    Run.objects.filter(function=function).update(status=RunStatus.SUCCEEDED)
    Run.objects.filter(function=other).update(status=RunStatus.RUNNING)
    result = services.schedules_tick(now=at(2026, 1, 5, 12, 2, 0, 100_000))
    assert (result.started, result.dropped) == (1, 1)
    assert [r.status for r in scheduled_runs(function)] == [RunStatus.SUCCEEDED, RunStatus.QUEUED]
    other_runs = scheduled_runs(other)
    other_runs.sort(key=lambda r: r.scheduled_for)
    assert [r.status for r in other_runs] == [RunStatus.RUNNING, RunStatus.DROPPED]
    assert [r.scheduled_for for r in scheduled_runs(berlin)] == [at(2026, 1, 5, 12, 1)]
    assert Schedule.objects.get(function=berlin).next_occurrence_at == at(2026, 1, 6, 12, 1)
