"""CPU priority by organization (runtime.priority): a run taken while other runs of its organization
are executing runs at a lower priority, in its worker process and in its sandbox, cold or warm, and
cannot raise it again; every other run at the worker's own priority."""

import json
import os
import threading

import pytest
from django.utils import timezone

from functions.models import RunStatus
from functions.run_services import run_trigger
from runtime import priority, services
from tests.factories import make_function, make_run

# The run's own nice value, a new thread's, and whether it could give itself normal priority back.
CODE = """
import os, threading

def handler(event, context):
    seen = []
    thread = threading.Thread(target=lambda: seen.append(os.getpriority(os.PRIO_PROCESS, 0)))
    thread.start()
    thread.join()
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    except PermissionError:
        pass
    return {"nice": nice, "thread": seen[0], "after_raising": os.getpriority(os.PRIO_PROCESS, 0)}
"""

LOWERED = 10  # the default FUNCTIONS_BUSY_ORGANIZATION_NICE


@pytest.fixture(autouse=True)
def able_to_lower():
    if not priority.can_raise_priority():
        pytest.skip("this worker has no CAP_SYS_NICE: it never lowers a run's priority (README)")
    if priority.current_nice() != 0:
        pytest.skip("the test process itself runs at a lowered priority")


@pytest.fixture(params=[True, False], ids=["warm", "cold"])
def warm(request, settings):
    settings.FUNCTIONS_WARM_ENVIRONMENTS = request.param
    return request.param


def nice_of(pid, tid=None):
    with open(f"/proc/{pid}/task/{tid or pid}/stat") as handle:
        return int(handle.read().rpartition(")")[2].split()[16])


def executing(function):
    return make_run(function, status=RunStatus.RUNNING, attempts=1, started_at=timezone.now())


def probe(function, run_to_end):
    run = run_to_end(run_trigger(function=function, trigger="manual"), limit=1)
    assert run.status == RunStatus.SUCCEEDED, (run.reason, run.error)
    return json.loads(run.return_value)


def test_a_run_taken_while_its_organization_has_others_executing_runs_lowered_and_cannot_undo_it(
        org, run_to_end, warm):
    function = make_function(org, "probe", files={"main.py": CODE})
    assert probe(function, run_to_end) == {"nice": 0, "thread": 0, "after_raising": 0}
    other = executing(make_function(org, "long"))
    assert probe(function, run_to_end) == {"nice": LOWERED, "thread": LOWERED, "after_raising": LOWERED}
    # Its organization's other run ended: the next run (warm: forked by the same zygote) is normal again.
    other.status = RunStatus.SUCCEEDED
    other.save(update_fields=["status"])
    assert probe(function, run_to_end) == {"nice": 0, "thread": 0, "after_raising": 0}
    assert priority.current_nice() == 0


def test_runs_of_other_organizations_do_not_lower_a_runs_priority(org, other_org, run_to_end, warm):
    function = make_function(org, "probe", files={"main.py": CODE})
    for _ in range(3):
        executing(make_function(other_org, f"theirs-{_}"))
    assert probe(function, run_to_end)["nice"] == 0


def test_zero_turns_it_off(org, run_to_end, settings, warm):
    settings.FUNCTIONS_BUSY_ORGANIZATION_NICE = 0
    function = make_function(org, "probe", files={"main.py": CODE})
    executing(make_function(org, "long"))
    assert probe(function, run_to_end)["nice"] == 0


def test_the_worker_process_runs_lowered_during_the_run_and_is_itself_again_after(org, run_to_end, settings):
    settings.FUNCTIONS_BUSY_ORGANIZATION_NICE = 7
    function = make_function(org, "sleepy", files={"main.py": "import time\ndef handler(e, c):\n    time.sleep(0.5)\n"})
    executing(make_function(org, "long"))
    main = threading.get_native_id()
    seen, done = set(), threading.Event()

    def watch():  # every thread of this process, the run's caller among them, read from /proc
        while not done.is_set():
            for tid in os.listdir("/proc/self/task"):
                try:
                    seen.add((int(tid) == main, nice_of(os.getpid(), tid)))
                except (OSError, ValueError, IndexError):
                    continue
            done.wait(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run = run_to_end(run_trigger(function=function, trigger="manual"), limit=1)
    finally:
        done.set()
        watcher.join()
    assert run.status == RunStatus.SUCCEEDED
    assert (True, 7) in seen and (False, 7) in seen  # the calling thread and the others, the watcher too
    assert {nice_of(os.getpid(), tid) for tid in os.listdir("/proc/self/task")} == {0}


def test_an_environment_started_for_a_lowered_run_keeps_the_workers_own_priority(org, run_to_end, settings):
    # Its zygote forks every later run's process: started on the lowered run's thread, it would pass
    # the lowered value on until the environment is replaced.
    settings.FUNCTIONS_WARM_ENVIRONMENTS = True
    executing(make_function(org, "long"))
    function = make_function(org, "fresh", files={"main.py": CODE})
    assert probe(function, run_to_end)["nice"] == LOWERED
    zygote = services._warm_pool().last_environment.zygote_host_pid
    assert {nice_of(zygote, tid) for tid in os.listdir(f"/proc/{zygote}/task")} == {0}
