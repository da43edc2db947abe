"""The Storage tab's pages: who may do what, and what each refusal says."""

from urllib.parse import quote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from django.urls import reverse

from storage import services
from storage.models import StoredObject
from tests.conftest import READERS, WRITERS
from tests.factories import make_function

pytestmark = pytest.mark.django_db

NO_STORAGE = ["custom_functions_read", "custom_none"]


@pytest.fixture(autouse=True)
def blob_store(settings, tmp_path):
    """A storage folder of this test's own: test processes share DATA_DIR and reuse organization ids."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "storage")}},
    }


def url(org, name="storage", **query):
    path = reverse(f"functions:{name}", kwargs={"org_id": org.id})
    if query:
        path += "?" + "&".join(f"{k}={quote(str(v), safe='')}" for k, v in query.items())
    return path


def put(org, key, data=b"x", **kwargs):
    return services.object_put(organization=org, key=key, fileobj_or_bytes=data, **kwargs)


def keys(org):
    return sorted(StoredObject.objects.filter(organization=org).values_list("key", flat=True))


def files(*named):
    return [SimpleUploadedFile(name, data, content_type=ctype) for name, data, ctype in named]


def messages_of(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def follow_messages(client, response):
    assert response.status_code == 302, response.content[:500]
    return messages_of(client.get(response["Location"]))


# --- who may see what ---


@pytest.mark.parametrize("role", WRITERS + ["read_only_admin"])
def test_storage_readers_browse_preview_and_download(member, org, role):
    put(org, "kv/state.json", b'{"n": 1}')
    client = member(role)
    assert client.get(url(org)).status_code == 200
    assert client.get(url(org, prefix="kv/")).status_code == 200
    assert client.get(url(org, "storage_preview", key="kv/state.json")).status_code == 200
    response = client.get(url(org, "storage_download", key="kv/state.json"))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b'{"n": 1}'


@pytest.mark.parametrize("role", [*NO_STORAGE, "outsider"])
def test_roles_without_storage_are_refused_every_page_and_change_nothing(member, org, role):
    """403 for a member whose role lacks storage; 404 for the outsider, who must not learn the organization exists."""
    put(org, "a.txt")
    client = member(role)
    for response in (
        client.get(url(org)),
        client.get(url(org, "storage_preview", key="a.txt")),
        client.get(url(org, "storage_download", key="a.txt")),
        client.get(url(org, "storage_folder_delete", prefix="a/")),
        client.post(url(org, "storage_upload"), {"files": files(("b.txt", b"b", "text/plain"))}),
        client.post(url(org, "storage_folder_create"), {"name": "new"}),
        client.post(url(org, "storage_file_delete"), {"key": "a.txt"}),
    ):
        assert response.status_code == (404 if role == "outsider" else 403)
    assert keys(org) == ["a.txt"]


def test_a_custom_role_without_storage_sees_no_storage_tab(member, org):
    response = member("custom_functions_read").get(reverse("functions:list", kwargs={"org_id": org.id}))
    assert response.status_code == 200
    assert url(org).encode() not in response.content
    assert url(org).encode() in member("read_only_admin").get(reverse("functions:list", kwargs={"org_id": org.id})).content


def test_signed_out_visitors_are_sent_to_sign_in(client, org):
    response = client.get(url(org))
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    response = client.post(url(org, "storage_upload"), {"files": files(("b.txt", b"b", "text/plain"))})
    assert response.status_code == 302 and not StoredObject.objects.exists()


@pytest.mark.parametrize("role", READERS)
def test_read_roles_see_no_write_controls(member, org, role, users):
    if role == "custom_functions_read":
        return  # no storage at all: covered above
    put(org, "reports/a.csv")
    content = member(role).get(url(org)).content.decode()
    assert "Upload" not in content and "Create folder" not in content and "Delete" not in content
    assert "reports/" in content


def test_writers_see_write_controls(admin_client, org):
    put(org, "a.csv")
    content = admin_client.get(url(org)).content.decode()
    for text in ("Upload to the top folder", "Create folder", "Delete"):
        assert text in content


# --- uploads ---


@pytest.mark.parametrize("role", WRITERS)
def test_writers_upload_several_files_into_a_folder(member, org, role, users):
    client = member(role)
    response = client.post(url(org, "storage_upload"), {
        "prefix": "reports/",
        "files": files(("a.csv", b"1,2\n", "text/csv"), ("b.json", b'{"b": 2}', "application/json")),
    })
    assert response.status_code == 302 and response["Location"] == url(org, prefix="reports/")
    assert keys(org) == ["reports/a.csv", "reports/b.json"]
    stored = services.object_get(organization=org, key="reports/b.json")
    assert (stored.content_type, stored.written_by_user, stored.writer_label) == ("application/json", users[role], users[role].email)
    assert "Uploaded 2 files to “reports/”." in messages_of(client.get(response["Location"]))


@pytest.mark.parametrize("role", ["read_only_admin"])
def test_read_roles_cannot_upload(member, org, role):
    response = member(role).post(url(org, "storage_upload"), {"files": files(("a.txt", b"a", "text/plain"))})
    assert response.status_code == 403 and not StoredObject.objects.exists()


def test_an_empty_file_is_a_file(admin_client, org):
    admin_client.post(url(org, "storage_upload"), {"files": files(("empty.txt", b"", "text/plain"))})
    assert services.object_get(organization=org, key="empty.txt").size == 0


def test_no_file_chosen_says_so(admin_client, org):
    response = admin_client.post(url(org, "storage_upload"), {"prefix": ""})
    assert "Choose at least one file to upload." in follow_messages(admin_client, response)


def test_replacing_asks_first_and_stores_nothing_without_confirmation(admin_client, org):
    put(org, "in/a.txt", b"old")
    response = admin_client.post(url(org, "storage_upload"), {
        "prefix": "in/", "files": files(("a.txt", b"new", "text/plain"), ("b.txt", b"b", "text/plain")),
    })
    [message] = follow_messages(admin_client, response)
    assert "Already here: “a.txt”. Nothing was uploaded." in message
    assert keys(org) == ["in/a.txt"]
    assert services.object_open(services.object_get(organization=org, key="in/a.txt")).read() == b"old"

    response = admin_client.post(url(org, "storage_upload"), {
        "prefix": "in/", "replace": "1", "files": files(("a.txt", b"new", "text/plain"), ("b.txt", b"b", "text/plain")),
    })
    assert "Uploaded 2 files to “in/” (1 replaced)." in follow_messages(admin_client, response)
    assert services.object_open(services.object_get(organization=org, key="in/a.txt")).read() == b"new"


def test_the_script_gets_json_answers(admin_client, org):
    put(org, "a.txt", b"old")
    accept = {"HTTP_ACCEPT": "application/json"}
    conflict = admin_client.post(url(org, "storage_upload"), {"files": files(("a.txt", b"new", "text/plain"))}, **accept)
    assert conflict.status_code == 409 and conflict.json()["existing"] == ["a.txt"]
    done = admin_client.post(url(org, "storage_upload"), {"replace": "1", "files": files(("a.txt", b"new", "text/plain"))}, **accept)
    assert done.status_code == 200 and done.json()["redirect"] == url(org)


def test_the_script_asks_before_sending_any_byte(admin_client, org):
    put(org, "in/a.txt", b"old")
    accept = {"HTTP_ACCEPT": "application/json"}
    answer = admin_client.post(url(org, "storage_upload"), {"check": "1", "prefix": "in/", "name": ["a.txt", "b.txt"], "size": ["3", "4"]}, **accept)
    assert answer.status_code == 200 and answer.json() == {"existing": ["a.txt"]}
    with override_settings(FUNCTIONS_STORAGE_QUOTA_BYTES=5):
        answer = admin_client.post(url(org, "storage_upload"), {"check": "1", "prefix": "in/", "name": ["b.txt"], "size": ["4"]}, **accept)
    assert answer.status_code == 400 and "over its quota of 5 bytes" in answer.json()["message"]
    assert keys(org) == ["in/a.txt"]


@override_settings(FUNCTIONS_STORAGE_QUOTA_BYTES=10)
def test_an_upload_over_quota_is_refused_and_nothing_is_stored(admin_client, org):
    put(org, "a.txt", b"x" * 6)
    response = admin_client.post(url(org, "storage_upload"), {
        "files": files(("b.txt", b"y" * 3, "text/plain"), ("c.txt", b"z" * 3, "text/plain")),
    })
    [message] = follow_messages(admin_client, response)
    assert "over its quota of 10 bytes (4 bytes free). Nothing was stored" in message
    assert keys(org) == ["a.txt"]


@override_settings(FUNCTIONS_STORAGE_MAX_OBJECT_BYTES=10)
def test_a_file_over_the_size_limit_is_stopped_while_it_arrives(admin_client, org):
    response = admin_client.post(
        url(org, "storage_upload"), {"prefix": "", "files": files(("big.bin", b"x" * 11, "application/octet-stream"))},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 413
    assert "larger than 10 bytes, the most one file may be. Nothing was stored." in response.json()["message"]
    assert not StoredObject.objects.exists()


@override_settings(FUNCTIONS_STORAGE_QUOTA_BYTES=10)
def test_files_larger_than_the_whole_quota_are_stopped_while_they_arrive(admin_client, org):
    response = admin_client.post(url(org, "storage_upload"), {"files": files(("big.bin", b"x" * 11, "text/plain"))})
    assert any("larger than the organization's whole storage quota" in m for m in follow_messages(admin_client, response))
    assert not StoredObject.objects.exists()


def test_a_file_and_a_folder_cannot_share_a_name(admin_client, org):
    put(org, "reports/a.csv")
    put(org, "notes")
    response = admin_client.post(url(org, "storage_upload"), {"files": files(("reports", b"x", "text/plain"))})
    assert "There is already a folder named “reports/”" in follow_messages(admin_client, response)[0]
    response = admin_client.post(url(org, "storage_folder_create"), {"name": "notes"})
    assert "“notes” is a file, so it cannot also be a folder" in follow_messages(admin_client, response)[0]
    assert keys(org) == ["notes", "reports/a.csv"]


def test_an_upload_into_an_invalid_folder_is_refused(admin_client, org):
    response = admin_client.post(url(org, "storage_upload"), {"prefix": "../", "files": files(("a.txt", b"a", "text/plain"))})
    assert "has a “..” segment" in follow_messages(admin_client, response)[0]
    assert not StoredObject.objects.exists()


def test_uploads_need_the_csrf_token(org, users):
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["full_admin"])
    response = client.post(url(org, "storage_upload"), {"files": files(("a.txt", b"a", "text/plain"))})
    assert response.status_code == 403 and not StoredObject.objects.exists()
    token = client.get(url(org)).context["csrf_token"]
    response = client.post(url(org, "storage_upload"), {"csrfmiddlewaretoken": str(token), "files": files(("a.txt", b"a", "text/plain"))})
    assert response.status_code == 302 and keys(org) == ["a.txt"]


# --- folders ---


@pytest.mark.parametrize("role", WRITERS)
def test_writers_create_a_folder_and_land_in_it(member, org, role):
    client = member(role)
    response = client.post(url(org, "storage_folder_create"), {"prefix": "", "name": "reports"})
    assert response["Location"] == url(org, prefix="reports/")
    assert keys(org) == ["reports/"]
    page = client.get(response["Location"])
    assert "This folder is empty" in page.content.decode()
    client.post(url(org, "storage_folder_create"), {"prefix": "reports/", "name": "2026/"})
    assert keys(org) == ["reports/", "reports/2026/"]


def test_read_roles_cannot_create_folders(member, org):
    assert member("read_only_admin").post(url(org, "storage_folder_create"), {"name": "x"}).status_code == 403
    assert not StoredObject.objects.exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "This field is required."),
        ("/abs", "cannot start with “/”"),
        ("a\\b", "contains a backslash"),
        ("..", "has a “..” segment"),
        ("bad\x01name", "contains a control character (U+0001)"),
        ("é" * 600, "bytes long"),
    ],
)
def test_bad_folder_names_are_refused_with_a_message(admin_client, org, name, message):
    response = admin_client.post(url(org, "storage_folder_create"), {"name": name})
    assert any(message in m for m in follow_messages(admin_client, response)), follow_messages(admin_client, response)
    assert not StoredObject.objects.exists()


def test_an_existing_folder_is_not_created_twice(admin_client, org):
    put(org, "reports/a.csv")
    response = admin_client.post(url(org, "storage_folder_create"), {"name": "reports"})
    assert "There is already a folder named “reports/”." in follow_messages(admin_client, response)
    assert keys(org) == ["reports/a.csv"]


@pytest.mark.parametrize("role", WRITERS)
def test_deleting_a_folder_confirms_how_many_files_go(member, org, role):
    for key in ["reports/", "reports/a.csv", "reports/2026/b.csv", "reports-keep.csv"]:
        put(org, key)
    client = member(role)
    page = client.get(url(org, "storage_folder_delete", prefix="reports/"))
    assert page.status_code == 200
    assert "This deletes <strong>2 files</strong>" in page.content.decode()
    assert len(keys(org)) == 4  # asking deletes nothing
    response = client.post(url(org, "storage_folder_delete"), {"prefix": "reports/"})
    assert response["Location"] == url(org)
    assert "Deleted the folder “reports/” and the 2 files in it." in follow_messages(client, response)
    assert keys(org) == ["reports-keep.csv"]


def test_read_roles_cannot_delete_folders(member, org):
    put(org, "reports/a.csv")
    client = member("read_only_admin")
    assert client.get(url(org, "storage_folder_delete", prefix="reports/")).status_code == 403
    assert client.post(url(org, "storage_folder_delete"), {"prefix": "reports/"}).status_code == 403
    assert keys(org) == ["reports/a.csv"]


def test_deleting_the_top_or_a_missing_folder_is_refused(admin_client, org):
    put(org, "a.csv")
    response = admin_client.post(url(org, "storage_folder_delete"), {"prefix": ""})
    assert follow_messages(admin_client, response)
    response = admin_client.post(url(org, "storage_folder_delete"), {"prefix": "ghost/"})
    assert "There is no folder named “ghost/”." in follow_messages(admin_client, response)
    assert keys(org) == ["a.csv"]


# --- files ---


@pytest.mark.parametrize("role", WRITERS)
def test_writers_delete_a_file(member, org, role):
    put(org, "in/a.txt")
    put(org, "in/b.txt")
    client = member(role)
    response = client.post(url(org, "storage_file_delete"), {"key": "in/a.txt"})
    assert response["Location"] == url(org, prefix="in/")
    assert "Deleted “in/a.txt”." in follow_messages(client, response)
    assert keys(org) == ["in/b.txt"]


def test_read_roles_cannot_delete_files(member, org):
    put(org, "a.txt")
    assert member("read_only_admin").post(url(org, "storage_file_delete"), {"key": "a.txt"}).status_code == 403
    assert keys(org) == ["a.txt"]


def test_deleting_a_missing_file_says_so(admin_client, org):
    response = admin_client.post(url(org, "storage_file_delete"), {"key": "nope.txt"})
    assert "There is no file named “nope.txt”; nothing was deleted." in follow_messages(admin_client, response)


def test_downloads_are_attachments_that_never_render_as_html(admin_client, org):
    put(org, "page.html", b"<script>alert(1)</script>", content_type="text/html")
    response = admin_client.get(url(org, "storage_download", key="page.html"))
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == 'attachment; filename="page.html"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert response["Content-Length"] == "25"
    assert b"".join(response.streaming_content) == b"<script>alert(1)</script>"


def test_downloads_keep_a_harmless_content_type(admin_client, org):
    put(org, "data/rows.csv", b"a,b\n", content_type="text/csv")
    response = admin_client.get(url(org, "storage_download", key="data/rows.csv"))
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"] == 'attachment; filename="rows.csv"'
    assert response["ETag"] == '"' + services.object_get(organization=org, key="data/rows.csv").etag + '"'


def test_a_missing_file_or_another_organizations_file_is_404(admin_client, org, other_org):
    put(other_org, "theirs.txt", b"secret")
    assert admin_client.get(url(org, "storage_download", key="theirs.txt")).status_code == 404
    assert admin_client.get(url(org, "storage_preview", key="theirs.txt")).status_code == 404
    assert admin_client.get(url(org, "storage_download")).status_code == 404


def test_previews_escape_the_text_and_pretty_print_json(admin_client, org):
    put(org, "x.txt", b"<script>alert('x')</script>")
    content = admin_client.get(url(org, "storage_preview", key="x.txt")).content.decode()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in content and "<script>alert" not in content
    put(org, "kv/v.json", b'{"a":{"b":1}}')
    content = admin_client.get(url(org, "storage_preview", key="kv/v.json")).content.decode()
    assert "{\n  &quot;a&quot;: {\n    &quot;b&quot;: 1\n  }\n}" in content
    put(org, "blob.bin", b"\x00\x01")
    assert "No preview" in admin_client.get(url(org, "storage_preview", key="blob.bin")).content.decode()


# --- browsing ---


def test_the_page_shows_usage_against_the_quota(admin_client, org):
    put(org, "a.bin", b"x" * 1536)
    content = admin_client.get(url(org)).content.decode()
    assert "<strong>1.5 KB</strong> of 5 GB used" in content
    assert '<meter min="0" max="5368709120" value="1536"' in content


def test_function_namespaces_appear_as_folders_with_their_writer(admin_client, org):
    function = make_function(org, "counter")
    put(org, "counter/visits", b"41", writer_function=function)
    put(org, "readme.txt", b"hi")
    top = admin_client.get(url(org))
    assert [e["name"] for e in top.context["entries"]] == ["counter/", "readme.txt"]
    inner = admin_client.get(url(org, prefix="counter/"))
    [entry] = inner.context["entries"]
    assert entry["name"] == "visits"
    assert '<span class="badge">Function</span> counter' in inner.content.decode()


def test_filter_by_name_prefix(admin_client, org):
    for key in ["logs/2026-01.txt", "logs/2026-02.txt", "logs/2025-12.txt", "logs/2026/x.txt"]:
        put(org, key)
    response = admin_client.get(url(org, prefix="logs/", q="2026"))
    assert [e["name"] for e in response.context["entries"]] == ["2026-01.txt", "2026-02.txt", "2026/"]


def test_folders_with_thousands_of_files_page_by_key(admin_client, org):
    StoredObject.objects.bulk_create(
        StoredObject(organization=org, key=f"many/{i:04d}.txt", folder="many/", size=i, etag="0" * 32,
                     content_type="text/plain", last_modified="2026-01-01T00:00Z", blob_name="x")
        for i in range(250)
    )
    names, next_url, pages = [], url(org, prefix="many/"), 0
    while next_url:
        response = admin_client.get(next_url)
        names += [e["name"] for e in response.context["entries"]]
        next_url = response.context["next_url"]
        pages += 1
    assert pages == 3 and names == [f"{i:04d}.txt" for i in range(250)]


@pytest.mark.slow
def test_sorting_by_size_pages_through_every_file_once(admin_client, org):
    StoredObject.objects.bulk_create(
        StoredObject(organization=org, key=f"s/{i:04d}", folder="s/", size=i % 7, etag="0" * 32,
                     content_type="text/plain", last_modified=f"2026-01-01T00:{i % 60:02d}Z", blob_name="x")
        for i in range(230)
    )
    put(org, "s/sub/inner.txt")
    for sort in ("size", "modified"):
        seen, next_url = [], url(org, prefix="s/", sort=sort, order="desc")
        while next_url:
            response = admin_client.get(next_url)
            seen += [e for e in response.context["entries"]]
            next_url = response.context["next_url"]
        assert [e["name"] for e in seen if e["kind"] == "folder"] == ["sub/"]
        files_seen = [e["object"] for e in seen if e["kind"] == "file"]
        assert len(files_seen) == 230 and len({o.key for o in files_seen}) == 230
        values = [o.size if sort == "size" else o.last_modified for o in files_seen]
        assert values == sorted(values, reverse=True)


def test_an_invalid_folder_address_says_why(admin_client, org):
    response = admin_client.get(url(org, prefix="../"))
    assert any("has a “..” segment" in m for m in follow_messages(admin_client, response))
    response = admin_client.get(url(org, prefix="no-slash"))
    assert any("is not a folder" in m for m in follow_messages(admin_client, response))
