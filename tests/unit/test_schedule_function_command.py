"""manage.py schedule_function: sets or shows a schedule, prints JSON, refuses bad input with a non-zero exit."""

import json
import pytest
from django.core.management import CommandError, call_command

from schedules.models import Schedule
from tests.factories import make_function


@pytest.fixture
def function(org):
    return make_function(org, "nightly")


def run(capsys, *args):
    call_command("schedule_function", "--org", "Acme Fleet", *args)
    return json.loads(capsys.readouterr().out)


def test_it_sets_entries_and_crons_and_previews_across_the_spring_change(function, capsys):
    out = run(capsys, "nightly", "--entry", "daily@02:30", "--cron", "0 12 * * mon-fri", "--timezone",
              "America/Los_Angeles", "--enable", "--preview", "3", "--from", "2026-03-07T00:00:00-08:00")
    assert out == {
        "function": "nightly",
        "enabled": True,
        "timezone": "America/Los_Angeles",
        "entries": [{"daysOfWeek": [True] * 7, "timeSinceMidnightMs": 9_000_000, "description": "Every day at 02:30"}],
        "cron": ["0 12 * * mon-fri"],
        "nextRuns": ["2026-03-07T02:30:00-08:00", "2026-03-08T03:00:00-07:00", "2026-03-09T02:30:00-07:00"],
    }


def test_options_not_given_keep_what_is_set_and_no_option_just_shows(function, capsys):
    run(capsys, "nightly", "--cron", "*/30 * * * *", "--enable")
    out = run(capsys, "nightly", "--disable", "--preview", "2", "--from", "2026-06-01T10:00")
    assert out["enabled"] is False and out["cron"] == ["*/30 * * * *"] and out["timezone"] == "America/Chicago"
    assert out["nextRuns"] == ["2026-06-01T10:30:00-05:00", "2026-06-01T11:00:00-05:00"]
    shown = run(capsys, "nightly", "--preview", "0")
    assert shown["nextRuns"] == [] and shown["cron"] == ["*/30 * * * *"]
    cleared = run(capsys, "nightly", "--clear", "--timezone", "org")
    assert cleared["cron"] == [] and cleared["entries"] == [] and cleared["nextRuns"] == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--cron", "0 0 * * * *"], "--cron: “0 0 * * * *” has 6 fields: seconds are not supported"),
        (["--cron", "0 24 * * *"], "--cron: Field 2 (hour)"),
        (["--entry", "someday@09:00"], "--entry: “someday” in “someday@09:00” is not a day"),
        (["--entry", "mon@24:00"], "outside the day"),
        (["--timezone", "Mars/Base"], "--timezone: “Mars/Base” is not an IANA time zone"),
        (["--cron", "0 * * * *", "--clear"], "--clear removes every item"),
        (["--from", "yesterday"], "is not an ISO 8601 time"),
        (["--preview", "-1"], "--preview must be between 0 and 1000"),
    ],
)
def test_it_refuses_bad_input_and_saves_nothing(function, args, message):
    with pytest.raises(CommandError) as caught:
        call_command("schedule_function", "--org", "Acme Fleet", "nightly", *args)
    assert message in str(caught.value)
    assert not Schedule.objects.exists()


def test_more_than_100_items_is_refused(function):
    with pytest.raises(CommandError, match="at most 100 items"):
        call_command("schedule_function", "--org", "Acme Fleet", "nightly", *sum((["--cron", "0 * * * *"] for _ in range(101)), []))


def test_an_unknown_function_or_organization_is_a_clear_error(function):
    with pytest.raises(CommandError, match="No Function named “nope”"):
        call_command("schedule_function", "--org", "Acme Fleet", "nope")
    with pytest.raises(CommandError, match="No organization named “Nope”"):
        call_command("schedule_function", "--org", "Nope", "nightly")
