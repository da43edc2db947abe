"""An admin creates an alert, fires a test incident and watches its run finish on the alert's page."""

import pytest
from playwright.sync_api import expect

from functions.models import Run
from tests.factories import ExecuteOnThread, make_function

from .conftest import assert_fits

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sandbox, pytest.mark.usefixtures("runtime_env")]

NOTIFY = """
import time

def handler(event, context):
    print("notifying about driver", event["driverId"], "asset", event["assetId"])
    time.sleep(2)
    return {"notified": event["driverId"]}
"""


def test_an_admin_creates_an_alert_fires_a_test_incident_and_watches_its_run_finish(sign_in, org, artifacts_dir):
    make_function(org, "notify-dispatch", files={"main.py": NOTIFY}, visible_to_customers=True)
    make_function(org, "internal-report")
    page = sign_in("full_admin")
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"/o/{org.id}/settings/developer/functions/")
    page.get_by_role("link", name="Alerts", exact=True).click()
    expect(page.get_by_role("heading", name="No alerts yet")).to_be_visible()
    page.get_by_role("link", name="Create alert").first.click()

    # Only the visible Function is offered; the form says why the other is not.
    expect(page.get_by_label("notify-dispatch")).to_be_visible()
    expect(page.get_by_label("internal-report")).to_have_count(0)
    expect(page.get_by_test_id("hidden-functions")).to_contain_text("internal-report")
    page.get_by_label("Name").fill("Harsh braking")
    page.get_by_label("Description").fill("Tell dispatch when a driver brakes hard.")
    page.get_by_label("notify-dispatch").check()
    page.screenshot(path=artifacts_dir / "create-1440.png", full_page=True)
    page.get_by_role("button", name="Create alert").click()

    expect(page.get_by_role("heading", name="Harsh braking")).to_be_visible()
    page.get_by_label("Driver id").fill("1234")
    page.get_by_label("Asset id").fill("5678")
    page.get_by_role("button", name="Use the current time").click()
    incident_time = page.get_by_label("Incident time").input_value()
    assert incident_time.isdigit() and len(incident_time) == 13
    page.get_by_role("button", name="Fire test incident").click()

    expect(page.get_by_role("status").filter(has_text="Fired an incident: 1 run started.")).to_be_visible()
    incident = page.get_by_test_id("incident").first
    expect(incident).to_contain_text("User: full_admin@example.com")
    expect(incident).to_contain_text("1234")
    expect(incident.get_by_test_id("incident-run")).to_contain_text("Queued")
    page.screenshot(path=artifacts_dir / "queued-1440.png", full_page=True)

    # The worker's part, in this process: the page must follow the run live.
    run = Run.objects.get()
    worker = ExecuteOnThread(run)
    expect(incident.get_by_test_id("incident-run")).to_contain_text("Running", timeout=10_000)
    worker.join()
    expect(incident.get_by_test_id("incident-run")).to_contain_text("Succeeded", timeout=10_000)
    page.screenshot(path=artifacts_dir / "finished-1440.png", full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=artifacts_dir / "finished-390.png", full_page=True)
    assert_fits(page, "the alert page at 390 px")
    page.set_viewport_size({"width": 1440, "height": 900})

    # The run links back to its incident.
    incident.get_by_role("link", name=str(run.correlation_id)).click()
    expect(page.get_by_test_id("run-return")).to_contain_text('"notified": "1234"')
    page.get_by_test_id("run-incident").get_by_role("link").click()
    expect(page.get_by_role("heading", name="Harsh braking")).to_be_visible()
    page.screenshot(path=artifacts_dir / "run-to-incident-1440.png", full_page=True)


def test_a_failed_incident_and_a_repeat_stand_out_and_replay_runs_again(sign_in, org, artifacts_dir):
    from alerts import services
    from alerts.models import IncidentSource

    broken = make_function(
        org, "broken", visible_to_customers=True,
        files={"main.py": "def handler(event, context):\n    raise RuntimeError('no route to dispatch')\n"},
    )
    alert = services.alert_create(organization=org, actor=None, name="Speeding", functions=[broken])
    first = services.incident_fire(alert=alert, driver_id="1", asset_id="2", source=IncidentSource.API,
                                   source_label="token ci-bot")
    Run.objects.filter(pk=first.runs[0].run_id).update(status="failed", reason="RuntimeError: no route to dispatch")
    services.incident_fire(alert=alert, driver_id="1", asset_id="2", source=IncidentSource.COMMAND,
                           source_label="manage.py fire_alert")
    page = sign_in("full_admin")
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"/o/{org.id}/settings/alerts/{alert.pk}/")
    incidents = page.get_by_test_id("incident")
    expect(incidents).to_have_count(2)
    expect(incidents.nth(0).get_by_test_id("incident-deduplicated")).to_be_visible()
    expect(incidents.nth(1).get_by_test_id("incident-failed")).to_be_visible()
    expect(incidents.nth(1)).to_contain_text("RuntimeError: no route to dispatch")
    page.screenshot(path=artifacts_dir / "failed-1440.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=artifacts_dir / "failed-390.png", full_page=True)
    assert_fits(page, "the alert page at 390 px")
    page.set_viewport_size({"width": 1440, "height": 900})

    page.once("dialog", lambda dialog: dialog.accept())
    incidents.nth(1).get_by_role("button", name="Replay").click()
    expect(page.get_by_test_id("incident")).to_have_count(3)
    expect(page.get_by_test_id("incident").first).to_contain_text("Replays the incident of")
    assert Run.objects.count() == 2


def test_the_alerts_list_reads_well_at_both_widths(sign_in, org, artifacts_dir):
    from alerts import services

    notify = make_function(org, "notify-dispatch", visible_to_customers=True)
    escalate = make_function(org, "escalate-to-manager", visible_to_customers=True)
    services.alert_create(organization=org, actor=None, name="Harsh braking", functions=[notify, escalate],
                          description="Tell dispatch and the fleet manager when a driver brakes hard.")
    services.alert_create(organization=org, actor=None, name="Speeding", functions=[notify], enabled=False)
    page = sign_in("read_only_admin")
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"/o/{org.id}/settings/alerts/")
        expect(page.get_by_test_id("alerts")).to_contain_text("escalate-to-manager")
        expect(page.get_by_role("link", name="Create alert")).to_have_count(0)
        page.screenshot(path=artifacts_dir / f"list-{width}.png", full_page=True)
        assert_fits(page, f"the alerts list at {width} px")
