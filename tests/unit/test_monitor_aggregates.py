"""The Monitor's aggregates on SQLite against hand-computed values (tests/monitor_fixtures.py);
tests/integration/test_monitor_postgres.py checks the same figures on PostgreSQL."""

import zoneinfo

import pytest

from monitor.queries import function_list_health, monitor_figures
from monitor.ranges import RANGES, range_buckets
from tests import monitor_fixtures
from tests.factories import make_function

pytestmark = pytest.mark.django_db


@pytest.fixture
def function(org):
    function = make_function(org, "hello")
    monitor_fixtures.build(function)
    return function


def test_the_figures_of_each_bucket_and_of_the_range_match_hand_computed_values(function):
    buckets = range_buckets(RANGES["24h"], zone=zoneinfo.ZoneInfo("America/Chicago"), now=monitor_fixtures.NOW)
    assert buckets[23].start == monitor_fixtures.LAST and buckets[22].start == monitor_fixtures.PREVIOUS
    monitor_fixtures.assert_figures(monitor_figures(function=function, buckets=buckets), pytest.approx)


def test_the_list_shows_the_last_ten_outcomes_newest_first_and_the_last_error(function, org):
    quiet = make_function(org, "quiet")
    health = function_list_health([function.pk, quiet.pk], now=monitor_fixtures.NOW)
    marks = [m.status for m in health[function.pk].marks]
    assert len(marks) == 10
    assert sorted(marks[:7]) == sorted(["succeeded"] * 4 + ["failed", "timed_out", "dropped"])
    assert marks[7:] == ["succeeded"] * 3
    assert health[function.pk].last_error[1] in ("Handler raised KeyError: 'x'", "Timed out after 5 s")
    # The last 24 hours reach back to 15:30 the day before: the old 99,999 ms run counts too.
    assert health[function.pk].finished_24h == 9 and health[function.pk].success_rate_24h == pytest.approx(700 / 9)
    assert health[function.pk].p50_24h == 300
    assert health[quiet.pk].marks == [] and health[quiet.pk].last_error is None and health[quiet.pk].p50_24h is None
