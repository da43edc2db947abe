"""A root worker's sandboxes run as an unprivileged host uid (issue 18, item 7): real sandbox, cold and warm."""

from __future__ import annotations

import os
import threading
import time

import pytest

from runtime.sandbox.bwrap import HOST_UID_BASE

pytestmark = pytest.mark.sandbox

# The child's command line carries the fixture's unique MARKER, so the host can find it mid-run.
WRITE_AND_WAIT = """
import os, subprocess, sys
def handler(event, context):
    with open("/tmp/written-by-the-function", "w") as handle:
        handle.write("mine")
    subprocess.run([sys.executable, "-c", "import time; time.sleep(4)", "MARKER-host-uid"])
    return os.stat("/tmp/written-by-the-function").st_uid
"""


def _the_child():
    """Host pid of the Function's child (its command line ends with the marker), or None."""
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if handle.read().rstrip(b"\x00").endswith(b"-host-uid"):
                    return int(entry)
        except OSError:
            continue
    return None


def test_the_function_and_its_tmp_files_belong_to_an_unprivileged_host_uid(run_function):
    if os.geteuid() != 0:
        pytest.skip("the worker is not root: the sandbox maps to the worker's own uid, as bwrap does")
    done = {}
    runner = threading.Thread(target=lambda: done.setdefault("run", run_function(WRITE_AND_WAIT)))
    runner.start()
    seen, deadline = {}, time.monotonic() + 20
    while not seen and time.monotonic() < deadline:
        pid = _the_child()
        if pid:
            try:
                with open(f"/proc/{pid}/status") as handle:
                    uid = int(next(line for line in handle if line.startswith("Uid:")).split()[1])
                # /tmp is the sandbox's own tmpfs: seen from the host through the process's root.
                owner = os.stat(f"/proc/{pid}/root/tmp/written-by-the-function").st_uid
                seen = {"uid": uid, "owner": owner}
            except (OSError, StopIteration):
                pass
        time.sleep(0.05)
    runner.join()
    assert seen, "the Function's child never appeared"
    assert seen["uid"] >= HOST_UID_BASE and seen["owner"] == seen["uid"], seen
    assert done["run"].value == 65534  # inside, the sandbox's user is still 65534
