"""The official SDK (samsara-api, pinned) drives the REST API of a live server, with a real Celery worker.

These tests are the contract: no hand-written request stands in for the SDK.
Only the code package and storage bytes go over plain HTTP, to the signed
URLs the API hands out, exactly as Samsara's own guide uploads them.
"""

import io
import time
import uuid
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
import requests
from samsara import Samsara
from samsara.core.api_error import ApiError
from samsara.types import (
    CreateFunctionRequestConfigRequestBody,
    CreateFunctionRequestConfigRequestBodyParams,
    CreateFunctionRequestConfigRequestBodySecrets,
)
from samsara.beta_ap_is.types import FunctionsStartFunctionRunRequestBodyParamsOverride

from accounts.services import API_SCOPES, api_token_create
from functions.models import AuditEntry, Run
from tests.integration.test_worker import queue, start_worker  # noqa: F401 - fixtures

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sandbox, pytest.mark.slow]

HANDLER = """
from samsara.function import Function


def handler(event, context):
    secrets = Function().secrets().load()
    print("hello", event["who"], "from", event["SamsaraFunctionTriggerSource"])
    return {"who": event["who"], "region": event.get("region"), "keyLength": len(secrets["API_KEY"])}
"""


def bundle(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return buffer.getvalue()


@pytest.fixture
def raw_token(org):
    return api_token_create(organization=org, name="sdk test", scopes=API_SCOPES)[1]


@pytest.fixture
def sdk(live_server, raw_token):
    return Samsara(token=raw_token, base_url=f"{live_server.url}/api").beta_ap_is


def wait_for_run(sdk, name, correlation_id, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = sdk.get_function_run(name=name, correlation_id=correlation_id).data
        if run.status != "started":
            return run
        time.sleep(0.3)
    raise AssertionError("the run did not finish")


def test_the_sdk_creates_uploads_deploys_runs_reads_logs_and_patches_a_function(sdk, start_worker):  # noqa: F811
    start_worker()
    created = sdk.create_function(
        name="sdk-hello",
        description="made by the official SDK",
        config=CreateFunctionRequestConfigRequestBody(
            handler="main.handler",
            params=CreateFunctionRequestConfigRequestBodyParams(who="sdk", region="us"),
            secrets=CreateFunctionRequestConfigRequestBodySecrets(API_KEY="k-0123456789"),
        ),
    ).data
    assert created.name == "sdk-hello" and created.code_package.status == "pendingUpload"
    assert created.config.secrets.model_dump() == {"API_KEY": ""}

    assert requests.put(created.upload_put_url, data=bundle({"main.py": HANDLER}), timeout=30).status_code == 200
    assert sdk.get_function(name="sdk-hello").data.code_package.status == "uploaded"
    assert sdk.deploy_function(name="sdk-hello").data.name == "sdk-hello"
    function = sdk.get_function(name="sdk-hello").data
    assert function.code_package.status == "deployed" and function.config.params.model_dump() == {"who": "sdk", "region": "us"}

    started = sdk.start_function_run(
        name="sdk-hello", params_override=FunctionsStartFunctionRunRequestBodyParamsOverride(who="override")
    ).data
    run = wait_for_run(sdk, "sdk-hello", started.correlation_id)
    assert run.status == "success", Run.objects.get(correlation_id=started.correlation_id).error
    assert run.completed_at_time is not None and run.context.request_id == started.correlation_id
    assert run.context.request_payload["who"] == "override"
    assert run.context.request_payload["SamsaraFunctionTriggerSource"] == "api"
    assert "k-0123456789" not in str(run.context.request_payload)
    assert run.context.response_payload == {"who": "override", "region": "us", "keyLength": 12}

    now = datetime.now(UTC)
    logs = sdk.get_function_logs(name="sdk-hello", start_time=now - timedelta(hours=1), end_time=now + timedelta(minutes=1))
    assert "hello override from api" in [entry.log for entry in logs.data]
    assert logs.pagination.has_next_page is False

    stale = function.last_update_timestamp_ms
    patched = sdk.patch_function(name="sdk-hello", last_update_timestamp_ms=stale, description="patched").data
    assert patched.last_update_timestamp_ms > stale and patched.upload_put_url
    with pytest.raises(ApiError) as refused:
        sdk.patch_function(name="sdk-hello", last_update_timestamp_ms=stale, description="lost")
    assert refused.value.status_code == 409 and "changed since" in refused.value.body["message"]
    assert sdk.get_function(name="sdk-hello").data.description == "patched"
    assert AuditEntry.objects.filter(function_name="sdk-hello", actor_label="API token “sdk test”").count() >= 4

    sdk.delete_function(name="sdk-hello")
    with pytest.raises(ApiError) as missing:
        sdk.get_function(name="sdk-hello")
    assert missing.value.status_code == 404


def test_the_sdk_creates_downloads_lists_and_deletes_storage_files(sdk):
    name = f"sdk/{uuid.uuid4().hex}.json"
    upload = sdk.create_function_storage_file(name=name).data.upload_put
    assert upload.expires_at_time > datetime.now(UTC)
    assert requests.put(upload.url, data=b'{"ok": true}', timeout=30).status_code == 200
    download = sdk.get_function_storage_file(name=name).data.download_get
    assert requests.get(download.url, timeout=30).content == b'{"ok": true}'
    listing = sdk.list_functions_storage_files(prefix="sdk/", include_download_urls=True)
    assert [f.name for f in listing.data] == [name] and listing.data[0].size_bytes == 12
    assert listing.data[0].urls[0].url_type == "download"
    grouped = sdk.list_functions_storage_files(group_by_folder=True)
    assert [f.name for f in grouped.folders] == ["sdk/"]
    replace = sdk.update_function_storage_file(name=name).data.upload_put
    requests.put(replace.url, data=b"{}", timeout=30)
    assert sdk.list_functions_storage_files(prefix="sdk/").data[0].size_bytes == 2
    sdk.delete_function_storage_file(name=name)
    assert sdk.list_functions_storage_files(prefix="sdk/").data == []
    with pytest.raises(ApiError) as missing:
        sdk.get_function_storage_file(name=name)
    assert missing.value.status_code == 404


def test_a_run_with_wait_answers_the_finished_run(sdk, live_server, raw_token, start_worker):  # noqa: F811
    """?wait is beyond Samsara's API, so the SDK cannot send it: a plain request does."""
    start_worker()
    created = sdk.create_function(name="quick", config=CreateFunctionRequestConfigRequestBody(handler="main.handler")).data
    requests.put(created.upload_put_url, data=bundle({"main.py": "def handler(event, context):\n    return {'n': 1}\n"}), timeout=30)
    sdk.deploy_function(name="quick")
    response = requests.post(
        f"{live_server.url}/api/functions/quick/runs?wait=60", json={"paramsOverride": {}},
        headers={"Authorization": f"Bearer {raw_token}"}, timeout=90,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "success" and response.json()["data"]["context"]["responsePayload"] == {"n": 1}
