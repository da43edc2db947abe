"""Starting runs: every trigger (page, API, schedule, alert, command) comes through run_trigger.

The service writes the Run row and has runtime.tasks (the one module that
talks to the broker) send its id once the transaction commits; the worker
side (claim, execute, record) is runtime.services, which never calls back here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from runtime.tasks import run_enqueue_on_commit

from .audit import Actor, actor_user
from .bundles.names import MAX_PARAM_NAME_LENGTH
from .models import Function, Run, RunStatus, TriggerSource

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
    scheduled_for: datetime | None = None,
) -> Run:
    """Create a queued Run of the deployed version and hand it to a worker on commit.

    ``scheduled_for`` is the occurrence (UTC) a scheduled run is for.
    """
    if trigger not in TriggerSource.values:
        raise ValueError(f"unknown trigger {trigger!r}")
    if function.deployed_version_id is None:
        raise ValidationError(f"{function.name} has no deployed code yet: upload a code package first.")
    overrides = validate_overrides(overrides) if trigger in (TriggerSource.MANUAL, TriggerSource.API) else {}
    with transaction.atomic():
        run = _run_row(
            function=function, trigger=trigger, actor=actor, overrides=overrides, alert_payload=alert_payload,
            scheduled_for=scheduled_for,
        )
        run.save()
        run_enqueue_on_commit(run_id=run.id)
    return run


def _run_row(
    *,
    function: Function,
    trigger: str,
    actor: Actor = None,
    overrides: dict[str, str] | None = None,
    alert_payload: dict[str, Any] | None = None,
    scheduled_for: datetime | None = None,
) -> Run:
    """An unsaved queued Run of the deployed version, its event built as CONTRACT.md says."""
    correlation_id = uuid.uuid4()
    return Run(
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
        overrides=overrides or {},
        max_attempts=settings.FUNCTIONS_MAX_ATTEMPTS,
        timeout_seconds=run_timeout_seconds(function),
        tmp_mb=function.tmp_mb or settings.FUNCTIONS_TMP_MB,
        memory_mb=settings.FUNCTIONS_MEMORY_MB,
        scheduled_for=scheduled_for,
    )


def runs_trigger_scheduled(
    *, occurrences: Iterable[tuple[Function, datetime]], dropped: Iterable[tuple[Function, datetime, str]] = (),
) -> list[Run]:
    """Scheduled runs of many Functions at once (the schedule tick): one INSERT for all of them.

    ``occurrences`` are (function, instant) pairs to start; ``dropped`` are
    (function, instant, reason) triples recorded as dropped runs that never
    execute. Returns the queued runs; the caller has runtime.tasks send them
    once every batch is written (a thousand take seconds to publish, and they
    must all exist first).
    """
    now = timezone.now()
    queued = [
        _run_row(function=function, trigger=TriggerSource.SCHEDULE, scheduled_for=instant)
        for function, instant in occurrences if function.deployed_version_id is not None
    ]
    skipped = []
    for function, instant, reason in dropped:
        if function.deployed_version_id is None:
            continue
        run = _run_row(function=function, trigger=TriggerSource.SCHEDULE, scheduled_for=instant)
        run.status, run.reason, run.max_attempts, run.finished_at = RunStatus.DROPPED, reason[:500], 0, now
        skipped.append(run)
    Run.objects.bulk_create(queued + skipped, batch_size=500)
    return queued
