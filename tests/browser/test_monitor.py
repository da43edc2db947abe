"""The Monitor tab in a real browser at 1440 and 390 pixels: charts, hover values, a bucket
opening its runs, the text alternative; and the Functions list's marks."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from functions.models import Run, RunStatus, StartKind
from tests.factories import make_function, make_run
from tests.monitor_fixtures import add_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def busy(org):
    """fleet-sync: a run every 30 minutes for a week, scheduled, with some retries, failures and timeouts."""
    rng = random.Random(7)
    function = make_function(org, "fleet-sync", timeout_seconds=60)
    now = timezone.now()
    for i in range(7 * 48):
        at = now - timedelta(minutes=30 * i + 1)
        roll = rng.random()
        status = RunStatus.SUCCEEDED if roll < 0.86 else RunStatus.FAILED if roll < 0.94 else (
            RunStatus.TIMED_OUT if roll < 0.97 else RunStatus.DROPPED)
        attempts = 0 if status == RunStatus.DROPPED else 3 if status != RunStatus.SUCCEEDED else (2 if roll < 0.05 else 1)
        duration = None if status == RunStatus.DROPPED else 60_000 if status == RunStatus.TIMED_OUT else int(rng.lognormvariate(7, 0.6))
        kinds = [((StartKind.COLD, rng.randint(380, 700)) if n == 0 and rng.random() < 0.2 else (StartKind.WARM, rng.randint(6, 15)))
                 for n in range(attempts)]
        add_run(function, at=at, status=status, duration_ms=duration, memory=None if duration is None else rng.uniform(60, 240),
                attempts=attempts, trigger="schedule", lag_ms=rng.randint(50, 900),
                reason="" if status == RunStatus.SUCCEEDED else "Handler raised ConnectionError: fleet API unavailable",
                kinds=kinds)
    make_function(org, "billing-export")
    return function


def test_the_monitor_tab_reads_clearly_and_a_bucket_opens_its_runs(sign_in, org, busy, artifacts_dir):
    page = sign_in("read_only_admin")
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"/o/{org.id}/settings/developer/functions/fleet-sync/monitor/")
    expect(page.get_by_test_id("chart-outcomes").locator("svg")).to_be_visible()
    expect(page.get_by_test_id("tiles")).to_contain_text("Success rate")
    page.screenshot(path=artifacts_dir / "monitor-24h-1440.png", full_page=True)

    page.get_by_role("link", name="Last 7 days").click()
    expect(page.get_by_role("link", name="Last 7 days")).to_have_attribute("aria-current", "page")
    duration = page.get_by_test_id("chart-duration")
    expect(duration).to_contain_text("timeout 60.0 s")
    # Hover values: each bucket carries its figures as an SVG <title>.
    title = page.get_by_test_id("chart-outcomes").locator("a.bucket title").last.text_content()
    assert "Succeeded:" in title and "Failed:" in title
    duration.get_by_text("Table of values").click()
    expect(duration.locator("table")).to_be_visible()
    page.screenshot(path=artifacts_dir / "monitor-7d-1440.png", full_page=True)

    page.get_by_test_id("chart-outcomes").locator("a.bucket").last.click()
    page.wait_for_url("**/runs/?start=*")
    expect(page.get_by_test_id("runs")).to_contain_text("Succeeded")
    page.screenshot(path=artifacts_dir / "runs-of-bucket.png", full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/o/{org.id}/settings/developer/functions/fleet-sync/monitor/?range=30d")
    expect(page.get_by_test_id("chart-lag").locator("svg")).to_be_visible()
    page.screenshot(path=artifacts_dir / "monitor-30d-390.png", full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, "the page itself must not scroll sideways at 390 px (charts scroll in their card)"


def test_the_functions_list_shows_recent_outcomes(sign_in, org, busy, artifacts_dir):
    page = sign_in("full_admin")
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"/o/{org.id}/settings/developer/functions/?sort=failures")
    marks = page.get_by_test_id("marks").first
    expect(marks.locator("a")).to_have_count(10)
    page.screenshot(path=artifacts_dir / "list-1440.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    page.screenshot(path=artifacts_dir / "list-390.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the table scrolls in its box, not the page"
    page.goto(f"/o/{org.id}/settings/developer/runs/?status=failed")
    expect(page.get_by_test_id("runs")).to_contain_text("Failed")
    page.screenshot(path=artifacts_dir / "org-runs-390.png", full_page=True)


def test_the_functions_list_can_be_sorted_at_both_widths(screen, org, users, artifacts_dir):
    """At 390 px the table's header row is hidden (rows are cards): a sort bar carries the same links."""
    for name, minutes_ago in (("alpha", 90), ("bravo", 5), ("charlie", 30)):
        run = make_run(make_function(org, name))
        Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
    screen.sign_in(users["full_admin"])
    screen.goto(f"/o/{org.id}/settings/developer/functions/")
    names = screen.locator("a.fn-name")
    expect(names).to_have_text(["alpha", "bravo", "charlie"])
    bar = screen.get_by_test_id("sort-bar")
    if screen.phone:
        expect(bar).to_be_visible()
        bar.get_by_role("link", name="Last run").click()
    else:
        expect(bar).to_be_hidden()
        screen.get_by_role("columnheader").get_by_role("link", name="Last run").click()
    expect(names).to_have_text(["bravo", "charlie", "alpha"])  # the most recent run first
    active = bar if screen.phone else screen.get_by_role("columnheader")
    expect(active.locator("a.sort-link.active")).to_have_text("Last run ↓")
    screen.screenshot(path=artifacts_dir / f"list-sorted-{screen.width}.png", full_page=True)
