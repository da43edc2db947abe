"""The Schedule tab: write roles edit, read roles look, others get 403 (non-members 404).

Thin on purpose: the rows the browser sent become items, and
schedules.services decides; its errors come back beside the row they concern.
"""

import re
import zoneinfo

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from accounts.access import function_for

from . import rules, services

DAY_LABELS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
BLANK_ENTRY_ROWS = 1
BLANK_CRON_ROWS = 1


def _zones():
    return sorted(zoneinfo.available_timezones())


def _entry_row(days=(False,) * 7, time_text="", errors=()):
    return {"days": [{"index": i, "label": label, "on": on} for i, (label, on) in enumerate(zip(DAY_LABELS, days))],
            "time": time_text, "errors": list(errors)}


def _time_text(ms):
    seconds = ms // 1000
    text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}"
    return text + (f":{seconds % 60:02d}" if seconds % 60 else "")


def _rows_from_schedule(schedule):
    entries, crons = [], []
    for item in services.schedule_items(schedule):
        if isinstance(item, rules.Entry):
            entries.append(_entry_row(item.days_of_week, _time_text(item.time_since_midnight_ms)))
        else:
            crons.append({"text": item.expression, "errors": []})
    return entries, crons


def _rows_from_post(post):
    """(entry rows, cron rows) as typed, without the rows left blank or marked for removal."""
    entries, crons = [], []
    for n in range(int(post.get("entry_count") or 0)):
        days = tuple(bool(post.get(f"entry-{n}-day-{d}")) for d in range(7))
        time_text = post.get(f"entry-{n}-time", "").strip()
        if post.get(f"entry-{n}-remove") or (not any(days) and not time_text):
            continue
        entries.append(_entry_row(days, time_text))
    for n in range(int(post.get("cron_count") or 0)):
        text = " ".join(post.get(f"cron-{n}", "").split())
        if post.get(f"cron-{n}-remove") or not text:
            continue
        crons.append({"text": text, "errors": []})
    return entries, crons


def _items_from_rows(entries, crons):
    """The service's items, in row order (entries first), and the row each item index came from."""
    items, rows = [], []
    for row in entries:
        days = [d["on"] for d in row["days"]]
        match = _TIME_RE.match(row["time"])
        ms = None
        if match:
            ms = ((int(match[1]) * 60 + int(match[2])) * 60 + int(match[3] or 0)) * 1000
        elif row["time"]:
            row["errors"].append(f"“{row['time']}” is not a time: write it as HH:MM (24-hour), for example 09:15.")
        items.append({"kind": "entry", "daysOfWeek": days, "timeSinceMidnightMs": ms})
        rows.append(row)
    for row in crons:
        items.append({"kind": "cron", "expression": row["text"]})
        rows.append(row)
    return items, rows


@login_required
def function_schedule(request, org_id, name):
    function, can_write = function_for(request.user, org_id, name, write=request.method == "POST")
    schedule = services.schedule_of(function)
    form_errors, timezone_errors = [], []
    status = 200
    if request.method == "POST":
        entries, crons = _rows_from_post(request.POST)
        enabled = bool(request.POST.get("enabled"))
        tz_choice = request.POST.get("timezone", "org").strip() or "org"
        if "add_entry" in request.POST or "add_cron" in request.POST:
            # Another blank row, nothing saved: the rows typed so far stay as they are.
            if "add_entry" in request.POST:
                entries.append(_entry_row())
            else:
                crons.append({"text": "", "errors": []})
        else:
            items, rows = _items_from_rows(entries, crons)
            if not any(row["errors"] for row in rows):
                try:
                    services.schedule_set(
                        function=function, enabled=enabled, timezone_name=None if tz_choice == "org" else tz_choice,
                        items=items, actor=request.user,
                    )
                except ValidationError as error:
                    for field, messages_ in error.message_dict.items():
                        index = re.fullmatch(r"items\[(\d+)\]", field)
                        if index and int(index[1]) < len(rows):
                            rows[int(index[1])]["errors"] += messages_
                        elif field == "timezone":
                            timezone_errors += messages_
                        else:
                            form_errors += messages_
                else:
                    messages.success(request, f"Saved the schedule of {function.name}: changes apply from its next run.")
                    return redirect("functions:schedule", org_id=org_id, name=function.name)
            status = 400
        form = {"enabled": enabled, "timezone": tz_choice, "entries": entries, "crons": crons}
    else:
        entries, crons = _rows_from_schedule(schedule)
        form = {
            "enabled": schedule.enabled, "timezone": schedule.timezone or "org",
            "entries": entries + [_entry_row() for _ in range(BLANK_ENTRY_ROWS)],
            "crons": crons + [{"text": "", "errors": []} for _ in range(BLANK_CRON_ROWS)],
        }
    zone = services.schedule_zone(schedule)
    described = services.schedule_describe(schedule)
    context = {
        "function": function, "can_write": can_write, "tab": "schedule",
        "schedule": schedule, "zone": zone.key, "form": form, "form_errors": form_errors,
        "timezone_errors": timezone_errors, "zones": _zones() if can_write else (),
        "organization_zone": function.organization.timezone,
        "described": described,
        "preview": services.schedule_preview(schedule=schedule),
        "dst_notes": [(described[note.item_index][1], note) for note in services.schedule_dst_notes(schedule=schedule)],
    }
    return render(request, "schedules/schedule.html", context, status=status)
