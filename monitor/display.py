"""What the Monitor tab shows, assembled from the figures (monitor.queries) into charts and tiles."""

from urllib.parse import urlencode

from . import charts
from .queries import TOTAL

OUTCOMES = (("succeeded", "Succeeded"), ("failed", "Failed"), ("timed_out", "Timed out"), ("dropped", "Dropped"))


def bucket_links(runs_url, buckets):
    """Each bucket's Runs tab URL (its start and end as UTC instants); None outside retention."""
    return [
        f"{runs_url}?{urlencode({'start': b.start.isoformat(), 'end': b.end.isoformat()})}" if b.retained else None
        for b in buckets
    ]


def _stats_series(figures, buckets, attribute, labels=("p50", "p95", "max")):
    keys = {"p50": "p50", "p95": "p95", "max": "max"}
    return [
        charts.Series(f"line-{label}", label, [getattr(getattr(figures[b.index], attribute), keys[label]) for b in buckets])
        for label in labels
    ]


def monitor_charts(*, figures, buckets, links, timeout_ms, memory_mb):
    def values(getter):
        return [getter(figures[b.index]) for b in buckets]

    total = figures[TOTAL]
    made = [
        charts.Chart(
            "outcomes", "Runs by outcome", "runs", "bars",
            [charts.Series(key, label, values(lambda f, k=key: getattr(f, k))) for key, label in OUTCOMES],
            empty="No runs in this range.",
        ),
        charts.Chart(
            "success", "Success rate", "%", "lines",
            [charts.Series("line-rate", "Succeeded", values(lambda f: f.success_rate))],
            empty="No run finished in this range.",
            note="Succeeded out of the runs that ran to an end; dropped runs never ran and are not counted.",
        ),
        charts.Chart(
            "duration", "Duration", "ms", "lines", _stats_series(figures, buckets, "duration"),
            empty="No run finished in this range.", limit=timeout_ms,
            limit_label=f"timeout {charts.format_value(timeout_ms, 'ms')}",
            note=_against("The slowest run took", total.duration.max, timeout_ms, "ms", "of the timeout"),
        ),
        charts.Chart(
            "memory", "Peak memory", "MB", "lines", _stats_series(figures, buckets, "memory"),
            empty="No run reported its memory in this range.", limit=memory_mb,
            limit_label=f"limit {charts.format_value(memory_mb, 'MB')}",
            note=_against("The hungriest run used", total.memory.max, memory_mb, "MB", "of the memory limit"),
        ),
        charts.Chart(
            "attempts", "Attempts per run", "runs", "bars",
            [
                charts.Series("attempts-1", "1 attempt", values(lambda f: f.one_attempt)),
                charts.Series("attempts-2", "2 attempts", values(lambda f: f.two_attempts)),
                charts.Series("attempts-3", "3 attempts", values(lambda f: f.three_attempts)),
            ],
            empty="No run finished in this range.",
            note="A run is retried up to two more times when it raises, crashes or times out.",
        ),
        charts.Chart(
            "starts", "Cold and warm starts", "attempts", "bars",
            [
                charts.Series("cold", "Cold starts", values(lambda f: f.cold.count)),
                charts.Series("warm", "Warm starts", values(lambda f: f.warm.count)),
            ],
            empty="No attempt recorded how it started in this range.",
            note="A warm start forks from an environment that already loaded the code; a cold one starts a fresh process.",
        ),
        charts.Chart(
            "startup", "Start-up time (median)", "ms", "lines",
            [
                charts.Series("cold-line", "Cold p50", values(lambda f: f.cold.p50)),
                charts.Series("warm-line", "Warm p50", values(lambda f: f.warm.p50)),
            ],
            empty="No attempt recorded its start-up time in this range.",
            note="From the worker taking the run to the handler's process starting.",
        ),
        charts.Chart(
            "lag", "Scheduled-run lag", "ms", "lines", _stats_series(figures, buckets, "lag"),
            empty="No scheduled run started in this range.",
            note="From the scheduled instant to the run's start.",
        ),
    ]
    return [charts.build(c, buckets, links, maximum=100 if c.unit == "%" else None) for c in made]


def _against(prefix, value, limit, unit, what):
    if value is None or not limit:
        return ""
    return f"{prefix} {charts.format_value(value, unit)}, {100 * value / limit:.1f} % {what}."


def summary_tiles(total, *, timeout_ms, memory_mb):
    def pct(value, limit):
        return f"{100 * value / limit:.1f} % of the limit" if value is not None and limit else ""

    retried = f"{100 * total.retried / (total.one_attempt + total.retried):.1f} % retried" if (
        total.one_attempt + total.retried) else ""
    starts = total.cold.count + total.warm.count
    return [
        ("Runs", f"{total.total:,}", f"{total.failed + total.timed_out:,} failed or timed out, {total.dropped:,} dropped"),
        ("Success rate", charts.format_value(total.success_rate, "%"), f"of {total.finished:,} finished runs"),
        ("Duration p95", charts.format_value(total.duration.p95, "ms"), pct(total.duration.p95, timeout_ms)),
        ("Peak memory p95", charts.format_value(total.memory.p95, "MB"), pct(total.memory.p95, memory_mb)),
        ("Attempts per run", f"{total.attempts_per_run:.2f}" if total.attempts_per_run else "—", retried),
        ("Cold starts", f"{100 * total.cold.count / starts:.0f} %" if starts else "—",
         f"p50 {charts.format_value(total.cold.p50, 'ms')} cold, {charts.format_value(total.warm.p50, 'ms')} warm" if starts else ""),
        ("Scheduled lag p95", charts.format_value(total.lag.p95, "ms"), f"of {total.lag.count:,} scheduled runs" if total.lag.count else ""),
    ]
