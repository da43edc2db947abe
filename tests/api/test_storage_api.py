"""/functions-storage through the API: signed upload and download URLs, listing, bad names, limits."""

import pytest
from django.test import Client

from storage import services as storage
from storage.models import StoredObject

from .conftest import assert_error

pytestmark = pytest.mark.django_db


def local(url):
    return url.split("testserver", 1)[1]


def put_file(api, name, data):
    response = api.post("/functions-storage/files", {"name": name})
    assert response.status_code == 200, response.content
    upload = response.json()["data"]["uploadPut"]
    assert upload["expiresAtTime"].endswith("Z")
    stored = Client().put(local(upload["url"]), data, content_type="text/plain")
    assert stored.status_code == 200, stored.content
    return stored


def test_create_upload_download_replace_and_delete_a_file(api_client, org):
    api = api_client(name="sync job")
    put_file(api, "reports/a.txt", b"hello")
    obj = StoredObject.objects.get(key="reports/a.txt")
    assert obj.size == 5 and obj.writer_label == "API token “sync job”"
    download = api.get("/functions-storage/files", name="reports/a.txt").json()["data"]
    assert download["name"] == "reports/a.txt"
    got = Client().get(local(download["downloadGet"]["url"]))
    assert got.status_code == 200 and b"".join(got.streaming_content) == b"hello"
    assert_error(api.post("/functions-storage/files", {"name": "reports/a.txt"}), 409, "already exists")
    replace = api.put("/functions-storage/files?name=reports/a.txt").json()["data"]["uploadPut"]["url"]
    Client().put(local(replace), b"hello again", content_type="text/plain")
    assert storage.object_get(organization=org, key="reports/a.txt").size == 11
    assert api.delete("/functions-storage/files?name=reports/a.txt").status_code == 204
    assert_error(api.get("/functions-storage/files", name="reports/a.txt"), 404)
    assert_error(api.delete("/functions-storage/files?name=reports/a.txt"), 404)
    assert_error(api.put("/functions-storage/files?name=reports/a.txt"), 404)


@pytest.mark.parametrize("name, fragment", [
    ("../etc/passwd", "“..” segment"), ("a/../b", "“..” segment"), ("/abs", "starts with “/”"),
    ("x" * 1025, "1,024 bytes"), ("tab\there", "control character"),
])
def test_bad_names_are_400_naming_the_field(api, name, fragment):
    assert_error(api.post("/functions-storage/files", {"name": name}), 400, "name:", fragment)
    assert_error(api.get("/functions-storage/files", name=name), 400, "name:")


def test_a_missing_name_is_400(api):
    assert_error(api.post("/functions-storage/files", {}), 400, "name: is required")
    assert_error(api.get("/functions-storage/files"), 400, "name: is required")


def test_an_upload_over_the_quota_is_413_and_stores_nothing(api, settings):
    settings.FUNCTIONS_STORAGE_QUOTA_BYTES = 10
    url = api.post("/functions-storage/files", {"name": "big.bin"}).json()["data"]["uploadPut"]["url"]
    assert_error(Client().put(local(url), b"x" * 11, content_type="application/octet-stream"), 413)
    assert not StoredObject.objects.exists()


def test_listing_groups_by_folder_pages_and_signs_urls(api):
    for name in ["a.txt", "b.txt", "logs/1.txt", "logs/2.txt", "z.txt"]:
        put_file(api, name, b"1")
    flat = api.get("/functions-storage/ls").json()
    assert [f["name"] for f in flat["data"]] == ["a.txt", "b.txt", "logs/1.txt", "logs/2.txt", "z.txt"]
    assert "folders" not in flat and "urls" not in flat["data"][0]
    grouped = api.get("/functions-storage/ls", groupByFolder="true").json()
    assert [f["name"] for f in grouped["data"]] == ["a.txt", "b.txt", "z.txt"]
    assert grouped["folders"] == [{"name": "logs/"}]
    page = api.get("/functions-storage/ls", limit=2).json()
    rest = api.get("/functions-storage/ls", limit=10, after=page["pagination"]["endCursor"]).json()
    assert [f["name"] for f in page["data"] + rest["data"]] == [f["name"] for f in flat["data"]]
    assert page["pagination"]["hasNextPage"] and rest["pagination"] == {"endCursor": "", "hasNextPage": False}
    with_urls = api.get("/functions-storage/ls", prefix="logs/", includeDownloadUrls="true", includeUploadUrls="true").json()
    urls = with_urls["data"][0]["urls"]
    assert [u["urlType"] for u in urls] == ["download", "upload"]
    assert b"".join(Client().get(local(urls[0]["url"])).streaming_content) == b"1"
    assert_error(api.get("/functions-storage/ls", after=page["pagination"]["endCursor"], prefix="logs/"), 400, "after:")
    assert_error(api.get("/functions-storage/ls", limit=1001), 400, "limit:")
    assert_error(api.get("/functions-storage/ls", prefix="../"), 400, "prefix:")


def test_an_expired_or_forged_signed_url_is_refused(api, settings, monkeypatch):
    url = local(api.post("/functions-storage/files", {"name": "a.txt"}).json()["data"]["uploadPut"]["url"])
    assert_error(Client().put(url[:-3], b"x", content_type="text/plain"), 403, "not valid")
    assert_error(Client().get(url), 403, "for PUT requests")
    import time

    later = time.time() + settings.API_SIGNED_URL_SECONDS + 5
    monkeypatch.setattr("api.signed.time.time", lambda: later)
    assert_error(Client().put(url, b"x", content_type="text/plain"), 403, "expired")
    assert not StoredObject.objects.exists()


def test_storage_of_another_organization_is_invisible(api, other_org):
    storage.object_put(organization=other_org, key="theirs.txt", fileobj_or_bytes=b"secret")
    assert api.get("/functions-storage/ls").json()["data"] == []
    assert_error(api.get("/functions-storage/files", name="theirs.txt"), 404)
    assert_error(api.delete("/functions-storage/files?name=theirs.txt"), 404)
    assert storage.object_get(organization=other_org, key="theirs.txt").size == 6
