"""The Functions endpoints through Django's test client: create, get, patch, delete, upload and deploy, list."""

import uuid
import zoneinfo
from datetime import datetime

import pytest
from django.test import Client

from functions.models import AuditEntry, CodeVersion, Function
from secrets_vault.models import Secret
from tests.factories import HELLO, make_function, make_zip

from .conftest import assert_error

pytestmark = pytest.mark.django_db

CREATE = {
    "name": "hello",
    "description": "says hello",
    "config": {"handler": "main.handler", "params": {"who": "fleet"}, "secrets": {"API_KEY": "s3cr3t-value"}},
}


def upload(url, data):
    return Client().put(url.split("testserver", 1)[1], data, content_type="application/zip")


def created(api, body=CREATE):
    response = api.post("/functions", body)
    assert response.status_code == 200, response.content
    return response.json()["data"]


def test_create_answers_the_function_with_an_upload_url_and_stores_params_and_secrets(api):
    data = created(api)
    assert data["name"] == "hello" and data["description"] == "says hello"
    assert data["config"] == {"handler": "main.handler", "isScheduleEnabled": False, "params": {"who": "fleet"}, "secrets": {"API_KEY": ""}}
    assert data["codePackage"] == {"status": "pendingUpload"} and data["effects"] == {}
    assert data["uploadPutUrl"].startswith("http://testserver/api/signed/")
    assert isinstance(data["lastUpdateTimestampMs"], int) and data["createdAtTime"].endswith("Z")
    function = Function.objects.get()
    assert function.deployed_version is None and function.parameters_dict == {"who": "fleet"}
    assert Secret.objects.get().name == "API_KEY"
    assert "s3cr3t-value" not in str(api.get("/functions/hello").content)


def test_writes_made_with_a_token_appear_in_history_as_made_by_that_token(api_client):
    api = api_client(name="CI deploys")
    created(api)
    entries = AuditEntry.objects.filter(function_name="hello")
    assert entries.count() == 2  # created, secrets
    assert {e.actor_label for e in entries} == {"API token “CI deploys”"} and all(e.actor is None for e in entries)


def test_upload_then_deploy_makes_the_zip_the_running_version(api):
    # Content of its own: parallel test processes share the storage folder, and packages are stored by hash.
    package = make_zip({"main.py": HELLO + f"# {uuid.uuid4()}\n"})
    data = created(api)
    assert upload(data["uploadPutUrl"], package).status_code == 200
    assert api.get("/functions/hello").json()["data"]["codePackage"]["status"] == "uploaded"
    response = api.post("/functions/hello/deploy")
    assert response.status_code == 200 and response.json()["data"] == {"name": "hello", "version": 1}
    got = api.get("/functions/hello").json()["data"]
    assert got["codePackage"]["status"] == "deployed"
    download = Client().get(got["codePackage"]["downloadGetUrl"].split("testserver", 1)[1])
    assert download.status_code == 200 and b"".join(download.streaming_content) == package
    assert CodeVersion.objects.get().uploaded_by_label.startswith("API token")


def test_deploy_refuses_a_bad_zip_with_the_dashboards_message_and_keeps_the_deployed_version(api, org):
    make_function(org, "hello")
    put_url = api.get("/functions/hello")  # the Function exists; get an upload URL from a patch
    stamp = put_url.json()["data"]["lastUpdateTimestampMs"]
    url = api.patch("/functions/hello", {"lastUpdateTimestampMs": stamp}).json()["data"]["uploadPutUrl"]
    upload(url, b"not a zip at all")
    message = assert_error(api.post("/functions/hello/deploy"), 400, "bundle:")
    assert "zip" in message
    upload(url, make_zip({"other.py": HELLO}))
    assert_error(api.post("/functions/hello/deploy"), 400, "main.handler", "main.py")
    function = Function.objects.get()
    assert function.deployed_version.number == 1 and CodeVersion.objects.count() == 1


def test_deploy_before_any_upload_is_409(api):
    created(api)
    assert_error(api.post("/functions/hello/deploy"), 409, "uploadPutUrl")


def test_an_upload_over_50_mb_is_413_and_keeps_nothing(api):
    data = created(api)
    response = Client().put(
        data["uploadPutUrl"].split("testserver", 1)[1], b"x", content_type="application/zip",
        CONTENT_LENGTH=str(50 * 1024 * 1024 + 1),
    )
    assert_error(response, 413, "50 MB")
    assert api.get("/functions/hello").json()["data"]["codePackage"]["status"] == "pendingUpload"


def test_a_tampered_or_wrong_method_upload_url_is_refused(api):
    url = created(api)["uploadPutUrl"].split("testserver", 1)[1]
    assert_error(Client().put(url + "x", b"zip"), 403, "not valid")
    assert_error(Client().get(url), 403, "for PUT requests")


@pytest.mark.parametrize(
    "body, status, fragments",
    [
        ({}, 400, ["name: is required", "config: is required"]),
        ({"name": "x", "config": {}}, 400, ["config.handler: is required"]),
        ({"name": 5, "config": {"handler": "main.handler"}}, 400, ["name:"]),
        ({"name": "bad name!", "config": {"handler": "main.handler"}}, 400, ["name:"]),
        ({"name": "x" * 36, "config": {"handler": "main.handler"}}, 400, ["name:"]),
        ({"name": "ok", "config": {"handler": "no_dot"}}, 400, ["handler:"]),
        ({"name": "ok", "config": {"handler": "main.handler", "params": {"a": 1}}}, 400, ["config.params.a:"]),
        ({"name": "ok", "config": {"handler": "main.handler", "params": {"SamsaraFunctionTriggerSource": "x"}}}, 400, ["params:"]),
        ({"name": "ok", "config": {"handler": "main.handler", "secrets": {"": "v"}}}, 400, ["secrets:"]),
        ({"name": "ok", "config": {"handler": "main.handler", "isScheduleEnabled": "yes"}}, 400, ["config.isScheduleEnabled:"]),
        ({"name": "ok", "config": {"handler": "main.handler", "schedule": {"entries": [{"daysOfWeek": [False] * 7, "timeSinceMidnightMs": 0}], "timezone": "UTC"}}}, 400, ["config.schedule.entries[0]", "at least one day"]),
        ({"name": "ok", "config": {"handler": "main.handler", "schedule": {"entries": [{"daysOfWeek": [True] * 7, "timeSinceMidnightMs": 86400000}], "timezone": "Mars/Base"}}}, 400, ["timeSinceMidnightMs", "config.schedule.timezone"]),
        ({"name": "ok", "config": {"handler": "main.handler", "schedule": {"entries": [{"daysOfWeek": [True] * 6, "timeSinceMidnightMs": 5}], "timezone": "UTC"}}}, 400, ["config.schedule.entries[0]", "7 true/false values"]),
        ("[1, 2", 400, ["JSON"]),
    ],
)
def test_bad_create_input_is_400_naming_the_field_and_saves_nothing(api, body, status, fragments):
    assert_error(api.post("/functions", body), status, *fragments)
    assert not Function.objects.exists() and not Secret.objects.exists()


def test_unknown_request_fields_are_ignored(api):
    data = created(api, {**CREATE, "color": "blue", "config": {**CREATE["config"], "memoryMb": 4}})
    assert data["name"] == "hello" and "color" not in data


def test_a_taken_name_is_refused_without_regard_to_case(api, org):
    make_function(org, "Hello")
    assert_error(api.post("/functions", CREATE), 400, "name:", "already exists")


def test_a_schedule_is_validated_and_stored(api):
    body = {**CREATE, "config": {**CREATE["config"], "isScheduleEnabled": True,
            "schedule": {"entries": [{"daysOfWeek": [False, True, True, True, True, True, False], "timeSinceMidnightMs": 3600000}], "timezone": "Europe/Berlin"}}}
    data = created(api, body)
    assert data["config"]["isScheduleEnabled"] is True
    assert data["config"]["schedule"] == body["config"]["schedule"]
    # It is the Function's real schedule: the tick's column is set and the API reports the next occurrence.
    function = Function.objects.get(name="hello")
    assert function.schedule.enabled and function.schedule.next_occurrence_at is not None
    next_at = datetime.fromisoformat(data["effects"]["nextScheduledAtTime"].replace("Z", "+00:00"))
    assert next_at == function.schedule.next_occurrence_at
    local = next_at.astimezone(zoneinfo.ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (1, 0) and local.weekday() < 5


def test_patching_is_schedule_enabled_alone_keeps_the_entries_and_stops_the_schedule(api):
    body = {**CREATE, "config": {**CREATE["config"], "isScheduleEnabled": True,
            "schedule": {"entries": [{"daysOfWeek": [True] * 7, "timeSinceMidnightMs": 0}], "timezone": "UTC"}}}
    data = created(api, body)
    response = api.patch("/functions/hello", {"lastUpdateTimestampMs": data["lastUpdateTimestampMs"],
                                              "config": {"isScheduleEnabled": False}})
    assert response.status_code == 200, response.content
    data = api.get("/functions/hello").json()["data"]
    assert data["config"]["isScheduleEnabled"] is False
    assert data["config"]["schedule"]["entries"] == body["config"]["schedule"]["entries"]
    assert data["effects"].get("nextScheduledAtTime") is None


def test_patch_with_a_stale_timestamp_is_409_and_with_the_current_one_replaces_params_and_secrets(api):
    data = created(api)
    stale = data["lastUpdateTimestampMs"]
    response = api.patch("/functions/hello", {"lastUpdateTimestampMs": stale, "description": "new",
                                              "config": {"params": {"other": "1"}, "secrets": {"NEW": "value-1234"}}})
    assert response.status_code == 200, response.content
    patched = response.json()["data"]
    assert patched["lastUpdateTimestampMs"] > stale and patched["uploadPutUrl"]
    got = api.get("/functions/hello").json()["data"]
    assert got["description"] == "new" and got["config"]["params"] == {"other": "1"} and got["config"]["secrets"] == {"NEW": ""}
    assert_error(api.patch("/functions/hello", {"lastUpdateTimestampMs": stale, "description": "lost"}), 409, "changed since")
    assert Function.objects.get().description == "new"


def test_a_patch_with_a_bad_secret_changes_nothing(api):
    data = created(api)
    response = api.patch("/functions/hello", {"lastUpdateTimestampMs": data["lastUpdateTimestampMs"], "description": "x",
                                              "config": {"secrets": {"bad name!": "v"}}})
    assert_error(response, 400, "secrets:")
    function = Function.objects.get()
    assert function.description == "says hello" and list(Secret.objects.values_list("name", flat=True)) == ["API_KEY"]


def test_patch_needs_the_timestamp(api):
    created(api)
    assert_error(api.patch("/functions/hello", {"description": "x"}), 400, "lastUpdateTimestampMs: is required")


def test_delete_removes_the_function(api, org):
    make_function(org, "hello")
    response = api.delete("/functions/hello")
    assert response.status_code == 204 and not Function.objects.exists()
    assert_error(api.delete("/functions/hello"), 404)


def test_list_functions_pages_by_name(api, org):
    for name in ["c", "a", "b"]:
        make_function(org, name)
    first = api.get("/functions", limit=2).json()
    assert [f["name"] for f in first["data"]] == ["a", "b"] and first["pagination"]["hasNextPage"]
    second = api.get("/functions", limit=2, after=first["pagination"]["endCursor"]).json()
    assert [f["name"] for f in second["data"]] == ["c"] and second["pagination"] == {"endCursor": "", "hasNextPage": False}
    assert_error(api.get("/functions", after="forged"), 400, "after:")
    assert_error(api.get("/functions", limit=0), 400, "limit:")


def test_a_body_over_the_limit_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = {**CREATE, "description": "x" * 2000}
    assert_error(api.post("/functions", body), 413)


def test_deleting_a_function_discards_its_uploaded_package(api, django_capture_on_commit_callbacks):
    from django.core.files.storage import default_storage

    from api.services import pending_package_key

    data = created(api)
    upload(data["uploadPutUrl"], make_zip({"main.py": HELLO}))
    key = pending_package_key(Function.objects.get())
    assert default_storage.exists(key)
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete("/functions/hello").status_code == 204
    assert not default_storage.exists(key)


@pytest.mark.parametrize("change, fragment", [
    ({"lastUpdateTimestampMs": "123"}, "lastUpdateTimestampMs:"),
    ({"description": 5}, "description:"),
    ({"description": "x" * 2001}, "description:"),
    ({"config": {"handler": "no dot"}}, "handler:"),
    ({"config": {"handler": "missing.handler"}}, "handler:"),
    ({"config": {"params": {"": "x"}}}, "params:"),
    ({"config": {"params": ["a"]}}, "config.params:"),
    ({"config": {"secrets": {"A": 1}}}, "config.secrets.A:"),
    ({"config": {"isScheduleEnabled": 1}}, "config.isScheduleEnabled:"),
    ({"config": {"schedule": {"entries": []}}}, "config.schedule.timezone: is required"),
    ({"config": "main.handler"}, "config:"),
])
def test_bad_patch_input_is_400_naming_the_field_and_changes_nothing(api, org, change, fragment):
    function = make_function(org, "hello")
    stamp = api.get("/functions/hello").json()["data"]["lastUpdateTimestampMs"]
    assert_error(api.patch("/functions/hello", {"lastUpdateTimestampMs": stamp, **change}), 400, fragment)
    after = Function.objects.get()
    assert (after.revision, after.handler, after.description) == (function.revision, function.handler, function.description)


def test_patching_the_handler_checks_it_against_the_deployed_code(api, org):
    make_function(org, "hello", files={"main.py": HELLO, "other.py": HELLO.replace("def handler", "def run")})
    stamp = api.get("/functions/hello").json()["data"]["lastUpdateTimestampMs"]
    assert api.patch("/functions/hello", {"lastUpdateTimestampMs": stamp, "config": {"handler": "other.run"}}).status_code == 200
    assert api.get("/functions/hello").json()["data"]["config"]["handler"] == "other.run"
