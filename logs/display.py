"""Shaping queries and entries for the Logs pages: times in the organization's zone, highlighted messages, names."""

import re
import uuid
from datetime import UTC, timedelta

from django.urls import reverse
from django.utils.html import escape
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

from .queries import CUSTOM_RANGE, PRESETS, LogSort, format_utc, organization_tz, parse_timestamp

__all__ = ["organization_tz"]

ONE_SECOND = timedelta(seconds=1)
_PLACEHOLDER = uuid.UUID(int=0)
# A line may be up to 256 KB; a page of 1,000 such lines would not be readable
# anyway. The download always has the whole line.
DISPLAY_CHARS = 2000


def local_time(value, tz, *, millis=False):
    local = value.astimezone(tz)
    text = local.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{local.microsecond // 1000:03d}" if millis else text


def utc_param(value):
    return format_utc(value, seconds=True)


def highlight(message, text):
    """The message, escaped, cut to DISPLAY_CHARS, with case-insensitive matches of `text` in <mark>."""
    shown, hidden = message[:DISPLAY_CHARS], max(0, len(message) - DISPLAY_CHARS)
    if text:
        pieces, last = [], 0
        for match in re.finditer(re.escape(text), shown, flags=re.IGNORECASE):
            pieces.append(escape(shown[last : match.start()]))
            pieces.append(f"<mark>{escape(match.group())}</mark>")
            last = match.end()
        pieces.append(escape(shown[last:]))
        html = "".join(pieces)
    else:
        html = escape(shown)
    if hidden:
        html += f'<span class="cut">… {hidden:,} more characters (the download has the whole line)</span>'
    return mark_safe(html)


def entries_for_page(entries, *, organization, query, page_url):
    """The page's entries with their local time, highlighted message, and the addresses of their run,
    of the same query narrowed to that run, and (organization-wide) of their Function's Logs tab."""
    tz = organization_tz(organization)
    params = query.address_params()
    params.pop("run", None)
    same_query = urlencode(params)
    # reverse() once per Function, not per entry: a page has up to 1,000 entries.
    urls = {}
    shaped = []
    for entry in entries:
        name = entry["function"]
        if name not in urls:
            keys = {"org_id": organization.id, "name": name}
            urls[name] = (
                reverse("functions:run_detail", kwargs={**keys, "correlation_id": _PLACEHOLDER}),
                reverse("functions:logs", kwargs=keys) + "?" + same_query,
            )
        run_url, function_url = urls[name]
        correlation_id = str(entry["correlation_id"])
        shaped.append({
            **entry,
            "local_time": local_time(entry["timestamp"], tz, millis=True),
            "utc_time": format_utc(entry["timestamp"]),
            "run_url": run_url.replace(str(_PLACEHOLDER), correlation_id),
            "run_filter_url": f"{page_url}?{same_query}&run={correlation_id}",
            "function_url": function_url,
            "message_html": highlight(entry["message"], query.text),
        })
    return shaped


def picker_time(value, tz):
    """A time as the date pickers (<input type=datetime-local>) hold it: local, with a T, to the second."""
    return value.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S")


def form_for_query(query):
    """The form's values for a valid query: times in the organization's zone, as the inputs accept them."""
    tz = organization_tz(query.organization)
    return {
        "range": query.preset or CUSTOM_RANGE,
        "start": picker_time(query.start, tz),
        "end": picker_time(query.end, tz),
        "q": query.text,
        "sort": str(query.sort),
        "run": str(query.correlation_id) if query.correlation_id else "",
        "stream": query.stream,
    }


def form_as_typed(params, tz=UTC):
    """The form's values as the user sent them, so a mistake can be corrected rather than retyped
    (a time the date pickers can hold is shown in them; the error quotes any other)."""
    preset = params.get("range", "")
    if not preset:
        preset = CUSTOM_RANGE if params.get("start") or params.get("end") else "24h"

    def as_picked(raw):
        try:
            return picker_time(parse_timestamp(raw, tz), tz)
        except ValueError:
            return raw

    return {
        "range": preset if preset in PRESETS or preset == CUSTOM_RANGE else CUSTOM_RANGE,
        "start": as_picked(params.get("start", "")),
        "end": as_picked(params.get("end", "")),
        "q": params.get("q", ""),
        "sort": params.get("sort", "") or LogSort.NEWEST,
        "run": params.get("run", ""),
        "stream": params.get("stream", ""),
    }


def range_text(query, tz):
    return f"{local_time(query.start, tz)} to {local_time(query.end, tz)} ({tz})"


def download_name(label, query):
    """e.g. hello-logs-20261125T143000Z-20261126T143000Z.json: the Function (or organization) and the range in UTC."""
    def stamp(value):
        return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")

    safe = re.sub(r"[^A-Za-z0-9_-]", "-", label)[:60]
    return f"{safe}-logs-{stamp(query.start)}-{stamp(query.end)}.json"


def pending_text(lines, *, of_run):
    """What a page says while `lines` of its output are staged and not yet searchable (logs/services.py)."""
    if not lines:
        return ""
    if of_run:
        what = "The last line of this run's output is" if lines == 1 else f"The last {lines:,} lines of this run's output are"
        return f"{what} still being indexed and will appear within a few seconds."
    what = "1 line printed just now is" if lines == 1 else f"{lines:,} lines printed just now are"
    return f"{what} still being indexed and will appear in these results within a few seconds."
