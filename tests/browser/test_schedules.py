"""An admin makes a weekday schedule on the Schedule tab and reads its next runs, at desktop and phone widths."""

import re

import pytest
from playwright.sync_api import expect

from schedules.models import Schedule
from tests.factories import make_function

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("width, height", [(1440, 900), (390, 844)], ids=["desktop", "phone"])
def test_an_admin_makes_a_weekday_schedule_and_reads_its_next_runs(sign_in, page, org, artifacts_dir, width, height):
    make_function(org, "nightly-sync")
    page.set_viewport_size({"width": width, "height": height})
    sign_in("full_admin")
    page.goto(f"/o/{org.id}/settings/developer/functions/nightly-sync/schedule/")
    expect(page.get_by_test_id("schedule-summary")).to_contain_text("disabled")

    page.get_by_label("Enabled").check()
    row = page.get_by_test_id("entry-row").first
    for day in ("Mon", "Tue", "Wed", "Thu", "Fri"):
        row.get_by_label(day).check()
    row.get_by_label("Time of entry 1").fill("09:15")
    # A mistake first: the form keeps what was typed and says what to fix beside the row.
    page.get_by_label("Cron expression 1").fill("0 9 * * * *")
    page.get_by_role("button", name="Save schedule").click()
    cron_row = page.get_by_test_id("cron-row").first
    expect(cron_row).to_contain_text("seconds are not supported")
    expect(page.get_by_test_id("entry-row").first.get_by_label("Wed")).to_be_checked()
    page.screenshot(path=artifacts_dir / "error.png", full_page=True)

    page.get_by_label("Cron expression 1").fill("*/30 * * * *")
    page.get_by_role("button", name="Save schedule").click()
    expect(page.get_by_text("Saved the schedule of nightly-sync")).to_be_visible()
    descriptions = page.get_by_test_id("schedule-descriptions")
    expect(descriptions).to_contain_text("Every weekday at 09:15")
    expect(descriptions).to_contain_text("Every 30 minutes")
    next_runs = page.get_by_test_id("next-runs")
    expect(next_runs.locator("tbody tr")).to_have_count(10)
    expect(next_runs).to_contain_text(re.compile(r"UTC−0[56]:00"))  # America/Chicago
    expect(page.get_by_test_id("dst-notes")).to_contain_text("occur twice on")
    page.screenshot(path=artifacts_dir / "saved.png", full_page=True)
    schedule = Schedule.objects.get(function__name="nightly-sync")
    assert schedule.enabled and len(schedule.items) == 2

    page.get_by_role("link", name="Functions").first.click()
    expect(page.get_by_test_id("functions")).to_contain_text("Next run")
    page.screenshot(path=artifacts_dir / "list.png", full_page=True)
