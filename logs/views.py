"""The Logs pages (a Function's tab and the organization-wide page) and their JSON downloads.

Thin: access through accounts.access, the query through logs.queries, the
shaping of entries for display in logs.display.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from accounts.access import Area, function_for, require
from accounts.models import Organization
from functions.models import Function, Run

from . import display
from .models import Stream
from .queries import (
    CUSTOM_RANGE, PRESETS, LogQuery, LogSort, lines_pending, log_page, log_stream_chunks, parse_log_query,
)

# The "load more" link asks for rows only, as JSON, with this header.
FRAGMENT_HEADER = "X-Logs-Fragment"
# On a download: lines within its scope still being indexed, not yet in it.
PENDING_HEADER = "X-Logs-Lines-Pending"


@login_required
@require_GET
def function_logs(request: HttpRequest, org_id: int, name: str) -> HttpResponse:
    function, can_write = function_for(request.user, org_id, name)
    base = reverse("functions:logs", kwargs={"org_id": function.organization_id, "name": function.name})
    return _explorer(
        request, organization=function.organization, function=function, template="logs/function_logs.html",
        urls={"page": base, "json": reverse("functions:logs_json", kwargs={"org_id": function.organization_id, "name": function.name})},
        context={"function": function, "can_write": can_write, "tab": "logs"},
    )


@login_required
@require_GET
def function_logs_json(request: HttpRequest, org_id: int, name: str) -> HttpResponseBase:
    function, _ = function_for(request.user, org_id, name)
    return _download(request, organization=function.organization, function=function, label=function.name)


@login_required
@require_GET
def organization_logs(request: HttpRequest, org_id: int) -> HttpResponse:
    organization = require(request.user, org_id, Area.FUNCTIONS).organization
    return _explorer(
        request, organization=organization, function=None, template="logs/organization_logs.html",
        urls={"page": reverse("logs:org", kwargs={"org_id": organization.id}),
              "json": reverse("logs:org_json", kwargs={"org_id": organization.id})},
        # The sidebar's "Functions" stays lit: this page is one of the Functions tabs.
        context={"tab": "logs", "section": "functions"},
    )


@login_required
@require_GET
def organization_logs_json(request: HttpRequest, org_id: int) -> HttpResponseBase:
    organization = require(request.user, org_id, Area.FUNCTIONS).organization
    label = f"{slugify(organization.name) or 'organization'}-all-functions"
    return _download(request, organization=organization, function=None, label=label)


# --- the page ---------------------------------------------------------------------------------------


def _explorer(
    request: HttpRequest,
    *,
    organization: Organization,
    function: Function | None,
    template: str,
    urls: dict[str, str],
    context: dict[str, Any],
) -> HttpResponse:
    fragment = request.headers.get(FRAGMENT_HEADER) == "rows"
    tz = display.organization_tz(organization)
    try:
        query = parse_log_query(request.GET, organization=organization, function=function, now=timezone.now())
    except ValidationError as invalid:
        errors = invalid.message_dict
        if fragment:
            return JsonResponse({"errors": errors}, status=400)
        return render(
            request, template,
            {**context, "form": display.form_as_typed(request.GET, tz), "errors": errors, "presets": _presets(),
             "sorts": LogSort.choices, "streams": _streams(), "tz": tz, "urls": urls, "org_wide": function is None},
            status=400,
        )
    page = log_page(query)
    entries = display.entries_for_page(page.entries, organization=organization, query=query, page_url=urls["page"])
    next_url = f"{urls['page']}?{urlencode(query.address_params(after=page.next_cursor))}" if page.next_cursor else None
    searched_until = display.local_time(page.searched_until, tz) if page.searched_until else None
    org_wide = function is None
    if fragment:
        return JsonResponse({
            "rows_html": render_to_string("logs/_rows.html", {"entries": entries, "org_wide": org_wide}, request=request),
            "count": len(entries), "next_url": next_url, "searched_until": searched_until,
        })
    return render(request, template, {
        **context,
        "query": query, "entries": entries, "next_url": next_url, "searched_until": searched_until,
        "form": display.form_for_query(query), "errors": {}, "presets": _presets(), "sorts": LogSort.choices,
        "streams": _streams(),
        "tz": tz, "urls": urls, "org_wide": org_wide,
        "download_url": f"{urls['json']}?{urlencode(query.address_params())}",
        "share_url": request.build_absolute_uri(f"{urls['page']}?{urlencode(query.address_params())}"),
        "range_text": display.range_text(query, tz), "sort_label": LogSort(query.sort).label,
        "run_notice": _run_notice(query, function, urls) if query.correlation_id and not entries and not query.after else None,
        # A flood's lines are searchable seconds after they were printed (logs/services.py): said, not hidden.
        "pending_text": display.pending_text(lines_pending(query=query), of_run=query.correlation_id is not None),
    })


def _streams() -> list[tuple[str, str]]:
    return [("", "All streams"), (Stream.STDOUT, "stdout"), (Stream.STDERR, "stderr"),
            (Stream.PLATFORM, "platform (REPORT lines)")]


def _presets() -> list[tuple[str, str]]:
    return [(key, label) for key, (_, label) in PRESETS.items()] + [(CUSTOM_RANGE, "Custom")]


def _run_notice(query: LogQuery, function: Function | None, urls: dict[str, str]) -> dict[str, str] | None:
    """Why a correlation id shows nothing: no such run, its logs expired, or it ran outside the range."""
    runs = Run.objects.filter(organization=query.organization, correlation_id=query.correlation_id)
    if function is not None:
        runs = runs.filter(function=function)
    run = runs.select_related("function").first()
    if run is None:
        where = f"{function.name}" if function is not None else "this organization"
        return {"text": f"No run of {where} has the correlation id {query.correlation_id}."}
    if run.logs_expired:
        return {"text": f"The logs of run {query.correlation_id} have expired: they are kept for a limited time, "
                        "the run itself stays."}
    first = run.log_entries.order_by("timestamp", "id").values_list("timestamp", flat=True).first()
    if first is None:
        return {"text": f"Run {query.correlation_id} has written nothing yet."}
    last = run.log_entries.order_by("-timestamp", "-id").values_list("timestamp", flat=True).first()
    start, end = first.replace(microsecond=0), last.replace(microsecond=0) + display.ONE_SECOND
    params = {**query.address_params(), "start": display.utc_param(start), "end": display.utc_param(end)}
    return {
        "text": f"Run {query.correlation_id} wrote its output outside this range.",
        "link": f"{urls['page']}?{urlencode(params)}", "link_text": "Show the run's whole output",
    }


# --- the download ----------------------------------------------------------------------------------


def _download(
    request: HttpRequest,
    *,
    organization: Organization,
    function: Function | None,
    label: str,
) -> HttpResponseBase:
    """Every entry of the query as one JSON array, streamed: the first page or the hundredth, the memory is the same.

    A valid `after` is accepted and ignored: the download is the whole query, every page.
    """
    try:
        query = parse_log_query(request.GET, organization=organization, function=function, now=timezone.now())
    except ValidationError as invalid:
        return JsonResponse({"errors": invalid.message_dict}, status=400)
    response = StreamingHttpResponse(_json_array(query.without_cursor()), content_type="application/json")
    # The body is the entries as they stand; lines of a flood not yet indexed are counted here, and the
    # page the download was started from says so in words.
    response[PENDING_HEADER] = str(lines_pending(query=query))
    response["Content-Disposition"] = f'attachment; filename="{display.download_name(label, query)}"'
    # Logs are the customers' data: keep them out of shared caches.
    response["Cache-Control"] = "private, no-store"
    return response


def _json_array(query: LogQuery) -> Iterator[bytes]:
    yield b"["
    separator = b""
    for chunk in log_stream_chunks(query):
        # One C-speed encode per chunk of entries, without its brackets.
        body = json.dumps(chunk, ensure_ascii=False, separators=(",", ":"))[1:-1]
        yield separator + body.encode()
        separator = b","
    yield b"]"
