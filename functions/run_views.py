"""Pages of runs: trigger one, list them, watch one live."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from accounts.access import Area, function_for, require, run_for
from logs.display import pending_text
from logs.queries import lines_pending, run_log_entries
from monitor.services import run_notice_summary
from runtime.dispatch import organization_at_limit
from secrets_vault.services import secrets_missing_values

from .models import Function, Run, RunStatus, TriggerSource
from .run_filters import run_filter_parse
from .run_services import run_trigger

RUN_PAGE_LINES = 2000
LIVE_BATCH_LINES = 500


def _overrides_from_post(post: QueryDict, stored: dict[str, str]) -> dict[str, str]:
    """The submitted rows that differ from the stored parameters: those are the run's overrides."""
    names, values = post.getlist("param_name"), post.getlist("param_value")
    if len(names) != len(values):
        raise ValidationError("The parameter rows were garbled: reload the page and try again.")
    overrides, seen = {}, set()
    for name, value in zip(names, values):
        name = name.strip()
        if not name and not value:
            continue
        if not name:
            raise ValidationError(f"A parameter with the value “{value[:40]}” has no name: give it one or clear the row.")
        if name in seen:
            raise ValidationError(f"The parameter “{name}” is given twice.")
        seen.add(name)
        if stored.get(name) != value:
            overrides[name] = value
    return overrides


def _rows_of_run(request: HttpRequest, org_id: int, name: str, stored: dict[str, str]) -> tuple[list[dict], Run]:
    """"Run again": the Function's parameters with that run's overrides, and the keys it added; (rows, run)."""
    try:
        correlation_id = uuid.UUID(request.GET.get("again", ""))
    except ValueError:
        raise Http404("No such run.") from None
    run, _ = run_for(request.user, org_id, name, correlation_id)
    overrides = run.overrides or {}
    rows = [{"name": k, "value": overrides.get(k, v), "stored": True} for k, v in stored.items()]
    rows += [{"name": k, "value": v, "stored": False} for k, v in overrides.items() if k not in stored]
    return rows, run


@login_required
def trigger(request: HttpRequest, org_id: int, name: str) -> HttpResponse:
    function, _ = function_for(request.user, org_id, name, write=True)
    stored = function.parameters_dict
    rows = [{"name": k, "value": v, "stored": True} for k, v in stored.items()]
    error = again = None
    if request.method != "POST" and request.GET.get("again"):
        rows, again = _rows_of_run(request, org_id, name, stored)
    if request.method == "POST":
        try:
            overrides = _overrides_from_post(request.POST, stored)
            run = run_trigger(function=function, trigger=TriggerSource.MANUAL, actor=request.user, overrides=overrides)
        except ValidationError as problem:
            error = " ".join(problem.messages)
            # Keep what the admin typed.
            rows = [
                {"name": n, "value": v, "stored": n in stored}
                for n, v in zip(request.POST.getlist("param_name"), request.POST.getlist("param_value"))
                if n or v
            ]
        else:
            return redirect("functions:run_detail", org_id=org_id, name=function.name, correlation_id=run.correlation_id)
    return render(
        request,
        "functions/run_trigger.html",
        {
            "function": function, "can_write": True, "tab": "runs", "rows": rows, "error": error,
            "missing_secrets": secrets_missing_values(function=function), "again": again,
        },
        status=400 if error else 200,
    )


@login_required
def run_list(request: HttpRequest, org_id: int, name: str) -> HttpResponse:
    function, can_write = function_for(request.user, org_id, name)
    found = run_filter_parse(request.GET, organization=function.organization, function=function)
    runs = found.apply(function.runs.with_total_duration().select_related("triggered_by").order_by("-created_at", "-id"))
    page = Paginator(runs, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "functions/run_list.html",
        {
            "function": function, "can_write": can_write, "tab": "runs", "page": page, "filter": found,
            "statuses": RunStatus.choices, "triggers": TriggerSource.choices,
        },
        status=400 if found.errors else 200,
    )


@login_required
def organization_runs(request: HttpRequest, org_id: int) -> HttpResponse:
    """Every run of every Function of the organization, newest first, filtered like a Runs tab."""
    membership = require(request.user, org_id, Area.FUNCTIONS)
    organization = membership.organization
    found = run_filter_parse(request.GET, organization=organization)
    runs = (
        Run.objects.of(organization).with_total_duration().select_related("function", "triggered_by")
        .order_by("-created_at", "-id")
    )
    if found.unknown_function:
        runs = runs.none()
    page = Paginator(found.apply(runs), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "functions/organization_runs.html",
        {
            "page": page, "filter": found, "tab": "runs",
            "statuses": RunStatus.choices, "triggers": TriggerSource.choices,
            "function_names": Function.objects.of(organization).order_by("name").values_list("name", flat=True),
        },
        # Another organization's Function is not named here: as unknown as a misspelt one.
        status=404 if found.unknown_function else 400 if found.errors else 200,
    )


def _status_context(run: Run) -> dict[str, Any]:
    attempts = list(run.attempt_rows.all())
    durations = [a.duration_ms for a in attempts if a.duration_ms is not None]
    held = organization_at_limit(organization_id=run.organization_id) if run.status == RunStatus.QUEUED else None
    return {"run": run, "attempt_rows": attempts, "total_ms": sum(durations) if durations else None,
            "held_by_limit": held}


def _logs_url(run: Run) -> str:
    """This run's entries in the Logs tab, over the minutes it ran (its default range may not reach back)."""
    params = {"run": str(run.correlation_id)}
    if run.is_finished and run.finished_at:
        def stamp(value):
            return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")

        params["start"] = stamp(run.created_at - timedelta(seconds=1))
        params["end"] = stamp(run.finished_at + timedelta(minutes=1))
    url = reverse("functions:logs", kwargs={"org_id": run.organization_id, "name": run.function.name})
    return f"{url}?{urlencode(params)}"


@login_required
def run_detail(request: HttpRequest, org_id: int, name: str, correlation_id: uuid.UUID) -> HttpResponse:
    run, can_write = run_for(request.user, org_id, name, correlation_id)
    entries = list(run_log_entries(run)[:RUN_PAGE_LINES])
    pending = lines_pending(run=run)
    return_value = None
    if run.return_value is not None:
        try:
            return_value = json.dumps(json.loads(run.return_value), indent=2)
        except ValueError:
            return_value = run.return_value
    return render(
        request,
        "functions/run_detail.html",
        {
            **_status_context(run),
            "function": run.function, "can_write": can_write, "tab": "runs",
            "entries": entries, "truncated": len(entries) == RUN_PAGE_LINES,
            # A flood's last lines are indexed seconds after the run finished: the page says so, and
            # keeps following the output (runs.js) until they are in, unless it shows only its first lines.
            "pending_text": pending_text(pending, of_run=True),
            "live": not run.is_finished or (bool(pending) and len(entries) < RUN_PAGE_LINES),
            "last_id": entries[-1].id if entries else 0,
            "event_json": json.dumps(run.event, indent=2),
            "return_value": return_value,
            "logs_url": _logs_url(run),
            "notice_summary": run_notice_summary(run),
        },
    )


@login_required
@require_GET
def run_live(request: HttpRequest, org_id: int, name: str, correlation_id: uuid.UUID) -> JsonResponse:
    """What changed since the page last asked: the status block, and lines after `after`."""
    run, _ = run_for(request.user, org_id, name, correlation_id)
    try:
        after = max(int(request.GET.get("after", "0")), 0)
    except ValueError:
        return JsonResponse({"error": "after must be a log entry id (a whole number)."}, status=400)
    entries = list(run_log_entries(run, after_id=after)[:LIVE_BATCH_LINES])
    more = len(entries) == LIVE_BATCH_LINES
    pending = lines_pending(run=run)
    return JsonResponse(
        {
            "finished": run.is_finished and not more and not pending,
            "pending_text": pending_text(pending, of_run=True),
            "status_html": render_to_string("functions/_run_status.html", _status_context(run), request=request),
            "lines_html": render_to_string("functions/_log_lines.html", {"entries": entries}, request=request),
            "last_id": entries[-1].id if entries else after,
        }
    )
