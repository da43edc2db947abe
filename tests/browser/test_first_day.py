"""A person's first day (issue 16), each point in a real browser at 1440 and 390 pixels, with screenshots:
logs (one traceback entry, the stream filter, date pickers, a custom range that says what is missing),
Upload new version, invitations, the set-password page, messages, the folder icon and the Secrets tab."""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Membership
from functions.models import Function
from storage import services as storage_services
from tests.factories import add_log_lines, make_function, make_run, make_zip

from .conftest import assert_fits

pytestmark = pytest.mark.django_db(transaction=True)

TRACEBACK = """[ERROR] KeyError: 'vehicle'
Traceback (most recent call last):
  File "/var/task/main.py", line 4, in handler
    return lookup(event)
  File "/var/task/main.py", line 8, in lookup
    return event["vehicle"]
           ~~~~~^^^^^^^^^^^
KeyError: 'vehicle'"""


@pytest.fixture(autouse=True)
def blob_store(settings, tmp_path):
    """A storage folder of this test's own: test processes share DATA_DIR and reuse organization ids."""
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "storage")}}}


def functions_url(org, rest=""):
    return f"/o/{org.id}/settings/developer/functions/{rest}"


# --- logs -------------------------------------------------------------------------------------


def test_logs_read_well_a_traceback_is_one_entry_and_streams_filter(screen, users, org, artifacts_dir):
    function = make_function(org, "lookup")
    run = make_run(function)
    now = timezone.now()
    add_log_lines(run, (now - timedelta(seconds=30), "looking up the vehicle " + "with a long message " * 12))
    add_log_lines(run, (now - timedelta(seconds=20), TRACEBACK), stream="stderr")
    add_log_lines(run, (now - timedelta(seconds=10), f"REPORT RequestId: {run.correlation_id} Attempt: 1/3 Duration: 12 ms"),
        stream="platform")
    screen.sign_in(users["read_only_admin"])
    screen.goto(functions_url(org, "lookup/logs/"))
    rows = screen.get_by_test_id("logs").locator("tbody tr")
    expect(rows).to_have_count(3)
    # Newest first, and the traceback reads top to bottom inside its one entry.
    traceback = rows.nth(1).locator("td.msg")
    text = traceback.inner_text()
    assert text.index("Traceback (most recent call last):") < text.index("line 4, in handler") < text.index("line 8, in lookup")
    assert text.splitlines()[0] == "[ERROR] KeyError: 'vehicle'" and text.splitlines()[-1] == "KeyError: 'vehicle'"
    # Message lines wrap on a phone instead of leaving only the timestamps on screen.
    message_box = rows.first.locator("td.msg").bounding_box()
    assert message_box["x"] + message_box["width"] <= screen.width + 1
    assert_fits(screen, "the logs page")
    screen.screenshot(path=artifacts_dir / "logs.png", full_page=True)

    for stream, count, contains in (("stderr", 1, "Traceback"), ("platform", 1, "REPORT"), ("stdout", 1, "looking up")):
        screen.get_by_label("Stream").select_option(stream)
        screen.get_by_role("button", name="Search").click()
        expect(screen.get_by_test_id("logs-summary")).to_contain_text(f"{stream} only")
        expect(rows).to_have_count(count)
        expect(rows.first).to_contain_text(contains)
        assert f"stream={stream}" in screen.url
    screen.screenshot(path=artifacts_dir / "logs-stdout.png", full_page=True)


def test_a_custom_range_uses_date_pickers_and_says_what_is_missing(screen, users, org, artifacts_dir):
    make_function(org, "lookup")
    screen.sign_in(users["full_admin"])
    screen.goto(functions_url(org, "lookup/logs/"))
    start, end = screen.locator("input[name=start]"), screen.locator("input[name=end]")
    expect(start).to_have_attribute("type", "datetime-local")
    expect(end).to_have_attribute("type", "datetime-local")
    screen.locator("select[name=range]").select_option("custom")
    start.fill("")
    end.fill("")
    screen.get_by_role("button", name="Search").click()
    expect(screen.get_by_text("Enter the start of the custom range, or choose one of the ranges offered.")).to_be_visible()
    expect(screen.get_by_text("Enter the end of the custom range, or choose one of the ranges offered.")).to_be_visible()
    expect(screen.get_by_test_id("logs-errors")).to_be_visible()
    expect(screen.locator("select[name=range]")).to_have_value("custom")
    assert_fits(screen, "the logs page with errors")
    screen.screenshot(path=artifacts_dir / "missing-range.png", full_page=True)
    # Both given: the query runs over exactly that range.
    begin = (timezone.now() - timedelta(hours=3)).astimezone(timezone.get_fixed_timezone(0))
    start.fill(begin.strftime("%Y-%m-%dT%H:%M"))
    end.fill((begin + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    screen.get_by_role("button", name="Search").click()
    expect(screen.get_by_test_id("logs-empty")).to_be_visible()
    assert "start=" in screen.url and "end=" in screen.url


# --- forms ------------------------------------------------------------------------------------


def test_upload_new_version_keeps_the_zip_and_puts_code_errors_under_it(screen, users, org, tmp_path, artifacts_dir):
    make_function(org, "uploader")
    screen.sign_in(users["standard_admin"])
    screen.goto(functions_url(org, "uploader/"))
    screen.get_by_role("link", name="Upload new version").click()
    # Not a zip: the message names the tools without showing Markdown backticks.
    garbage = tmp_path / "notes.zip"
    garbage.write_text("just some text, not a zip\n")
    screen.get_by_label("Code package (.zip)").set_input_files(garbage)
    screen.get_by_role("button", name="Upload").click()
    bundle_error = screen.get_by_test_id("bundle-error")
    expect(bundle_error).to_contain_text("zip -r")
    expect(bundle_error.locator("code", has_text="zip -r")).to_have_count(1)
    assert "`" not in bundle_error.inner_text()
    # A syntax error in the handler's file is shown under the code package, not under the empty Handler.
    broken = tmp_path / "broken.zip"
    broken.write_bytes(make_zip({"main.py": "def handler(event, context)\n    return 1\n"}))
    screen.get_by_label("Code package (.zip)").set_input_files(broken)
    screen.get_by_role("button", name="Upload").click()
    expect(bundle_error).to_contain_text("main.py line 1")
    expect(screen.locator(".field.has-error")).to_have_count(1)
    screen.screenshot(path=artifacts_dir / "code-error.png", full_page=True)
    # A sound zip refused for the handler typed beside it is kept: fix the handler, upload without choosing again.
    good = tmp_path / "good.zip"
    good.write_bytes(make_zip({"app.py": "def handler(event, context):\n    return 1\n"}))
    screen.get_by_label("Code package (.zip)").set_input_files(good)
    screen.get_by_label("Handler").fill("app.missing")
    screen.get_by_label("Version message").fill("move to app.py")
    screen.get_by_role("button", name="Upload").click()
    expect(screen.get_by_test_id("staged-bundle")).to_contain_text("good.zip")
    assert_fits(screen, "the upload form")
    screen.screenshot(path=artifacts_dir / "kept-zip.png", full_page=True)
    screen.get_by_label("Handler").fill("app.handler")
    screen.get_by_role("button", name="Upload").click()
    expect(screen.get_by_text("Uploaded version 2 and deployed it: the next run uses it.")).to_be_visible()
    function = Function.objects.get(organization=org, name="uploader")
    assert function.handler == "app.handler" and function.deployed_version.number == 2


def test_an_invitation_from_sending_to_the_first_sign_in(screen, users, org, browser, live_server, artifacts_dir):
    screen.sign_in(users["full_admin"])
    screen.goto(f"/o/{org.id}/settings/members/")
    screen.get_by_label("E-mail").fill("new.driver@example.com")
    screen.locator(".invite-form select[name=role]").select_option("read_only_admin")
    screen.get_by_role("button", name="Invite").click()
    expect(screen.get_by_text("Invited new.driver@example.com.")).to_be_visible()
    expect(screen.get_by_label("E-mail")).to_have_value("")  # ready for the next one
    pending = screen.get_by_test_id("pending-invitations")
    expect(pending).to_contain_text("new.driver@example.com")
    expect(screen.get_by_test_id("members")).not_to_contain_text("new.driver@example.com")
    assert_fits(screen, "the members page")
    screen.screenshot(path=artifacts_dir / "invited.png", full_page=True)
    # Resend gives a new link; revoke a second invitation.
    screen.get_by_role("button", name="Resend the invitation of new.driver@example.com").click()
    expect(screen.get_by_text("Sent the invitation to new.driver@example.com again.")).to_be_visible()
    link = screen.get_by_test_id("invite-link").locator("code").inner_text()
    screen.get_by_label("E-mail").fill("temp@example.com")
    screen.get_by_role("button", name="Invite").click()
    screen.once("dialog", lambda dialog: dialog.accept())
    screen.get_by_role("button", name="Revoke the invitation of temp@example.com").click()
    expect(screen.get_by_text("Revoked the invitation of temp@example.com: its link no longer works.")).to_be_visible()
    expect(pending).not_to_contain_text("temp@example.com")
    screen.screenshot(path=artifacts_dir / "revoked.png", full_page=True)

    # The invitee, in a browser of their own, at the same width.
    context = browser.new_context(base_url=live_server.url, viewport=screen.viewport_size)
    invitee = context.new_page()
    invitee.goto(link)
    expect(invitee.get_by_role("heading", name="Set your password")).to_be_visible()
    expect(invitee.get_by_test_id("account")).to_have_text("new.driver@example.com")
    expect(invitee.locator("section.card")).to_have_css("background-color", "rgb(255, 255, 255)")
    invitee.get_by_label("New password").fill("short")
    invitee.get_by_label("Repeat it").fill("short")
    invitee.get_by_role("button", name="Set password").click()
    expect(invitee.get_by_text("This password is too short.")).to_be_visible()
    invitee.screenshot(path=artifacts_dir / "set-password.png", full_page=True)
    invitee.get_by_label("New password").fill("a-long-new-password-1")
    invitee.get_by_label("Repeat it").fill("a-long-new-password-1")
    invitee.get_by_role("button", name="Set password").click()
    expect(invitee.get_by_text("Your password is set. Sign in as new.driver@example.com.")).to_be_visible()
    invitee.screenshot(path=artifacts_dir / "confirmed.png", full_page=True)
    invitee.get_by_label("E-mail").fill("new.driver@example.com")
    invitee.get_by_label("Password").fill("a-long-new-password-1")
    invitee.get_by_role("button", name="Sign in").click()
    expect(invitee.get_by_role("heading", name="Functions", exact=True)).to_be_visible()
    context.close()
    assert not Membership.objects.filter(organization=org).pending().exists()


# --- small things -----------------------------------------------------------------------------


def test_the_folder_icon_is_a_drawing_and_the_secrets_tab_shows_the_guides_line(screen, users, org, artifacts_dir):
    storage_services.folder_create(organization=org, prefix="reports/")
    make_function(org, "secretive")
    screen.sign_in(users["full_admin"])
    screen.goto(functions_url(org, "storage/"))
    folder = screen.get_by_role("link", name="reports")
    expect(folder.locator("svg.folder-icon")).to_have_count(1)
    assert "📁" not in screen.content()
    screen.screenshot(path=artifacts_dir / "storage.png", full_page=True)
    screen.goto(functions_url(org, "secretive/secrets/"))
    example = screen.get_by_test_id("secrets-example")
    expect(example).to_contain_text("import samsara")
    expect(example).to_contain_text("samsara.Function().secrets().load()")
    assert example.evaluate("el => el.scrollWidth <= el.clientWidth + 1") or screen.width < 700
    assert_fits(screen, "the Secrets tab")
    screen.screenshot(path=artifacts_dir / "secrets.png", full_page=True)
