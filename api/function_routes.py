"""/functions: Samsara's Functions endpoints, plus a list of Functions and of a Function's runs.

Thin: each endpoint asks the access layer (accounts.access) for the object,
scoped to the token's organization, and hands the work to the services the
dashboard uses (functions.services, run_services, secrets_vault, logs).
"""

import time
from datetime import UTC, datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q
from ninja import Query, Router
from ninja.responses import Status, codes_4xx

from accounts.access import Area, function_for_token, run_for_token, token_require
from functions.models import FINISHED_STATUSES, Function, Run, RunStatus, TriggerSource
from functions.run_services import run_trigger
from functions.services import function_delete
from logs.queries import log_page, log_query_build
from schedules.services import schedule_next_occurrence

from . import schemas, services
from .http import ApiProblem, cursor_decode, cursor_encode, rate_limited
from .idempotency import idempotent_response
from .ratelimit import rate_limit_hit
from .signed import Kind, signed_url

router = Router(tags=["Functions"])

MAX_WAIT_SECONDS = 60
LOG_LIMIT_MAX = 512
LIST_LIMIT_MAX = 512
# Run statuses as the list filter names them (the API's words and the dashboard's).
_STATUS_FILTER = {
    "started": [RunStatus.QUEUED, RunStatus.RUNNING],
    "success": [RunStatus.SUCCEEDED],
    "error": [RunStatus.FAILED],
    "timeout": [RunStatus.TIMED_OUT],
    "dropped": [RunStatus.DROPPED],
}


def _upload_url(request, function):
    url, _ = signed_url(
        request, kind=Kind.CODE_PUT, organization_id=function.organization_id, target=function.pk,
        actor_label=request.api_token.actor_label,
    )
    return url


def _function_data(request, function):
    schedule, enabled = services.schedule_as_api(function)
    status = services.code_package_status(function)
    code_package = {"status": status}
    if function.deployed_version_id:
        code_package["downloadGetUrl"], _ = signed_url(
            request, kind=Kind.CODE_GET, organization_id=function.organization_id, target=function.deployed_version_id
        )
    config = {
        "handler": function.handler,
        "isScheduleEnabled": enabled,
        "params": function.parameters_dict,
        "secrets": {name: "" for name in services.function_secret_names(function)},
    }
    if schedule is not None:
        config["schedule"] = schedule
    return {
        "name": function.name,
        "description": function.description,
        "config": config,
        "codePackage": code_package,
        "effects": {"nextScheduledAtTime": schedule_next_occurrence(function=function)},
        "createdAtTime": function.created_at,
        "updatedAtTime": function.updated_at,
        "lastUpdateTimestampMs": services.timestamp_ms(function.updated_at),
    }


def _utc(field, value):
    """An RFC 3339 query time as aware UTC; 400 without an offset or outside the years datetime can hold."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ApiProblem(400, f"{field}: give an RFC 3339 time with its offset, e.g. 2025-01-31T08:00:00Z.")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ApiProblem(400, f"{field}: {value.isoformat()} is out of range.") from None


def _limit(value, maximum, field="limit"):
    if value is None:
        return 100
    if not 1 <= value <= maximum:
        raise ApiProblem(400, f"{field}: must be a whole number from 1 to {maximum}.")
    return value


# --- the catalogue ---


@router.get("/functions", response={200: schemas.FunctionList, codes_4xx: schemas.Error}, exclude_none=True,
            summary="List Functions", operation_id="listFunctions")
def list_functions(request, after: str | None = None, limit: int | None = Query(None, ge=1, le=LIST_LIMIT_MAX)):
    """The organization's Functions by name, `limit` (1-512, default 100) a page (beyond Samsara's API)."""
    token = request.api_token
    token_require(token, Area.FUNCTIONS)
    limit = _limit(limit, LIST_LIMIT_MAX)
    functions = Function.objects.of(token.organization).order_by("name", "pk")
    if after:
        last = cursor_decode("functions", after)
        functions = functions.filter(Q(name__gt=last[0]) | Q(name=last[0], pk__gt=last[1]))
    page = list(functions[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return {
        "data": [
            {
                "name": f.name, "description": f.description, "handler": f.handler,
                "codePackageStatus": services.code_package_status(f), "createdAtTime": f.created_at,
                "updatedAtTime": f.updated_at, "lastUpdateTimestampMs": services.timestamp_ms(f.updated_at),
            }
            for f in page
        ],
        "pagination": {
            "endCursor": cursor_encode("functions", [page[-1].name, page[-1].pk]) if more else "",
            "hasNextPage": more,
        },
    }


@router.post("/functions", response={200: schemas.FunctionCreatedEnvelope, codes_4xx: schemas.Error},
             exclude_none=True, summary="Create a Function", operation_id="createFunction")
def create_function(request, payload: schemas.FunctionCreateIn):
    """Create a Function without code; PUT the zip to `uploadPutUrl`, then `POST /functions/{name}/deploy`."""
    token = request.api_token
    token_require(token, Area.FUNCTIONS, write=True)
    config = payload.config
    function = services.api_function_create(
        organization=token.organization, token=token, name=payload.name, description=payload.description,
        handler=config.handler, params=config.params, secrets=config.secrets,
        schedule=config.schedule.model_dump() if config.schedule else None, is_schedule_enabled=config.isScheduleEnabled,
    )
    data = _function_data(request, function)
    data["uploadPutUrl"] = _upload_url(request, function)
    return {"data": data}


@router.get("/functions/{name}", response={200: schemas.FunctionEnvelope, codes_4xx: schemas.Error},
            exclude_none=True, summary="Get a Function", operation_id="getFunction")
def get_function(request, name: str):
    function = function_for_token(request.api_token, name)
    return {"data": _function_data(request, function)}


@router.patch("/functions/{name}", response={200: schemas.PatchedEnvelope, codes_4xx: schemas.Error},
              exclude_none=True, summary="Update a Function", operation_id="patchFunction")
def patch_function(request, name: str, payload: schemas.FunctionPatchIn):
    """Change the given fields; `params` and `secrets` replace their whole set. A stale `lastUpdateTimestampMs` is 409."""
    token = request.api_token
    function = function_for_token(token, name, write=True)
    config = payload.config or schemas.PatchConfig()
    try:
        function = services.api_function_patch(
            function=function, token=token, last_update_timestamp_ms=payload.lastUpdateTimestampMs,
            description=payload.description, handler=config.handler, params=config.params, secrets=config.secrets,
            schedule=config.schedule.model_dump() if config.schedule else None, is_schedule_enabled=config.isScheduleEnabled,
        )
    except services.StaleUpdate as stale:
        raise ApiProblem(409, str(stale)) from None
    except ValidationError as error:
        if not hasattr(error, "error_dict") and "changed" in " ".join(error.messages):
            # function_update's own optimistic lock lost a race with another save.
            raise ApiProblem(409, " ".join(error.messages)) from None
        raise
    return {
        "data": {
            "name": function.name,
            "lastUpdateTimestampMs": services.timestamp_ms(function.updated_at),
            "updatedAtTime": function.updated_at,
            "uploadPutUrl": _upload_url(request, function),
        }
    }


@router.delete("/functions/{name}", response={204: None, codes_4xx: schemas.Error}, summary="Delete a Function",
               operation_id="deleteFunction")
def delete_function(request, name: str):
    """Delete the Function with its versions, runs and logs (its History stays); 409 while an alert runs it."""
    token = request.api_token
    function = function_for_token(token, name, write=True)
    try:
        function_delete(function=function, actor=None, actor_label=token.actor_label)
    except ValidationError as error:
        raise ApiProblem(409, " ".join(error.messages)) from None
    return Status(204, None)


@router.post("/functions/{name}/deploy", response={200: schemas.DeployedEnvelope, codes_4xx: schemas.Error},
             summary="Deploy the uploaded code package", operation_id="deployFunction")
def deploy_function(request, name: str):
    """Check the zip last PUT to `uploadPutUrl` as a dashboard upload is checked, and make it the running version."""
    token = request.api_token
    function = function_for_token(token, name, write=True)
    try:
        version = services.code_package_deploy(function=function, token=token)
    except services.NothingToDeploy as nothing:
        raise ApiProblem(409, str(nothing)) from None
    return {"data": {"name": function.name, "version": version.number}}


# --- runs ---


def _wait_for(run, seconds):
    deadline = time.monotonic() + seconds
    while True:
        status = Run.objects.filter(pk=run.pk).values_list("status", flat=True).first()
        if status in FINISHED_STATUSES or time.monotonic() >= deadline:
            return status in FINISHED_STATUSES
        time.sleep(0.02 if time.monotonic() - (deadline - seconds) < 1 else 0.1)


@router.post(
    "/functions/{name}/runs",
    response={200: schemas.RunEnvelope | schemas.RunStartedEnvelope, 202: schemas.RunStartedEnvelope, codes_4xx: schemas.Error},
    exclude_none=True, summary="Start a run", operation_id="startFunctionRun",
)
def start_run(request, payload: schemas.RunStartIn, name: str, wait: int | None = Query(None, ge=0, le=MAX_WAIT_SECONDS)):
    """Start a run with trigger source `api`. `Idempotency-Key`: a retry with the same key and body answers the same run.

    `?wait=SECONDS` (up to 60, beyond Samsara's API) answers the finished run as
    GET .../runs/{correlationId} does, or 202 with the correlationId when it is not done in time.
    """
    token = request.api_token
    function = function_for_token(token, name, write=True)
    if wait is not None and not 0 <= wait <= MAX_WAIT_SECONDS:
        raise ApiProblem(400, f"wait: must be a whole number of seconds from 0 to {MAX_WAIT_SECONDS}.")
    if function.deployed_version_id is None:
        raise ApiProblem(
            409, f"{function.name} has no deployed code yet: PUT a zip to its uploadPutUrl and deploy it first."
        )

    def start():
        verdict = rate_limit_hit(
            key=f"runs:{token.pk}:{function.pk}", limit=settings.API_RUN_STARTS_PER_MINUTE, seconds=60
        )
        if not verdict.allowed:
            raise rate_limited(
                f"This token started more than {settings.API_RUN_STARTS_PER_MINUTE} runs of {function.name} in one minute.",
                verdict.retry_after,
            )
        run = run_trigger(function=function, trigger=TriggerSource.API, overrides=payload.paramsOverride)
        return 200, {"data": {"correlationId": str(run.correlation_id)}}

    status, body = idempotent_response(
        token=token, scope=f"runs:{function.pk}", key=request.headers.get("Idempotency-Key"),
        request_body={"paramsOverride": payload.paramsOverride}, work=start,
    )
    if wait is None:
        return Status(status, body)
    run = Run.objects.select_related("function").get(correlation_id=body["data"]["correlationId"])
    if wait and not _wait_for(run, wait):
        return Status(202, body)
    run.refresh_from_db()
    if not run.is_finished:
        return Status(202, body)
    return Status(200, {"data": services.run_as_api(run)})


@router.get("/functions/{name}/runs/{correlation_id}", response={200: schemas.RunEnvelope, codes_4xx: schemas.Error},
            exclude_none=True, summary="Get a run", operation_id="getFunctionRun")
def get_run(request, name: str, correlation_id: str):
    run = run_for_token(request.api_token, name, correlation_id)
    return {"data": services.run_as_api(run)}


@router.get("/functions/{name}/runs", response={200: schemas.RunList, codes_4xx: schemas.Error}, exclude_none=True,
            summary="List a Function's runs", operation_id="listFunctionRuns")
def list_runs(request, name: str, status: str | None = None, trigger: str | None = None,
              startTime: datetime | None = None, endTime: datetime | None = None,
              after: str | None = None, limit: int | None = Query(None, ge=1, le=LIST_LIMIT_MAX)):
    """Newest first (beyond Samsara's API): filter by `status` (started, success, error, timeout, dropped),
    `trigger` (manual, api, schedule, alert) and creation time (`startTime` inclusive, `endTime` exclusive)."""
    function = function_for_token(request.api_token, name)
    limit = _limit(limit, LIST_LIMIT_MAX)
    runs = Run.objects.filter(function=function).select_related("function").order_by("-created_at", "-id")
    if status is not None:
        if status not in _STATUS_FILTER:
            raise ApiProblem(400, f"status: must be one of {', '.join(_STATUS_FILTER)}.")
        runs = runs.filter(status__in=_STATUS_FILTER[status])
    if trigger is not None:
        if trigger not in TriggerSource.values:
            raise ApiProblem(400, f"trigger: must be one of {', '.join(TriggerSource.values)}.")
        runs = runs.filter(trigger=trigger)
    startTime, endTime = _utc("startTime", startTime), _utc("endTime", endTime)
    if startTime and endTime and endTime <= startTime:
        raise ApiProblem(400, "endTime: must be after startTime.")
    if startTime:
        runs = runs.filter(created_at__gte=startTime)
    if endTime:
        runs = runs.filter(created_at__lt=endTime)
    if after:
        created, pk = cursor_decode("runs", after)
        created = datetime.fromisoformat(created)
        runs = runs.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=pk))
    page = list(runs[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return {
        "data": [services.run_as_api(run) for run in page],
        "pagination": {
            "endCursor": cursor_encode("runs", [page[-1].created_at.isoformat(), page[-1].pk]) if more else "",
            "hasNextPage": more,
        },
    }


# --- logs ---


@router.get("/functions/{name}/logs", response={200: schemas.LogList, codes_4xx: schemas.Error}, exclude_none=True,
            summary="Get a Function's logs", operation_id="getFunctionLogs")
def get_logs(request, name: str, startTime: datetime, endTime: datetime, limit: int | None = Query(None, ge=1, le=LOG_LIMIT_MAX),
             filterText: str | None = None, after: str | None = None):
    """Entries from `startTime` (inclusive) to `endTime` (exclusive), at most 7 days apart, oldest first."""
    function = function_for_token(request.api_token, name)
    limit = _limit(limit, LOG_LIMIT_MAX)
    startTime, endTime = _utc("startTime", startTime), _utc("endTime", endTime)
    query = log_query_build(
        organization=function.organization, function=function, start=startTime, end=endTime, text=filterText or "",
        sort="time", after=after or None, limit=limit,
        names={"start": "startTime", "end": "endTime", "q": "filterText", "after": "after", "limit": "limit"},
    )
    entries, next_cursor = log_page(query)
    return {
        "data": [
            {"log": e["message"], "loggedAtTime": e["timestamp"], "correlationId": str(e["correlation_id"]),
             "stream": e["stream"]}
            for e in entries
        ],
        "pagination": {"endCursor": next_cursor or "", "hasNextPage": next_cursor is not None},
    }
