"""A finished run whose last lines are still being indexed: the page says so, then shows them without a reload by hand."""

import pytest
from playwright.sync_api import expect

from logs.services import log_block_stage, log_blocks_index, log_entries_write
from tests.factories import make_function, make_run
from tests.unit.test_logs_blocks import _rows


@pytest.mark.usefixtures("reads_without_table_locks")
def test_the_run_page_says_lines_are_being_indexed_and_shows_them_once_they_are(sign_in, org, artifacts_dir):
    function = make_function(org, "flooder")
    run = make_run(function)
    log_entries_write(run=run, attempt=1, rows=_rows(100))
    log_block_stage(run=run, attempt=1, rows=_rows(300, start=100))
    page = sign_in("read_only_admin")
    page.goto(f"/o/{org.id}/settings/developer/functions/flooder/runs/{run.correlation_id}/")
    notice = page.get_by_test_id("run-pending")
    expect(notice).to_have_text(
        "The last 300 lines of this run's output are still being indexed and will appear within a few seconds."
    )
    expect(page.locator("#run-output .line")).to_have_count(100)
    page.screenshot(path=artifacts_dir / "1-pending.png")

    log_blocks_index()
    # The page's live log picks the lines up, and it reloads once they are all in.
    expect(page.locator("#run-output .line")).to_have_count(400, timeout=15_000)
    expect(notice).to_be_hidden()
    page.wait_for_load_state()
    expect(page.locator("#run-output .line .msg").last).to_have_text("line 399")
    page.screenshot(path=artifacts_dir / "2-indexed.png")


@pytest.mark.usefixtures("reads_without_table_locks")
def test_the_pending_notices_read_well_on_a_laptop_and_a_phone(screen, users, org, artifacts_dir):
    from tests.browser.conftest import assert_fits

    function = make_function(org, "flooder")
    run = make_run(function)
    log_entries_write(run=run, attempt=1, rows=_rows(100))
    log_block_stage(run=run, attempt=1, rows=_rows(300, start=100))
    screen.sign_in(users["read_only_admin"])
    screen.goto(f"/o/{org.id}/settings/developer/functions/flooder/runs/{run.correlation_id}/")
    expect(screen.get_by_test_id("run-pending")).to_be_visible()
    assert_fits(screen, "the run page")
    screen.get_by_test_id("run-pending").scroll_into_view_if_needed()
    screen.screenshot(path=artifacts_dir / f"run-page-{screen.width}.png")
    screen.goto(f"/o/{org.id}/settings/developer/functions/flooder/logs/")
    expect(screen.get_by_test_id("logs-pending")).to_be_visible()
    assert_fits(screen, "the Logs tab")
    screen.get_by_test_id("logs-pending").scroll_into_view_if_needed()
    screen.screenshot(path=artifacts_dir / f"logs-tab-{screen.width}.png")
