"""Read-side queries of the catalogue's pages, kept out of the views."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count, F, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone

from accounts.models import Organization

from .models import AuditEntry, CodeVersion, Function, Run, RunStatus


LIST_SORTS = {
    "name": (Lower("name"),),
    "-name": (Lower("name").desc(),),
    "last_run": (F("last_run_at").desc(nulls_last=True), Lower("name")),
    "-last_run": (F("last_run_at").asc(nulls_first=True), Lower("name")),
    "failures": (F("failures_24h").desc(), Lower("name")),
    "-failures": (F("failures_24h").asc(), Lower("name")),
}


def function_list_rows(
    organization: Organization, *, search: str = "", sort: str = "name", now: datetime | None = None
) -> QuerySet[Function]:
    """The organization's Functions for the List tab, each with its last run and its failures in 24 hours.

    Correlated subqueries on the per-Function indexes: one query for the
    whole page, however many Functions it shows, and sortable by any of LIST_SORTS.
    """
    # The schedule (a reverse one-to-one, named here without importing its app) gives the next run.
    rows = Function.objects.of(organization).select_related("deployed_version", "organization", "schedule")
    search = (search or "").strip()
    if search:
        rows = rows.filter(name__icontains=search)
    last_run = Run.objects.filter(function=OuterRef("pk")).order_by("-created_at", "-id")
    since = (now or timezone.now()) - timedelta(hours=24)
    failures = (
        Run.objects.filter(function=OuterRef("pk"), status__in=[RunStatus.FAILED, RunStatus.TIMED_OUT], created_at__gte=since)
        .order_by().values("function").annotate(n=Count("pk")).values("n")
    )
    return rows.annotate(
        last_run_status=Subquery(last_run.values("status")[:1]),
        last_run_at=Subquery(last_run.values("created_at")[:1]),
        failures_24h=Coalesce(Subquery(failures[:1]), 0),
    ).order_by(*LIST_SORTS.get(sort, LIST_SORTS["name"]))


def function_recent_runs(function: Function, *, limit: int = 5) -> list[Run]:
    return list(function.runs.select_related("triggered_by").order_by("-created_at", "-id")[:limit])


def function_last_error(function: Function) -> Run | None:
    """The Function's latest failed or timed-out run (the partial index of failed runs), or None."""
    return function.runs.filter(status__in=[RunStatus.FAILED, RunStatus.TIMED_OUT]).order_by("-created_at", "-id").first()


def function_ever_succeeded(function: Function) -> bool:
    return function.runs.filter(status=RunStatus.SUCCEEDED).exists()


def function_alerts(function: Function) -> list[tuple]:
    """The alerts that run this Function as an action, by name: [(alert id, name)].

    Through the reverse relation of alerts.AlertAction, so the catalogue never
    imports the alerts app (which depends on it).
    """
    return list(
        function.alert_actions.order_by(Lower("alert__name"), "alert_id")
        .values_list("alert_id", "alert__name")
        .distinct()
    )


def function_versions(function: Function) -> QuerySet[CodeVersion]:
    return function.versions.select_related("uploaded_by").order_by("-number")


def function_history(function: Function) -> QuerySet[AuditEntry]:
    return AuditEntry.objects.filter(function=function).select_related("actor").order_by("-created_at", "-id")


def folder_listing(
    files: list[tuple[str, int]],
    folder: str,
) -> tuple[list[tuple[str, str, int, int]], list[tuple[str, str, int]]]:
    """The direct children of ``folder`` ("" for the root) in a sorted [(path, size)] list.

    Returns (folders, files): folders as [(path, name, file_count, total_size)],
    files as [(path, name, size)], both by name.
    """
    prefix = f"{folder}/" if folder else ""
    folders = {}
    direct = []
    for path, size in files:
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix):]
        head, sep, _ = rest.partition("/")
        if sep:
            count, total = folders.get(head, (0, 0))
            folders[head] = (count + 1, total + size)
        else:
            direct.append((path, rest, size))
    return [(prefix + name, name, count, total) for name, (count, total) in sorted(folders.items())], direct
