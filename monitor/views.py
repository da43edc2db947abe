"""The Monitor tab of a Function, and a member's opt-in to failure e-mails. Thin: see display, queries, services."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.access import function_for
from functions.run_filters import runs_retention_cutoff
from functions.run_services import run_timeout_seconds

from . import display, services
from .models import FailureSubscription
from .queries import TOTAL, monitor_figures
from .ranges import RANGES, RangeError, parse_range, range_buckets


@login_required
def function_monitor(request, org_id, name):
    function, can_write = function_for(request.user, org_id, name)
    subscribers = list(
        FailureSubscription.objects.filter(function=function).select_related("user").order_by("user__email")
    )
    context = {
        "function": function, "can_write": can_write, "tab": "monitor", "ranges": RANGES.values(),
        "subscribers": subscribers, "subscribed": any(s.user_id == request.user.pk for s in subscribers),
        "retention_days": settings.RUNS_RETENTION_DAYS, "notice_minutes": settings.FAILURE_NOTICE_MINUTES,
        "oldest_kept": timezone.localtime(runs_retention_cutoff()),
    }
    try:
        range_ = parse_range(request.GET.get("range"))
    except RangeError as problem:
        return render(request, "monitor/function_monitor.html", {**context, "error": str(problem)}, status=400)
    buckets = range_buckets(range_, zone=timezone.get_current_timezone())
    figures = monitor_figures(function=function, buckets=buckets)
    timeout_ms = run_timeout_seconds(function) * 1000
    memory_mb = settings.FUNCTIONS_MEMORY_MB
    links = display.bucket_links(reverse("functions:runs", kwargs={"org_id": org_id, "name": function.name}), buckets)
    return render(
        request,
        "monitor/function_monitor.html",
        {
            **context, "range": range_, "buckets": buckets,
            "charts": display.monitor_charts(
                figures=figures, buckets=buckets, links=links, timeout_ms=timeout_ms, memory_mb=memory_mb
            ),
            "tiles": display.summary_tiles(figures[TOTAL], timeout_ms=timeout_ms, memory_mb=memory_mb),
            "outside_retention": not all(b.retained for b in buckets),
        },
    )


@login_required
@require_POST
def failure_subscription(request, org_id, name):
    """Any member who may read the Function may ask for (or stop) its failure e-mails, for themselves only."""
    function, _ = function_for(request.user, org_id, name)
    subscribe = request.POST.get("subscribe") == "1"
    services.failure_subscription_set(function=function, user=request.user, subscribed=subscribe)
    if subscribe:
        messages.success(request, f"You will get an e-mail when a run of {function.name} fails after its last attempt.")
    else:
        messages.success(request, f"You will no longer get e-mails about failed runs of {function.name}.")
    return redirect(reverse("functions:monitor", kwargs={"org_id": org_id, "name": function.name}) + _range_query(request))


def _range_query(request):
    value = request.POST.get("range", "")
    return f"?range={value}" if value in RANGES else ""
