"""Runs and logs through the API: start (overrides, Idempotency-Key, rate limit, ?wait), read, list, logs."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from functions.models import Function, Run, RunStatus
from logs.models import LogEntry
from tests.factories import make_function

from .conftest import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def function(org):
    return make_function(org, "hello", params={"who": "fleet", "secretish": "param"})


def start(api, body=None, **extra):
    return api.post("/functions/hello/runs", {"paramsOverride": {}} if body is None else body, **extra)


def test_a_run_starts_with_the_api_trigger_and_the_overrides_in_its_event(api, function, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = start(api, {"paramsOverride": {"who": "override", "extra": "1"}})
    assert response.status_code == 200, response.content
    correlation_id = response.json()["data"]["correlationId"]
    run = Run.objects.get(correlation_id=correlation_id)
    assert run.trigger == "api" and run.event["who"] == "override" and run.event["extra"] == "1"
    assert len(callbacks) == 1  # enqueued once, on commit
    data = api.get(f"/functions/hello/runs/{correlation_id}").json()["data"]
    assert data["status"] == "started" and "completedAtTime" not in data
    assert data["context"]["requestId"] == correlation_id and data["context"]["requestPayload"] == run.event
    assert "responsePayload" not in data["context"]


@pytest.mark.parametrize("body, fragment", [
    ({}, "paramsOverride: is required"),
    ({"paramsOverride": []}, "paramsOverride"),
    ({"paramsOverride": {"a": 1}}, "paramsOverride.a"),
    ({"paramsOverride": {"": "x"}}, "name"),
])
def test_bad_overrides_are_400_and_start_nothing(api, function, body, fragment):
    assert_error(start(api, body), 400, fragment)
    assert not Run.objects.exists()


def test_a_function_without_code_is_409_with_a_message(api, org):
    Function.objects.create(organization=org, name="empty", handler="main.handler")
    assert_error(api.post("/functions/empty/runs", {"paramsOverride": {}}), 409, "no deployed code")


@pytest.mark.parametrize("status, expected", [
    (RunStatus.QUEUED, "started"), (RunStatus.RUNNING, "started"), (RunStatus.SUCCEEDED, "success"),
    (RunStatus.FAILED, "error"), (RunStatus.TIMED_OUT, "timeout"), (RunStatus.DROPPED, "dropped"),
])
def test_run_statuses_map_to_the_apis_words(api, function, status, expected):
    run = Run.objects.get(correlation_id=start(api).json()["data"]["correlationId"])
    finished = status not in (RunStatus.QUEUED, RunStatus.RUNNING)
    Run.objects.filter(pk=run.pk).update(status=status, finished_at=timezone.now() if finished else None)
    data = api.get(f"/functions/hello/runs/{run.correlation_id}").json()["data"]
    assert data["status"] == expected and ("completedAtTime" in data) == finished


@pytest.mark.parametrize("return_value, payload", [
    ('{"ok": true, "none": null}', {"ok": True, "none": None}),
    ("42", None), ('"text"', None), ("[1, 2]", None), ("null", None),
])
def test_the_response_payload_is_the_return_value_only_when_it_is_an_object(api, function, return_value, payload):
    run = Run.objects.get(correlation_id=start(api).json()["data"]["correlationId"])
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, finished_at=timezone.now(), return_value=return_value)
    context = api.get(f"/functions/hello/runs/{run.correlation_id}").json()["data"]["context"]
    assert context.get("responsePayload") == payload and ("responsePayload" in context) == (payload is not None)


def test_an_unknown_or_malformed_run_id_is_404(api, function):
    assert_error(api.get("/functions/hello/runs/00000000-0000-0000-0000-000000000000"), 404)
    assert_error(api.get("/functions/hello/runs/not-a-uuid"), 404)


def test_the_same_idempotency_key_and_body_answers_the_first_run_and_starts_nothing(api, function):
    first = start(api, {"paramsOverride": {"a": "1"}}, HTTP_IDEMPOTENCY_KEY="deploy-42")
    again = start(api, {"paramsOverride": {"a": "1"}}, HTTP_IDEMPOTENCY_KEY="deploy-42")
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    assert Run.objects.count() == 1
    assert_error(start(api, {"paramsOverride": {"a": "2"}}, HTTP_IDEMPOTENCY_KEY="deploy-42"), 422, "another request body")
    assert Run.objects.count() == 1
    start(api, {"paramsOverride": {"a": "1"}}, HTTP_IDEMPOTENCY_KEY="deploy-43")
    assert Run.objects.count() == 2


def test_idempotency_keys_are_per_token_and_expire_after_a_day(api_client, function):
    from api.models import IdempotentResponse

    one, two = api_client(name="one"), api_client(name="two")
    start(one, HTTP_IDEMPOTENCY_KEY="k")
    start(two, HTTP_IDEMPOTENCY_KEY="k")
    assert Run.objects.count() == 2
    IdempotentResponse.objects.update(created_at=timezone.now() - timedelta(hours=25))
    start(one, HTTP_IDEMPOTENCY_KEY="k")
    assert Run.objects.count() == 3


def test_a_bad_idempotency_key_is_400(api, function):
    assert_error(start(api, HTTP_IDEMPOTENCY_KEY="x" * 300), 400, "Idempotency-Key")


def test_run_starts_are_limited_per_token_and_function_with_retry_after(api_client, function, org, settings):
    settings.API_RUN_STARTS_PER_MINUTE = 2
    make_function(org, "other")
    api, other_token = api_client(name="flood"), api_client(name="calm")
    assert start(api).status_code == 200 and start(api).status_code == 200
    refused = start(api)
    assert_error(refused, 429, "more than 2 runs of hello")
    assert 1 <= int(refused["Retry-After"]) <= 60
    # Another Function, and another token, have their own counts.
    assert api.post("/functions/other/runs", {"paramsOverride": {}}).status_code == 200
    assert start(other_token).status_code == 200
    assert Run.objects.count() == 4


def test_requests_per_second_are_limited_per_token(api_client, function, settings):
    settings.API_RATE_LIMIT_PER_SECOND = 3
    api, other = api_client(name="flood"), api_client(name="calm")
    statuses = [api.get("/functions").status_code for _ in range(8)]
    assert statuses.count(429) >= 1  # the window may roll over once during the loop
    refused = next(r for r in [api.get("/functions") for _ in range(5)] if r.status_code == 429)
    assert refused["Retry-After"] == "1"
    assert other.get("/functions").status_code == 200


def test_wait_answers_202_with_the_correlation_id_when_the_run_is_not_done(api, function):
    response = api.post("/functions/hello/runs?wait=1", {"paramsOverride": {}})
    assert response.status_code == 202 and set(response.json()["data"]) == {"correlationId"}
    assert_error(api.post("/functions/hello/runs?wait=61", {"paramsOverride": {}}), 400, "wait:")
    assert_error(api.post("/functions/hello/runs?wait=soon", {"paramsOverride": {}}), 400, "wait")


def test_wait_answers_the_finished_run_as_get_does(api, function):
    # The run is finished by hand between a first start and its idempotent retry with ?wait
    # (tests/integration/test_api_sdk.py waits for a real worker instead).
    first = start(api, {"paramsOverride": {}}, HTTP_IDEMPOTENCY_KEY="w")
    Run.objects.update(status=RunStatus.SUCCEEDED, finished_at=timezone.now(), return_value='{"done": 1}')
    response = api.post("/functions/hello/runs?wait=5", {"paramsOverride": {}}, HTTP_IDEMPOTENCY_KEY="w")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["correlationId"] == first.json()["data"]["correlationId"]
    assert data["status"] == "success" and data["context"]["responsePayload"] == {"done": 1}
    assert data == api.get(f"/functions/hello/runs/{data['correlationId']}").json()["data"]


def test_list_runs_filters_and_pages(api, function):
    ids = [start(api).json()["data"]["correlationId"] for _ in range(3)]
    Run.objects.filter(correlation_id=ids[0]).update(status=RunStatus.FAILED, finished_at=timezone.now())
    Run.objects.create(
        correlation_id="11111111-1111-1111-1111-111111111111", organization=function.organization, function=function,
        code_version=function.deployed_version, trigger="manual", timeout_seconds=1, memory_mb=1,
    )
    everything = api.get("/functions/hello/runs").json()
    assert len(everything["data"]) == 4
    assert [r["correlationId"] for r in api.get("/functions/hello/runs", status="error").json()["data"]] == [ids[0]]
    assert len(api.get("/functions/hello/runs", trigger="api").json()["data"]) == 3
    page = api.get("/functions/hello/runs", limit=3).json()
    rest = api.get("/functions/hello/runs", limit=3, after=page["pagination"]["endCursor"]).json()
    assert len(page["data"]) == 3 and len(rest["data"]) == 1 and not rest["pagination"]["hasNextPage"]
    assert {r["correlationId"] for r in page["data"] + rest["data"]} == {*ids, "11111111-1111-1111-1111-111111111111"}
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert api.get("/functions/hello/runs", startTime=future).json()["data"] == []
    assert_error(api.get("/functions/hello/runs", status="great"), 400, "status:")
    assert_error(api.get("/functions/hello/runs", trigger="cron"), 400, "trigger:")
    assert_error(api.get("/functions/hello/runs", after="forged"), 400, "after:")


# --- logs ---


def _log(function, run, message, when):
    return LogEntry.objects.create(
        organization=function.organization, function=function, run=run, attempt=1, timestamp=when,
        stream="stdout", message=message,
    )


def test_logs_are_read_oldest_first_with_search_and_pages(api, function):
    run = Run.objects.get(correlation_id=start(api).json()["data"]["correlationId"])
    now = timezone.now()
    for i in range(5):
        _log(function, run, f"line {i}" + (" needle" if i % 2 else ""), now - timedelta(minutes=10 - i))
    params = {"startTime": (now - timedelta(hours=1)).isoformat(), "endTime": (now + timedelta(minutes=1)).isoformat()}
    body = api.get("/functions/hello/logs", **params, limit=2).json()
    assert [e["log"] for e in body["data"]] == ["line 0", "line 1 needle"] and body["pagination"]["hasNextPage"]
    more = api.get("/functions/hello/logs", **params, limit=2, after=body["pagination"]["endCursor"]).json()
    assert [e["log"] for e in more["data"]] == ["line 2", "line 3 needle"]
    found = api.get("/functions/hello/logs", **params, filterText="NEEDLE").json()
    assert [e["log"] for e in found["data"]] == ["line 1 needle", "line 3 needle"] and found["data"][0]["loggedAtTime"].endswith("Z")


@pytest.mark.parametrize("params, fragment", [
    ({}, "startTime: is required"),
    ({"startTime": "2026-01-01T00:00:00Z"}, "endTime: is required"),
    ({"startTime": "yesterday", "endTime": "2026-01-01T00:00:00Z"}, "startTime"),
    ({"startTime": "{now}", "endTime": "{before}"}, "endTime: The end must be after the start"),
    ({"startTime": "{long_ago}", "endTime": "{now}"}, "at most 7 days"),
    ({"startTime": "{before}", "endTime": "{now}", "limit": "513"}, "limit:"),
    ({"startTime": "{before}", "endTime": "{now}", "after": "forged"}, "after:"),
    ({"startTime": "2026-01-01T00:00:00", "endTime": "2026-01-01T01:00:00"}, "offset"),
])
def test_bad_log_queries_are_400_naming_the_field(api, function, params, fragment):
    now = timezone.now()
    values = {"now": now.isoformat(), "before": (now - timedelta(hours=1)).isoformat(),
              "long_ago": (now - timedelta(days=6, hours=23)).isoformat()}
    if params.get("startTime") == "{long_ago}":
        values["now"] = (now + timedelta(days=1)).isoformat()
    query = {k: v.format(**values) for k, v in params.items()}
    assert_error(api.get("/functions/hello/logs", **query), 400, fragment)


def test_times_at_the_edge_of_the_calendar_are_400_not_500(api, function):
    edge = {"startTime": "0001-01-01T00:01:00+00:02", "endTime": "9999-12-31T23:59:00-00:02"}
    assert_error(api.get("/functions/hello/runs", startTime=edge["startTime"]), 400, "startTime:", "out of range")
    assert_error(api.get("/functions/hello/runs", endTime=edge["endTime"]), 400, "endTime:", "out of range")
    assert_error(api.get("/functions/hello/logs", **edge), 400, "out of range")
