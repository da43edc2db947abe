"""Starting runs: every trigger (page, API, schedule, alert, command) comes through run_trigger.

The service writes the Run row and has runtime.tasks (the one module that
talks to the broker) send its id once the transaction commits; the worker
side (claim, execute, record) is runtime.services, which never calls back here.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from runtime.tasks import run_enqueue_on_commit

from .audit import Actor, actor_user
from .bundles.names import MAX_PARAM_NAME_LENGTH
from .models import Function, Run, TriggerSource

MAX_OVERRIDES_BYTES = 256 * 1024


def validate_overrides(overrides: object) -> dict[str, str]:
    """Per-run parameter overrides: a flat object of string to string.

    As in Samsara's simulator, an override may name any key, even one the
    platform sets; only the correlation id, added last, cannot be overridden.
    """
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise ValidationError("Parameter overrides must be an object of names to string values.")
    clean = {}
    for name, value in overrides.items():
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("Every parameter override needs a name.")
        name = name.strip()
        if len(name) > MAX_PARAM_NAME_LENGTH:
            raise ValidationError(f"The parameter name “{name[:40]}…” is longer than {MAX_PARAM_NAME_LENGTH} characters.")
        if not isinstance(value, str):
            raise ValidationError(f"The value of “{name}” must be a string, not {type(value).__name__}.")
        if name in clean:
            raise ValidationError(f"The parameter “{name}” is given twice.")
        clean[name] = value
    if len(json.dumps(clean)) > MAX_OVERRIDES_BYTES:
        raise ValidationError("Parameter overrides are limited to 256 KB in all.")
    return clean


def build_event(
    *,
    function: Function,
    trigger: str,
    correlation_id: uuid.UUID,
    overrides: dict[str, str] | None = None,
    alert_payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The event in CONTRACT.md's order, later keys winning: parameters, alert payload,
    trigger source, overrides (manual and API runs only), correlation id."""
    event = dict(function.parameters_dict)
    if trigger == TriggerSource.ALERT and alert_payload:
        event.update(alert_payload)
    event["SamsaraFunctionTriggerSource"] = str(trigger)
    if trigger in (TriggerSource.MANUAL, TriggerSource.API) and overrides:
        event.update(overrides)
    event["SamsaraFunctionCorrelationId"] = str(correlation_id)
    return event


def run_timeout_seconds(function: Function) -> int:
    ceiling = settings.FUNCTIONS_MAX_TIMEOUT_SECONDS
    return min(function.timeout_seconds or ceiling, ceiling)


def run_trigger(
    *,
    function: Function,
    trigger: str,
    actor: Actor = None,
    overrides: dict[str, str] | None = None,
    alert_payload: dict[str, Any] | None = None,
) -> Run:
    """Create a queued Run of the deployed version and hand it to a worker on commit."""
    if trigger not in TriggerSource.values:
        raise ValueError(f"unknown trigger {trigger!r}")
    if function.deployed_version_id is None:
        raise ValidationError(f"{function.name} has no deployed code yet: upload a code package first.")
    overrides = validate_overrides(overrides) if trigger in (TriggerSource.MANUAL, TriggerSource.API) else {}
    correlation_id = uuid.uuid4()
    with transaction.atomic():
        run = Run.objects.create(
            correlation_id=correlation_id,
            organization_id=function.organization_id,
            function=function,
            code_version_id=function.deployed_version_id,
            trigger=trigger,
            triggered_by=actor_user(actor),
            event=build_event(
                function=function, trigger=trigger, correlation_id=correlation_id,
                overrides=overrides, alert_payload=alert_payload,
            ),
            overrides=overrides,
            max_attempts=settings.FUNCTIONS_MAX_ATTEMPTS,
            timeout_seconds=run_timeout_seconds(function),
            tmp_mb=function.tmp_mb or settings.FUNCTIONS_TMP_MB,
            memory_mb=settings.FUNCTIONS_MEMORY_MB,
        )
        run_enqueue_on_commit(run_id=run.id)
    return run
