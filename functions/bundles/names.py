"""The rules for names: a Function's, an event parameter's, a secret's.

Decisions where the contract is silent: event parameter and secret names are
at most 128 characters. The contract's rule: an event parameter may not be
named ``SamsaraFunctionTriggerSource`` or ``SamsaraFunctionCorrelationId`` (the
platform sets them on every run); other ``SamsaraFunction*`` names are allowed,
as Samsara's own examples use them.
"""

from __future__ import annotations

import re
from typing import Iterable

from .errors import BundleError

FUNCTION_NAME_MAX_LENGTH = 35
IMPORT_NAME_MIN_LENGTH = 3
MAX_PARAM_NAME_LENGTH = 128
# The event keys the platform sets on every run (CONTRACT.md "Invocation"); any other
# SamsaraFunction* name is the Function's own (Samsara's examples set SamsaraFunctionLoggerLevel).
RESERVED_PARAM_NAMES = frozenset({"SamsaraFunctionTriggerSource", "SamsaraFunctionCorrelationId"})
# What the secrets vault accepts as a secret's name (the one rule, used by both).
SECRET_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")

_NAME_CHARS_RE = re.compile(r"[A-Za-z0-9_-]+")


def validate_function_name(name: object, *, min_length: int = 1) -> str:
    """Return the stripped name, or raise BundleError(field="name") naming the rule."""
    rule = f"{min_length}-{FUNCTION_NAME_MAX_LENGTH} characters, only letters, digits, '_' and '-'"
    if not isinstance(name, str):
        raise BundleError(f"Function name must be text: {rule}.", "name")
    name = name.strip()
    if not name:
        raise BundleError(f"Function name is required: {rule}.", "name")
    bad = sorted(set(_NAME_CHARS_RE.sub("", name)))
    if bad:
        shown = ", ".join(repr(c) for c in bad[:5])
        raise BundleError(f"Function name {name!r} contains {shown}; use {rule}.", "name")
    if not min_length <= len(name) <= FUNCTION_NAME_MAX_LENGTH:
        raise BundleError(f"Function name {name!r} is {len(name)} characters long; use {rule}.", "name")
    return name


def _check_key_name(name: object, kind: str, *, reserved: frozenset[str] = frozenset()) -> tuple[str | None, str | None]:
    """(stripped name, None) or (None, problem)."""
    if not isinstance(name, str):
        return None, f"{kind} name must be text, not {json_type(name)}"
    stripped = name.strip()
    if not stripped:
        return None, f"{kind} name is empty"
    if len(stripped) > MAX_PARAM_NAME_LENGTH:
        return None, f"{kind} name is {len(stripped)} characters long; the limit is {MAX_PARAM_NAME_LENGTH}"
    if stripped in reserved:
        return None, (f"{kind} name {stripped!r} is reserved: the platform sets it on every run "
                      "(the trigger source and the correlation id); choose another name")
    return stripped, None


def check_params(pairs: Iterable[tuple[object, object]], path) -> tuple[dict[str, str], list[tuple[str, str]]]:
    result: dict[str, str] = {}
    errors: list[tuple[str, str]] = []
    for index, (name, value) in enumerate(pairs):
        key, problem = _check_key_name(name, "Event parameter", reserved=RESERVED_PARAM_NAMES)
        where = path(index, key if key is not None else name)
        if problem:
            errors.append((where, problem))
            continue
        if key in result:
            errors.append((where, f"Event parameter {key!r} appears more than once; names must be unique"))
            continue
        if not isinstance(value, str):
            errors.append((where, f"Event parameter {key!r} must have a string value, not {json_type(value)}"))
            continue
        result[key] = value
    return result, errors


def validate_event_parameters(pairs: list[tuple[object, object]]) -> dict[str, str]:
    """Names non-empty (stripped), unique, <= 128 chars, not one of RESERVED_PARAM_NAMES; values str.

    Raises BundleError(field="params") listing every bad entry (also in ``.errors``).
    """
    result, errors = check_params(pairs, lambda i, key: f"params[{i}]")
    if errors:
        raise BundleError("; ".join(msg for _, msg in errors) + ".", "params", errors)
    return result


def validate_secret_names(names: Iterable[object]) -> tuple[str, ...]:
    """Secret names: non-empty (stripped), unique, <= 128 chars of SECRET_NAME_RE (the vault's rule).

    Raises BundleError(field="secrets").
    """
    result: list[str] = []
    errors: list[tuple[str, str]] = []
    for index, name in enumerate(names):
        key, problem = _check_key_name(name, "Secret")
        if problem is None and not SECRET_NAME_RE.match(key):
            problem = f"Secret {key!r} may only contain letters A-Z and a-z, digits, '_', '.' and '-'"
        if problem is None and key in result:
            problem = f"Secret {key!r} appears more than once; names must be unique"
        if problem:
            errors.append((f"secrets[{index}]", problem))
        else:
            result.append(key)
    if errors:
        raise BundleError("; ".join(msg for _, msg in errors) + ".", "secrets", errors)
    return tuple(result)


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
