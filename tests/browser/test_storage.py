import json

import pytest
from playwright.sync_api import expect

from storage import services
from storage.models import StoredObject

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def blob_store(settings, tmp_path):
    """A storage folder of this test's own: test processes share DATA_DIR and reuse organization ids."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "storage")}},
    }


def test_an_admin_uploads_two_files_into_a_new_folder_previews_downloads_and_deletes_it(sign_in, org, artifacts_dir):
    page = sign_in("full_admin")
    page.goto(f"/o/{org.id}/settings/developer/functions/")
    page.get_by_role("link", name="Storage").click()
    expect(page.get_by_role("heading", name="No files yet")).to_be_visible()
    expect(page.get_by_test_id("usage")).to_contain_text("0 bytes of 5 GB used")

    page.get_by_label("New folder").fill("reports")
    page.get_by_role("button", name="Create folder").click()
    expect(page.get_by_text("Created the folder “reports/”.")).to_be_visible()
    expect(page.get_by_role("heading", name="Upload to “reports/”")).to_be_visible()

    summary = {"vehicles": 42, "alerts": [{"id": 1, "kind": "speeding"}], "note": "<b>not bold</b>"}
    page.get_by_label("Files", exact=True).set_input_files([
        {"name": "summary.json", "mimeType": "application/json", "buffer": json.dumps(summary).encode()},
        {"name": "trips.csv", "mimeType": "text/csv", "buffer": b"trip,miles\n1,12.5\n2,3.0\n"},
    ])
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_text("Uploaded 2 files to “reports/”.")).to_be_visible()
    table = page.get_by_test_id("storage-entries")
    expect(table).to_contain_text("summary.json")
    expect(table).to_contain_text("trips.csv")
    expect(table).to_contain_text("full_admin@example.com")
    page.screenshot(path=artifacts_dir / "1-folder-with-two-files.png", full_page=True)

    # Uploading the same name again asks first; saying no keeps the old file.
    page.get_by_label("Files", exact=True).set_input_files([{"name": "trips.csv", "mimeType": "text/csv", "buffer": b"replaced\n"}])
    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_text("Nothing was uploaded: the files that already exist were kept.")).to_be_visible()
    assert "trips.csv" in dialogs[0]
    stored = services.object_get(organization=org, key="reports/trips.csv")
    assert services.object_open(stored).read() == b"trip,miles\n1,12.5\n2,3.0\n"

    page.get_by_role("link", name="Preview summary.json").click()
    preview = page.get_by_test_id("preview")
    expect(preview).to_contain_text('"vehicles": 42')
    expect(preview).to_contain_text('"note": "<b>not bold</b>"')  # shown as text, not markup
    page.screenshot(path=artifacts_dir / "2-preview.png", full_page=True)

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download", exact=True).click()
    download = download_info.value
    assert download.suggested_filename == "summary.json"
    assert json.loads(open(download.path(), "rb").read()) == summary

    page.get_by_role("link", name="Back to the folder").click()
    page.get_by_role("link", name="Delete this folder…").click()
    expect(page.get_by_test_id("folder-delete-summary")).to_contain_text("This deletes 2 files")
    page.screenshot(path=artifacts_dir / "3-confirm-folder-delete.png", full_page=True)
    page.get_by_role("button", name="Delete the folder and 2 files").click()
    expect(page.get_by_text("Deleted the folder “reports/” and the 2 files in it.")).to_be_visible()
    expect(page.get_by_role("heading", name="No files yet")).to_be_visible()
    page.screenshot(path=artifacts_dir / "4-after-delete.png", full_page=True)
    assert not StoredObject.objects.filter(organization=org).exists()


def test_a_large_upload_shows_progress_and_a_read_only_admin_only_browses(sign_in, org, artifacts_dir, users):
    page = sign_in("full_admin")
    page.goto(f"/o/{org.id}/settings/developer/functions/storage/")
    seen = []
    page.expose_function("sawProgress", lambda text: seen.append(text))
    page.evaluate(
        """() => new MutationObserver(() => {
             const label = document.querySelector('[data-upload-progress-text]');
             if (label && label.textContent) window.sawProgress(label.textContent);
           }).observe(document.querySelector('[data-upload-progress]'), {subtree: true, childList: true, characterData: true, attributes: true})"""
    )
    page.get_by_label("Files", exact=True).set_input_files([
        {"name": "big.bin", "mimeType": "application/octet-stream", "buffer": b"\0" * (8 * 1024 * 1024)},
    ])
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_text("Uploaded “big.bin” to the top folder.")).to_be_visible()
    assert any("Uploading 1 file (8 MB)" in text for text in seen), seen
    expect(page.get_by_test_id("usage")).to_contain_text("8 MB of 5 GB used")
    page.screenshot(path=artifacts_dir / "usage-after-upload.png", full_page=True)

    page.context.clear_cookies()
    page = sign_in("read_only_admin")
    page.goto(f"/o/{org.id}/settings/developer/functions/storage/")
    expect(page.get_by_test_id("storage-entries")).to_contain_text("big.bin")
    expect(page.get_by_role("button", name="Upload")).to_have_count(0)
    expect(page.get_by_role("button", name="Delete big.bin")).to_have_count(0)
    page.screenshot(path=artifacts_dir / "read-only.png", full_page=True)
