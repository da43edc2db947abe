"""Triggering a run with an override and watching it end, as an admin does."""

import pytest
from playwright.sync_api import expect

from functions.models import Run
from tests.factories import ExecuteOnThread, make_function

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sandbox, pytest.mark.usefixtures("runtime_env")]

SLOW_HELLO = """
import time

def handler(event, context):
    print("starting for", event["name"])
    for step in range(3):
        time.sleep(0.4)
        print("step", step)
    return {"greeted": event["name"], "region": event["region"]}
"""



def test_an_admin_triggers_a_run_with_an_override_and_watches_it_finish(sign_in, org, users, artifacts_dir, django_capture_on_commit_callbacks):
    make_function(org, "greeter", files={"main.py": SLOW_HELLO}, params={"name": "fleet", "region": "north"})
    page = sign_in("full_admin")
    page.goto(f"/o/{org.id}/settings/developer/functions/greeter/")
    page.get_by_role("link", name="Trigger Function run").click()
    expect(page.get_by_label("Value of name")).to_have_value("fleet")
    page.get_by_label("Value of region").fill("south")
    page.screenshot(path=artifacts_dir / "trigger.png", full_page=True)
    page.get_by_role("button", name="Run now").click()

    expect(page.get_by_text("Queued")).to_be_visible()
    run = Run.objects.get()
    # The worker's part, in this process: the page must pick up status and output live.
    worker = ExecuteOnThread(run)
    output = page.get_by_test_id("run-output")
    expect(output).to_contain_text("starting for fleet", timeout=10_000)
    expect(page.locator("#run-status")).to_contain_text("Running")
    page.screenshot(path=artifacts_dir / "running.png", full_page=True)
    worker.join()
    expect(page.get_by_test_id("run-return")).to_contain_text('"region": "south"', timeout=10_000)
    expect(output).to_contain_text("step 2")
    expect(output).to_contain_text("REPORT RequestId")
    expect(page.locator("#run-status")).to_contain_text("Succeeded")
    page.screenshot(path=artifacts_dir / "finished.png", full_page=True)

    page.get_by_role("navigation", name="greeter").get_by_role("link", name="Runs").click()
    expect(page.get_by_test_id("runs")).to_contain_text("Succeeded")
    page.screenshot(path=artifacts_dir / "runs.png", full_page=True)
