import json
from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.commands import function_named, organization_named
from schedules import rules, services

ACTOR_LABEL = "manage.py schedule_function"


def error_text(error, item_flags):
    """A ValidationError as one line, each message led by the option it concerns."""
    parts = []
    for field, messages in error.message_dict.items():
        flag = item_flags.get(field) or {"timezone": "--timezone", "enabled": "--enable/--disable"}.get(field)
        parts += [f"{flag}: {m}" if flag else m for m in messages]
    return " ".join(parts)


class Command(BaseCommand):
    help = (
        "Set a Function's schedule (given --entry/--cron replace all items; other options keep what is set) or "
        "just show it; prints {function, enabled, timezone, entries, cron, nextRuns} as JSON."
    )

    def add_arguments(self, parser):
        parser.add_argument("function", metavar="FN", help="the Function's name")
        parser.add_argument("--org", required=True, help="the organization's name")
        parser.add_argument(
            "--entry", action="append", default=[], metavar="DAYS@HH:MM[:SS]",
            help="an entry: DAYS is daily, weekdays, weekends, or names and ranges like mon,wed,fri or mon-fri",
        )
        parser.add_argument("--cron", action="append", default=[], metavar="EXPR", help="a 5-field cron expression")
        parser.add_argument("--timezone", metavar="ZONE|org", help="an IANA zone, or org to follow the organization's")
        state = parser.add_mutually_exclusive_group()
        state.add_argument("--enable", action="store_true")
        state.add_argument("--disable", action="store_true")
        parser.add_argument("--clear", action="store_true", help="remove every entry and cron expression")
        parser.add_argument("--preview", type=int, default=services.PREVIEW_COUNT, metavar="N",
                            help="how many next occurrences to print (default 10)")
        parser.add_argument("--from", dest="start", metavar="ISO8601",
                            help="preview from this time instead of now (without an offset: the schedule's zone)")

    def handle(self, *args, function, org, entry, cron, timezone, enable, disable, clear, preview, start, **options):
        if not 0 <= preview <= 1000:
            raise CommandError("--preview must be between 0 and 1000.")
        if clear and (entry or cron):
            raise CommandError("--clear removes every item: give it without --entry and --cron.")
        target = function_named(organization_named(org), function)
        items, item_flags = services.UNCHANGED, {}
        if entry or cron:
            items = []
            for text in entry:
                try:
                    items.append(rules.parse_entry_text(text).as_json())
                except rules.ScheduleError as exc:
                    raise CommandError("--entry: " + " ".join(m for _, m in exc.errors)) from None
                item_flags[f"items[{len(items) - 1}]"] = "--entry"
            for text in cron:
                items.append(text)
                item_flags[f"items[{len(items) - 1}]"] = "--cron"
            item_flags["items"] = "--entry/--cron"
        elif clear:
            items = []
        enabled = True if enable else False if disable else services.UNCHANGED
        tz = services.UNCHANGED if timezone is None else (None if timezone.strip().lower() == "org" else timezone)
        if items is not services.UNCHANGED or enabled is not services.UNCHANGED or tz is not services.UNCHANGED:
            try:
                schedule = services.schedule_set(
                    function=target, enabled=enabled, timezone_name=tz, items=items, actor=None,
                    actor_label=ACTOR_LABEL,
                )
            except ValidationError as error:
                raise CommandError(error_text(error, item_flags)) from None
        else:
            schedule = services.schedule_of(target)
        zone = services.schedule_zone(schedule)
        after = self._start(start, zone)
        parsed = services.schedule_items(schedule)
        next_runs = [
            instant.astimezone(zone).isoformat(timespec="seconds")
            for instant in services.schedule_occurrences(schedule=schedule, after=after, count=preview)
        ] if preview else []
        self.stdout.write(json.dumps({
            "function": target.name,
            "enabled": schedule.enabled,
            "timezone": zone.key,
            "entries": [
                {"daysOfWeek": list(i.days_of_week), "timeSinceMidnightMs": i.time_since_midnight_ms,
                 "description": rules.describe(i)}
                for i in parsed if isinstance(i, rules.Entry)
            ],
            "cron": [i.expression for i in parsed if isinstance(i, rules.Cron)],
            "nextRuns": next_runs,
        }))

    def _start(self, text, zone):
        if text is None:
            return None
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise CommandError(
                f"--from {text!r} is not an ISO 8601 time: write it like 2026-03-08T01:00:00-08:00 or 2026-03-08T01:00."
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        return moment
