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

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from functions.bundles.archive import MAX_COMPRESSED_BYTES
from functions.models import RunStatus
from functions.services import code_version_upload, function_create, function_update
from schedules.services import UNCHANGED as SCHEDULE_UNCHANGED
from schedules.services import schedule_as_samsara, schedule_of, schedule_set_from_samsara
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
UPLOAD_CHUNK = 1024 * 1024


class CodePackageTooLarge(Exception):
    """A PUT to uploadPutUrl over the zip limit (answer 413)."""


class NothingToDeploy(Exception):
    """POST .../deploy before any zip was PUT to uploadPutUrl (answer 409)."""


def timestamp_ms(value):
    """lastUpdateTimestampMs: the Function's last change in whole milliseconds."""
    return int(value.timestamp() * 1000)


# --- schedule (the schedules app's service: one set of rules for the tab, the import, the command and the API) ---


def schedule_as_api(function):
    """(config.schedule or None when the Function has none, isScheduleEnabled)."""
    schedule = schedule_of(function)
    if schedule.pk is None:
        return None, False
    return schedule_as_samsara(schedule), schedule.enabled


def _schedule_apply(*, function, token, schedule, is_schedule_enabled):
    """The API's config.schedule and isScheduleEnabled (None: unchanged), errors keyed by the API's fields."""
    if schedule is None and is_schedule_enabled is None:
        return
    try:
        schedule_set_from_samsara(
            function=function,
            samsara_schedule=SCHEDULE_UNCHANGED if schedule is None else schedule,
            enabled=SCHEDULE_UNCHANGED if is_schedule_enabled is None else is_schedule_enabled,
            actor=None, actor_label=token.actor_label,
        )
    except ValidationError as error:
        if not hasattr(error, "error_dict"):
            raise
        raise ValidationError({f"config.{key}": messages for key, messages in error.message_dict.items()}) from None


# --- create, patch ---


def api_function_create(*, organization, token, name, description, handler, params, secrets, schedule, is_schedule_enabled):
    """A Function without code yet, with its parameters, secrets and schedule, all or nothing."""
    with transaction.atomic():
        function = function_create(
            organization=organization, actor=None, actor_label=token.actor_label, name=name,
            description=description or "", handler=handler, bundle=None, code_later=True,
            event_parameters=params or {},
        )
        _schedule_apply(function=function, token=token, schedule=schedule, is_schedule_enabled=is_schedule_enabled)
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
    with transaction.atomic():
        # Always saved, even with only secrets given, so lastUpdateTimestampMs moves on every change.
        function = function_update(
            function=function, actor=None, actor_label=token.actor_label, revision=function.revision,
            description=function.description if description is None else description,
            handler=function.handler if handler is None else handler,
            event_parameters=function.event_parameters if params is None else params,
            visible_to_customers=function.visible_to_customers,
        )
        _schedule_apply(function=function, token=token, schedule=schedule, is_schedule_enabled=is_schedule_enabled)
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
