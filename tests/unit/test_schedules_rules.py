"""The schedule rules without the database: occurrences through daylight saving, Vixie cron, descriptions, bad input."""

import zoneinfo
from datetime import UTC, datetime

import pytest

from schedules import rules

LA = zoneinfo.ZoneInfo("America/Los_Angeles")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def entry(days, hh, mm, ss=0):
    return rules.Entry(days_of_week=tuple(days), time_since_midnight_ms=((hh * 60 + mm) * 60 + ss) * 1000)


def local_times(items, tz, after, count):
    return [o.astimezone(tz).isoformat() for o in rules.first_occurrences(items, tz, after, count)]


def between(items, tz, start, end):
    out = []
    for instant in rules.occurrences(items, tz, start):
        if instant >= end:
            break
        out.append(instant.astimezone(tz).isoformat())
    return out


# --------------------------------------------------------------------------- spring forward


def test_an_entry_at_a_time_that_does_not_exist_runs_at_the_first_minute_after_the_jump_in_los_angeles():
    daily_0230 = entry(rules.EVERY_DAY, 2, 30)
    assert local_times([daily_0230], LA, datetime(2026, 3, 7, 12, tzinfo=UTC), 3) == [
        "2026-03-08T03:00:00-07:00",
        "2026-03-09T02:30:00-07:00",
        "2026-03-10T02:30:00-07:00",
    ]


def test_a_fixed_time_cron_in_the_gap_runs_at_03_00_in_berlin():
    cron = rules.parse_cron("30 2 * * *")
    assert local_times([cron], BERLIN, datetime(2026, 3, 28, 12, tzinfo=UTC), 3) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_a_fixed_time_outside_the_gap_keeps_its_wall_clock_time_across_the_change():
    cron = rules.parse_cron("15 9 * * *")
    assert local_times([cron], LA, datetime(2026, 3, 7, 12, tzinfo=UTC), 2) == [
        "2026-03-07T09:15:00-08:00",
        "2026-03-08T09:15:00-07:00",
    ]


@pytest.mark.parametrize(
    "tz, start, end, expected",
    [
        (LA, datetime(2026, 3, 8, 8, 59, tzinfo=UTC), datetime(2026, 3, 8, 11, 1, tzinfo=UTC),
         ["2026-03-08T01:00:00-08:00", "2026-03-08T01:30:00-08:00", "2026-03-08T03:00:00-07:00",
          "2026-03-08T03:30:00-07:00", "2026-03-08T04:00:00-07:00"]),
        (BERLIN, datetime(2026, 3, 29, 0, 0, tzinfo=UTC), datetime(2026, 3, 29, 2, 1, tzinfo=UTC),
         ["2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00",
          "2026-03-29T04:00:00+02:00"]),
    ],
)
def test_every_30_minutes_keeps_its_interval_through_the_spring_change(tz, start, end, expected):
    cron = rules.parse_cron("*/30 * * * *")
    got = between([cron], tz, start, end)
    assert got == expected
    instants = [datetime.fromisoformat(t) for t in got]
    assert {b - a for a, b in zip(instants, instants[1:])} == {instants[1] - instants[0]}


# --------------------------------------------------------------------------- fall back


def test_an_entry_at_a_repeated_time_runs_once_at_its_first_occurrence_in_los_angeles():
    daily_0130 = entry(rules.EVERY_DAY, 1, 30)
    assert local_times([daily_0130], LA, datetime(2026, 10, 31, 12, tzinfo=UTC), 3) == [
        "2026-11-01T01:30:00-07:00",
        "2026-11-02T01:30:00-08:00",
        "2026-11-03T01:30:00-08:00",
    ]


def test_a_fixed_time_cron_in_the_repeated_hour_runs_once_in_berlin():
    cron = rules.parse_cron("30 2 * * *")
    assert local_times([cron], BERLIN, datetime(2026, 10, 24, 12, tzinfo=UTC), 3) == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]


def test_starting_inside_the_repeated_hour_does_not_fire_the_first_pass_again():
    cron = rules.parse_cron("30 1 * * *")
    second_pass = datetime(2026, 11, 1, 9, 15, tzinfo=UTC)  # 01:15 PST, after 01:30 PDT fired
    assert local_times([cron], LA, second_pass, 1) == ["2026-11-02T01:30:00-08:00"]


@pytest.mark.parametrize(
    "tz, start, end, count",
    [
        (LA, datetime(2026, 11, 1, 6, 59, tzinfo=UTC), datetime(2026, 11, 1, 11, 0, tzinfo=UTC), 8),
        (BERLIN, datetime(2026, 10, 24, 22, 59, tzinfo=UTC), datetime(2026, 10, 25, 3, 0, tzinfo=UTC), 8),
    ],
)
def test_every_30_minutes_keeps_its_interval_through_the_autumn_change(tz, start, end, count):
    got = between([rules.parse_cron("*/30 * * * *")], tz, start, end)
    instants = [datetime.fromisoformat(t) for t in got]
    assert len(instants) == count
    assert {(b - a).total_seconds() for a, b in zip(instants, instants[1:])} == {1800}
    # The repeated wall-clock times appear twice, once per offset.
    walls = [t[11:16] for t in got]
    assert len(walls) != len(set(walls))


def test_entries_and_crons_merge_in_order_and_the_same_instant_fires_once():
    items = [entry(rules.EVERY_DAY, 9, 0), rules.parse_cron("0 9 * * *"), rules.parse_cron("0 12 * * *")]
    assert local_times(items, BERLIN, datetime(2026, 6, 1, 0, tzinfo=UTC), 3) == [
        "2026-06-01T09:00:00+02:00",
        "2026-06-01T12:00:00+02:00",
        "2026-06-02T09:00:00+02:00",
    ]


def test_entries_keep_seconds():
    assert local_times([entry(rules.EVERY_DAY, 9, 0, 30)], UTC, datetime(2026, 6, 1, tzinfo=UTC), 1) == [
        "2026-06-01T09:00:30+00:00"
    ]


# --------------------------------------------------------------------------- Vixie cron days


def test_both_day_fields_restricted_means_either_matches():
    # The 13th of the month or any Friday.
    cron = rules.parse_cron("0 12 13 * 5")
    days = [datetime.fromisoformat(t).day for t in local_times([cron], UTC, datetime(2026, 2, 1, tzinfo=UTC), 6)]
    assert days == [6, 13, 20, 27, 6, 13]  # Fridays of February 2026 (13th is one) and 6 and 13 March


def test_a_wildcard_day_field_means_both_must_match():
    cron = rules.parse_cron("0 12 * * 5")  # only Fridays
    got = [datetime.fromisoformat(t) for t in local_times([cron], UTC, datetime(2026, 2, 1, tzinfo=UTC), 3)]
    assert all(d.weekday() == 4 for d in got)
    cron = rules.parse_cron("0 12 1-7 * *")
    got = [datetime.fromisoformat(t).day for t in local_times([cron], UTC, datetime(2026, 2, 1, tzinfo=UTC), 8)]
    assert got == [1, 2, 3, 4, 5, 6, 7, 1]


def test_sunday_is_0_and_7_and_names_work():
    a = local_times([rules.parse_cron("0 8 * * 0")], UTC, datetime(2026, 2, 1, tzinfo=UTC), 2)
    b = local_times([rules.parse_cron("0 8 * * 7")], UTC, datetime(2026, 2, 1, tzinfo=UTC), 2)
    c = local_times([rules.parse_cron("0 8 * feb sun")], UTC, datetime(2026, 2, 1, tzinfo=UTC), 2)
    assert a == b == c == ["2026-02-01T08:00:00+00:00", "2026-02-08T08:00:00+00:00"]


@pytest.mark.parametrize("macro, fields", [("@hourly", "0 * * * *"), ("@daily", "0 0 * * *"),
                                           ("@weekly", "0 0 * * 0"), ("@monthly", "0 0 1 * *"),
                                           ("@yearly", "0 0 1 1 *")])
def test_macros_mean_their_five_fields(macro, fields):
    after = datetime(2026, 2, 3, 4, 5, tzinfo=UTC)
    assert local_times([rules.parse_cron(macro)], UTC, after, 3) == local_times([rules.parse_cron(fields)], UTC, after, 3)


# --------------------------------------------------------------------------- descriptions


@pytest.mark.parametrize(
    "item, text",
    [
        (entry(rules.WEEKDAYS, 9, 15), "Every weekday at 09:15"),
        (entry(rules.EVERY_DAY, 0, 0), "Every day at 00:00"),
        (entry((False, True, False, True, False, True, False), 18, 0), "Every Monday, Wednesday and Friday at 18:00"),
        (entry(rules.WEEKENDS, 7, 5, 30), "Every Saturday and Sunday at 07:05:30"),
        (rules.parse_cron("*/30 * * * *"), "Every 30 minutes"),
        (rules.parse_cron("0 * * * *"), "Every hour"),
        (rules.parse_cron("15 9 * * 1-5"), "At 09:15, Monday through Friday"),
        (rules.parse_cron("0 0 13 * 5"), "At 00:00, on day 13 of the month, or on Friday"),
    ],
)
def test_items_are_described_in_plain_english(item, text):
    assert rules.describe(item) == text


# --------------------------------------------------------------------------- daylight-saving notes


def test_the_notes_say_what_each_change_does():
    items = [entry(rules.EVERY_DAY, 2, 30), rules.parse_cron("30 1 * * *"), rules.parse_cron("*/30 * * * *"),
             rules.parse_cron("0 12 * * *")]
    notes = rules.dst_notes(items, LA, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    messages = {(n.item_index, n.message) for n in notes}
    assert (0, "02:30 does not exist on 8 March (clocks jump from 02:00 to 03:00): runs at 03:00") in messages
    assert (1, "01:30 occurs twice on 1 November (clocks go back from 02:00 to 01:00): runs once, at the first "
               "(UTC−07:00)") in messages
    assert any(i == 2 and "8 March" in m and "skipped" in m for i, m in messages)
    assert any(i == 2 and "1 November" in m and "runs both times" in m for i, m in messages)
    assert not any(i == 3 for i, _ in messages)  # noon is never affected


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "text, says",
    [
        ("0 0 * * * *", "seconds are not supported"),
        ("0 25 * * *", "Field 2 (hour)"),
        ("61 * * * *", "Field 1 (minute)"),
        ("0 0 32 * *", "Field 3 (day of month)"),
        ("0 0 * 13 *", "Field 4 (month)"),
        ("0 0 * * 8", "Field 5 (day of week)"),
        ("0 0 * * mon#2", "Field 5 (day of week)"),
        ("* * * *", "has 4 fields"),
        ("@reboot", "not a macro"),
        ("0 0 30 2 *", "never runs"),
        ("", "Write a cron expression"),
    ],
)
def test_a_bad_cron_expression_is_refused_with_what_to_fix(text, says):
    with pytest.raises(rules.ScheduleError) as caught:
        rules.parse_cron(text)
    assert says in str(caught.value)


def test_an_entry_without_a_day_or_outside_the_day_is_refused():
    with pytest.raises(rules.ScheduleError, match="at least one day"):
        rules.parse_entry({"daysOfWeek": [False] * 7, "timeSinceMidnightMs": 0})
    with pytest.raises(rules.ScheduleError, match="within the day"):
        rules.parse_entry({"daysOfWeek": [True] * 7, "timeSinceMidnightMs": 86_400_000})


def test_more_than_100_items_is_refused():
    with pytest.raises(rules.ScheduleError, match="at most 100 items"):
        rules.parse_items(["0 * * * *"] * 101)


def test_an_unknown_time_zone_is_refused():
    with pytest.raises(rules.ScheduleError, match="not an IANA time zone"):
        rules.zone("Mars/Olympus_Mons")


@pytest.mark.parametrize(
    "text, days, ms",
    [
        ("weekdays@09:15", rules.WEEKDAYS, 33_300_000),
        ("daily@00:00", rules.EVERY_DAY, 0),
        ("weekends@23:59:59", rules.WEEKENDS, 86_399_000),
        ("mon,wed,fri@18:00", (False, True, False, True, False, True, False), 64_800_000),
        ("fri-mon@06:30", (True, True, False, False, False, True, True), 23_400_000),
    ],
)
def test_the_command_spells_entries_as_days_at_a_time(text, days, ms):
    assert rules.parse_entry_text(text) == rules.Entry(days_of_week=days, time_since_midnight_ms=ms)


@pytest.mark.parametrize("text, says", [("weekdays", "DAYS@HH:MM"), ("someday@09:00", "is not a day"),
                                        ("mon@25:00", "outside the day"), ("mon@9", "HH:MM")])
def test_a_bad_entry_text_is_refused(text, says):
    with pytest.raises(rules.ScheduleError, match=says):
        rules.parse_entry_text(text)


def test_samsara_shape_round_trips_entries_and_leaves_crons_out():
    entries, tz = rules.items_from_samsara(
        {"entries": [{"daysOfWeek": list(rules.WEEKDAYS), "timeSinceMidnightMs": 33_300_000}], "timezone": "Europe/Berlin"}
    )
    assert tz == "Europe/Berlin"
    shape = rules.items_to_samsara(entries + [rules.parse_cron("0 * * * *")], tz)
    assert shape == {"entries": [{"daysOfWeek": list(rules.WEEKDAYS), "timeSinceMidnightMs": 33_300_000}],
                     "timezone": "Europe/Berlin"}
    with pytest.raises(rules.ScheduleError) as caught:
        rules.items_from_samsara({"entries": [{"daysOfWeek": [False] * 7, "timeSinceMidnightMs": 1}], "timezone": "X"})
    assert {p for p, _ in caught.value.errors} == {"schedule.entries[0]", "schedule.timezone"}
