"""Playwright driving Debian's Chromium (installed by bin/test's set-up), never a downloaded browser."""

import os
import shutil

import pytest

# Playwright's sync API runs an event loop in the test's thread; the test's own
# ORM calls there are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: bin/test installs it (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def sign_in(page, users):
    def sign_in_as(role="full_admin"):
        page.goto("/login/")
        page.fill("input[name=username]", users[role].email)
        page.fill("input[name=password]", "correct-horse-battery-staple")
        page.click("button[type=submit]")
        page.wait_for_load_state()
        return page

    return sign_in_as
