"""CPU isolation with the cgroup cpu controller (issue 18, item 3).

16 busy processes of one organization slowed another organization's run
from 1.5 s to 8-9 s. Each attempt's group now has a CPU quota (about one
vCPU) and sits in its organization's group, all of equal weight.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from runtime.cgroups import AttemptCgroup

pytestmark = pytest.mark.sandbox

HOG = "import os\nfor _ in range(3):\n    os.fork()\nwhile True:\n    pass\n"  # 8 busy processes


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def capped_group():
    group = AttemptCgroup.create(max_pids=64, memory_bytes=256 * 1024 * 1024, cpus=0.5, organization="test-cpu-a")
    if group is None or group.cpu_limit() is None:
        if group is not None:
            group.remove()
        pytest.skip("no writable cgroup with the cpu controller on this machine (unprivileged worker "
                    "without delegation): runs are not CPU-capped here, as the README says")
    yield group
    group.kill_all()
    group.remove()


def test_an_attempt_group_is_capped_and_sits_in_its_organizations_group(capped_group):
    assert capped_group.cpu_limit() == pytest.approx(0.5)
    paths = [str(path) for path in capped_group.dirs.values()]
    assert any("/samsara-org-test-cpu-a/" in path for path in paths), paths


def test_busy_processes_in_a_capped_group_get_no_more_than_their_quota(capped_group):
    hog = subprocess.Popen([sys.executable, "-c", HOG], preexec_fn=lambda: capped_group.add(os.getpid()))
    try:
        time.sleep(0.5)  # all forked, all in the group (children inherit it)
        pids = capped_group.pids()
        assert len(pids) == 8, pids
        before, started = cpu_seconds(pids), time.monotonic()
        time.sleep(3)
        used = cpu_seconds(pids) - before
        elapsed = time.monotonic() - started
    finally:
        capped_group.kill_all()
        hog.wait()
    # Half a CPU over the interval, with room for the accounting's tick granularity.
    assert used <= 0.5 * elapsed * 1.25, (used, elapsed)
