"""The frame every page shares, at a laptop's width and a phone's: the sidebar folds into a menu,
nothing widens the page, a skip link comes first, and the favicon is there."""

import pytest
from playwright.sync_api import expect

from accounts.models import CustomRole
from alerts import services as alert_services
from functions.models import Function
from storage import services as storage_services
from tests.factories import make_function

from .conftest import assert_fits

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def blob_store(settings, tmp_path):
    """A storage folder of this test's own: test processes share DATA_DIR and reuse organization ids."""
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "storage")}}}

def test_no_page_is_wider_than_the_screen(screen, users, org, artifacts_dir):
    screen.sign_in(users["full_admin"])
    long_line = "    return {'report': 'a line of code much longer than a phone is wide, " + "x" * 120 + "'}\n"
    make_function(org, "fleet-report-with-a-long-name", description="Sends the weekly fleet report " * 4,
                  params={"SamsaraFunctionLoggerLevel": "INFO", "region": "north"},
                  files={"main.py": "def handler(event, context):\n" + long_line}, visible_to_customers=True)
    alert = alert_services.alert_create(
        organization=org, actor=None, name="Harsh braking reported by the dashcam of a long-haul truck",
        description="Tells dispatch " * 10, functions=list(Function.objects.of(org)),
    )
    alert_services.incident_fire(alert=alert, driver_id="1234567890123", asset_id="281474976710655",
                                 alert_incident_time="1735689600000", source="api", source_label="token ci-bot")
    storage_services.folder_create(organization=org, prefix="reports/with-a-rather-long-folder-name/")
    role = CustomRole.objects.get(organization=org, name="Functions viewer")
    base = f"/o/{org.id}/settings"
    fn = f"{base}/developer/functions/fleet-report-with-a-long-name"
    pages = {
        "edit": f"{fn}/edit/",
        "delete": f"{fn}/delete/",
        "upload": f"{fn}/versions/new/",
        "version": f"{fn}/versions/1/",
        "version-file": f"{fn}/versions/1/files/main.py",
        "history": f"{fn}/history/",
        "schedule": f"{fn}/schedule/",
        "trigger": f"{fn}/run/",
        "import": f"{base}/developer/functions/new/?import=1",
        "folder": f"{base}/developer/functions/storage/?prefix=reports/",
        "role-edit": f"{base}/roles/{role.pk}/",
        "functions": f"{base}/developer/functions/",
        "function": f"{base}/developer/functions/fleet-report-with-a-long-name/",
        "runs": f"{base}/developer/functions/fleet-report-with-a-long-name/runs/",
        "logs": f"{base}/developer/functions/fleet-report-with-a-long-name/logs/",
        "secrets": f"{base}/developer/functions/fleet-report-with-a-long-name/secrets/",
        "storage": f"{base}/developer/functions/storage/",
        "create": f"{base}/developer/functions/new/",
        "org-logs": f"{base}/developer/logs/",
        "organization": f"{base}/organization/",
        "members": f"{base}/members/",
        "roles": f"{base}/roles/",
        "api-tokens": f"{base}/developer/api-tokens/",
        "alerts": f"{base}/alerts/",
        "alert-create": f"{base}/alerts/new/",
        "alert": f"{base}/alerts/{alert.pk}/",
        "alert-edit": f"{base}/alerts/{alert.pk}/edit/",
        "alert-delete": f"{base}/alerts/{alert.pk}/delete/",
    }
    for name, address in pages.items():
        screen.goto(address)
        screen.screenshot(path=artifacts_dir / f"{name}.png", full_page=True)
        assert_fits(screen, name)
    # And signed out: the sign-in page.
    screen.context.clear_cookies()
    screen.goto("/login/")
    screen.screenshot(path=artifacts_dir / "login.png", full_page=True)
    assert_fits(screen, "the sign-in page")


def test_the_sidebar_folds_into_a_menu_on_a_phone(screen, users, org, artifacts_dir):
    screen.sign_in(users["full_admin"])
    screen.goto(f"/o/{org.id}/settings/members/")
    sidebar = screen.get_by_role("navigation", name="Settings")
    menu = screen.get_by_role("button", name="Menu")
    if screen.width >= 1000:
        expect(sidebar).to_be_visible()
        expect(menu).to_be_hidden()
        return
    expect(sidebar).to_be_hidden()
    expect(menu).to_have_attribute("aria-expanded", "false")
    menu.click()
    expect(sidebar).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "true")
    screen.screenshot(path=artifacts_dir / "menu-open.png", full_page=True)
    sidebar.get_by_role("link", name="Roles").click()
    expect(screen).to_have_url(f"{screen.url.split('/o/')[0]}/o/{org.id}/settings/roles/")
    expect(screen.get_by_role("navigation", name="Settings")).to_be_hidden()
    # Escape closes it again and gives the focus back to the button.
    menu.click()
    screen.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()
    expect(menu).to_be_focused()


def test_the_first_tab_stop_skips_to_the_content(screen, users, org, artifacts_dir):
    screen.sign_in(users["full_admin"])
    screen.goto(f"/o/{org.id}/settings/developer/functions/")
    screen.keyboard.press("Tab")
    skip = screen.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    screen.screenshot(path=artifacts_dir / "skip-link.png")
    screen.keyboard.press("Enter")
    expect(screen.locator("main")).to_be_focused()
    # The next Tab lands in the page's content, not back in the header.
    screen.keyboard.press("Tab")
    assert screen.evaluate("document.activeElement.closest('main') !== null")


def test_every_page_has_a_favicon(screen, users, org):
    screen.sign_in(users["full_admin"])
    screen.goto(f"/o/{org.id}/settings/developer/functions/")
    icons = screen.locator("link[rel=icon]")
    expect(icons).to_have_count(2)
    for href in icons.evaluate_all("links => links.map(l => l.href)"):
        assert screen.request.get(href).status == 200
    answer = screen.request.get("/favicon.ico")
    assert answer.status == 200 and answer.headers["content-type"] == "image/x-icon"
    assert answer.body()[:4] == b"\x00\x00\x01\x00"  # an ICO file
