"""The log query service (logs.queries): ranges, sorting, search, cursors, streaming."""

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test.utils import CaptureQueriesContext
from django.db import connection

from logs import queries
from logs.models import LogEntry
from logs.queries import LogSort, log_page, log_query_build, log_stream, parse_log_query
from tests.factories import add_log_lines, make_function, make_run

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def q(function, now=NOW, **params):
    return parse_log_query(params, organization=function.organization, function=function, now=now)


def errors_of(call):
    with pytest.raises(ValidationError) as caught:
        call()
    return caught.value.message_dict


def all_pages(query):
    """Every page's entries, following next_cursor through parse_log_query as the page does."""
    seen, pages = [], 0
    entries, cursor = log_page(query)
    seen += entries
    while cursor:
        pages += 1
        query = log_query_build(
            organization=query.organization, function=query.function, start=query.start, end=query.end,
            text=query.text, sort=query.sort, correlation_id=query.correlation_id, after=cursor,
            limit=query.limit, now=NOW,
        )
        entries, cursor = log_page(query)
        seen += entries
        assert pages < 1000
    return seen


# --- ranges and bad input -----------------------------------------------------------------


def test_the_default_is_the_last_24_hours_newest_first(function):
    query = q(function)
    assert (query.start, query.end, query.sort, query.preset) == (NOW - timedelta(hours=24), NOW, LogSort.NEWEST, "24h")


@pytest.mark.parametrize("preset,delta", [("15m", timedelta(minutes=15)), ("1h", timedelta(hours=1)), ("7d", timedelta(days=7))])
def test_a_preset_range_ends_now(function, preset, delta):
    query = q(function, range=preset, start="2026-01-01T00:00", end="2026-01-02T00:00")
    assert (query.start, query.end) == (NOW - delta, NOW)


def test_a_preset_ends_on_the_next_whole_second(function):
    now = NOW + timedelta(microseconds=250_000)
    query = q(function, now=now, range="1h")
    assert query.end == NOW + timedelta(seconds=1) and query.start == query.end - timedelta(hours=1)


@pytest.mark.parametrize("params", [
    {"range": "1h"}, {"start": "2026-11-26T08:00:00.123456Z", "end": "2026-11-26T09:00:00.5Z", "q": "x", "sort": "time"},
])
def test_the_address_of_a_query_names_exactly_its_range(function, params):
    query = q(function, now=NOW + timedelta(microseconds=7), **params)
    again = q(function, now=NOW + timedelta(minutes=5), **query.address_params())
    assert (again.start, again.end, again.text, again.sort) == (query.start, query.end, query.text, query.sort)


def test_times_without_an_offset_are_in_the_organizations_time_zone(function):
    # The org fixture is in America/Chicago: 08:00 there is 14:00 UTC in November.
    query = q(function, start="2026-11-26T08:00", end="2026-11-26 09:30:15")
    assert query.start == datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    assert query.end == datetime(2026, 11, 26, 15, 30, 15, tzinfo=UTC)
    assert query.preset == ""


def test_times_with_an_offset_or_z_are_taken_as_given(function):
    query = q(function, start="2026-11-26T08:00:00Z", end="2026-11-26T10:00:00+01:00")
    assert query.start == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    assert query.end == datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def test_an_offset_whose_plus_was_read_as_a_space_still_parses(function):
    assert q(function, start="2026-11-26T10:00:00 01:00").start == datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def test_a_missing_start_is_a_day_before_the_end(function):
    query = q(function, end="2026-11-26T06:00:00Z")
    assert query.start == datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


def test_a_range_over_7_days_is_refused(function):
    errors = errors_of(lambda: q(function, start="2026-11-19T11:00:00Z", end="2026-11-26T12:00:00Z"))
    assert errors == {"end": ["A query covers at most 7 days; this range spans 7 days 1 hour."]}


def test_exactly_7_days_is_allowed(function):
    query = q(function, start="2026-11-19T12:00:00Z", end="2026-11-26T12:00:00Z")
    assert query.end - query.start == timedelta(days=7)


def test_an_end_before_the_start_is_refused(function):
    errors = errors_of(lambda: q(function, start="2026-11-26T10:00:00Z", end="2026-11-26T09:00:00Z"))
    assert errors == {"end": ["The end must be after the start."]}


def test_a_start_before_the_retention_window_is_refused(function, settings):
    settings.LOGS_RETENTION_DAYS = 3
    errors = errors_of(lambda: q(function, start="2026-11-22T12:00:00Z", end="2026-11-23T12:00:00Z"))
    assert errors == {"start": ["Logs are kept 3 days: start at 2026-11-23 06:00:00 (America/Chicago) or later."]}


def test_a_start_just_inside_the_grace_after_the_window_is_accepted(function):
    # A "last 7 days" link made a few minutes ago still works.
    query = q(function, start="2026-11-19T11:55:00Z", end="2026-11-26T11:55:00Z")
    assert query.start == datetime(2026, 11, 19, 11, 55, tzinfo=UTC)


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00", "2026-11-26T25:00", "1" * 80, "2026-11-26T10:00:00+25:00"])
def test_malformed_dates_are_refused_with_an_example(function, value):
    errors = errors_of(lambda: q(function, start=value))
    assert list(errors) == ["start"]
    assert "ISO 8601, for example 2026-11-26T14:30:00Z" in errors["start"][0]
    assert "America/Chicago" in errors["start"][0]


@pytest.mark.parametrize("params,field", [({"end": "nope"}, "end"), ({"start": "nope"}, "start"), ({"range": "3w"}, "range")])
def test_one_bad_field_is_the_only_one_reported(function, params, field):
    assert list(errors_of(lambda: q(function, **params))) == [field]


def test_every_bad_field_is_reported_at_once(function):
    errors = errors_of(lambda: q(function, start="nope", end="never", q="x" * 1001, sort="size", run="42", after="zzz"))
    # The cursor is checked against the sort, so with a bad sort it waits for the next try.
    assert set(errors) == {"start", "end", "q", "sort", "run"}
    assert errors["q"] == ["The search text is 1,001 characters long; the limit is 1,000."]
    assert errors["sort"] == ["Sort by -time (newest first), time (oldest first) or message."]
    assert errors["run"][0].startswith("“42” is not a correlation id")


def test_search_text_of_exactly_1000_characters_is_accepted(function):
    assert q(function, q="x" * 1000).text == "x" * 1000


def test_an_unknown_range_is_refused(function):
    assert errors_of(lambda: q(function, range="3w")) == {"range": ["Choose one of the ranges offered, or Custom."]}


def test_the_api_gets_its_own_field_names_and_required_times(function):
    names = {"start": "startTime", "end": "endTime", "q": "filterText", "limit": "limit"}
    errors = errors_of(lambda: log_query_build(
        organization=function.organization, function=function, start=None, end=None, text="x" * 1001, limit=513 * 2,
        names=names, now=NOW,
    ))
    assert errors == {
        "startTime": ["The start time is required."], "endTime": ["The end time is required."],
        "filterText": ["The search text is 1,001 characters long; the limit is 1,000."],
        "limit": ["The limit must be a whole number from 1 to 1,000."],
    }
    query = log_query_build(organization=function.organization, function=function, start=NOW - timedelta(hours=1),
                            end=NOW, limit=512, names=names, now=NOW)
    assert query.limit == 512


def test_a_tampered_cursor_is_refused(function, run):
    add_log_lines(run, *[(NOW - timedelta(seconds=1 + i), f"line {i}") for i in range(3)])
    _, cursor = log_page(log_query_build(
        organization=function.organization, function=function, start=NOW - timedelta(hours=1), end=NOW, limit=1, now=NOW
    ))
    assert cursor
    tampered = cursor[:-3] + ("aaa" if not cursor.endswith("aaa") else "bbb")
    for bad in (tampered, "not-a-cursor", cursor[:10], "x" * 600):
        errors = errors_of(lambda: q(function, after=bad))
        assert errors == {"after": [queries._BAD_CURSOR]}


def test_a_cursor_of_another_sort_is_refused(function, run):
    add_log_lines(run, *[(NOW - timedelta(seconds=1 + i), f"line {i}") for i in range(3)])
    query = log_query_build(organization=function.organization, function=function, start=NOW - timedelta(hours=1),
                            end=NOW, limit=1, now=NOW)
    _, cursor = log_page(query)
    errors = errors_of(lambda: q(function, after=cursor, sort="message"))
    assert "continues a query sorted by “Newest first”, not by “Message (A to Z)”" in errors["after"][0]


def test_a_message_cursor_whose_entry_was_deleted_says_so(function, run):
    add_log_lines(run, *[(NOW - timedelta(seconds=1 + i), f"line {i}") for i in range(3)])
    query = log_query_build(organization=function.organization, function=function, start=NOW - timedelta(hours=1),
                            end=NOW, sort="message", limit=1, now=NOW)
    entries, cursor = log_page(query)
    LogEntry.objects.filter(pk=entries[0]["id"]).delete()
    errors = errors_of(lambda: q(function, after=cursor, sort="message"))
    assert errors["after"][0].startswith("The entry this page ended at no longer exists")


def test_a_message_cursor_cannot_reach_another_organizations_entry(function, run, other_org):
    other_fn = make_function(other_org, "theirs")
    other_run = make_run(other_fn)
    add_log_lines(other_run, (NOW - timedelta(minutes=1), "secret line"))
    query = log_query_build(organization=other_org, function=other_fn, start=NOW - timedelta(hours=1), end=NOW,
                            sort="message", limit=1, now=NOW)
    add_log_lines(other_run, (NOW - timedelta(minutes=1), "another"))
    _, cursor = log_page(query)
    assert cursor
    errors = errors_of(lambda: q(function, after=cursor, sort="message"))
    assert errors["after"][0].startswith("The entry this page ended at no longer exists")


# --- what a query returns -------------------------------------------------------------------


def test_only_the_range_is_returned_start_inclusive_end_exclusive(function, run):
    start, end = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    add_log_lines(run, (start - timedelta(microseconds=1), "before"), (start, "first"), (end - timedelta(microseconds=1), "last"),
        (end, "at end"))
    query = log_query_build(organization=function.organization, function=function, start=start, end=end, now=NOW)
    assert [e["message"] for e in log_page(query).entries] == ["last", "first"]


def test_sorting_by_time_both_ways_and_by_message(function, run):
    add_log_lines(run, (NOW - timedelta(minutes=3), "banana"), (NOW - timedelta(minutes=2), "apple"),
        (NOW - timedelta(minutes=1), "cherry"))
    assert [e["message"] for e in log_page(q(function)).entries] == ["cherry", "apple", "banana"]
    assert [e["message"] for e in log_page(q(function, sort="time")).entries] == ["banana", "apple", "cherry"]
    assert [e["message"] for e in log_page(q(function, sort="message")).entries] == ["apple", "banana", "cherry"]


def test_search_is_case_insensitive_and_takes_wildcards_literally(function, run):
    add_log_lines(run, *[(NOW - timedelta(seconds=1 + i), m) for i, m in enumerate([
        "Quota EXCEEDED for bucket", "quota exceeded again", "all fine", "100% done", "1000 done", "a_b", "axb",
        "back\\slash",
    ])])
    assert {e["message"] for e in log_page(q(function, q="quota exceeded")).entries} == {
        "Quota EXCEEDED for bucket", "quota exceeded again"}
    assert [e["message"] for e in log_page(q(function, q="100%")).entries] == ["100% done"]
    assert [e["message"] for e in log_page(q(function, q="a_b")).entries] == ["a_b"]
    assert [e["message"] for e in log_page(q(function, q="k\\s")).entries] == ["back\\slash"]


def test_the_correlation_id_filter_keeps_one_runs_entries(function, run):
    other = make_run(function)
    add_log_lines(run, (NOW - timedelta(minutes=2), "mine"))
    add_log_lines(other, (NOW - timedelta(minutes=1), "theirs"))
    entries = log_page(q(function, run=str(run.correlation_id))).entries
    assert [(e["message"], e["correlation_id"]) for e in entries] == [("mine", run.correlation_id)]
    assert log_page(q(function, run=str(uuid.uuid4()))).entries == []


def test_a_functions_query_never_returns_another_functions_or_organizations_entries(function, run, org, other_org):
    sibling = make_run(make_function(org, "sibling"))
    stranger = make_run(make_function(other_org, "hello"))
    add_log_lines(run, (NOW - timedelta(minutes=1), "mine"))
    add_log_lines(sibling, (NOW - timedelta(minutes=1), "sibling's"))
    add_log_lines(stranger, (NOW - timedelta(minutes=1), "stranger's"))
    assert [e["message"] for e in log_page(q(function)).entries] == ["mine"]
    # A correlation id of another organization's run finds nothing here.
    assert log_page(q(function, run=str(stranger.correlation_id))).entries == []
    org_wide = parse_log_query({}, organization=org, function=None, now=NOW)
    assert sorted(e["message"] for e in log_page(org_wide).entries) == ["mine", "sibling's"]
    assert {e["function"] for e in log_page(org_wide).entries} == {"hello", "sibling"}


def test_an_entry_carries_what_the_page_and_download_need(function, run):
    add_log_lines(run, (NOW - timedelta(minutes=1), "hi"), attempt=2, stream="stderr")
    (entry,) = log_page(q(function)).entries
    assert entry["message"] == "hi" and entry["attempt"] == 2 and entry["stream"] == "stderr"
    assert entry["correlation_id"] == run.correlation_id and entry["function"] == "hello"
    assert entry["timestamp"] == NOW - timedelta(minutes=1)


# --- cursors ------------------------------------------------------------------------------


@pytest.fixture
def crowded(function, run):
    """60 entries: 20 distinct timestamps, three entries each, messages with many duplicates."""
    lines = []
    for i in range(60):
        ts = NOW - timedelta(minutes=30) + timedelta(seconds=i // 3)
        lines.append((ts, f"message {i % 7}"))
    return add_log_lines(run, *lines)


@pytest.mark.parametrize("sort", ["-time", "time", "message"])
@pytest.mark.parametrize("limit", [1, 2, 3, 7, 59, 60, 61])
def test_pages_continue_exactly_where_they_ended_even_with_equal_keys(function, crowded, sort, limit):
    query = log_query_build(organization=function.organization, function=function, start=NOW - timedelta(hours=1),
                            end=NOW, sort=sort, limit=limit, now=NOW)
    seen = all_pages(query)
    ids = [e["id"] for e in seen]
    assert len(ids) == len(set(ids)) == 60  # no duplicates, no gaps
    key = {
        "-time": lambda e: (-e["timestamp"].timestamp(), -e["id"]),
        "time": lambda e: (e["timestamp"], e["id"]),
        "message": lambda e: (e["message"], e["id"]),
    }[sort]
    assert seen == sorted(seen, key=key)


def test_a_page_ends_with_no_cursor_when_nothing_follows(function, crowded):
    query = log_query_build(organization=function.organization, function=function, start=NOW - timedelta(hours=1),
                            end=NOW, limit=60, now=NOW)
    entries, cursor = log_page(query)
    assert len(entries) == 60 and cursor is None


def test_the_page_limit_is_1000(function, run):
    add_log_lines(run, *[(NOW - timedelta(seconds=1 + i // 10), f"l{i}") for i in range(1005)])
    page = log_page(q(function))
    assert len(page.entries) == 1000 and page.next_cursor
    rest = log_page(q(function, after=page.next_cursor))
    assert len(rest.entries) == 5 and rest.next_cursor is None
    assert {e["id"] for e in page.entries}.isdisjoint({e["id"] for e in rest.entries})


def test_entries_arriving_after_the_first_page_do_not_shift_the_next(function, crowded, run):
    query = log_query_build(organization=function.organization, function=function, start=NOW - timedelta(hours=1),
                            end=NOW, sort="time", limit=10, now=NOW)
    first, cursor = log_page(query)
    add_log_lines(run, (NOW - timedelta(minutes=45), "late but old"))  # sorts before the cursor: must not appear
    second = log_page(q(function, sort="time", after=cursor, start=query.start.isoformat(), end=query.end.isoformat()))
    assert second.entries[0]["id"] not in {e["id"] for e in first}
    assert "late but old" not in [e["message"] for e in second.entries]
    assert second.entries[0]["timestamp"] >= first[-1]["timestamp"]


def test_a_bounded_search_stops_early_and_its_cursor_continues_the_scan(function, run, monkeypatch):
    """SQLite reads at most SQLITE_SCAN_BUDGET entries per search; pages may come up short, never wrong."""
    assert connection.vendor == "sqlite"
    monkeypatch.setattr(queries, "SQLITE_SCAN_BUDGET", 10)
    add_log_lines(run, *[(NOW - timedelta(minutes=50) + timedelta(seconds=i // 2), "needle" if i % 9 == 0 else "hay")
               for i in range(100)])
    for sort in ("-time", "time"):
        query = log_query_build(organization=function.organization, function=function,
                                start=NOW - timedelta(hours=1), end=NOW, text="NEEDLE", sort=sort, limit=3, now=NOW)
        page = log_page(query)
        assert len(page.entries) < 3 and page.next_cursor and page.searched_until
        seen = all_pages(query)
        assert [e["message"] for e in seen] == ["needle"] * 12
        assert len({e["id"] for e in seen}) == 12
        assert seen == sorted(seen, key=lambda e: (e["timestamp"], e["id"]), reverse=sort == "-time")


def test_the_default_query_uses_the_functions_time_index(function, run):
    add_log_lines(run, (NOW - timedelta(minutes=1), "x"))
    with CaptureQueriesContext(connection) as captured:
        log_page(q(function))
    sql = captured.captured_queries[-1]["sql"]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql)
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "log_function_time_idx" in plan


# --- streaming ------------------------------------------------------------------------------


@pytest.mark.parametrize("sort", ["-time", "time", "message"])
def test_the_stream_is_every_page_of_the_query_in_order(function, crowded, sort):
    query = log_query_build(organization=function.organization, function=function, start=NOW - timedelta(hours=1),
                            end=NOW, sort=sort, limit=7, now=NOW)
    pages = all_pages(query)
    streamed = list(log_stream(query, chunk_size=4))
    assert [e["message"] for e in streamed] == [e["message"] for e in pages]
    assert streamed[0] == {
        "timestamp": queries.format_utc(pages[0]["timestamp"]), "correlationId": str(pages[0]["correlation_id"]),
        "attempt": 1, "stream": "stdout", "message": pages[0]["message"], "function": "hello",
    }


def test_the_stream_ignores_the_cursor_and_starts_at_the_first_page(function, crowded):
    query = log_query_build(organization=function.organization, function=function, start=NOW - timedelta(hours=1),
                            end=NOW, limit=5, now=NOW)
    _, cursor = log_page(query)
    resumed = q(function, after=cursor, start=query.start.isoformat(), end=query.end.isoformat())
    assert len(list(log_stream(resumed))) == 60


def test_timestamps_in_the_download_are_rfc3339_utc_with_milliseconds():
    assert queries.format_utc(datetime(2026, 11, 26, 1, 2, 3, 456789, tzinfo=UTC)) == "2026-11-26T01:02:03.456Z"


def test_entries_of_a_run_deleted_while_it_wrote_are_left_out_of_pages_and_downloads(function, run):
    # Nothing in the database stops a write racing a deletion (no foreign key on this table, see logs/models.py).
    add_log_lines(run, (NOW - timedelta(minutes=2), "kept"))
    LogEntry.objects.create(organization_id=function.organization_id, function_id=function.id, run_id=run.id + 999,
                            attempt=1, timestamp=NOW - timedelta(minutes=1), stream="stdout", message="orphan")
    assert [e["message"] for e in log_page(q(function)).entries] == ["kept"]
    assert [e["message"] for e in log_stream(q(function))] == ["kept"]


def test_the_stream_continues_across_chunks_with_equal_timestamps(function, run):
    add_log_lines(run, *[(NOW - timedelta(minutes=5), f"same time {i:03d}") for i in range(23)])
    for sort in ("-time", "time", "message"):
        streamed = [e["message"] for e in log_stream(q(function, sort=sort), chunk_size=5)]
        assert sorted(streamed) == [f"same time {i:03d}" for i in range(23)]


# --- the message order and its index ---------------------------------------------------------


def long_and_equal_messages(run):
    """Messages that share the index's whole key (MESSAGE_KEY_LENGTH characters) and differ after
    it, equal messages (told apart by id), a prefix of another, case, non-ASCII and a long line."""
    key = "k" * queries.MESSAGE_KEY_LENGTH
    messages = [
        key + "b", key + "a", key, key + "a", key + "ab", key[:-1], key[:-1] + "l", key + "é", key + "Z",
        "same", "same", "same", "Same", "sam", "", " leading space", "ü umlaut", "u plain", "日本語", "😀 emoji",
        "x" * 5000 + "2", "x" * 5000 + "1", "x" * 5000, "tab\there", "back\\slash", "zzz",
    ]
    lines = [(NOW - timedelta(minutes=30, seconds=i % 4), message) for i, message in enumerate(messages)]
    return add_log_lines(run, *lines)


@pytest.mark.parametrize("org_wide", [False, True])
@pytest.mark.parametrize("walk", [False, True])
@pytest.mark.parametrize("limit", [1, 2, 3, 5, 1000])
def test_the_message_order_is_by_code_point_then_id_across_pages(function, run, monkeypatch, org_wide, walk, limit):
    """(message, id) in code point order, the order both databases give, whichever way the page is
    found: the prefix index, ties sorted by the whole message, equal messages by id, every page
    continuing exactly (SQLite walks the message index only for a range with many entries)."""
    monkeypatch.setattr(queries, "SQLITE_MESSAGE_WALK_FROM", 1 if walk else 10**9)
    entries = long_and_equal_messages(run)
    query = log_query_build(organization=function.organization, function=None if org_wide else function,
                            start=NOW - timedelta(hours=1), end=NOW, sort="message", limit=limit, now=NOW)
    seen = all_pages(query)
    assert [(e["message"], e["id"]) for e in seen] == sorted((e.message, e.id) for e in entries)


def test_an_organizations_message_order_walks_the_message_index_only_for_a_range_with_many_entries(
    function, run, monkeypatch
):
    add_log_lines(run, *[(NOW - timedelta(minutes=30), f"line {i}") for i in range(30)])
    query = log_query_build(organization=function.organization, function=None, start=NOW - timedelta(hours=1),
                            end=NOW, sort="message", limit=10, now=NOW)
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's planner chooses with its statistics")
    monkeypatch.setattr(queries, "SQLITE_MESSAGE_WALK_FROM", 31)
    assert not queries._walks_message_index(query)
    monkeypatch.setattr(queries, "SQLITE_MESSAGE_WALK_FROM", 30)
    assert queries._walks_message_index(query)
    with CaptureQueriesContext(connection) as captured:
        entries, _ = log_page(query)
    assert [e["message"] for e in entries] == sorted(f"line {i}" for i in range(30))[:10]
    page_sql = captured.captured_queries[-1]["sql"]
    with connection.cursor() as cursor:
        plan = " ".join(str(row) for row in cursor.execute(f"EXPLAIN QUERY PLAN {page_sql}").fetchall())
    assert "log_org_message_idx" in plan, plan
    # A search reads the whole range either way, in the time index's order as before.
    assert not queries._walks_message_index(replace(query, text="line"))
    # A Function's own entries are always sorted from its time index.
    assert not queries._walks_message_index(
        log_query_build(organization=function.organization, function=function, start=NOW - timedelta(hours=1),
                        end=NOW, sort="message", now=NOW))
