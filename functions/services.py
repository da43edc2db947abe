"""The Functions catalogue: every change to a Function or its code goes through here.

The dashboard pages and ``manage.py deploy_function`` call these functions,
so a rule holds wherever a change comes from. Each validates fully
before it writes, so a refused change leaves nothing behind; a ValidationError
says what to fix, keyed by the form field it concerns (``name``,
``description``, ``handler``, ``bundle``, ``params``, ``timeout_seconds``,
``message``) or without a key when it concerns the whole change.

Code packages are stored through Django's default storage under their sha256
(``packages/<org_id>/<sha256>.zip``): identical zips of an organization share
one object, and every upload still gets its own immutable CodeVersion row.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any, BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from secrets_vault.services import secret_create_missing

from accounts.models import Organization

from . import queries
from .audit import Actor, AuditAction, actor_name, actor_user, audit_record
from .bundles.archive import BundleInfo, inspect_bundle
from .bundles.errors import BundleError
from .bundles.handler import handler_path, validate_handler
from .bundles.metadata import METADATA_FILENAME, ImportMetadata, MetadataError, read_import_metadata
from .bundles.names import validate_event_parameters, validate_function_name
from .models import CodeVersion, Function, Run

# Names that would collide with fixed addresses under /functions/ (the Storage
# tab and the create page); compared without regard to case.
RESERVED_NAMES = frozenset({"storage", "new"})
MAX_TIMEOUT_SECONDS = 900
MAX_DESCRIPTION_LENGTH = 2000
MAX_MESSAGE_LENGTH = 500
# The file viewer shows text files up to this size; bigger ones are downloaded.
MAX_VIEW_BYTES = 512 * 1024

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Sentinel for "leave this field as it is" where None is a meaningful value.
UNCHANGED = ...
# Event parameters as callers give them: a dict, (name, value) pairs or [{"name", "value"}] rows.
ParameterInput = Mapping[str, Any] | Iterable[Any]


# --------------------------------------------------------------------------- storage keys


def package_key(organization: Organization, sha256: str) -> str:
    """Where a code package lives in Django's storage: one object per organization and content."""
    return f"packages/{organization.id}/{sha256}.zip"


def staged_upload_key(organization: Organization, sha256: str) -> str:
    """Where an uploaded zip waits while the admin reviews an import (or fixes another field)."""
    return f"uploads/{organization.id}/{sha256}.zip"


def code_version_open(version: CodeVersion) -> BinaryIO:
    """The version's zip as a binary file object, read through Django's storage (close it after use)."""
    return default_storage.open(version.storage_key, "rb")


def _store(key: str, fileobj: BinaryIO) -> None:
    """Save the bytes under ``key`` unless they are already there (keys are content hashes)."""
    if default_storage.exists(key):
        return
    fileobj.seek(0)
    saved = default_storage.save(key, File(fileobj, name=key.rsplit("/", 1)[-1]))
    fileobj.seek(0)
    if saved != key:
        # A concurrent upload of the same zip stored it first; the storage
        # picked another name for our identical copy, which nobody needs.
        default_storage.delete(saved)


# --------------------------------------------------------------------------- errors


class FieldErrors:
    """Collects problems field by field so one refusal reports all of them (alerts.services too)."""

    def __init__(self) -> None:
        self.by_field = {}

    def add(self, field: str, message: str) -> None:
        self.by_field.setdefault(field, []).append(message)

    def __contains__(self, field: str) -> bool:
        return field in self.by_field

    def raise_if_any(self) -> None:
        if self.by_field:
            raise ValidationError(self.by_field)


_BUNDLE_FIELDS = {"zip": "bundle", "handler": "handler", "params": "params", "name": "name"}


def _add_bundle_error(errors: FieldErrors, exc: BundleError, default_field: str = "bundle") -> None:
    errors.add(_BUNDLE_FIELDS.get(exc.field or "", default_field), exc.message)


def metadata_error_messages(exc: BundleError) -> list[str]:
    """``import.metadata.json`` problems as one readable line each, field path first."""
    messages = []
    for path, message in exc.errors:
        if path == METADATA_FILENAME:
            messages.append(f"{METADATA_FILENAME} {message}.")
        else:
            messages.append(f"{METADATA_FILENAME}, {path}: {message}.")
    return messages


# --------------------------------------------------------------------------- field checks


def _clean_name(name: Any, organization: Organization, errors: FieldErrors) -> str | None:
    try:
        name = validate_function_name(name)
    except BundleError as exc:
        errors.add("name", exc.message)
        return None
    if name.lower() in RESERVED_NAMES:
        errors.add(
            "name",
            f"“{name}” is reserved: it is the address of another page under Functions. Choose another name.",
        )
        return None
    if Function.objects.of(organization).named(name).exists():
        errors.add("name", _name_taken_message(name, organization))
        return None
    return name


def _name_taken_message(name: str, organization: Organization) -> str:
    return (
        f"A Function named “{name}” already exists in {organization.name} (names are compared without "
        "regard to case). Choose another name."
    )


def clean_description(description: Any, errors: FieldErrors) -> str:
    """A description as stored (stripped text up to 2,000 characters); Functions' and alerts' rule."""
    if description is None:
        return ""
    if not isinstance(description, str):
        errors.add("description", "The description must be text.")
        return ""
    description = description.strip()
    if len(description) > MAX_DESCRIPTION_LENGTH:
        errors.add(
            "description",
            f"The description is {len(description):,} characters long; the limit is {MAX_DESCRIPTION_LENGTH:,}.",
        )
    return description


def _clean_message(message: Any, errors: FieldErrors) -> str:
    message = (message or "").strip() if isinstance(message, str) or message is None else None
    if message is None:
        errors.add("message", "The version message must be text.")
        return ""
    if len(message) > MAX_MESSAGE_LENGTH:
        errors.add(
            "message", f"The version message is {len(message):,} characters long; the limit is {MAX_MESSAGE_LENGTH}."
        )
    return message


def _clean_timeout(timeout_seconds: Any, errors: FieldErrors) -> int | None:
    if timeout_seconds is None or timeout_seconds == "":
        return None
    if isinstance(timeout_seconds, str) and timeout_seconds.strip().isdigit():
        timeout_seconds = int(timeout_seconds)
    if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, int) or not (
        1 <= timeout_seconds <= MAX_TIMEOUT_SECONDS
    ):
        errors.add(
            "timeout_seconds",
            f"The timeout must be a whole number of seconds from 1 to {MAX_TIMEOUT_SECONDS} (15 minutes); "
            "leave it empty to use the platform's limit.",
        )
        return None
    return timeout_seconds


def _clean_tmp_mb(tmp_mb: Any, errors: FieldErrors) -> int | None:
    if tmp_mb is None or tmp_mb == "":
        return None
    if isinstance(tmp_mb, str) and tmp_mb.strip().isdigit():
        tmp_mb = int(tmp_mb)
    ceiling = settings.FUNCTIONS_MAX_TMP_MB
    if isinstance(tmp_mb, bool) or not isinstance(tmp_mb, int) or not (1 <= tmp_mb <= ceiling):
        errors.add(
            "tmp_mb",
            f"The /tmp size must be a whole number of MB from 1 to {ceiling}; "
            f"leave it empty for the platform's default ({settings.FUNCTIONS_TMP_MB} MB).",
        )
        return None
    return tmp_mb


def _clean_handler_format(handler: Any, errors: FieldErrors) -> str | None:
    handler = handler.strip() if isinstance(handler, str) else handler
    try:
        handler_path(handler)
    except BundleError as exc:
        errors.add("handler", exc.message)
        return None
    return handler


def parameter_pairs(event_parameters: ParameterInput) -> list[tuple[Any, Any]]:
    """Event parameters given as a dict, (name, value) pairs or [{"name", "value"}] rows, as pairs."""
    if isinstance(event_parameters, dict):
        return list(event_parameters.items())
    pairs = []
    for item in event_parameters or ():
        if isinstance(item, dict):
            pairs.append((item.get("name"), item.get("value")))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            pairs.append((item[0], item[1]))
        else:
            raise ValidationError({"params": ["Each event parameter needs a name and a value."]})
    return pairs


def _clean_parameters(event_parameters: ParameterInput, errors: FieldErrors) -> list[dict[str, str]]:
    """The stored form: [{"name", "value"}] in the admin's order."""
    try:
        pairs = parameter_pairs(event_parameters)
        clean = validate_event_parameters(pairs)
    except ValidationError as error:
        for message in error.message_dict["params"]:
            errors.add("params", message)
        return []
    except BundleError as exc:
        for _, message in exc.errors:
            errors.add("params", message.rstrip(".") + ".")
        return []
    return [{"name": name, "value": value} for name, value in clean.items()]


def _check_bundle(
    bundle: BinaryIO | None, handler: str | None, errors: FieldErrors, *, code_errors_on: str = "handler"
) -> BundleInfo | None:
    """BundleInfo when the zip is sound and ``handler`` is defined in it; errors added otherwise.

    ``code_errors_on`` names the field a missing handler file or function, or a
    syntax error, is reported on: the handler's when one was typed, else the
    code package's (the handler kept from before is not what the user changed).
    """
    if bundle is None:
        errors.add("bundle", "Choose the code package (.zip) to upload.")
        return None
    try:
        info = inspect_bundle(bundle)
    except BundleError as exc:
        errors.add("bundle", exc.message)
        return None
    if handler is not None and "handler" not in errors:
        try:
            validate_handler(bundle, handler)
        except BundleError as exc:
            if exc.field == "handler":
                errors.add(code_errors_on, exc.message)
            else:
                _add_bundle_error(errors, exc, "handler")
            return None
    return info


# --------------------------------------------------------------------------- create


def _version_create(
    *,
    function: Function,
    actor: Actor,
    info: BundleInfo,
    key: str,
    handler: str,
    message: str,
    actor_label: str | None = None,
) -> CodeVersion:
    number = (CodeVersion.objects.filter(function=function).aggregate(n=Max("number"))["n"] or 0) + 1
    return CodeVersion.objects.create(
        function=function,
        number=number,
        sha256=info.sha256,
        size=info.size,
        uncompressed_size=info.uncompressed_size,
        file_count=info.file_count,
        storage_key=key,
        handler=handler,
        message=message,
        uploaded_by=actor_user(actor),
        uploaded_by_label=actor_name(actor, actor_label),
    )


def function_create(
    *,
    organization: Organization,
    actor: Actor,
    name: str,
    description: str = "",
    handler: str,
    bundle: BinaryIO | None,
    event_parameters: ParameterInput = (),
    visible_to_customers: bool = False,
    message: str = "",
    timeout_seconds: int | str | None = None,
    actor_label: str | None = None,
    code_later: bool = False,
    imported_schedule: dict[str, Any] | None = None,
) -> Function:
    """Create a Function with its code as version 1, deployed.

    With ``code_later`` (the REST API's create, whose code arrives through
    ``uploadPutUrl`` and a deploy) ``bundle`` may be None: the Function is
    created without code, its handler checked for format only, and runs are
    refused until a version is deployed (which checks the handler in the zip).
    """
    return _function_create(
        organization=organization, actor=actor, name=name, description=description, handler=handler,
        bundle=bundle, event_parameters=event_parameters, visible_to_customers=visible_to_customers,
        message=message, timeout_seconds=timeout_seconds, actor_label=actor_label,
        code_later=code_later, imported_schedule=imported_schedule,
    )


def _function_create(
    *,
    organization: Organization,
    actor: Actor,
    name: str,
    description: str,
    handler: str,
    bundle: BinaryIO | None,
    event_parameters: ParameterInput,
    visible_to_customers: bool,
    message: str,
    timeout_seconds: int | str | None,
    actor_label: str | None,
    action: str = AuditAction.CREATED,
    audit_extra: dict[str, Any] | None = None,
    imported_schedule: dict[str, Any] | None = None,
    code_later: bool = False,
) -> Function:
    errors = FieldErrors()
    name = _clean_name(name, organization, errors)
    description = clean_description(description, errors)
    handler = _clean_handler_format(handler, errors)
    parameters = _clean_parameters(event_parameters, errors)
    timeout_seconds = _clean_timeout(timeout_seconds, errors)
    message = _clean_message(message, errors)
    without_code = code_later and bundle is None
    info = None if without_code else _check_bundle(bundle, handler, errors)
    errors.raise_if_any()

    key = None
    if info is not None:
        key = package_key(organization, info.sha256)
        _store(key, bundle)
    try:
        with transaction.atomic():
            function = Function.objects.create(
                organization=organization,
                name=name,
                description=description,
                handler=handler,
                event_parameters=parameters,
                visible_to_customers=bool(visible_to_customers),
                timeout_seconds=timeout_seconds,
                created_by=actor_user(actor),
                imported_schedule=imported_schedule,
            )
            verb = "Imported" if action == AuditAction.IMPORTED else "Created"
            changes = {
                "description": {"from": None, "to": description},
                "handler": {"from": None, "to": handler},
                "event_parameters": {"from": None, "to": parameters},
                "visible_to_customers": {"from": None, "to": bool(visible_to_customers)},
                "timeout_seconds": {"from": None, "to": timeout_seconds},
            }
            if info is None:
                summary = f"{verb} {name} with handler {handler}; its code is to be uploaded"
            else:
                version = _version_create(
                    function=function, actor=actor, info=info, key=key, handler=handler, message=message,
                    actor_label=actor_label,
                )
                function.deployed_version = version
                function.save(update_fields=["deployed_version"])
                changes["deployed_version"] = {"from": None, "to": 1}
                summary = f"{verb} {name} with version 1 ({info.file_count} files) and handler {handler}"
            audit_record(
                function=function,
                actor=actor,
                actor_label=actor_label,
                action=action,
                summary=summary,
                changes={**changes, **(audit_extra or {})},
            )
    except IntegrityError:
        # Two admins created the same name at the same moment: the constraint decided.
        if Function.objects.of(organization).named(name).exists():
            raise ValidationError({"name": [_name_taken_message(name, organization)]}) from None
        raise
    return function


def function_import(
    *,
    organization: Organization,
    actor: Actor,
    name: str,
    description: str = "",
    handler: str,
    bundle: BinaryIO | None,
    event_parameters: ParameterInput = (),
    visible_to_customers: bool = False,
    message: str = "",
    timeout_seconds: int | str | None = None,
    actor_label: str | None = None,
) -> tuple[Function, tuple[str, ...], bool]:
    """Create a Function from a bundle carrying ``import.metadata.json``, after the admin's review.

    The admin's reviewed name, description, handler and parameters win; the
    secret names and schedule come from the bundle's metadata. Secret names are
    handed to the secrets vault (as secrets whose value is missing); schedule
    entries are kept on ``Function.imported_schedule``. Returns (function,
    secret_names, secrets_created).
    """
    try:
        metadata = read_import_metadata(bundle) if bundle is not None else None
    except MetadataError as exc:
        raise ValidationError({"bundle": metadata_error_messages(exc)}) from None
    except BundleError as exc:
        raise ValidationError({"bundle": [exc.message]}) from None
    secret_names = tuple(metadata.secret_names) if metadata else ()
    schedule = imported_schedule_of(metadata) if metadata else None
    extra = {}
    if secret_names:
        extra["secret_names"] = {"from": None, "to": list(secret_names)}
    if schedule:
        extra["imported_schedule"] = {"from": None, "to": schedule}
    with transaction.atomic():
        function = _function_create(
            organization=organization, actor=actor, name=name, description=description, handler=handler,
            bundle=bundle, event_parameters=event_parameters, visible_to_customers=visible_to_customers,
            message=message, timeout_seconds=timeout_seconds, actor_label=actor_label,
            action=AuditAction.IMPORTED, audit_extra=extra, imported_schedule=schedule,
        )
        if secret_names:
            secret_create_missing(function=function, names=list(secret_names), actor=actor)
    return function, secret_names, bool(secret_names)


def imported_schedule_of(metadata: ImportMetadata) -> dict[str, Any] | None:
    """The JSON kept on Function.imported_schedule for the metadata's schedule, or None."""
    if not metadata.schedule_entries and not metadata.scheduling_enabled:
        return None
    return {
        "isSchedulingEnabled": metadata.scheduling_enabled,
        "entries": [
            {"timeSinceMidnightMs": e.time_since_midnight_ms, "daysOfWeek": list(e.days_of_week)}
            for e in metadata.schedule_entries
        ],
    }


# --------------------------------------------------------------------------- staged uploads


def staged_upload_save(*, organization: Organization, bundle: BinaryIO) -> BundleInfo:
    """Check a zip and keep it for the next step (import review, or a form with another field to fix).

    Returns the BundleInfo; a bad zip raises ValidationError({"bundle": ...}).
    """
    try:
        info = inspect_bundle(bundle)
    except BundleError as exc:
        raise ValidationError({"bundle": [exc.message]}) from None
    _store(staged_upload_key(organization, info.sha256), bundle)
    return info


def staged_upload_open(*, organization: Organization, sha256: str | None) -> BinaryIO:
    """A zip kept by staged_upload_save, as a binary file object."""
    sha256 = (sha256 or "").strip().lower()
    if not _SHA256_RE.fullmatch(sha256):
        raise ValidationError({"bundle": ["Choose the code package (.zip) to upload."]})
    key = staged_upload_key(organization, sha256)
    if not default_storage.exists(key):
        raise ValidationError({"bundle": ["The uploaded zip is no longer available: choose the file again."]})
    return default_storage.open(key, "rb")


def staged_upload_delete(*, organization: Organization, sha256: str | None) -> None:
    if _SHA256_RE.fullmatch(sha256 or ""):
        default_storage.delete(staged_upload_key(organization, sha256))


def staged_uploads_sweep(*, older_than: timedelta | None = None) -> list[str]:
    """Delete zips kept for a review nobody finished (an import left open); the keys deleted.

    A finished create or import deletes its own; only abandoned ones are
    left, so anything older than `older_than` (default a day) goes.
    """
    cutoff = timezone.now() - (older_than or timedelta(days=1))
    swept = []
    if not default_storage.exists("uploads"):
        return swept
    folders, _ = default_storage.listdir("uploads")
    for folder in folders:
        _, names = default_storage.listdir(f"uploads/{folder}")
        for name in names:
            key = f"uploads/{folder}/{name}"
            if default_storage.get_modified_time(key) < cutoff:
                default_storage.delete(key)
                swept.append(key)
    return swept


# --------------------------------------------------------------------------- update


def _describe(field: str, value: Any) -> Any:
    if field == "event_parameters":
        return ", ".join(f"{p['name']}={p['value']}" for p in value) or "none"
    if field == "timeout_seconds":
        return f"{value} s" if value else "platform limit"
    if field == "tmp_mb":
        return f"{value} MB" if value else "platform default"
    if field == "visible_to_customers":
        return "yes" if value else "no"
    return value


FIELD_LABELS = {
    "description": "description",
    "handler": "handler",
    "event_parameters": "event parameters",
    "visible_to_customers": "visible to customers",
    "timeout_seconds": "timeout",
    "tmp_mb": "/tmp size",
    "deployed_version": "deployed version",
    "secret_names": "secret names",
    "imported_schedule": "imported schedule",
}


def _stale_message(function: Function) -> str:
    return (
        f"Someone else changed {function.name} while you were editing it. Nothing was saved: "
        "reload the page to see their changes, then make yours again."
    )


def function_update(
    *,
    function: Function,
    actor: Actor,
    revision: int | str,
    description: str,
    handler: str,
    event_parameters: ParameterInput,
    visible_to_customers: bool,
    timeout_seconds: Any = UNCHANGED,
    actor_label: str | None = None,
    tmp_mb: Any = UNCHANGED,
    imported_schedule: Any = UNCHANGED,
) -> Function:
    """Change a Function's configuration (never its name) if nobody changed it since ``revision``.

    ``imported_schedule`` (the REST API's ``config.schedule`` and
    ``isScheduleEnabled``, kept in the import's shape until schedules exist)
    is left as it is unless given.

    The write is a conditional UPDATE ... WHERE revision = N, so of two
    concurrent saves based on the same revision exactly one wins; the other
    raises ValidationError and writes nothing.
    """
    errors = FieldErrors()
    description = clean_description(description, errors)
    handler = _clean_handler_format(handler, errors)
    parameters = _clean_parameters(event_parameters, errors)
    if timeout_seconds is not UNCHANGED:
        timeout_seconds = _clean_timeout(timeout_seconds, errors)
    if tmp_mb is not UNCHANGED:
        tmp_mb = _clean_tmp_mb(tmp_mb, errors)
    try:
        revision = int(revision)
    except (TypeError, ValueError):
        raise ValidationError("The form is missing the revision it was based on: reload the page.") from None
    errors.raise_if_any()

    current = Function.objects.select_related("deployed_version").get(pk=function.pk)
    if current.revision != revision:
        raise ValidationError(_stale_message(current))
    if handler != current.handler and current.deployed_version is not None:
        with code_version_open(current.deployed_version) as package:
            try:
                validate_handler(package, handler)
            except BundleError as exc:
                raise ValidationError(
                    {"handler": [f"{exc.message} (checked against the deployed version {current.deployed_version.number})"]}
                ) from None

    new = {
        "description": description,
        "handler": handler,
        "event_parameters": parameters,
        "visible_to_customers": bool(visible_to_customers),
    }
    if timeout_seconds is not UNCHANGED:
        new["timeout_seconds"] = timeout_seconds
    if tmp_mb is not UNCHANGED:
        new["tmp_mb"] = tmp_mb
    if imported_schedule is not UNCHANGED:
        new["imported_schedule"] = imported_schedule
    changes = {
        field: {"from": getattr(current, field), "to": value}
        for field, value in new.items()
        if getattr(current, field) != value
    }
    with transaction.atomic():
        updated = Function.objects.filter(pk=current.pk, revision=revision).update(
            **new, revision=F("revision") + 1, updated_at=timezone.now()
        )
        if not updated:
            raise ValidationError(_stale_message(current))
        if current.visible_to_customers and not new["visible_to_customers"]:
            # After the UPDATE, which holds the row's lock: an alert adding this
            # Function now waits for us and then sees it hidden.
            function_refuse_if_alert_action(current, doing="hide")
        if changes:
            audit_record(
                function=current,
                actor=actor,
                actor_label=actor_label,
                action=AuditAction.UPDATED,
                summary=_update_summary(changes),
                changes=changes,
            )
    function.refresh_from_db()
    return function


def _update_summary(changes: dict[str, Any]) -> str:
    parts = []
    for field, change in changes.items():
        if field == "event_parameters":
            before = {p["name"]: p["value"] for p in change["from"] or []}
            after = {p["name"]: p["value"] for p in change["to"] or []}
            bits = []
            added = [n for n in after if n not in before]
            removed = [n for n in before if n not in after]
            changed = [n for n in after if n in before and before[n] != after[n]]
            if added:
                bits.append("added " + ", ".join(added))
            if removed:
                bits.append("removed " + ", ".join(removed))
            if changed:
                bits.append("changed " + ", ".join(changed))
            parts.append("event parameters (" + ("; ".join(bits) or "reordered") + ")")
        elif field == "description":
            parts.append("description")
        elif field == "imported_schedule":
            parts.append("schedule")
        else:
            parts.append(f"{FIELD_LABELS[field]} to {_describe(field, change['to'])}")
    return "Changed " + ", ".join(parts)


# --------------------------------------------------------------------------- versions


def code_version_upload(
    *,
    function: Function,
    actor: Actor,
    bundle: BinaryIO,
    message: str = "",
    deploy: bool = True,
    handler: str | None = None,
    actor_label: str | None = None,
) -> CodeVersion:
    """Store a new immutable version of the Function's code; deploy it unless ``deploy`` is False.

    ``handler`` (optional) changes the Function's handler along with the code;
    the zip is checked against the handler that will run it.
    """
    errors = FieldErrors()
    message = _clean_message(message, errors)
    handler = None if handler is None or (isinstance(handler, str) and not handler.strip()) else handler
    target_handler = function.handler if handler is None else _clean_handler_format(handler, errors)
    info = _check_bundle(bundle, target_handler, errors, code_errors_on="handler" if handler is not None else "bundle")
    errors.raise_if_any()

    key = package_key(function.organization, info.sha256)
    _store(key, bundle)
    with transaction.atomic():
        # The row lock serialises concurrent uploads, so version numbers never collide.
        current = Function.objects.select_for_update().get(pk=function.pk)
        version = _version_create(
            function=current, actor=actor, info=info, key=key, handler=target_handler, message=message,
            actor_label=actor_label,
        )
        changes = {"version": {"from": None, "to": version.number}, "sha256": {"from": None, "to": info.sha256}}
        summary = f"Uploaded version {version.number} ({info.file_count} files, sha256 {info.sha256[:12]})"
        if deploy:
            previous = current.deployed_version.number if current.deployed_version_id else None
            changes["deployed_version"] = {"from": previous, "to": version.number}
            if target_handler != current.handler:
                changes["handler"] = {"from": current.handler, "to": target_handler}
                summary += f" with handler {target_handler}"
            summary += " and deployed it"
            Function.objects.filter(pk=current.pk).update(
                deployed_version=version, handler=target_handler, revision=F("revision") + 1,
                updated_at=timezone.now(),
            )
        audit_record(
            function=current, actor=actor, actor_label=actor_label, action=AuditAction.VERSION_UPLOADED,
            summary=summary, changes=changes,
        )
    function.refresh_from_db()
    return version


def code_version_deploy(
    *,
    function: Function,
    version: CodeVersion,
    actor: Actor,
    actor_label: str | None = None,
) -> Function:
    """Make ``version`` the one the next run uses (a rollback when it is an earlier one).

    Nothing else changes, with one exception: when the Function's handler is
    not defined in that version (the handler changed along with the code), the
    version's own handler comes back with it, or every run would fail.
    Deploying the version already deployed does nothing.
    """
    if version.function_id != function.pk:
        raise ValidationError(f"Version {version.number} is not a version of {function.name}.")
    current = Function.objects.select_related("deployed_version").get(pk=function.pk)
    if current.deployed_version_id == version.pk:
        return function
    handler = current.handler
    if handler != version.handler:
        with code_version_open(version) as package:
            try:
                validate_handler(package, handler)
            except BundleError:
                handler = version.handler

    previous = current.deployed_version.number if current.deployed_version_id else None
    verb = "Rolled back to" if previous is not None and version.number < previous else "Deployed"
    changes = {"deployed_version": {"from": previous, "to": version.number}}
    summary = f"{verb} version {version.number}" + (f" (was version {previous})" if previous else "")
    if handler != current.handler:
        changes["handler"] = {"from": current.handler, "to": handler}
        summary += f"; handler back to {handler}, which version {version.number} defines"
    with transaction.atomic():
        updated = Function.objects.filter(pk=current.pk, deployed_version_id=current.deployed_version_id).update(
            deployed_version=version, handler=handler, revision=F("revision") + 1, updated_at=timezone.now()
        )
        if not updated:
            raise ValidationError(
                f"Someone else deployed another version of {function.name} meanwhile: reload the page and try again."
            )
        audit_record(
            function=current, actor=actor, actor_label=actor_label, action=AuditAction.VERSION_DEPLOYED,
            summary=summary, changes=changes,
        )
    function.refresh_from_db()
    return function


def _member_path(raw: str) -> str:
    return "/".join(part for part in raw.split("/") if part not in ("", "."))


def code_version_files(version: CodeVersion) -> list[tuple[str, int]]:
    """The files of a version: [(path, size)] sorted by path, read from the stored zip."""
    with code_version_open(version) as package, zipfile.ZipFile(package) as archive:
        return sorted(
            (_member_path(info.filename), info.file_size)
            for info in archive.infolist()
            if not info.is_dir() and _member_path(info.filename)
        )


def code_version_read_file(version: CodeVersion, path: str, *, limit: int = MAX_VIEW_BYTES) -> dict[str, Any] | None:
    """One file of a version for the read-only viewer.

    Returns {"path", "size", "text"} where text is None when the file is binary
    or over ``limit`` ("reason" says which); None when the version has no such file.
    """
    wanted = _member_path(path)
    with code_version_open(version) as package, zipfile.ZipFile(package) as archive:
        info = next(
            (i for i in archive.infolist() if not i.is_dir() and _member_path(i.filename) == wanted), None
        )
        if info is None or not wanted:
            return None
        result = {"path": wanted, "size": info.file_size, "text": None, "reason": ""}
        if info.file_size > limit:
            result["reason"] = "too_large"
            return result
        with archive.open(info) as stream:
            data = stream.read(limit + 1)
    if len(data) > limit:
        result["reason"] = "too_large"
        return result
    if b"\0" in data[:8192]:
        result["reason"] = "binary"
        return result
    try:
        result["text"] = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        result["reason"] = "binary"
    return result


# --------------------------------------------------------------------------- delete


def function_refuse_if_alert_action(function: Function, *, doing: str) -> None:
    """ValidationError naming the alerts when ``function`` is one's action; ``doing`` is
    "hide" or "delete". Callers ask inside the transaction that changes the Function,
    after locking its row, so an alert created meanwhile cannot slip past."""
    names = [name for _, name in queries.function_alerts(function)]
    if not names:
        return
    listed = ", ".join(f"“{name}”" for name in names)
    which = f"the alert {listed}" if len(names) == 1 else f"the alerts {listed}"
    if doing == "hide":
        raise ValidationError(
            {"visible_to_customers": [
                f"{function.name} is the action of {which}: an alert's action must be visible to customers. "
                "Remove it from the alert's actions first, then hide it."
            ]}
        )
    raise ValidationError(
        f"{function.name} is the action of {which}: remove it from the alert's actions first, then delete it."
    )


def function_delete(*, function: Function, actor: Actor, actor_label: str | None = None) -> None:
    """Delete the Function, its versions, runs and logs; its History stays (under its name).

    Refused while the Function is an alert's action. Stored packages no other
    version of the organization uses are removed once the deletion commits.
    """
    organization = function.organization
    with transaction.atomic():
        # The lock orders this against alerts.services adding the Function as an action.
        Function.objects.select_for_update().filter(pk=function.pk).first()
        function_refuse_if_alert_action(function, doing="delete")
        keys = set(CodeVersion.objects.filter(function=function).values_list("storage_key", flat=True))
        audit_record(
            function=function, actor=actor, actor_label=actor_label, action=AuditAction.DELETED,
            summary=f"Deleted {function.name}",
        )
        # Runs protect their code version, and the Function its deployed one:
        # release both before the cascade.
        Run.objects.filter(function=function).delete()
        Function.objects.filter(pk=function.pk).update(deployed_version=None)
        Function.objects.filter(pk=function.pk).delete()
        transaction.on_commit(lambda: _delete_unused_packages(organization, keys))


def _delete_unused_packages(organization: Organization, keys: set[str]) -> None:
    for key in keys:
        if not CodeVersion.objects.filter(function__organization=organization, storage_key=key).exists():
            default_storage.delete(key)
