"""The dashboard under a strict CSP in a real browser, and the throttled sign-in page (issue 18, items 4 and 9)."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from functions.models import RunStatus
from functions.run_services import run_trigger
from tests.factories import make_function

pytestmark = pytest.mark.django_db(transaction=True)


def test_pages_with_scripts_run_without_a_single_csp_violation(sign_in, org, users):
    function = make_function(org, "hello", user=users["full_admin"])
    run = run_trigger(function=function, trigger="manual")
    run.status = RunStatus.SUCCEEDED
    run.save()
    page = sign_in("full_admin")
    violations = []
    page.on("console", lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None)
    base = f"/o/{org.id}/settings/developer"
    for address in (
        f"{base}/functions/", f"{base}/functions/hello/", f"{base}/functions/hello/runs/{run.correlation_id}/",
        f"{base}/functions/hello/run/", f"{base}/functions/hello/logs/", f"{base}/logs/",
        f"{base}/functions/storage/", f"{base}/functions/new/", f"/o/{org.id}/settings/members/",
    ):
        response = page.goto(address)
        assert response.status == 200, address
        assert "default-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_load_state("networkidle")
    assert violations == []


def test_the_throttled_sign_in_page_reads_well(page, users, settings, artifacts_dir):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    for _ in range(2):
        page.goto("/login/")
        page.fill("input[name=username]", users["full_admin"].email)
        page.fill("input[name=password]", "not-the-password")
        page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("Too many sign-in attempts. Try again in 15 minutes")
    for width, height in ((1440, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=artifacts_dir / f"throttled-{width}.png", full_page=True)
