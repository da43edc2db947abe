"""/alerts: an alert's incidents, as Samsara's alert "Execute Function" action delivers them.

Thin: the access layer finds the alert in the token's organization, the
incident's rules (payload, enabled, deduplication) are alerts.services'.
"""

import json
from typing import Any

from django.core.exceptions import ValidationError
from ninja import Router, Schema
from ninja.responses import Status, codes_4xx
from pydantic import ConfigDict, Field

from accounts.access import alert_for_token
from alerts import services as alert_services
from alerts.models import IncidentSource

from . import schemas
from .http import ApiProblem
from .idempotency import idempotent_response

router = Router(tags=["Alerts"])


class IncidentIn(Schema):
    # The values' rules (digit strings, epoch milliseconds, no other field)
    # are checked by alerts.services, with messages naming the field.
    model_config = ConfigDict(extra="ignore")

    driverId: Any = Field(description="The driver's id: a string of digits, or \"\".")
    assetId: Any = Field(description="The asset's id: a string of digits, or \"\".")
    alertIncidentTime: Any = Field(default=None, description="Optional: epoch milliseconds as a string of digits.")


class IncidentRunOut(Schema):
    name: str
    correlationId: str


class IncidentNotStartedOut(Schema):
    name: str
    reason: str


class IncidentOut(Schema):
    incidentId: str
    deduplicated: bool
    runs: list[IncidentRunOut]
    notStarted: list[IncidentNotStartedOut] = Field(
        default_factory=list, description="Actions whose Function could not run (e.g. no deployed code), and why."
    )


class IncidentEnvelope(Schema):
    data: IncidentOut


@router.post(
    "/alerts/{alert_configuration_id}/incidents",
    response={200: IncidentEnvelope, codes_4xx: schemas.Error},
    summary="Deliver an alert incident", operation_id="postAlertIncident",
)
def post_incident(request, alert_configuration_id: str, payload: IncidentIn):
    """Start one run of each of the alert's "Execute Function" actions with the incident in its event.

    The same alert, driver, asset and incident time within 24 hours starts
    nothing and answers the first incident's id and runs with `deduplicated: true`.
    A disabled alert, or one with no actions, is 409. An `Idempotency-Key` works as on run start."""
    token = request.api_token
    alert = alert_for_token(token, alert_configuration_id, write=True)
    # The raw body, not the schema's view of it: an unknown field is refused here (CONTRACT.md: "no other field").
    body = json.loads(request.body)
    fields = alert_services.incident_payload_parse(body)

    def fire():
        try:
            result = alert_services.incident_fire(
                alert=alert, source=IncidentSource.API, source_label=token.actor_label, **fields
            )
        except alert_services.AlertDisabled as error:
            raise ApiProblem(409, " ".join(error.messages)) from None
        except ValidationError as error:
            if getattr(error, "code", None) == "no_actions":
                raise ApiProblem(409, " ".join(error.messages)) from None
            raise
        runs = [{"name": r.function_name, "correlationId": str(r.run.correlation_id)} for r in result.runs if r.run]
        not_started = [{"name": r.function_name, "reason": r.reason} for r in result.runs if r.reason]
        return 200, {"data": {
            "incidentId": str(result.first.pk), "deduplicated": result.deduplicated, "runs": runs,
            "notStarted": not_started,
        }}

    status, answer = idempotent_response(
        token=token, scope=f"incidents:{alert.pk}", key=request.headers.get("Idempotency-Key"),
        request_body=body, work=fire,
    )
    return Status(status, answer)
