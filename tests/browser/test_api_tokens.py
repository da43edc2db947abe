"""A Full Admin creates an API token, sees it exactly once, uses it, and revokes it; the API section of a Function."""

import pytest
import requests

from accounts.models import ApiToken
from tests.factories import make_function

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_full_admin_creates_a_token_sees_it_once_and_revokes_it(sign_in, org, live_server, artifacts_dir):
    page = sign_in("full_admin")
    page.goto(f"/o/{org.id}/settings/developer/functions/")
    page.click("text=API tokens")
    page.fill("input[name=name]", "CI deploys")
    page.check("input[value='functions:write']")
    page.select_option("select[name=expires]", "30")
    page.click("button:has-text('Create token')")
    shown = page.locator("[data-testid=token-value]").inner_text().strip()
    assert shown.startswith("sfn_")
    page.screenshot(path=artifacts_dir / "token-created-1440.png", full_page=True)
    response = requests.get(f"{live_server.url}/api/functions", headers={"Authorization": f"Bearer {shown}"}, timeout=10)
    assert response.status_code == 200

    page.goto(f"/o/{org.id}/settings/developer/api-tokens/")  # shown once: the list never shows it again
    assert page.locator("[data-testid=token-value]").count() == 0
    assert shown not in page.content()
    row = page.locator("[data-testid=token-row]", has_text="CI deploys")
    assert "Write Functions" in row.inner_text() and shown[:10] in row.inner_text()

    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=artifacts_dir / "tokens-390.png", full_page=True)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.on("dialog", lambda dialog: dialog.accept())
    row.locator("button:has-text('Revoke')").click()
    page.wait_for_load_state()
    assert "revoked" in page.locator("[data-testid=token-row]", has_text="CI deploys").inner_text()
    assert ApiToken.objects.get().revoked_at is not None
    response = requests.get(f"{live_server.url}/api/functions", headers={"Authorization": f"Bearer {shown}"}, timeout=10)
    assert response.status_code == 401 and "revoked" in response.json()["message"]
    page.screenshot(path=artifacts_dir / "token-revoked-1440.png", full_page=True)


def test_a_functions_page_shows_copyable_api_examples(sign_in, org, artifacts_dir):
    make_function(org, "hello", params={"who": "fleet"})
    page = sign_in("standard_admin")
    page.goto(f"/o/{org.id}/settings/developer/functions/hello/")
    curl = page.locator("[data-testid=api-curl]").inner_text()
    assert "/api/functions/hello/runs?wait=30" in curl and '"paramsOverride": {"who": "fleet"}' in curl
    assert "start_function_run(name='hello'" in page.locator("[data-testid=api-sdk]").inner_text()
    page.locator("[data-testid=api-section]").scroll_into_view_if_needed()
    page.screenshot(path=artifacts_dir / "function-api-section.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.locator("[data-testid=api-section]").screenshot(path=artifacts_dir / "function-api-section-390.png")


def test_the_api_reference_renders_under_the_strict_csp(page, artifacts_dir):
    violations = []
    page.on("console", lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None)
    page.goto("/api/docs")
    page.wait_for_selector(".opblock", timeout=15_000)
    assert page.locator(".opblock").count() >= 15
    page.screenshot(path=artifacts_dir / "api-docs.png")
    assert not violations, violations
