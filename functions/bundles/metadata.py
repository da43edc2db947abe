"""``import.metadata.json``: what a bundle made for import says about its Function.

Unknown keys are ignored (forward compatible); the handler it names is checked
for format only (``handler.validate_handler`` checks that it exists).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from storage.sizes import format_bytes

from .archive import Limits, effective_limits, open_zip, read_whole, scan
from .errors import BundleError
from .handler import handler_path
from .names import IMPORT_NAME_MIN_LENGTH, check_params, json_type, validate_function_name, validate_secret_names

METADATA_FILENAME = "import.metadata.json"
MAX_TIME_SINCE_MIDNIGHT_MS = 24 * 60 * 60 * 1000 - 1


class MetadataError(BundleError):
    """``import.metadata.json`` is wrong; ``errors`` lists every problem as (field path, message)."""

    def __init__(self, errors: list[tuple[str, str]]):
        errors = list(errors)
        lines = [f"{path}: {msg}" for path, msg in errors]
        if len(errors) == 1:
            message = f"{METADATA_FILENAME}: {lines[0]}"
        else:
            message = f"{METADATA_FILENAME} has {len(errors)} problems: " + "; ".join(lines)
        field = "metadata"
        if len(errors) == 1 and errors[0][0] != METADATA_FILENAME:
            field = f"metadata.{errors[0][0]}"
        super().__init__(message, field, errors)


@dataclass(frozen=True)
class ScheduleEntry:
    time_since_midnight_ms: int
    days_of_week: tuple[bool, ...]  # 7 flags, index 0 = Sunday


@dataclass(frozen=True)
class ImportMetadata:
    name: str | None
    description: str
    handler: str | None
    event_parameters: dict[str, str]
    secret_names: tuple[str, ...]
    scheduling_enabled: bool
    schedule_entries: tuple[ScheduleEntry, ...]


def read_import_metadata(fileobj, *, limits: Limits | None = None) -> ImportMetadata | None:
    """Parse ``import.metadata.json`` at the bundle root; None when there is none."""
    limits = effective_limits(limits)
    try:
        zf, _ = open_zip(fileobj, limits)
        with zf:
            members = scan(zf, limits)
            member = next((m for m in members if m.path == METADATA_FILENAME and not m.is_dir), None)
            if member is None:
                return None

            def too_big() -> MetadataError:
                return MetadataError(
                    [(METADATA_FILENAME, f"is larger than {format_bytes(limits.max_metadata_bytes)} (the limit)")]
                )

            raw = read_whole(zf, member, limits.max_metadata_bytes, too_big)
    finally:
        fileobj.seek(0)
    return parse_import_metadata(raw)


class _JSONObject(dict):
    duplicates: list[str]


def _object_pairs(pairs: list[tuple[str, object]]) -> _JSONObject:
    obj = _JSONObject()
    obj.duplicates = []
    for key, value in pairs:
        if key in obj and key not in obj.duplicates:
            obj.duplicates.append(key)
        obj[key] = value
    return obj


def _key_path(prefix: str, key: object) -> str:
    return f"{prefix}[{json.dumps(key)}]" if isinstance(key, str) else f"{prefix}[{key!r}]"


def parse_import_metadata(data: bytes | str) -> ImportMetadata:
    """Validate the text of an ``import.metadata.json``; MetadataError lists every problem."""
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise MetadataError([(METADATA_FILENAME, f"is not UTF-8 text (bad byte at offset {exc.start})")]) from exc
    try:
        doc = json.loads(data, object_pairs_hook=_object_pairs)
    except json.JSONDecodeError as exc:
        raise MetadataError(
            [(METADATA_FILENAME, f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]
        ) from exc
    except RecursionError as exc:
        raise MetadataError([(METADATA_FILENAME, "is nested too deeply")]) from exc
    if not isinstance(doc, dict):
        raise MetadataError([(METADATA_FILENAME, f"must be a JSON object, not {json_type(doc)}")])

    errors: list[tuple[str, str]] = []
    errors += [(key, "appears more than once") for key in doc.duplicates]

    def string(key: str) -> str | None:
        value = doc.get(key)
        if value is None or isinstance(value, str):
            return value
        errors.append((key, f"must be a string, not {json_type(value)}"))
        return None

    name = string("name")
    if name is not None:
        try:
            name = validate_function_name(name, min_length=IMPORT_NAME_MIN_LENGTH)
        except BundleError as exc:
            errors.append(("name", exc.message.rstrip(".")))
            name = None

    description = string("description") or ""

    handler = string("handler")
    if handler is not None:
        try:
            handler_path(handler)
        except BundleError as exc:
            errors.append(("handler", exc.message.rstrip(".")))
            handler = None

    event_parameters: dict[str, str] = {}
    raw_params = doc.get("eventParameters")
    if isinstance(raw_params, dict):
        errors += [
            (_key_path("eventParameters", key), "appears more than once") for key in getattr(raw_params, "duplicates", [])
        ]
        event_parameters, param_errors = check_params(
            raw_params.items(), lambda i, key: _key_path("eventParameters", key)
        )
        errors += param_errors
    elif raw_params is not None:
        errors.append(("eventParameters", f"must be an object of names to string values, not {json_type(raw_params)}"))

    secret_names: tuple[str, ...] = ()
    raw_secrets = doc.get("secretsKeys")
    if isinstance(raw_secrets, list):
        try:
            secret_names = validate_secret_names(raw_secrets)
        except BundleError as exc:
            errors += [(path.replace("secrets[", "secretsKeys[", 1), msg) for path, msg in exc.errors]
    elif raw_secrets is not None:
        errors.append(("secretsKeys", f"must be a list of secret names, not {json_type(raw_secrets)}"))

    scheduling_enabled = doc.get("isSchedulingEnabled")
    if scheduling_enabled is None:
        scheduling_enabled = False
    elif not isinstance(scheduling_enabled, bool):
        errors.append(("isSchedulingEnabled", f"must be true or false, not {json_type(scheduling_enabled)}"))
        scheduling_enabled = False

    entries: list[ScheduleEntry] = []
    schedule = doc.get("schedule")
    if isinstance(schedule, dict):
        raw_entries = schedule.get("entries")
        if isinstance(raw_entries, list):
            for index, raw in enumerate(raw_entries):
                entry = _schedule_entry(raw, f"schedule.entries[{index}]", errors)
                if entry is not None:
                    entries.append(entry)
        elif raw_entries is not None:
            errors.append(("schedule.entries", f"must be a list, not {json_type(raw_entries)}"))
    elif schedule is not None:
        errors.append(("schedule", f"must be an object with an 'entries' list, not {json_type(schedule)}"))

    if errors:
        raise MetadataError(errors)
    return ImportMetadata(
        name=name,
        description=description,
        handler=handler,
        event_parameters=event_parameters,
        secret_names=secret_names,
        scheduling_enabled=scheduling_enabled,
        schedule_entries=tuple(entries),
    )


def _schedule_entry(raw: object, path: str, errors: list[tuple[str, str]]) -> ScheduleEntry | None:
    if not isinstance(raw, dict):
        errors.append((path, f"must be an object with timeSinceMidnightMs and daysOfWeek, not {json_type(raw)}"))
        return None
    ok = True
    time_ms = raw.get("timeSinceMidnightMs")
    if isinstance(time_ms, bool) or not isinstance(time_ms, int):
        errors.append((f"{path}.timeSinceMidnightMs", f"must be a whole number of milliseconds, not {json_type(time_ms)}"))
        ok = False
    elif not 0 <= time_ms <= MAX_TIME_SINCE_MIDNIGHT_MS:
        errors.append(
            (f"{path}.timeSinceMidnightMs", f"must be between 0 and {MAX_TIME_SINCE_MIDNIGHT_MS} (got {time_ms})")
        )
        ok = False
    days = raw.get("daysOfWeek")
    if not isinstance(days, list):
        errors.append((f"{path}.daysOfWeek", f"must be a list of 7 booleans (Sunday first), not {json_type(days)}"))
        ok = False
    elif len(days) != 7:
        errors.append((f"{path}.daysOfWeek", f"must have 7 booleans (Sunday first), not {len(days)}"))
        ok = False
    elif not all(isinstance(d, bool) for d in days):
        errors.append((f"{path}.daysOfWeek", "must contain only true or false"))
        ok = False
    elif not any(days):
        errors.append((f"{path}.daysOfWeek", "must have at least one day set to true"))
        ok = False
    if not ok:
        return None
    return ScheduleEntry(time_since_midnight_ms=time_ms, days_of_week=tuple(days))
