"""Alert configurations and their incidents: every change and every incident goes through here.

The dashboard, ``manage.py create_alert``/``fire_alert`` and the REST API call
these functions, so they refuse the same things with the same words. Each
validates fully before it writes: a refused change or incident leaves nothing
behind and starts nothing. ValidationErrors are keyed by the field at fault
(``name``, ``description``, ``functions``; ``driverId``, ``assetId``,
``alertIncidentTime`` for an incident, as the API names them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Organization
from functions.audit import Actor, AuditAction, actor_name, actor_user, audit_record
from functions.bundles.names import json_type
from functions.models import Function, TriggerSource
from functions.run_services import run_trigger
from functions.services import FieldErrors, clean_description

from .models import AlertAction, AlertConfiguration, Incident, IncidentKey, IncidentRun, IncidentSource

MAX_NAME_LENGTH = 100
MAX_ID_LENGTH = 64
# Incidents with the same alert, driver, asset and incident time within this
# window are one incident (CONTRACT.md "Alerts").
DEDUPLICATION_WINDOW = timedelta(hours=24)
PAYLOAD_FIELDS = ("driverId", "assetId", "alertIncidentTime")
# Epoch milliseconds from 1973-03-03 (below that a value is far more likely
# epoch seconds by mistake) to the end of year 9999.
MIN_INCIDENT_TIME_MS = 100_000_000_000
MAX_INCIDENT_TIME_MS = 253_402_300_799_999


class AlertDisabled(ValidationError):
    """An incident of a disabled alert: refused (the API answers 409)."""


@dataclass
class FireResult:
    """What an incident did. ``incident`` is the row recorded for this delivery; when
    ``deduplicated``, ``first`` is the incident of the last 24 hours it repeats and
    ``runs`` are that incident's."""

    incident: Incident
    deduplicated: bool
    first: Incident
    runs: list[IncidentRun] = field(default_factory=list)


# --------------------------------------------------------------------------- configurations


def _clean_name(
    name: Any, organization: Organization, errors: FieldErrors, *, exclude: AlertConfiguration | None = None
) -> str | None:
    if not isinstance(name, str) or not name.strip():
        errors.add("name", "Give the alert a name.")
        return None
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        errors.add("name", f"The name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}.")
        return None
    taken = AlertConfiguration.objects.of(organization).named(name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude.pk)
    if taken.exists():
        errors.add("name", _name_taken_message(name, organization))
        return None
    return name


def _name_taken_message(name: str, organization: Organization) -> str:
    return (
        f"An alert named “{name}” already exists in {organization.name} (names are compared without regard "
        "to case). Choose another name."
    )


def _locked_actions(organization: Organization, functions: Iterable[Function], errors: FieldErrors) -> list[Function]:
    """The chosen Functions, locked, once each, in the order given; errors added for any
    that is not the organization's or not visible to customers.

    The row locks order this against functions.services hiding or deleting one
    of them: whichever comes second sees the other's outcome.
    """
    wanted = []
    for function in functions or ():
        if not isinstance(function, Function):
            raise TypeError(f"alert actions are Function instances, not {type(function).__name__}")
        if function.pk not in wanted:
            wanted.append(function.pk)
    if not wanted:
        errors.add("functions", "Choose at least one Function for the alert to execute.")
        return []
    found = {
        f.pk: f
        for f in Function.objects.select_for_update().filter(pk__in=wanted, organization=organization)
    }
    chosen = []
    for function in functions:
        current = found.get(function.pk)
        if current is None:
            errors.add("functions", f"There is no Function named “{function.name}” in {organization.name}.")
        elif not current.visible_to_customers:
            errors.add(
                "functions",
                f"{current.name} is not visible to customers, and only visible Functions can be an alert's "
                "action: turn on “Visible to customers” on its Edit page first.",
            )
        elif current not in chosen:
            chosen.append(current)
    return chosen


def alert_create(
    *, organization: Organization, actor: Actor, name: str, functions: Iterable[Function], description: str = "",
    enabled: bool = True, actor_label: str | None = None,
) -> AlertConfiguration:
    """Create an alert configuration with "Execute Function" actions (one per Function, in order)."""
    errors = FieldErrors()
    name = _clean_name(name, organization, errors)
    description = clean_description(description, errors)
    try:
        with transaction.atomic():
            chosen = _locked_actions(organization, functions, errors)
            errors.raise_if_any()
            alert = AlertConfiguration.objects.create(
                organization=organization, name=name, description=description, enabled=bool(enabled),
                created_by=actor_user(actor),
            )
            AlertAction.objects.bulk_create(
                AlertAction(alert=alert, function=function, position=index) for index, function in enumerate(chosen)
            )
            _record_actions(alert_name=name, added=chosen, removed=(), actor=actor, actor_label=actor_label)
    except IntegrityError:
        # Two admins created the same name at once: the constraint decided.
        if AlertConfiguration.objects.of(organization).named(name).exists():
            raise ValidationError({"name": [_name_taken_message(name, organization)]}) from None
        raise
    return alert


def alert_update(
    *, alert: AlertConfiguration, actor: Actor, name: str, functions: Iterable[Function], description: str = "",
    enabled: bool = True, actor_label: str | None = None,
) -> AlertConfiguration:
    """Change an alert's name, description, enabled flag and its actions (the whole set)."""
    organization = alert.organization
    errors = FieldErrors()
    name = _clean_name(name, organization, errors, exclude=alert)
    description = clean_description(description, errors)
    try:
        with transaction.atomic():
            chosen = _locked_actions(organization, functions, errors)
            errors.raise_if_any()
            AlertConfiguration.objects.filter(pk=alert.pk).update(
                name=name, description=description, enabled=bool(enabled), updated_at=timezone.now()
            )
            keep = {function.pk for function in chosen}
            before = {action.function_id: action.function for action in alert.actions.select_related("function")}
            alert.actions.exclude(function_id__in=keep).delete()
            for index, function in enumerate(chosen):
                AlertAction.objects.update_or_create(alert=alert, function=function, defaults={"position": index})
            _record_actions(
                alert_name=name, added=[function for function in chosen if function.pk not in before],
                removed=[function for pk, function in before.items() if pk not in keep],
                actor=actor, actor_label=actor_label,
            )
    except IntegrityError:
        if AlertConfiguration.objects.of(organization).named(name).exclude(pk=alert.pk).exists():
            raise ValidationError({"name": [_name_taken_message(name, organization)]}) from None
        raise
    alert.refresh_from_db()
    return alert


def alert_delete(*, alert: AlertConfiguration, actor: Actor, actor_label: str | None = None) -> None:
    """Delete the alert, its actions and its incidents' records; the runs they started stay."""
    with transaction.atomic():
        removed = [action.function for action in alert.actions.select_related("function")]
        AlertConfiguration.objects.filter(pk=alert.pk).delete()
        _record_actions(alert_name=alert.name, added=(), removed=removed, actor=actor, actor_label=actor_label,
                        deleted=True)


def _record_actions(
    *, alert_name: str, added: Iterable[Function], removed: Iterable[Function], actor: Actor,
    actor_label: str | None, deleted: bool = False,
) -> None:
    """Each Function's History says when it became, or stopped being, an alert's action: an alert
    starts runs of it, so its admins see who made that so."""
    for function in added:
        audit_record(function=function, actor=actor, actor_label=actor_label, action=AuditAction.ALERT_ACTION_ADDED,
                     summary=f"Added as an action of the alert “{alert_name}”", changes={"alert": alert_name})
    for function in removed:
        summary = (f"No longer an action: the alert “{alert_name}” was deleted" if deleted
                   else f"Removed from the actions of the alert “{alert_name}”")
        audit_record(function=function, actor=actor, actor_label=actor_label,
                     action=AuditAction.ALERT_ACTION_REMOVED, summary=summary, changes={"alert": alert_name})


# --------------------------------------------------------------------------- incidents


def _clean_digits(value: Any, key: str, errors: FieldErrors, *, what: str) -> str | None:
    if not isinstance(value, str):
        errors.add(key, f"{key} must be a string of digits (the {what}'s id), not {json_type(value)}.")
        return None
    if value != "" and not (value.isascii() and value.isdigit()):
        errors.add(key, f"{key} must contain only the digits 0-9 (the {what}'s id), or be empty; got “{value[:40]}”.")
        return None
    if len(value) > MAX_ID_LENGTH:
        errors.add(key, f"{key} is {len(value)} digits long; the limit is {MAX_ID_LENGTH}.")
        return None
    return value


def _clean_incident_time(value: Any, errors: FieldErrors) -> str | None:
    key = "alertIncidentTime"
    if value is None:
        return None
    if not isinstance(value, str):
        errors.add(
            key, f"{key} must be a string of digits (epoch milliseconds, e.g. “1735689600000”), not {json_type(value)}."
        )
        return None
    if not (value.isascii() and value.isdigit()):
        errors.add(key, f"{key} must be epoch milliseconds as a string of digits, e.g. “1735689600000”; got “{value[:40]}”.")
        return None
    number = int(value)
    if number < MIN_INCIDENT_TIME_MS:
        errors.add(
            key,
            f"{key} “{value}” is before 1973 in milliseconds: it looks like epoch seconds. "
            "Give milliseconds (seconds × 1000).",
        )
        return None
    if number > MAX_INCIDENT_TIME_MS:
        errors.add(key, f"{key} “{value[:40]}” is after the year 9999: give epoch milliseconds.")
        return None
    return value


def incident_payload_parse(data: Any) -> dict[str, Any]:
    """An incident's JSON body (``driverId``*, ``assetId``*, ``alertIncidentTime``) as
    incident_fire's keyword arguments. Missing and unknown fields are refused here;
    the values themselves are checked by incident_fire."""
    if not isinstance(data, dict):
        raise ValidationError(
            "The incident must be a JSON object with driverId, assetId and optionally alertIncidentTime."
        )
    errors = FieldErrors()
    for key in ("driverId", "assetId"):
        if key not in data:
            errors.add(key, f"{key} is required: a string of digits, or \"\" when there is none.")
    for key in data:
        if key not in PAYLOAD_FIELDS:
            errors.add(
                str(key),
                f"“{str(key)[:40]}” is not a field of an incident: send only driverId, assetId and alertIncidentTime.",
            )
    errors.raise_if_any()
    return {
        "driver_id": data["driverId"],
        "asset_id": data["assetId"],
        "alert_incident_time": data.get("alertIncidentTime"),
    }


def incident_payload_validate(
    *, driver_id: Any, asset_id: Any, alert_incident_time: Any = None
) -> tuple[str, str, str | None]:
    """(driver_id, asset_id, alert_incident_time) checked, or a ValidationError naming each field at fault."""
    errors = FieldErrors()
    driver_id = _clean_digits(driver_id, "driverId", errors, what="driver")
    asset_id = _clean_digits(asset_id, "assetId", errors, what="asset")
    alert_incident_time = _clean_incident_time(alert_incident_time, errors)
    errors.raise_if_any()
    return driver_id, asset_id, alert_incident_time


def incident_fire(
    *,
    alert: AlertConfiguration,
    driver_id: Any,
    asset_id: Any,
    alert_incident_time: Any = None,
    source: str,
    source_label: str = "",
    actor: Actor = None,
    replay_of: Incident | None = None,
) -> FireResult:
    """Record an incident of ``alert`` and start one run of each action's Function.

    A repeat of an incident of the last 24 hours (same alert, driver, asset
    and incident time) starts nothing: it is recorded as deduplicated and
    answers with the first incident's runs. A replay (``replay_of``) fires the
    same payload as a new incident and is deliberately never deduplicated.
    An action whose Function cannot run (no deployed code) is recorded with
    that reason; the other actions still run. Returns a FireResult.
    """
    if source not in IncidentSource.values:
        raise ValueError(f"unknown incident source {source!r}")
    driver_id, asset_id, alert_incident_time = incident_payload_validate(
        driver_id=driver_id, asset_id=asset_id, alert_incident_time=alert_incident_time
    )
    current = AlertConfiguration.objects.select_related("organization").get(pk=alert.pk)
    if not current.enabled:
        raise AlertDisabled(
            f"The alert “{current.name}” is disabled and accepts no incidents: enable it first.", code="disabled"
        )
    actions = list(current.actions.select_related("function", "function__organization"))
    if not actions:
        raise ValidationError(
            f"The alert “{current.name}” has no actions: add a Function for it to execute first.", code="no_actions"
        )
    user = actor_user(actor)
    label = actor_name(actor, source_label)
    with transaction.atomic():
        incident = Incident.objects.create(
            alert=current, driver_id=driver_id, asset_id=asset_id, alert_incident_time=alert_incident_time,
            source=source, source_label=label, actor=user, replay_of=replay_of,
        )
        if replay_of is None:
            first = _claim_key(incident)
            if first is not None:
                Incident.objects.filter(pk=incident.pk).update(duplicate_of=first)
                incident.duplicate_of = first
                runs = list(first.action_runs.select_related("run"))
                return FireResult(incident=incident, deduplicated=True, first=first, runs=runs)
        payload = incident.payload
        runs = []
        for action in actions:
            runs.append(_start_action(incident, action.function, payload, user))
    return FireResult(incident=incident, deduplicated=False, first=incident, runs=runs)


def _claim_key(incident: Incident) -> Incident | None:
    """None when ``incident`` now owns its deduplication key; else the incident that does.

    The INSERT is the decision: of two concurrent deliveries, the second waits
    on the unique index until the first commits, then fails and reads the
    owner. An expired key is taken over by a conditional UPDATE, which exactly
    one delivery wins.
    """
    lookup = {
        "alert_id": incident.alert_id,
        "driver_id": incident.driver_id,
        "asset_id": incident.asset_id,
        "incident_time": incident.alert_incident_time or "",
    }
    # A second pass only when the key vanished between our INSERT and our read
    # (incident_keys_prune deleted it as expired): then the INSERT wins.
    for _ in range(2):
        now = timezone.now()
        try:
            with transaction.atomic():
                IncidentKey.objects.create(**lookup, incident=incident, expires_at=now + DEDUPLICATION_WINDOW)
            return None
        except IntegrityError:
            pass
        taken = IncidentKey.objects.filter(**lookup, expires_at__lte=now).update(
            incident=incident, expires_at=now + DEDUPLICATION_WINDOW
        )
        if taken:
            return None
        owner = IncidentKey.objects.filter(**lookup).select_related("incident").first()
        if owner is not None:
            return owner.incident
    raise RuntimeError("the deduplication key of an incident could be neither claimed nor read")


def incident_keys_prune(*, batch_size: int = 1000) -> int:
    """Delete deduplication keys whose 24 hours are over (beat runs it hourly); how many.

    Nothing depends on it: an expired key is taken over by the next incident
    with its values anyway. It keeps the table the size of one day of incidents.
    """
    deleted = 0
    while True:
        ids = list(IncidentKey.objects.filter(expires_at__lte=timezone.now()).values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += IncidentKey.objects.filter(pk__in=ids, expires_at__lte=timezone.now()).delete()[0]


def _start_action(incident: Incident, function: Function, payload: dict[str, str], user: Any) -> IncidentRun:
    try:
        run = run_trigger(function=function, trigger=TriggerSource.ALERT, actor=user, alert_payload=payload)
    except ValidationError as error:
        return IncidentRun.objects.create(
            incident=incident, function=function, function_name=function.name,
            reason=" ".join(error.messages)[:500],
        )
    return IncidentRun.objects.create(incident=incident, function=function, function_name=function.name, run=run)


def incident_replay(*, incident: Incident, source: str, source_label: str = "", actor: Actor = None) -> FireResult:
    """Fire ``incident``'s payload again as a new incident: new runs, never deduplicated
    (for the operator who fixed the Function)."""
    return incident_fire(
        alert=incident.alert, driver_id=incident.driver_id, asset_id=incident.asset_id,
        alert_incident_time=incident.alert_incident_time, source=source, source_label=source_label, actor=actor,
        replay_of=incident,
    )
