"""What the REST API does beyond translating HTTP: each call goes to the services the pages use.

Creating and patching a Function combine the catalogue (functions.services)
with the secrets vault (secrets_replace) in one transaction, so a refused
secret leaves the Function as it was. Code arrives in two steps, as on
Samsara: a PUT of the zip to the Function's signed `uploadPutUrl` (kept under
`api-uploads/`), then `POST .../deploy`, which checks it exactly as a
dashboard upload (code_version_upload) and only then makes it the running
version.
"""

import json
import shutil
import tempfile
import zoneinfo

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from functions.bundles.archive import MAX_COMPRESSED_BYTES
from functions.bundles.metadata import MAX_TIME_SINCE_MIDNIGHT_MS
from functions.models import RunStatus
from functions.services import UNCHANGED, code_version_upload, function_create, function_update
from secrets_vault.services import secret_names, secrets_replace

# Runs as the API names their status (CONTRACT.md, "Public REST API").
API_RUN_STATUS = {
    RunStatus.QUEUED: "started",
    RunStatus.RUNNING: "started",
    RunStatus.SUCCEEDED: "success",
    RunStatus.FAILED: "error",
    RunStatus.TIMED_OUT: "timeout",
    RunStatus.DROPPED: "dropped",
}
MAX_SCHEDULE_ENTRIES = 100
UPLOAD_CHUNK = 1024 * 1024


class CodePackageTooLarge(Exception):
    """A PUT to uploadPutUrl over the zip limit (answer 413)."""


class NothingToDeploy(Exception):
    """POST .../deploy before any zip was PUT to uploadPutUrl (answer 409)."""


def timestamp_ms(value):
    """lastUpdateTimestampMs: the Function's last change in whole milliseconds."""
    return int(value.timestamp() * 1000)


# --- schedule (kept on Function.imported_schedule until the schedules app lands) ---


def schedule_clean(*, schedule, enabled, organization, current=None):
    """The stored form {isSchedulingEnabled, entries, timezone} of the API's schedule fields, or UNCHANGED.

    `schedule` is the API's {entries, timezone} (None: keep the entries),
    `enabled` the isScheduleEnabled flag (None: keep it). ValidationError keyed
    by the API field names.
    """
    if schedule is None and enabled is None:
        return UNCHANGED
    current = current or {}
    errors = {}
    result = {
        "isSchedulingEnabled": bool(current.get("isSchedulingEnabled", False)) if enabled is None else bool(enabled),
        "entries": current.get("entries", []),
        "timezone": current.get("timezone") or organization.timezone,
    }
    if schedule is not None:
        entries = schedule.get("entries") or []
        if len(entries) > MAX_SCHEDULE_ENTRIES:
            errors["config.schedule.entries"] = [f"A schedule has at most {MAX_SCHEDULE_ENTRIES} entries ({len(entries)} given)."]
        clean = []
        for index, entry in enumerate(entries[:MAX_SCHEDULE_ENTRIES]):
            days = entry.get("daysOfWeek")
            time_ms = entry.get("timeSinceMidnightMs")
            where = f"config.schedule.entries[{index}]"
            if not isinstance(days, list) or len(days) != 7 or not all(isinstance(d, bool) for d in days):
                errors[f"{where}.daysOfWeek"] = ["daysOfWeek is a list of 7 booleans, Sunday first."]
            elif not any(days):
                errors[f"{where}.daysOfWeek"] = ["daysOfWeek needs at least one day set to true."]
            if isinstance(time_ms, bool) or not isinstance(time_ms, int) or not 0 <= time_ms <= MAX_TIME_SINCE_MIDNIGHT_MS:
                errors[f"{where}.timeSinceMidnightMs"] = [
                    f"timeSinceMidnightMs is a whole number of milliseconds from 0 to {MAX_TIME_SINCE_MIDNIGHT_MS}."
                ]
            clean.append({"daysOfWeek": days, "timeSinceMidnightMs": time_ms})
        timezone_name = schedule.get("timezone")
        if not isinstance(timezone_name, str) or timezone_name not in zoneinfo.available_timezones():
            errors["config.schedule.timezone"] = [
                "timezone must be an IANA time zone name, for example America/Chicago or Europe/Berlin."
            ]
        result["entries"] = clean
        result["timezone"] = timezone_name
    if errors:
        raise ValidationError(errors)
    return result


def schedule_as_api(function):
    stored = function.imported_schedule or {}
    if not stored.get("entries") and not stored.get("timezone"):
        return None, bool(stored.get("isSchedulingEnabled", False))
    return (
        {"entries": stored.get("entries", []), "timezone": stored.get("timezone") or function.organization.timezone},
        bool(stored.get("isSchedulingEnabled", False)),
    )


# --- create, patch ---


def api_function_create(*, organization, token, name, description, handler, params, secrets, schedule, is_schedule_enabled):
    """A Function without code yet, with its parameters, secrets and schedule, all or nothing."""
    stored_schedule = schedule_clean(schedule=schedule, enabled=is_schedule_enabled, organization=organization)
    with transaction.atomic():
        function = function_create(
            organization=organization, actor=None, actor_label=token.actor_label, name=name,
            description=description or "", handler=handler, bundle=None, code_later=True,
            event_parameters=params or {},
            imported_schedule=None if stored_schedule is UNCHANGED else stored_schedule,
        )
        if secrets:
            secrets_replace(function=function, secrets=secrets, actor=None, actor_label=token.actor_label)
    return function


class StaleUpdate(Exception):
    """lastUpdateTimestampMs is not the Function's current one (answer 409)."""


def api_function_patch(*, function, token, last_update_timestamp_ms, description=None, handler=None, params=None,
                       secrets=None, schedule=None, is_schedule_enabled=None):
    """Apply a PATCH: only given fields change; params and secrets replace their whole set."""
    if timestamp_ms(function.updated_at) != last_update_timestamp_ms:
        raise StaleUpdate(
            f"{function.name} was changed since lastUpdateTimestampMs {last_update_timestamp_ms} "
            f"(it is now {timestamp_ms(function.updated_at)}): get the Function again and re-apply your change."
        )
    stored_schedule = schedule_clean(
        schedule=schedule, enabled=is_schedule_enabled, organization=function.organization,
        current=function.imported_schedule,
    )
    with transaction.atomic():
        # Always saved, even with only secrets given, so lastUpdateTimestampMs moves on every change.
        function = function_update(
            function=function, actor=None, actor_label=token.actor_label, revision=function.revision,
            description=function.description if description is None else description,
            handler=function.handler if handler is None else handler,
            event_parameters=function.event_parameters if params is None else params,
            visible_to_customers=function.visible_to_customers,
            imported_schedule=stored_schedule,
        )
        if secrets is not None:
            secrets_replace(function=function, secrets=secrets, actor=None, actor_label=token.actor_label)
    function.refresh_from_db()
    return function


# --- code packages through uploadPutUrl ---


def pending_package_key(function):
    # The creation time keeps a recreated Function (SQLite may reuse the id) from inheriting an old upload.
    return f"api-uploads/{function.organization_id}/{function.pk}-{timestamp_ms(function.created_at)}.zip"


def code_package_status(function):
    """pendingUpload (no code yet), uploaded (a zip waits for deploy) or deployed."""
    if default_storage.exists(pending_package_key(function)):
        return "uploaded"
    return "deployed" if function.deployed_version_id else "pendingUpload"


def code_package_store(*, function, stream, length=None):
    """Keep the bytes PUT to uploadPutUrl as the Function's next package (replacing an earlier one).

    Only the size is checked here (CodePackageTooLarge past the zip limit);
    everything else is checked at deploy, as a dashboard upload is.
    """
    limit = MAX_COMPRESSED_BYTES
    too_large = CodePackageTooLarge(
        f"The zip is over {limit // (1024 * 1024)} MB; the limit is {limit // (1024 * 1024)} MB compressed. "
        "Remove files the function does not need (tests, caches, unused dependencies) and upload it again."
    )
    if length is not None and length > limit:
        raise too_large
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as buffer:
        size = 0
        while chunk := stream.read(UPLOAD_CHUNK):
            size += len(chunk)
            if size > limit:
                raise too_large
            buffer.write(chunk)
        buffer.seek(0)
        key = pending_package_key(function)
        default_storage.delete(key)
        default_storage.save(key, File(buffer, name=f"{function.pk}.zip"))
    return size


def code_package_deploy(*, function, token):
    """Check the zip last PUT to uploadPutUrl as an upload is, and deploy it; the new CodeVersion.

    A refused zip raises the dashboard's ValidationError ({"bundle"| "handler": [...]})
    and the deployed version stays; the uploaded zip stays too, so the message
    can be read against it.
    """
    key = pending_package_key(function)
    if not default_storage.exists(key):
        raise NothingToDeploy(
            f"No code package was uploaded for {function.name}: PUT the zip to the uploadPutUrl that creating "
            "or patching the Function returned, then deploy."
        )
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as bundle, default_storage.open(key, "rb") as source:
        shutil.copyfileobj(source, bundle, UPLOAD_CHUNK)
        bundle.seek(0)
        version = code_version_upload(
            function=function, actor=None, actor_label=token.actor_label, bundle=bundle,
            message="Deployed through the API", deploy=True,
        )
    default_storage.delete(key)
    return version


# --- reading ---


def run_as_api(run):
    """A run as GET .../runs/{correlationId} answers it."""
    data = {
        "correlationId": str(run.correlation_id),
        "name": run.function.name,
        "status": API_RUN_STATUS[run.status],
        "startedAtTime": run.started_at or run.created_at,
        "context": {"requestId": str(run.correlation_id), "requestPayload": run.event},
    }
    if run.is_finished and run.finished_at:
        data["completedAtTime"] = run.finished_at
    if run.return_value:
        try:
            value = json.loads(run.return_value)
        except ValueError:
            value = None
        if isinstance(value, dict):
            data["context"]["responsePayload"] = value
    data["trigger"] = run.trigger
    return data


def function_secret_names(function):
    return secret_names(function=function)
