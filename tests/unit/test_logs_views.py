"""The Logs pages and downloads: roles, the query in the address, bad input, load more, the JSON download."""

import json
import re
import zoneinfo
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone

from logs.models import LogEntry
from logs.queries import log_stream, parse_log_query
from tests.conftest import READ_STATUS, READERS, ROLES, WRITERS
from tests.factories import add_log_lines, make_function, make_run

@pytest.fixture
def now():
    return timezone.now()


def fn_url(view, function):
    return reverse(f"functions:{view}", kwargs={"org_id": function.organization_id, "name": function.name})


def org_url(view, org):
    return reverse(f"logs:{view}", kwargs={"org_id": org.id})


def download(response):
    assert response.status_code == 200, response.content[:300]
    return json.loads(b"".join(response.streaming_content))


# --- who may look -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("view", ["logs", "logs_json"])
def test_function_logs_are_for_readers_of_functions_only(member, function, run, now, role, view):
    add_log_lines(run, (now - timedelta(minutes=1), "the line"))
    response = member(role).get(fn_url(view, function))
    assert response.status_code == READ_STATUS[role]
    if response.status_code == 200 and view == "logs":
        assert "the line" in response.content.decode()
    elif response.status_code == 200:
        assert [e["message"] for e in download(response)] == ["the line"]
    else:
        assert b"the line" not in (response.content if not response.streaming else b"")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("view", ["org", "org_json"])
def test_organization_logs_are_for_readers_of_functions_only(member, org, function, run, now, role, view):
    add_log_lines(run, (now - timedelta(minutes=1), "the line"))
    response = member(role).get(org_url(view, org))
    assert response.status_code == READ_STATUS[role]
    if response.status_code != 200:
        assert b"the line" not in response.content


@pytest.mark.parametrize("role", ROLES)
def test_another_organizations_logs_are_a_404_for_its_non_members(member, other_org, role):
    theirs = make_function(other_org, "theirs")
    add_log_lines(make_run(theirs), (timezone.now() - timedelta(minutes=1), "their secret"))
    for url in (fn_url("logs", theirs), fn_url("logs_json", theirs), org_url("org", other_org), org_url("org_json", other_org)):
        response = member(role).get(url)
        # Only the outsider is a member (a Full Admin) of other_org.
        assert response.status_code == (200 if role == "outsider" else 404)
        if role != "outsider":
            assert b"their secret" not in response.content


@pytest.mark.parametrize("role", READERS + WRITERS)
def test_the_functions_tabs_link_to_the_organization_logs(member, org, role):
    page = member(role).get(reverse("functions:list", kwargs={"org_id": org.id})).content.decode()
    assert f'href="{org_url("org", org)}"' in page


def test_the_logs_pages_only_answer_get(admin_client, function, org):
    assert admin_client.post(fn_url("logs", function)).status_code == 405
    assert admin_client.post(org_url("org_json", org)).status_code == 405


# --- the page -------------------------------------------------------------------------------------


def test_the_logs_tab_shows_the_last_24_hours_newest_first_in_the_organizations_zone(admin_client, function, run, now):
    add_log_lines(run, (now - timedelta(hours=25), "line-too-old"), (now - timedelta(hours=2), "line-two-hours-ago"),
        (now - timedelta(minutes=5), "line-five-minutes-ago"))
    page = admin_client.get(fn_url("logs", function)).content.decode()
    assert "line-too-old" not in page
    assert page.index("line-five-minutes-ago") < page.index("line-two-hours-ago")
    local = (now - timedelta(minutes=5)).astimezone(zoneinfo.ZoneInfo("America/Chicago"))
    assert local.strftime("%Y-%m-%d %H:%M:%S.") in page
    assert "(America/Chicago)" in page
    assert 'logs/" class="active">Logs</a>' in page
    run_url = reverse("functions:run_detail", kwargs={"org_id": function.organization_id, "name": "hello",
                                                      "correlation_id": run.correlation_id})
    assert f'href="{run_url}"' in page


def test_the_form_shows_the_query_from_the_address(admin_client, function, run, now):
    add_log_lines(run, (now - timedelta(minutes=5), "Timeout talking to upstream"))
    response = admin_client.get(fn_url("logs", function), {"range": "1h", "q": "timeout", "sort": "message",
                                                            "run": str(run.correlation_id)})
    page = response.content.decode()
    assert response.status_code == 200
    assert '<option value="1h" selected>' in page
    assert 'name="q" value="timeout"' in page
    assert '<option value="message" selected>' in page
    assert f'value="{run.correlation_id}"' in page
    assert "<mark>Timeout</mark> talking to upstream" in page


def test_every_entry_offers_its_run_and_a_filter_on_it(admin_client, function, run, now):
    add_log_lines(run, (now - timedelta(minutes=5), "line"))
    page = admin_client.get(fn_url("logs", function)).content.decode()
    filter_url = re.search(r'href="([^"]+)"[^>]*>filter<', page).group(1).replace("&amp;", "&")
    params = parse_qs(urlsplit(filter_url).query)
    assert params["run"] == [str(run.correlation_id)] and "start" in params and "end" in params
    assert [e["message"] for e in admin_client.get(filter_url).context["entries"]] == ["line"]


@pytest.mark.parametrize(
    "params,field,message",
    [
        ({"start": "2026-02-30T10:00"}, "start", "is not a date and time"),
        ({"start": "yesterday", "q": "keep me"}, "start", "use ISO 8601"),
        ({"range": "custom", "start": "2026-11-20T10:00Z", "end": "2026-11-20T09:00Z"}, "end", "The end must be after the start."),
        ({"start": "2000-01-01T00:00Z", "end": "2000-01-02T00:00Z"}, "start", "Logs are kept 7 days"),
        ({"q": "x" * 1001}, "q", "The search text is 1,001 characters long; the limit is 1,000."),
        ({"sort": "size"}, "sort", "Sort by -time (newest first), time (oldest first) or message."),
        ({"run": "not-a-uuid"}, "run", "is not a correlation id"),
        ({"after": "garbage"}, "after", "This “load more” cursor is not valid"),
    ],
)
def test_bad_input_gets_a_clear_message_and_the_page_keeps_the_input(admin_client, function, run, now, params, field, message):
    add_log_lines(run, (now - timedelta(minutes=5), "never shown on an error"))
    response = admin_client.get(fn_url("logs", function), params)
    page = response.content.decode()
    assert response.status_code == 400
    assert message in page.replace("&#x27;", "'").replace("&quot;", '"')
    assert "never shown on an error" not in page
    assert response.context["errors"][field]
    # A time the date pickers can hold is shown in them, in the organization's zone (America/Chicago).
    picked = {"2026-11-20T10:00Z": "2026-11-20T04:00:00", "2026-11-20T09:00Z": "2026-11-20T03:00:00",
              "2000-01-01T00:00Z": "1999-12-31T18:00:00", "2000-01-02T00:00Z": "2000-01-01T18:00:00"}
    for key, value in params.items():
        if key in ("start", "end", "q", "run"):
            assert f'name="{key}" value="{picked.get(value, value)}"' in page


def test_a_range_over_7_days_is_refused_on_the_page_and_the_download(admin_client, function):
    params = {"start": (timezone.now() - timedelta(days=6, hours=23)).isoformat(),
              "end": (timezone.now() + timedelta(days=1)).isoformat()}
    page = admin_client.get(fn_url("logs", function), params)
    assert page.status_code == 400 and "A query covers at most 7 days" in page.content.decode()
    response = admin_client.get(fn_url("logs_json", function), params)
    assert response.status_code == 400
    assert response.json()["errors"]["end"][0].startswith("A query covers at most 7 days")


def test_a_bad_cursor_on_the_download_is_a_400_with_the_reason(admin_client, function):
    response = admin_client.get(fn_url("logs_json", function), {"after": "forged"})
    assert response.status_code == 400
    assert response.json() == {"errors": {"after": [
        "This “load more” cursor is not valid (it was changed or cut short): run the query again from its first page."
    ]}}


@pytest.mark.slow
def test_load_more_continues_where_the_page_ended(admin_client, function, run, now):
    # 1,500 entries, many sharing a timestamp.
    add_log_lines(run, *[(now - timedelta(minutes=30) + timedelta(milliseconds=i // 4), f"line {i:04d}") for i in range(1500)])
    first = admin_client.get(fn_url("logs", function))
    assert len(first.context["entries"]) == 1000
    next_url = first.context["next_url"]
    assert next_url and 'data-load-more' in first.content.decode()
    more = admin_client.get(next_url, headers={"X-Logs-Fragment": "rows"}).json()
    assert more["count"] == 500 and more["next_url"] is None
    shown = re.findall(r"line \d{4}", first.content.decode().split("data-log-rows", 1)[1]) + re.findall(r"line \d{4}", more["rows_html"])
    assert sorted(shown) == [f"line {i:04d}" for i in range(1500)]
    assert shown == sorted(shown, reverse=True)
    # Without the script, the same address is a whole page.
    assert len(admin_client.get(next_url).context["entries"]) == 500


def test_a_bad_cursor_on_load_more_comes_back_as_json(admin_client, function):
    response = admin_client.get(fn_url("logs", function) + "?after=bad", headers={"X-Logs-Fragment": "rows"})
    assert response.status_code == 400 and "after" in response.json()["errors"]


def test_a_correlation_id_that_is_no_run_says_so(admin_client, function):
    page = admin_client.get(fn_url("logs", function), {"run": "3f2b8c1e-5d4a-4c6e-9b7a-1e2d3c4b5a69"}).content.decode()
    assert "No run of hello has the correlation id 3f2b8c1e-5d4a-4c6e-9b7a-1e2d3c4b5a69." in page


def test_a_run_whose_logs_expired_says_so(admin_client, function, run):
    run.logs_expired = True
    run.save(update_fields=["logs_expired"])
    page = admin_client.get(fn_url("logs", function), {"run": str(run.correlation_id)}).content.decode()
    assert "have expired" in page


def test_a_run_outside_the_range_offers_its_whole_output(admin_client, function, run, now):
    add_log_lines(run, (now - timedelta(days=3), "old output"))
    response = admin_client.get(fn_url("logs", function), {"run": str(run.correlation_id)})
    notice = response.context["run_notice"]
    assert "outside this range" in notice["text"]
    assert [e["message"] for e in admin_client.get(notice["link"]).context["entries"]] == ["old output"]


def test_the_organization_page_adds_the_function_column(admin_client, org, function, run, now):
    sibling = make_run(make_function(org, "sibling"))
    add_log_lines(run, (now - timedelta(minutes=2), "from hello"))
    add_log_lines(sibling, (now - timedelta(minutes=1), "from sibling"))
    response = admin_client.get(org_url("org", org))
    page = response.content.decode()
    assert "<th>Function</th>" in page
    assert [e["message"] for e in response.context["entries"]] == ["from sibling", "from hello"]
    sibling_logs = reverse("functions:logs", kwargs={"org_id": org.id, "name": "sibling"})
    assert f'href="{sibling_logs}?' in page
    # The sidebar's Functions entry stays lit and the Logs tab is the active one.
    assert re.search(r'class="active">Logs</a>', page)


def test_the_organization_page_follows_one_correlation_id_across_functions(admin_client, org, function, run, now):
    other = make_run(make_function(org, "sibling"))
    add_log_lines(run, (now - timedelta(minutes=2), "mine"))
    add_log_lines(other, (now - timedelta(minutes=1), "other"))
    response = admin_client.get(org_url("org", org), {"run": str(other.correlation_id)})
    assert [e["message"] for e in response.context["entries"]] == ["other"]


# --- the download -----------------------------------------------------------------------------------


def test_the_download_is_every_entry_of_the_query_not_just_the_first_page(admin_client, function, run, now):
    add_log_lines(run, *[(now - timedelta(hours=2) + timedelta(milliseconds=i // 3), f"entry {i} {'match' if i % 2 else ''}")
               for i in range(2600)])
    add_log_lines(make_run(function), (now - timedelta(minutes=1), "match in another run"))
    params = {"q": "MATCH", "sort": "time"}
    response = admin_client.get(fn_url("logs_json", function), params)
    assert response.streaming
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "private, no-store"
    got = download(response)
    query = parse_log_query(params, organization=function.organization, function=function, now=now)
    expected = list(log_stream(query))
    assert len(got) == 1301
    assert [(e["message"], e["correlationId"]) for e in got] == [(e["message"], e["correlationId"]) for e in expected]
    assert set(got[0]) == {"timestamp", "correlationId", "attempt", "stream", "message", "function"}
    assert got[0]["function"] == "hello" and got[0]["correlationId"] == str(run.correlation_id)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", got[0]["timestamp"])


def test_the_download_names_the_function_and_the_range(admin_client, function):
    response = admin_client.get(fn_url("logs_json", function), {
        "start": (timezone.now() - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:00Z"),
        "end": (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:00Z"),
    })
    disposition = response["Content-Disposition"]
    assert re.fullmatch(r'attachment; filename="hello-logs-\d{8}T\d{4}00Z-\d{8}T\d{4}00Z\.json"', disposition)
    assert download(response) == []


def test_the_page_links_to_the_download_of_the_same_query(admin_client, function, run, now):
    add_log_lines(run, *[(now - timedelta(minutes=10) + timedelta(seconds=i), f"l {i}") for i in range(5)])
    response = admin_client.get(fn_url("logs", function), {"q": "l", "sort": "time"})
    download_url = response.context["download_url"]
    params = parse_qs(urlsplit(download_url).query)
    assert params["q"] == ["l"] and params["sort"] == ["time"] and "after" not in params
    assert [e["message"] for e in download(admin_client.get(download_url))] == [e["message"] for e in response.context["entries"]]


def test_the_organization_download_covers_every_function(admin_client, org, function, run, now):
    add_log_lines(run, (now - timedelta(minutes=2), "a"))
    add_log_lines(make_run(make_function(org, "sibling")), (now - timedelta(minutes=1), "b"))
    response = admin_client.get(org_url("org_json", org))
    assert 'filename="acme-fleet-all-functions-logs-' in response["Content-Disposition"]
    assert [(e["function"], e["message"]) for e in download(response)] == [("sibling", "b"), ("hello", "a")]


def test_a_very_long_line_is_cut_on_the_page_but_whole_in_the_download(admin_client, function, run, now):
    add_log_lines(run, (now - timedelta(minutes=1), "x" * 5000))
    page = admin_client.get(fn_url("logs", function)).content.decode()
    assert "x" * 2000 in page and "x" * 2001 not in page and "3,000 more characters" in page
    assert download(admin_client.get(fn_url("logs_json", function)))[0]["message"] == "x" * 5000


def test_messages_are_escaped(admin_client, function, run, now):
    add_log_lines(run, (now - timedelta(minutes=1), "<script>alert(1)</script>"))
    page = admin_client.get(fn_url("logs", function), {"q": "script"}).content.decode()
    assert "<script>alert(1)" not in page
    assert "&lt;<mark>script</mark>&gt;alert(1)" in page


def test_entries_stay_after_a_page_is_read(admin_client, function, run, now):
    add_log_lines(run, (now - timedelta(minutes=1), "stay"))
    admin_client.get(fn_url("logs", function))
    download(admin_client.get(fn_url("logs_json", function)))
    assert LogEntry.objects.count() == 1


# --- stream filter and custom ranges ----------------------------------------------------------


def test_the_stream_filter_keeps_one_stream_on_the_page_and_the_download(admin_client, function, run, now):
    add_log_lines(run, (now - timedelta(minutes=3), "printed"))
    add_log_lines(run, (now - timedelta(minutes=2), "warned"), stream="stderr")
    add_log_lines(run, (now - timedelta(minutes=1), "REPORT RequestId: x"), stream="platform")
    for stream, expected in (("stdout", ["printed"]), ("stderr", ["warned"]), ("platform", ["REPORT RequestId: x"]),
                             ("", ["REPORT RequestId: x", "warned", "printed"])):
        response = admin_client.get(fn_url("logs", function), {"stream": stream} if stream else {})
        assert [e["message"] for e in response.context["entries"]] == expected, stream
        assert [e["message"] for e in download(admin_client.get(fn_url("logs_json", function), {"stream": stream}))] == \
            expected
        if stream:
            # The filter is part of the address: "load more", the download and the shared link keep it.
            assert f"stream={stream}" in response.context["download_url"]
            assert f"stream={stream}" in response.context["share_url"]


def test_an_unknown_stream_is_refused_with_the_choices(admin_client, function):
    response = admin_client.get(fn_url("logs", function), {"stream": "stdin"})
    assert response.status_code == 400
    assert response.context["errors"]["stream"] == [
        "Choose the stream stdout, stderr or platform (the platform's own lines, such as REPORT), or all."]


@pytest.mark.parametrize("params, missing", [
    ({"range": "custom"}, ["start", "end"]),
    ({"range": "custom", "start": "RECENT"}, ["end"]),
    ({"range": "custom", "end": "RECENT", "q": "kept"}, ["start"]),
])
def test_a_custom_range_with_an_empty_field_says_what_is_missing(admin_client, function, run, now, params, missing):
    # The given field an hour ago: inside the retention window whatever today's date.
    recent = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    params = {key: recent if value == "RECENT" else value for key, value in params.items()}
    add_log_lines(run, (now - timedelta(minutes=5), "never shown on an error"))
    response = admin_client.get(fn_url("logs", function), params)
    assert response.status_code == 400
    assert sorted(response.context["errors"]) == sorted(missing)
    for key in missing:
        assert response.context["errors"][key] == [
            f"Enter the {key} of the custom range, or choose one of the ranges offered."]
    page = response.content.decode()
    assert "never shown on an error" not in page
    assert '<option value="custom" selected>' in page


def test_the_range_is_shown_in_date_pickers(admin_client, function):
    page = admin_client.get(fn_url("logs", function), {"start": "2026-11-26T08:00:00Z", "end": "2026-11-26T09:30:15Z"}).content.decode()
    # America/Chicago, to the second, as <input type=datetime-local> holds it.
    assert 'type="datetime-local" step="1" name="start" value="2026-11-26T02:00:00"' in page
    assert 'type="datetime-local" step="1" name="end" value="2026-11-26T03:30:15"' in page
