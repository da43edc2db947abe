"""The catalogue as an admin uses it, in a real browser."""

import io
import json
import zipfile

import pytest
from playwright.sync_api import expect

from functions.models import Function

pytestmark = pytest.mark.django_db(transaction=True)

HANDLER = '''import json


def handler(event, context):
    """Greets whoever the event names."""
    name = event.get("TO", "world")
    print(f"{event.get('GREETING', 'hello')}, {name}!")
    return {"greeted": name}
'''


def write_zip(path, files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    path.write_bytes(buffer.getvalue())
    return str(path)


def test_an_admin_creates_edits_versions_rolls_back_and_reads_a_function(sign_in, org, tmp_path, artifacts_dir):
    first = write_zip(tmp_path / "hello.zip", {"main.py": HANDLER, "lib/util.py": "TIMEOUT = 30\n"})
    second = write_zip(tmp_path / "hello-2.zip", {"main.py": HANDLER.replace("hello", "hi"), "README.md": "# v2\n"})
    page = sign_in("full_admin")
    page.on("dialog", lambda dialog: dialog.accept())

    # The empty list invites a first Function.
    expect(page.get_by_role("heading", name="No Functions yet")).to_be_visible()
    page.screenshot(path=artifacts_dir / "list-empty.png", full_page=True)
    page.get_by_role("link", name="Create Function").click()

    # Create: name, description, handler, zip, two parameters (the second row added by the script).
    page.get_by_label("Name", exact=True).fill("hello")
    page.get_by_label("Description").fill("Greets the fleet")
    page.get_by_label("Handler").fill("main.handler")
    page.get_by_label("Code package (.zip)").set_input_files(first)
    page.get_by_label("Parameter name").first.fill("GREETING")
    page.get_by_label("Parameter value").first.fill("hello")
    rows_before = page.get_by_label("Parameter name").count()
    page.get_by_role("button", name="+ Add parameter").click()
    expect(page.get_by_label("Parameter name")).to_have_count(rows_before + 1)
    page.get_by_label("Parameter name").last.fill("TO")
    page.get_by_label("Parameter value").last.fill("drivers")
    page.screenshot(path=artifacts_dir / "create.png", full_page=True)
    page.get_by_role("button", name="Create Function").click()

    expect(page.get_by_text("Created hello with version 1 deployed.")).to_be_visible()
    expect(page.get_by_test_id("parameters")).to_contain_text("GREETING")
    expect(page.get_by_test_id("parameters")).to_contain_text("drivers")
    function = Function.objects.get(organization=org, name="hello")
    assert function.parameters_dict == {"GREETING": "hello", "TO": "drivers"}

    # Edit the description.
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page.get_by_label("Name", exact=True)).to_have_attribute("readonly", "")
    page.get_by_label("Description").fill("Greets every driver of the fleet")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved hello.")).to_be_visible()
    expect(page.locator(".fn-description")).to_have_text("Greets every driver of the fleet")

    # Upload a second version; it is deployed.
    page.get_by_role("link", name="Upload new version").first.click()
    page.get_by_label("Code package (.zip)").set_input_files(second)
    page.get_by_label("Version message").fill("Friendlier greeting")
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_text("Uploaded version 2 and deployed it: the next run uses it.")).to_be_visible()
    expect(page.locator('tr[data-version="2"]')).to_contain_text("deployed")
    page.screenshot(path=artifacts_dir / "details.png", full_page=True)

    # Roll back to version 1.
    page.locator('tr[data-version="1"]').get_by_role("button", name="Roll back").click()
    expect(page.get_by_text("Version 1 is now deployed: the next run uses it.")).to_be_visible()
    expect(page.locator('tr[data-version="1"]')).to_contain_text("deployed")
    function.refresh_from_db()
    assert function.deployed_version.number == 1
    assert function.description == "Greets every driver of the fleet"

    # Browse version 1 and read a file.
    page.locator('tr[data-version="1"]').get_by_role("link", name="Browse").click()
    expect(page.get_by_test_id("files")).to_contain_text("lib/")
    page.screenshot(path=artifacts_dir / "version.png", full_page=True)
    page.get_by_role("link", name="main.py").click()
    expect(page.get_by_test_id("file-text")).to_contain_text('def handler(event, context):')
    page.screenshot(path=artifacts_dir / "file.png", full_page=True)

    # History tells the story.
    page.get_by_role("link", name="History").click()
    expect(page.get_by_test_id("history")).to_contain_text("Rolled back to version 1 (was version 2)")
    expect(page.get_by_test_id("history")).to_contain_text("Changed description")
    page.screenshot(path=artifacts_dir / "history.png", full_page=True)

    # The list shows it.
    page.get_by_role("link", name="Functions", exact=True).first.click()
    expect(page.get_by_test_id("functions")).to_contain_text("hello")
    expect(page.get_by_test_id("functions")).to_contain_text("main.handler")
    page.screenshot(path=artifacts_dir / "list.png", full_page=True)


def test_an_admin_imports_a_bundle_and_reviews_it(sign_in, org, tmp_path, artifacts_dir):
    metadata = {
        "name": "weekly-report", "description": "Fuel report every Monday", "handler": "main.handler",
        "eventParameters": {"RECIPIENT": "ops@example.com"}, "secretsKeys": ["API_TOKEN"],
        "isSchedulingEnabled": True,
        "schedule": {"entries": [{"timeSinceMidnightMs": 8 * 3600 * 1000, "daysOfWeek": [False, True] + [False] * 5}]},
    }
    bundle = write_zip(tmp_path / "report.zip", {"main.py": HANDLER, "import.metadata.json": json.dumps(metadata)})
    page = sign_in("full_admin")
    page.goto(f"/o/{org.id}/settings/developer/functions/new/?import=1")
    page.get_by_label("Bundle with import.metadata.json").set_input_files(bundle)
    page.get_by_role("button", name="Read bundle").click()
    expect(page.get_by_role("heading", name="Review the import")).to_be_visible()
    expect(page.get_by_label("Name", exact=True)).to_have_value("weekly-report")
    expect(page.get_by_test_id("import-extra")).to_contain_text("API_TOKEN")
    expect(page.get_by_test_id("import-extra")).to_contain_text("Every Monday at 08:00")
    page.screenshot(path=artifacts_dir / "import-review.png", full_page=True)
    page.get_by_role("button", name="Import Function").click()
    expect(page.get_by_text("Created weekly-report with version 1 deployed.")).to_be_visible()
    imported = Function.objects.get(organization=org, name="weekly-report")
    assert imported.imported_schedule["isSchedulingEnabled"]
    assert imported.schedule.enabled and imported.schedule.items[0]["timeSinceMidnightMs"] == 8 * 3600 * 1000


def test_a_reader_sees_no_write_controls(sign_in, org, tmp_path, artifacts_dir):
    from functions import services

    services.function_create(organization=org, actor=None, name="hello", handler="main.handler",
                             bundle=open(write_zip(tmp_path / "h.zip", {"main.py": HANDLER}), "rb"),
                             event_parameters={"TO": "drivers"})
    page = sign_in("read_only_admin")
    expect(page.get_by_test_id("functions")).to_contain_text("hello")
    expect(page.get_by_role("link", name="Create Function")).to_have_count(0)
    page.get_by_role("link", name="hello").click()
    expect(page.get_by_test_id("parameters")).to_contain_text("drivers")
    expect(page.get_by_role("link", name="Edit", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Roll back")).to_have_count(0)
    page.screenshot(path=artifacts_dir / "details-reader.png", full_page=True)


def test_a_refused_create_shows_what_to_fix_and_keeps_the_chosen_zip(sign_in, org, tmp_path, artifacts_dir):
    bundle = write_zip(tmp_path / "greeter.zip", {"main.py": HANDLER})
    page = sign_in("full_admin")
    page.goto(f"/o/{org.id}/settings/developer/functions/new/")
    page.get_by_label("Name", exact=True).fill("my greeter")
    page.get_by_label("Handler").fill("main.handler")
    page.get_by_label("Code package (.zip)").set_input_files(bundle)
    page.get_by_label("Parameter name").first.fill("SamsaraFunctionTriggerSource")
    page.get_by_label("Parameter value").first.fill("x")
    page.get_by_role("button", name="Create Function").click()

    expect(page.get_by_text("Function name 'my greeter' contains ' '")).to_be_visible()
    expect(page.get_by_text("is reserved: the platform sets it on every run")).to_be_visible()
    expect(page.get_by_test_id("staged-bundle")).to_contain_text("greeter.zip")
    page.screenshot(path=artifacts_dir / "create-errors.png", full_page=True)

    page.get_by_label("Name", exact=True).fill("my-greeter")
    page.get_by_label("Parameter name").first.fill("GREETING")
    page.get_by_role("button", name="Create Function").click()
    expect(page.get_by_text("Created my-greeter with version 1 deployed.")).to_be_visible()
    assert Function.objects.get(organization=org, name="my-greeter").parameters_dict == {"GREETING": "x"}
