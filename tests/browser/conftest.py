"""Playwright driving Debian's Chromium (installed by bin/test's set-up), never a downloaded browser."""

import os
import shutil
import threading

import pytest
from django.core.signals import request_finished, request_started

# Playwright's sync API runs an event loop in the test's thread; the test's own
# ORM calls there are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]


class _RequestsInFlight:
    """The live server's requests being served: a page that polls (a running run's live log) may
    have one in flight as its test ends, and the database flush that follows would then find a
    table locked by it (SQLite's shared-cache test database). Each browser fixture, once its
    context is closed, waits for those to end."""

    def __init__(self):
        self.count = 0
        self.changed = threading.Condition()

    # Django's test client sends the same signals from the test's own thread (its start from
    # ClientHandler, its finish, if the test reads the response to the end, from no handler):
    # only the server's handler is counted.
    @staticmethod
    def _the_servers(sender) -> bool:
        from django.test.client import AsyncClientHandler, ClientHandler

        return isinstance(sender, type) and not issubclass(sender, (ClientHandler, AsyncClientHandler))

    def started(self, sender=None, **_kwargs):
        if not self._the_servers(sender):
            return
        with self.changed:
            self.count += 1

    def finished(self, sender=None, **_kwargs):
        if not self._the_servers(sender):
            return
        with self.changed:
            self.count -= 1
            self.changed.notify_all()

    def wait_until_idle(self, timeout=10.0):
        with self.changed:
            self.changed.wait_for(lambda: self.count <= 0, timeout)


_IN_FLIGHT = _RequestsInFlight()
request_started.connect(_IN_FLIGHT.started, weak=False)
request_finished.connect(_IN_FLIGHT.finished, weak=False)


def _close(context):
    context.close()  # no new request; those already sent are still served
    _IN_FLIGHT.wait_until_idle()


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
    _close(context)


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


# Every page must read well on a laptop and on a phone (TEAM.md).
WIDTHS = {"laptop": 1440, "phone": 390}


@pytest.fixture(params=list(WIDTHS))
def screen(request, browser, live_server):
    """A page 1440 or 390 pixels wide (a test using it runs at both); `screen.width` says which.
    `screen.sign_in(user)` signs in through the form."""
    from tests.conftest import PASSWORD

    width = WIDTHS[request.param]
    context = browser.new_context(base_url=live_server.url, viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.width = width
    page.phone = width < 700

    def sign_in(user):
        page.goto("/login/")
        page.fill("input[name=username]", user.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        return page

    page.sign_in = sign_in
    yield page
    _close(context)



# The elements sticking out past the right edge of the screen, to name in a failure.
_WIDER = """() => [...document.querySelectorAll("body *")]
  .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
  .slice(0, 8).map((el) => `${el.tagName.toLowerCase()}.${el.className} (right edge ${Math.round(el.getBoundingClientRect().right)} px)`)"""


def assert_fits(page, what="the page"):
    """The page is no wider than the screen: nothing makes it scroll sideways (a table or a log may
    scroll inside its own box)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{what} is {width} px wide: {page.evaluate(_WIDER)}"
