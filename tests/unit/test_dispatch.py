"""Which run a worker takes next (runtime.dispatch): organizations take turns, each in trigger order,
within FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Organization
from functions.models import Run, RunStatus, RunTurn
from runtime import dispatch, services
from tests.factories import make_function, make_run

pytestmark = pytest.mark.django_db


def queued(function, **fields):
    return make_run(function, status=RunStatus.QUEUED, **fields)


def running(function):
    return make_run(function, status=RunStatus.RUNNING, attempts=1, started_at=timezone.now())


def next_fair(**kwargs):
    return dispatch.run_next_fair(now=timezone.now(), **kwargs)


def claim_next():
    return dispatch.run_claim_next(worker="test", isolation="test")


@pytest.fixture
def busy(org):
    return make_function(org, "busy")


@pytest.fixture
def quiet(other_org):
    return make_function(other_org, "quiet")


def test_nothing_queued_means_nothing_to_take(busy):
    running(busy)
    make_run(busy)
    assert next_fair() is None
    assert claim_next() == (None, None)


def test_an_organization_with_fewer_runs_executing_goes_first_whatever_the_queue_order(busy, quiet):
    backlog = [queued(busy) for _ in range(5)]
    running(busy)
    single = queued(quiet)
    assert single.pk > backlog[-1].pk
    assert next_fair() == (single.pk, quiet.organization_id)
    run, attempt = claim_next()
    assert run.pk == single.pk and attempt.number == 1 and run.status == RunStatus.RUNNING
    # Now both have one executing: the organization served longest ago (never) goes first, oldest run first.
    assert next_fair() == (backlog[0].pk, busy.organization_id)


def test_organizations_with_as_many_runs_executing_take_turns(busy, quiet):
    busy_runs = [queued(busy) for _ in range(3)]
    quiet_runs = [queued(quiet) for _ in range(3)]
    taken = []
    for _ in range(6):
        run, _attempt = claim_next()
        taken.append(run.pk)
        # The run ends at once: every claim finds both organizations with nothing executing.
        Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    assert taken == [busy_runs[0].pk, quiet_runs[0].pk, busy_runs[1].pk, quiet_runs[1].pk,
                     busy_runs[2].pk, quiet_runs[2].pk]
    assert RunTurn.objects.count() == 2


def test_within_an_organization_the_oldest_due_run_goes_first_and_a_retry_waits_for_its_backoff(busy):
    retry = queued(busy, attempts=1, next_attempt_at=timezone.now() + timedelta(seconds=30))
    first, second = queued(busy), queued(busy)
    assert claim_next()[0].pk == first.pk
    assert claim_next()[0].pk == second.pk
    assert claim_next() == (None, None)
    Run.objects.filter(pk=retry.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    run, attempt = claim_next()
    assert run.pk == retry.pk and attempt.number == 2 and run.next_attempt_at is None


def test_the_limit_keeps_an_organizations_runs_waiting_in_order_and_others_go_on(busy, quiet, settings):
    settings.FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION = 2
    waiting = [queued(busy) for _ in range(4)]
    assert [claim_next()[0].pk for _ in range(2)] == [waiting[0].pk, waiting[1].pk]
    # Two executing: the busy organization's others wait, and another organization still gets its turn.
    assert claim_next() == (None, None)
    other = queued(quiet)
    assert claim_next()[0].pk == other.pk
    # Asked for by id (a test harness, an old message) the limit holds just the same.
    assert services.run_claim(run_id=waiting[2].pk) == (None, None)
    assert Run.objects.get(pk=waiting[2].pk).status == RunStatus.QUEUED
    # One ends: the worker names the next waiting run, which is then taken, in order.
    Run.objects.filter(pk=waiting[0].pk).update(status=RunStatus.SUCCEEDED)
    assert dispatch.run_wake_up(organization_id=busy.organization_id) == waiting[2].pk
    assert claim_next()[0].pk == waiting[2].pk
    assert Run.objects.filter(organization_id=busy.organization_id, status=RunStatus.RUNNING).count() == 2


def test_without_a_limit_nothing_is_woken_since_every_run_has_its_message(busy):
    queued(busy)
    assert dispatch.run_wake_up(organization_id=busy.organization_id) is None


def test_a_limit_for_many_organizations_skips_full_ones_and_never_loses_a_run(org, settings):
    settings.FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION = 1
    organizations = [org] + [Organization.objects.create(name=f"org {n}") for n in range(3)]
    functions = [make_function(organization, f"f{n}") for n, organization in enumerate(organizations)]
    runs = {function.organization_id: [queued(function) for _ in range(2)] for function in functions}
    first_round = [claim_next()[0] for _ in range(4)]
    assert sorted(run.pk for run in first_round) == sorted(pair[0].pk for pair in runs.values())
    assert claim_next() == (None, None)
    for run in first_round:
        Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    second_round = [claim_next()[0] for _ in range(4)]
    assert sorted(run.pk for run in second_round) == sorted(pair[1].pk for pair in runs.values())
    assert Run.objects.filter(status=RunStatus.QUEUED).count() == 0


def test_the_reaper_leaves_runs_waiting_behind_a_limit_to_their_wake_up(busy, quiet, settings):
    """A run queued for long behind its organization's limit is not "forgotten": one of the organization's
    runs ending sends for it. Another organization's forgotten run is still sent again."""
    settings.FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION = 1
    long_ago = timezone.now() - timedelta(minutes=10)
    running(busy)
    held = queued(busy)
    lost = queued(quiet)
    Run.objects.filter(pk__in=[held.pk, lost.pk]).update(created_at=long_ago)
    assert dispatch.organizations_at_limit() == [busy.organization_id]
    resent = {resend.run_id for resend in services.runs_reap_lost().resend}
    assert resent == {lost.pk}
    settings.FUNCTIONS_MAX_RUNNING_PER_ORGANIZATION = 0
    assert dispatch.organizations_at_limit() == []
    assert {resend.run_id for resend in services.runs_reap_lost().resend} == {held.pk, lost.pk}


def test_a_claim_hands_back_the_run_and_attempt_as_the_database_now_holds_them(busy, django_assert_num_queries):
    # The claim writes its statements by hand (config.rows): what it hands the run engine must equal
    # what the ORM reads back, JSON, UUID and times included, with the run's relations already loaded.
    earlier = timezone.now() - timedelta(minutes=1)
    retry = queued(busy, event={"k": "v", "n": "1"}, overrides={"o": "x"}, attempts=1, started_at=earlier,
                   next_attempt_at=earlier)
    run, attempt = claim_next()
    stored = Run.objects.get(pk=retry.pk)
    assert run.pk == retry.pk
    assert {f.attname: getattr(run, f.attname) for f in Run._meta.concrete_fields} == {
        f.attname: getattr(stored, f.attname) for f in Run._meta.concrete_fields}
    assert run.status == RunStatus.RUNNING and run.attempts == 2 and run.next_attempt_at is None
    assert run.started_at == earlier  # a retry keeps its first start
    assert run.event == {"k": "v", "n": "1"}
    opened = attempt.__class__.objects.get(pk=attempt.pk)
    assert {f.attname: getattr(attempt, f.attname) for f in attempt._meta.concrete_fields} == {
        f.attname: getattr(opened, f.attname) for f in attempt._meta.concrete_fields}
    assert (opened.run_id, opened.number, opened.outcome, opened.worker) == (run.pk, 2, "running", "test")
    with django_assert_num_queries(0):
        assert run.function.organization.region == "us"
        assert run.code_version.sha256 == busy.deployed_version.sha256
        assert attempt.run is run
    assert not run._state.adding and not attempt._state.adding


def test_a_claim_that_finds_nothing_to_take_writes_nothing(busy):
    from functions.models import Attempt

    later = timezone.now() + timedelta(minutes=5)
    waiting = queued(busy, next_attempt_at=later)  # its retry backoff is not over
    assert claim_next() == (None, None)
    assert services.run_claim(run_id=waiting.pk) == (None, None)
    done = make_run(busy)
    assert services.run_claim(run_id=done.pk) == (None, None)
    assert not RunTurn.objects.exists() and not Attempt.objects.exists()
    assert Run.objects.get(pk=waiting.pk).status == RunStatus.QUEUED


def test_a_claim_says_how_many_other_runs_of_the_organization_were_executing(busy, quiet):
    # What runtime.priority lowers a run's priority by: the claimed run itself and other organizations' runs
    # do not count.
    first = queued(busy)
    running(quiet), running(quiet)
    run, _attempt = claim_next()
    assert run.pk == first.pk and run.executing_alongside == 0
    second = queued(busy)
    run, _attempt = claim_next()
    assert run.pk == second.pk and run.executing_alongside == 1
    third = queued(busy)
    run, _attempt = services.run_claim(run_id=third.pk)
    assert run.pk == third.pk and run.executing_alongside == 2
