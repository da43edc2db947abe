"""Logs in a real browser: search, sort, load more, download, bad input, the organization-wide page,
and the live tail of a running run (lines on screen within a second of being printed, then it stops)."""

import json
import re
import threading
import time
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from django.db import connection
from django.utils import timezone

from config.celery import app as celery_app
from functions.models import Run
from functions.run_services import run_trigger
from tests.factories import make_function
from tests.factories import add_log_lines, make_run

pytestmark = pytest.mark.django_db(transaction=True)


def logs_url(fn):
    return f"/o/{fn.organization_id}/settings/developer/functions/{fn.name}/logs/"


@pytest.fixture
def fleet(org):
    """fleet-sync: 1,200 entries in the last hour, 1 in 50 a quota error; billing: a few of its own."""
    now = timezone.now()
    fn = make_function(org, "fleet-sync")
    run = make_run(fn, finished_at=now - timedelta(minutes=5))
    add_log_lines(run, *[
        (now - timedelta(minutes=50) + timedelta(seconds=i * 2),
         f"ERROR Quota exceeded for bucket b{i:04d}" if i % 50 == 0 else f"INFO synced vehicle v{i:04d} in {i % 90} ms")
        for i in range(1200)
    ])
    billing = make_function(org, "billing")
    other = make_run(billing, finished_at=now - timedelta(minutes=3))
    add_log_lines(other, (now - timedelta(minutes=4), "INFO invoice batch started"),
        (now - timedelta(minutes=3), "ERROR quota exceeded while sending invoices"), stream="stderr")
    return fn, run, billing, other


def test_an_operator_searches_sorts_pages_and_downloads(sign_in, fleet, artifacts_dir, tmp_path):
    fn, run, billing, other = fleet
    page = sign_in("read_only_admin")  # reading is enough to search and download
    page.goto(logs_url(fn))
    table = page.get_by_test_id("logs")
    assert table.locator("tbody tr").count() == 1000
    assert page.get_by_test_id("load-more").is_visible()
    page.screenshot(path=artifacts_dir / "1-last-24-hours.png")

    # Load more continues exactly where the page ended.
    page.get_by_test_id("load-more").click()
    # Locators, not wait_for_function: the page's CSP forbids evaluating strings (no 'unsafe-eval').
    expect(page.locator("[data-log-rows] tr")).to_have_count(1200)
    messages = table.locator("td.msg").all_inner_texts()
    assert len(set(messages)) == 1200
    assert page.get_by_test_id("load-more").count() == 0
    assert "every entry" in page.locator("[data-searched]").inner_text()

    # Search: case-insensitive, matches highlighted, the query in the address.
    page.fill("input[name=q]", "QUOTA exceeded")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    # A preset stays relative in the address; empty fields stay out of it.
    assert page.url.endswith("/logs/?range=24h&q=QUOTA+exceeded")
    rows = table.locator("tbody tr")
    assert rows.count() == 24
    assert set(table.locator("td.msg mark").all_inner_texts()) == {"Quota exceeded"}
    assert table.locator("td.msg mark").count() == 24
    page.screenshot(path=artifacts_dir / "2-search.png")

    # Sort by message.
    page.select_option("select[name=sort]", "message")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    shown = table.locator("td.msg").all_inner_texts()
    assert shown == sorted(shown) and "sort=message" in page.url

    # The download is the query: every entry, as JSON, named after the Function and the range.
    with page.expect_download() as download_info:
        page.get_by_test_id("logs-download").click()
    download = download_info.value
    assert download.suggested_filename.startswith("fleet-sync-logs-") and download.suggested_filename.endswith(".json")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    entries = json.loads(saved.read_text())
    assert [e["message"] for e in entries] == shown
    assert {e["correlationId"] for e in entries} == {str(run.correlation_id)}

    # Each entry links to its run.
    table.locator("tbody tr").first.locator("td").nth(1).locator("a").first.click()
    page.wait_for_load_state()
    assert f"/runs/{run.correlation_id}/" in page.url


def test_bad_input_is_explained_and_the_input_kept(sign_in, fleet, artifacts_dir):
    fn = fleet[0]
    page = sign_in("custom_functions_read")
    page.goto(logs_url(fn))
    page.select_option("select[name=range]", "custom")
    start = (timezone.now() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    page.fill("input[name=start]", start)
    page.fill("input[name=end]", "")
    page.fill("input[name=q]", "still here")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    # A custom range with a missing end says so, instead of quietly searching the last 24 hours.
    assert "Enter the end of the custom range" in page.content()
    assert page.input_value("input[name=start]") in (start, f"{start}:00")
    assert page.input_value("input[name=q]") == "still here"
    assert page.get_by_test_id("logs").count() == 0
    page.screenshot(path=artifacts_dir / "missing-end.png")
    # A date no picker would offer, typed into the address, is quoted back.
    page.goto(logs_url(fn) + "?start=2026-02-30T10:00&q=kept")
    assert "“2026-02-30T10:00” is not a date and time" in page.content()
    assert page.input_value("input[name=q]") == "kept"
    page.screenshot(path=artifacts_dir / "bad-date.png")


def test_one_correlation_id_across_every_function_of_the_organization(sign_in, fleet, artifacts_dir):
    fn, run, billing, other = fleet
    page = sign_in("full_admin")
    page.goto(f"/o/{fn.organization_id}/settings/developer/functions/")
    page.get_by_role("navigation", name="Functions").get_by_role("link", name="Logs").click()
    page.wait_for_load_state()
    assert page.locator("th", has_text="Function").count() == 1
    page.fill("input[name=q]", "quota")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    functions = page.get_by_test_id("logs").locator("tbody tr td:nth-child(2)").all_inner_texts()
    assert functions[0] == "billing" and set(functions) == {"billing", "fleet-sync"}
    page.screenshot(path=artifacts_dir / "1-organization-search.png")
    # Narrow to billing's run with its "filter" link.
    page.get_by_test_id("logs").locator("tbody tr").first.get_by_role("link", name="filter").click()
    page.wait_for_load_state()
    assert f"run={other.correlation_id}" in page.url
    assert page.get_by_test_id("logs").locator("tbody tr").count() == 1
    page.screenshot(path=artifacts_dir / "2-one-run.png")


# --- live tail ---------------------------------------------------------------------------------------

TICKER = """
import time

def handler(event, context):
    for i in range(12):
        print(f"tick {i} at {time.time() * 1000:.0f}", flush=True)
        time.sleep(0.4)
    return {"ticks": 12}
"""

OBSERVE_LINES = """
document.addEventListener("DOMContentLoaded", () => {
  const output = document.getElementById("run-output");
  if (!output) return;
  new MutationObserver((changes) => {
    for (const change of changes) for (const node of change.addedNodes) {
      if (node.nodeType === 1 && node.classList.contains("line")) window.lineSeen(node.textContent, Date.now());
    }
  }).observe(output, { childList: true });
});
"""


@pytest.fixture
def eager_celery():
    """The trigger's task runs in the triggering thread, so no broker is needed; the engine itself is real."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.mark.sandbox
@pytest.mark.usefixtures("reads_without_table_locks", "runtime_env")
def test_the_live_tail_shows_new_lines_within_a_second_and_stops_when_the_run_ends(
    sign_in, org, users, eager_celery, artifacts_dir
):
    fn = make_function(org, "ticker", files={"main.py": TICKER})
    page = sign_in("read_only_admin")
    seen = []
    page.expose_function("lineSeen", lambda text, at: seen.append((text, at)))
    page.add_init_script(OBSERVE_LINES)
    live_requests = []
    page.on("request", lambda request: live_requests.append(time.monotonic()) if "/live/" in request.url else None)

    def trigger():
        try:
            run_trigger(function=fn, trigger="manual", actor=users["full_admin"])
        finally:
            connection.close()

    worker = threading.Thread(target=trigger, daemon=True)
    worker.start()
    try:
        _watch_the_run(page, fn, org, worker, seen, live_requests, artifacts_dir)
    finally:
        worker.join(timeout=60)


def _watch_the_run(page, fn, org, worker, seen, live_requests, artifacts_dir):
    deadline = time.monotonic() + 30
    while not Run.objects.filter(function=fn).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    run = Run.objects.get(function=fn)
    page.goto(f"/o/{org.id}/settings/developer/functions/ticker/runs/{run.correlation_id}/")
    expect(page.locator("#run-output .line").nth(3)).to_be_attached(timeout=20_000)
    page.screenshot(path=artifacts_dir / "1-running.png")

    worker.join(timeout=60)
    assert not worker.is_alive()
    # The page notices the end, reloads once with the result, and stops asking.
    expect(page.locator("body")).to_contain_text("Succeeded", timeout=10_000)
    page.wait_for_load_state()
    page.get_by_test_id("run-return").wait_for()
    page.screenshot(path=artifacts_dir / "2-finished.png")
    asked_at_end = len(live_requests)
    time.sleep(2.5)
    assert len(live_requests) == asked_at_end, "the page kept polling after the run ended"

    delays = []
    for text, shown_at in seen:
        tick = re.search(r"tick \d+ at (\d+)", text)
        if tick:
            delays.append(shown_at - int(tick.group(1)))
    assert len(delays) >= 5, seen
    (artifacts_dir / "delays-ms.json").write_text(json.dumps(sorted(delays)))
    assert max(delays) < 1000, f"lines appeared {sorted(delays)} ms after they were printed"
    page_lines = page.locator("#run-output .line .msg").all_inner_texts()
    assert [t.split(" at ")[0] for t in page_lines if t.startswith("tick")] == [f"tick {i}" for i in range(12)]
