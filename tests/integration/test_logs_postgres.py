"""Logs on the real PostgreSQL: the trigram index and that searches use it, ILIKE semantics,
cursor continuation, the streamed download, COPY ingestion and retention."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from logs.models import LogEntry
from logs.queries import _ORDER, _PAGE_FIELDS, _in_range, _matching, log_page, log_query_build, log_stream, parse_log_query
from logs.search import MessageContains
from logs.services import log_entries_write, logs_prune
from tests.factories import add_log_lines, make_run

pytestmark = pytest.mark.django_db


def test_the_migrations_made_a_trigram_index_and_no_foreign_keys():
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'log_message_trgm_idx'")
        (definition,) = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'logs_logentry'::regclass AND contype = 'f'"
        )
        (foreign_keys,) = cursor.fetchone()
    assert "USING gin (message gin_trgm_ops)" in definition
    assert foreign_keys == 0


def test_a_rare_search_over_the_organization_uses_the_trigram_index(org, function, run):
    now = timezone.now()
    rows = [(now - timedelta(minutes=i % 5000, microseconds=i), "stdout", f"INFO vehicle {i:06d} synced in {i % 97} ms")
            for i in range(60_000)]
    rows[1234] = (rows[1234][0], "stderr", "ERROR quota-exceeded for bucket 7")
    log_entries_write(run=run, attempt=1, rows=rows)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE logs_logentry")
    query = parse_log_query({"q": "QUOTA-EXCEEDED", "range": "7d"}, organization=org, function=None)
    entries = log_page(query).entries
    assert [e["message"] for e in entries] == ["ERROR quota-exceeded for bucket 7"]
    # The service's own SQL, explained.
    sql_plan = (
        _in_range(_matching(query), query, None, None).order_by(*_ORDER[query.sort])
        .filter(MessageContains(F("message"), query.text)).values_list(*_PAGE_FIELDS)[:1001].explain()
    )
    assert "log_message_trgm_idx" in sql_plan, sql_plan


def test_search_is_ilike_with_wildcards_taken_literally(function, run):
    now = timezone.now()
    add_log_lines(run, *[(now - timedelta(seconds=1 + i), m) for i, m in enumerate(
        ["ÜBER Straße", "über straße", "100% done", "1000 done", "a_b", "axb", "back\\slash", "plain"])])
    query = lambda text: parse_log_query({"q": text}, organization=function.organization, function=function)  # noqa: E731
    assert {e["message"] for e in log_page(query("über")).entries} == {"ÜBER Straße", "über straße"}
    assert [e["message"] for e in log_page(query("100%")).entries] == ["100% done"]
    assert [e["message"] for e in log_page(query("a_b")).entries] == ["a_b"]
    assert [e["message"] for e in log_page(query("k\\s")).entries] == ["back\\slash"]


@pytest.mark.parametrize("sort", ["-time", "time", "message"])
def test_cursors_continue_without_duplicates_or_gaps(function, run, sort):
    base = timezone.now() - timedelta(minutes=30)
    # Microsecond ties: PostgreSQL keeps them exactly, as SQLite does.
    add_log_lines(run, *[(base + timedelta(microseconds=i // 4), f"m{i % 9}") for i in range(250)])
    query = log_query_build(organization=function.organization, function=function, start=base - timedelta(minutes=1),
                            end=base + timedelta(minutes=1), sort=sort, limit=17)
    seen, cursor = [], None
    while True:
        page = log_page(log_query_build(
            organization=function.organization, function=function, start=query.start, end=query.end, sort=sort,
            limit=17, after=cursor,
        ))
        seen += page.entries
        cursor = page.next_cursor
        if cursor is None:
            break
    ids = [e["id"] for e in seen]
    assert len(ids) == len(set(ids)) == 250
    order = {"-time": ("-timestamp", "-id"), "time": ("timestamp", "id"), "message": ("message", "id")}[sort]
    assert ids == list(LogEntry.objects.filter(run=run).order_by(*order).values_list("id", flat=True))


def test_the_download_streams_every_entry_of_the_query(admin_client, function, run):
    now = timezone.now()
    add_log_lines(run, *[(now - timedelta(minutes=50) + timedelta(milliseconds=i), f"line {i} {'hit' if i % 3 == 0 else ''}")
               for i in range(7000)])
    url = reverse("functions:logs_json", kwargs={"org_id": function.organization_id, "name": "hello"})
    response = admin_client.get(url, {"q": "HIT", "sort": "time"})
    assert response.status_code == 200 and response.streaming
    got = json.loads(b"".join(response.streaming_content))
    query = parse_log_query({"q": "HIT", "sort": "time"}, organization=function.organization, function=function)
    assert len(got) == 2334
    assert got == list(log_stream(query))


def test_copy_ingestion_keeps_times_and_replaces_nul(run):
    shared = datetime(2026, 11, 26, 1, 2, 3, 456789, tzinfo=UTC)
    log_entries_write(run=run, attempt=3, rows=[(shared, "stdout", "a\x00b"), (shared, "stderr", "ünïcode ' \" \\ \t")])
    assert list(LogEntry.objects.order_by("id").values_list("attempt", "timestamp", "stream", "message")) == [
        (3, shared, "stdout", "a\ufffdb"), (3, shared, "stderr", "ünïcode ' \" \\ \t"),
    ]


def test_retention_deletes_in_batches_and_marks_runs(function):
    now = timezone.now()
    old = make_run(function, finished_at=now - timedelta(days=8))
    new = make_run(function, finished_at=now)
    add_log_lines(old, *[(now - timedelta(days=8, seconds=i), "old") for i in range(25)])
    add_log_lines(new, (now - timedelta(minutes=1), "new"))
    result = logs_prune(now=now, batch_size=10, pause=0)
    assert (result.deleted, result.batches, result.runs_marked) == (25, 3, 1)
    assert list(LogEntry.objects.values_list("message", flat=True)) == ["new"]
    old.refresh_from_db()
    assert old.logs_expired


def test_copy_ingestion_stores_odd_characters_and_very_long_lines_exactly(run):
    """The COPY text is built for a whole batch: tabs, backslashes, newlines, carriage returns, escapes
    that look like COPY's own (\\N, \\.), non-ASCII and 256 KB lines come back exactly (NUL as U+FFFD)."""
    from tests.unit.test_logs_capture import test_odd_characters_and_very_long_lines_are_stored_exactly

    test_odd_characters_and_very_long_lines_are_stored_exactly(run)


@pytest.mark.parametrize("limit", [1, 3, 1000])
def test_the_message_order_is_by_code_point_then_id_on_postgresql(function, run, limit):
    from tests.unit.test_logs_queries import NOW, all_pages, long_and_equal_messages

    entries = long_and_equal_messages(run)
    for org_wide in (False, True):
        query = log_query_build(organization=function.organization, function=None if org_wide else function,
                                start=NOW - timedelta(hours=1), end=NOW, sort="message", limit=limit, now=NOW)
        seen = all_pages(query)
        assert [(e["message"], e["id"]) for e in seen] == sorted((e.message, e.id) for e in entries)


def test_an_organizations_week_sorted_by_message_reads_the_message_index(org, function, run):
    """The index holds a prefix: a line far over PostgreSQL's index entry limit (about 2.7 KB) is stored;
    the organization-wide message order of a week then walks the index instead of sorting the week."""
    now = timezone.now()
    rows = [(now - timedelta(minutes=i % 5000, microseconds=i), "stdout", f"INFO vehicle {i * 7919 % 60_000:06d} synced")
            for i in range(60_000)]
    rows[10] = (rows[10][0], "stdout", "é" * 100_000)  # 200 KB of UTF-8
    log_entries_write(run=run, attempt=1, rows=rows)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE logs_logentry")
    query = parse_log_query({"sort": "message", "range": "7d"}, organization=org, function=None)
    entries = log_page(query).entries
    assert [e["message"] for e in entries] == sorted(row[2] for row in rows)[:1000]
    plan = _in_range(_matching(query), query, None, None).order_by(*_ORDER[query.sort]).values_list(
        *_PAGE_FIELDS)[:1001].explain()
    assert "log_org_message_idx" in plan and "Incremental Sort" in plan, plan
