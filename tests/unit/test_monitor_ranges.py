"""Monitor buckets on the organization's wall clock, also across daylight-saving changes."""

import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest

from monitor.queries import monitor_figures
from monitor.ranges import RANGES, RangeError, parse_range, range_buckets
from tests.factories import make_function
from tests.monitor_fixtures import add_run

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")


def test_an_unknown_range_is_refused_with_the_choices():
    with pytest.raises(RangeError, match="Unknown range “90d”: choose one of 24h, 7d, 30d."):
        parse_range("90d")
    assert parse_range(None).key == "24h" and parse_range("30d").key == "30d"


def test_day_buckets_follow_local_midnights_through_the_spring_change():
    # Chicago springs forward on Sunday 2026-03-08 at 02:00 (CST -6 to CDT -5).
    now = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
    buckets = range_buckets(RANGES["30d"], zone=CHICAGO, now=now)
    assert len(buckets) == 30
    assert all(b.start.astimezone(CHICAGO).hour == 0 for b in buckets)
    change = next(b for b in buckets if b.start.astimezone(CHICAGO).date().isoformat() == "2026-03-08")
    assert change.end - change.start == timedelta(hours=23)
    assert change.start == datetime(2026, 3, 8, 6, 0, tzinfo=UTC)   # midnight CST
    assert change.end == datetime(2026, 3, 9, 5, 0, tzinfo=UTC)     # midnight CDT
    assert buckets[-1].start <= now < buckets[-1].end


def test_day_buckets_follow_local_midnights_through_the_autumn_change():
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)   # Chicago falls back on 2026-11-01
    change = next(b for b in range_buckets(RANGES["30d"], zone=CHICAGO, now=now) if b.label == "01 Nov")
    assert change.end - change.start == timedelta(hours=25)


def test_the_hour_repeated_when_clocks_go_back_is_two_hourly_buckets_with_their_offsets():
    now = datetime(2026, 11, 1, 12, 30, tzinfo=UTC)   # 06:30 CST, after the change at 02:00 CDT
    buckets = range_buckets(RANGES["24h"], zone=CHICAGO, now=now)
    one_am = [b for b in buckets if b.label == "01:00"]
    assert len(one_am) == 2
    assert "CDT" in one_am[0].title and "CST" in one_am[1].title
    assert all(b.end - b.start == timedelta(hours=1) for b in buckets)


def test_six_hour_blocks_start_at_local_0_6_12_18_and_one_is_shorter_on_the_spring_change():
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    buckets = range_buckets(RANGES["7d"], zone=CHICAGO, now=now)
    assert len(buckets) == 28
    assert {b.start.astimezone(CHICAGO).hour for b in buckets} == {0, 6, 12, 18}
    night = next(b for b in buckets if b.start == datetime(2026, 3, 8, 6, 0, tzinfo=UTC))
    assert night.end - night.start == timedelta(hours=5)


@pytest.mark.django_db
def test_a_run_late_on_the_short_day_counts_for_that_day_not_the_next(org):
    function = make_function(org, "hello")
    # 23:30 CDT on 2026-03-08 is 04:30 UTC on 03-09: still the 8th where the organization is.
    add_run(function, at=datetime(2026, 3, 9, 4, 30, tzinfo=UTC), duration_ms=10)
    # 00:30 CDT on 03-09.
    add_run(function, at=datetime(2026, 3, 9, 5, 30, tzinfo=UTC), duration_ms=20)
    buckets = range_buckets(RANGES["30d"], zone=CHICAGO, now=datetime(2026, 3, 20, 12, 0, tzinfo=UTC))
    figures = monitor_figures(function=function, buckets=buckets)
    by_label = {b.label: figures[b.index] for b in buckets}
    assert by_label["08 Mar"].total == 1 and by_label["08 Mar"].duration.max == 10
    assert by_label["09 Mar"].total == 1 and by_label["09 Mar"].duration.max == 20
