"""The Monitor's aggregates on the real PostgreSQL (percentile_cont), against the same
hand-computed values the SQLite test checks (tests/monitor_fixtures.py)."""

import zoneinfo

import pytest

from monitor.queries import function_list_health, monitor_figures
from monitor.ranges import RANGES, range_buckets
from tests import monitor_fixtures
from tests.factories import make_function

pytestmark = pytest.mark.django_db


def test_the_figures_on_postgresql_match_hand_computed_values(org):
    function = make_function(org, "hello")
    monitor_fixtures.build(function)
    buckets = range_buckets(RANGES["24h"], zone=zoneinfo.ZoneInfo("America/Chicago"), now=monitor_fixtures.NOW)
    monitor_fixtures.assert_figures(monitor_figures(function=function, buckets=buckets), pytest.approx)


def test_the_list_health_on_postgresql_matches_sqlite(org):
    function = make_function(org, "hello")
    monitor_fixtures.build(function)
    health = function_list_health([function.pk], now=monitor_fixtures.NOW)[function.pk]
    assert len(health.marks) == 10 and health.finished_24h == 9 and health.p50_24h == 300
    assert health.last_error[1] in ("Handler raised KeyError: 'x'", "Timed out after 5 s")
