"""The Monitor tab, the Runs tab's time range, the organization's Runs page, the List's marks
and the Overview's recent runs: for every role, and every bad input with its message."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from functions.models import RunStatus
from monitor.models import FailureSubscription
from secrets_vault import services as secret_services
from tests.conftest import READERS, ROLES, WRITERS
from tests.factories import make_function
from tests.monitor_fixtures import add_run

pytestmark = pytest.mark.django_db
ALLOWED = WRITERS + READERS


@pytest.fixture
def function(org):
    return make_function(org, "hello")


@pytest.fixture
def runs(function):
    now = timezone.now()
    made = [add_run(function, at=now - timedelta(minutes=50 - i), duration_ms=100 + i, memory=40) for i in range(11)]
    made.append(add_run(function, at=now - timedelta(minutes=2), status=RunStatus.FAILED, duration_ms=900,
                        attempts=3, reason="Handler raised KeyError: 'vehicle'"))
    return made


def url(name, org, function=None, **extra):
    kwargs = {"org_id": org.id, **({"name": function.name} if function else {}), **extra}
    return reverse(name, kwargs=kwargs)


def expected_status(role):
    return 200 if role in ALLOWED else 404 if role == "outsider" else 403


# --- Monitor tab ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_the_monitor_tab_is_for_readers_of_functions(member, org, function, runs, role):
    response = member(role).get(url("functions:monitor", org, function))
    assert response.status_code == expected_status(role)
    if role in ALLOWED:
        page = response.content.decode()
        assert page.count('<svg class="chart"') == 5  # outcomes, success, duration, memory, attempts
        assert "Runs are kept for 90 days" in page


@pytest.mark.parametrize("range_key, buckets", [("24h", 24), ("7d", 28), ("30d", 30)])
def test_each_range_has_its_buckets_each_linking_to_its_runs(member, org, function, runs, range_key, buckets):
    page = member("read_only_admin").get(url("functions:monitor", org, function) + f"?range={range_key}").content.decode()
    outcomes = page.split('data-testid="chart-outcomes"')[1].split("</section>")[0]
    links = re.findall(r'<a href="([^"]+)" class="bucket">', outcomes)
    assert len(links) == buckets
    assert all(link.startswith(url("functions:runs", org, function) + "?start=") for link in links)
    # Hover values (the bucket titles add up to the runs) and the text alternative
    assert sum(int(n) for n in re.findall(r"Succeeded: (\d+)", outcomes.split("<details")[0])) == 11
    assert "<details" in outcomes and "Table of values" in outcomes


def test_a_bucket_link_opens_the_runs_tab_with_that_buckets_runs(member, org, function, runs):
    client = member("read_only_admin")
    page = client.get(url("functions:monitor", org, function)).content.decode()
    outcomes = page.split('data-testid="chart-outcomes"')[1].split("</section>")[0]
    last = re.findall(r'<a href="([^"]+)" class="bucket">', outcomes)[-1].replace("&amp;", "&")
    listed = client.get(last)
    assert listed.status_code == 200
    shown = listed.content.decode().count("/runs/")
    in_bucket = sum(1 for r in runs if r.created_at >= timezone.now().replace(minute=0, second=0, microsecond=0))
    assert shown >= in_bucket


def test_an_unknown_range_says_which_ranges_exist(member, org, function):
    response = member("full_admin").get(url("functions:monitor", org, function) + "?range=1y")
    assert response.status_code == 400
    assert "Unknown range “1y”: choose one of 24h, 7d, 30d." in response.content.decode()


def test_a_function_without_runs_shows_empty_charts_not_an_error(member, org, function):
    page = member("full_admin").get(url("functions:monitor", org, function) + "?range=30d").content.decode()
    assert "No runs in this range." in page


def test_buckets_older_than_retention_are_not_linked_and_the_tab_says_so(member, org, function, settings):
    settings.RUNS_RETENTION_DAYS = 3
    page = member("full_admin").get(url("functions:monitor", org, function) + "?range=7d").content.decode()
    assert "Part of this range is older than the 3 days runs are kept" in page
    assert "Runs are kept for 3 days" in page


# --- failure e-mail opt-in ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_every_reader_may_opt_in_to_failure_emails_for_themselves(member, org, function, users, role):
    client = member(role)
    response = client.post(url("functions:failure_subscription", org, function), {"subscribe": "1", "range": "7d"})
    if role in ALLOWED:
        assert response.status_code == 302 and response["Location"].endswith("monitor/?range=7d")
        assert list(FailureSubscription.objects.values_list("user__email", flat=True)) == [users[role].email]
        client.post(url("functions:failure_subscription", org, function), {"subscribe": "0"})
        assert not FailureSubscription.objects.exists()
    else:
        assert response.status_code == expected_status(role)
        assert not FailureSubscription.objects.exists()


def test_the_opt_in_is_a_post_only(member, org, function):
    assert member("full_admin").get(url("functions:failure_subscription", org, function)).status_code == 405


def test_the_monitor_tab_names_who_gets_failure_emails(member, org, function, users):
    FailureSubscription.objects.create(function=function, user=users["read_only_admin"])
    page = member("full_admin").get(url("functions:monitor", org, function)).content.decode()
    assert "go to read_only_admin@example.com" in page and "E-mail me when a run fails" in page


# --- Runs tab: the time range -----------------------------------------------------------------------------


def test_the_runs_tab_filters_by_time_range(member, org, function, runs):
    start = runs[-1].created_at - timedelta(seconds=1)
    response = member("read_only_admin").get(url("functions:runs", org, function), {"start": start.isoformat()})
    assert response.status_code == 200
    page = response.content.decode()
    assert str(runs[-1].correlation_id)[:10] in page and str(runs[0].correlation_id)[:10] not in page


@pytest.mark.parametrize("params, message", [
    ({"start": "yesterday"}, "“yesterday” is not a time for start: use ISO 8601"),
    ({"start": "2026-03-08T10:00", "end": "2026-03-08T09:00"}, "The end of the time range must be after its start."),
    ({"status": "exploded"}, "Unknown status “exploded”"),
    ({"trigger": "cron"}, "Unknown trigger “cron”"),
])
def test_a_bad_runs_filter_says_what_to_fix(member, org, function, params, message):
    response = member("full_admin").get(url("functions:runs", org, function), params)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_a_range_before_run_retention_says_those_runs_are_gone(member, org, function):
    old = (timezone.now() - timedelta(days=120)).isoformat()
    older = (timezone.now() - timedelta(days=100)).isoformat()
    page = member("full_admin").get(url("functions:runs", org, function), {"start": old, "end": older}).content.decode()
    assert "runs are kept for 90 days (RUNS_RETENTION_DAYS), so none of its runs are left" in page


# --- the organization's Runs page ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_the_organization_runs_page_is_for_readers_of_functions(member, org, runs, role):
    response = member(role).get(reverse("organization_runs", kwargs={"org_id": org.id}))
    assert response.status_code == expected_status(role)
    if role in ALLOWED:
        assert response.content.decode().count('class="badge status-') == 12


def test_the_organization_runs_page_filters_by_function_status_and_trigger(member, org, function, runs):
    other = make_function(org, "other")
    add_run(other, at=timezone.now(), trigger="schedule", duration_ms=5)
    client = member("read_only_admin")
    base = reverse("organization_runs", kwargs={"org_id": org.id})
    assert client.get(base, {"function": "other"}).content.decode().count('class="badge status-') == 1
    assert client.get(base, {"status": "failed"}).content.decode().count('class="badge status-') == 1
    assert client.get(base, {"trigger": "schedule"}).content.decode().count('class="badge status-') == 1
    table = client.get(base).content.decode().split('data-testid="runs"')[1]
    assert table.index(">other<") < table.index(">hello<"), "newest first"


def test_a_filter_on_another_organizations_function_is_a_404_with_a_message(member, org, other_org, runs):
    make_function(other_org, "theirs")
    response = member("full_admin").get(reverse("organization_runs", kwargs={"org_id": org.id}), {"function": "theirs"})
    assert response.status_code == 404
    page = response.content.decode()
    assert "This organization has no Function named “theirs”." in page and "status-" not in page


def test_the_organization_runs_page_is_paginated_newest_first(member, org, function):
    now = timezone.now()
    for i in range(55):
        add_run(function, at=now - timedelta(minutes=i), duration_ms=i)
    client = member("full_admin")
    base = reverse("organization_runs", kwargs={"org_id": org.id})
    first, second = client.get(base).content.decode(), client.get(base, {"page": 2}).content.decode()
    assert first.count('class="badge status-') == 50 and second.count('class="badge status-') == 5
    assert "Page 1 of 2" in first


def test_the_settings_nav_links_the_runs_page(member, org):
    page = member("read_only_admin").get(reverse("functions:list", kwargs={"org_id": org.id})).content.decode()
    assert f'href="/o/{org.id}/settings/developer/runs/"' in page


# --- the List's marks and sorting -----------------------------------------------------------------------


def test_the_list_shows_the_last_ten_outcomes_as_marks_with_the_last_error_on_hover(member, org, function, runs):
    page = member("read_only_admin").get(reverse("functions:list", kwargs={"org_id": org.id})).content.decode()
    marks = page.split('data-testid="marks"')[1].split("</span>\n")[0]
    classes = re.findall(r'class="mark-(\w+)"', marks)
    assert classes == ["succeeded"] * 9 + ["failed"], "oldest first, newest on the right"
    assert "Handler raised KeyError: &#x27;vehicle&#x27;" in marks
    assert "Last error (" in page and "92 % ok in 24 h" in page and "1 failed" in page


def test_the_list_sorts_by_failures_and_by_last_run(member, org, function, runs):
    quiet = make_function(org, "aaa-quiet")
    add_run(quiet, at=timezone.now(), duration_ms=1)
    client = member("read_only_admin")
    base = reverse("functions:list", kwargs={"org_id": org.id})
    by_name = client.get(base).content.decode()
    assert by_name.index(">aaa-quiet<") < by_name.index(">hello<")
    by_failures = client.get(base, {"sort": "failures"}).content.decode()
    assert by_failures.index(">hello<") < by_failures.index(">aaa-quiet<")
    by_last_run = client.get(base, {"sort": "last_run"}).content.decode()
    assert by_last_run.index(">aaa-quiet<") < by_last_run.index(">hello<")
    assert client.get(base, {"sort": "nonsense"}).status_code == 200


# --- the Overview --------------------------------------------------------------------------------------------


def test_the_overview_shows_the_last_five_runs_and_the_last_error_in_full(member, org, function, runs):
    page = member("read_only_admin").get(url("functions:detail", org, function)).content.decode()
    recent = page.split('data-testid="recent-runs"')[1].split("</table>")[0]
    assert recent.count('class="badge status-') == 5
    assert "Handler raised KeyError: &#x27;vehicle&#x27;" in page.split('data-testid="last-error"')[1]
    assert "never run successfully" not in page


def test_the_overview_warns_when_a_function_never_succeeded_or_a_secret_has_no_value(member, org, function, users):
    add_run(function, at=timezone.now(), status=RunStatus.FAILED, duration_ms=3, reason="Process exited with code 1")
    secret_services.secret_create_missing(function=function, names=["API_KEY"], actor=users["full_admin"])
    page = member("read_only_admin").get(url("functions:detail", org, function)).content.decode()
    assert "hello has never run successfully" in page
    assert "Secrets without a value: API_KEY" in page
