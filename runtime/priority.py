"""CPU priority of a run's processes: the one home for the worker's nice values and schedulers.

Fairness between organizations has two halves. runtime.dispatch decides which run a free worker
process takes next; this module decides how the CPU is shared among the runs already executing.
An organization with 2,000 queued runs fills every worker process, and a quiet organization's
single run, once taken, would share the machine's cores with all of them. So a run taken while
other runs of its organization were executing (``Run.executing_alongside``, read by the claim) runs
at a lower priority: its worker process (the claim's follow-up, the attempt's endpoint, the
recording) and its sandbox, by FUNCTIONS_BUSY_ORGANIZATION_NICE steps of nice. Each organization's
first executing run keeps normal priority. The kernel's scheduler is work-conserving: a lowered
run loses CPU only to runs that want it at the same moment, so a backlog drains as fast as before
when nothing else is waiting.

A nice value can only be lowered again with CAP_SYS_NICE (root has it). A worker without it
never lowers a run's priority: its process could not give itself normal priority back for the
next run. The same capability lets spares warm up at idle priority (runtime.warm).

Linux keeps a nice value per thread, and a new thread or process starts with its creator's: the
worker's threads are set one by one, a cold sandbox inherits the value from the thread that
starts it, and a warm run's process, forked by its environment's zygote rather than by the
worker, is given the same value when it is handed its run (``hand_over``), so both behave alike.
The zygote itself, whichever thread started it, runs at the worker's own value (``as_worker``).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator

CAP_SYS_NICE = 23
LOWEST = 19  # the largest nice value Linux has
# The worker's own nice value, as it was started (`nice -n 5 celery …` gives 5): what its threads and
# its environments' zygotes return to.
WORKER_NICE = os.getpriority(os.PRIO_PROCESS, 0)


@functools.cache
def can_raise_priority() -> bool:
    """Whether this worker may give a process normal priority back (CAP_SYS_NICE, as root has)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_SYS_NICE & 1)
    except (OSError, ValueError):
        pass
    return False


def _threads(pid: int) -> list[int]:
    try:
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except (OSError, ValueError):
        return [pid]


def current_nice() -> int:
    """The calling thread's nice value (Linux: per thread)."""
    return os.getpriority(os.PRIO_PROCESS, 0)


def _set_threads(pid: int, nice: int, *, normal_scheduler: bool = False) -> None:
    """Every thread of process ``pid`` at ``nice`` (first given the normal scheduler back, if asked)."""
    for tid in _threads(pid):
        try:
            if normal_scheduler:
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError:
            pass  # a thread that ended meanwhile; or a spare's main thread, which the zygote then replaces


@contextlib.contextmanager
def run_priority(*, executing_alongside: int, step: int) -> Iterator[int]:
    """This worker process, every thread of it, at the priority of a run taken while
    ``executing_alongside`` other runs of its organization were executing: ``step`` nice values
    lower (FUNCTIONS_BUSY_ORGANIZATION_NICE); its own priority again after. Yields the nice value
    the run's threads have."""
    base = WORKER_NICE
    if not executing_alongside or not step or base >= LOWEST or not can_raise_priority():
        yield base
        return
    lowered = min(LOWEST, base + step)
    _set_threads(os.getpid(), lowered)
    try:
        yield lowered
    finally:
        _set_threads(os.getpid(), base)


def hand_over(pid: int, *, from_idle: bool) -> None:
    """Before a warm run's process (forked by the zygote, not by us) is handed its run: the
    scheduler and nice value of the thread handing it over, as a cold run's process inherits them.

    ``from_idle``: it warmed up at idle priority (SCHED_IDLE, per thread: the warm-up runs a
    responder thread its run's first step may wait on, bootstrap._CannedResponder), given the
    normal scheduler back here. If that fails for its main thread, the zygote replaces the spare
    with a fresh fork (bootstrap._Spare).
    """
    _set_threads(pid, current_nice(), normal_scheduler=from_idle)


def as_worker(pid: int) -> None:
    """Every thread of process ``pid`` at the worker's own priority: a warm environment's zygote
    started during a lowered run would otherwise pass the lowered value to every later run's
    process until the environment is replaced (each run is given its own value at hand-over, but
    the zygote's forks of spares and its reports would stay lowered)."""
    if can_raise_priority():
        _set_threads(pid, WORKER_NICE)
