"""Nothing of a run survives it or reads another (issue 18, item 2): the real sandbox, warm and cold.

A process whose main thread exited while another thread runs shows as a
zombie in /proc/PID/stat; one such process outlived its warm run and read
the next run's credentials through /proc/PID/mem. These tests leave one
behind and check that it is gone before the next run (test_warm.py does the
same for a setsid() grandchild), and that a run's memory cannot be read by
another process of the same uid.
"""

from __future__ import annotations

import os

import pytest

from .test_warm import bundle, invoke, pool  # noqa: F401  (fixtures)

pytestmark = pytest.mark.sandbox

# Spawned by the handler: its own session, a thread named MARK that keeps running, and the main
# thread (the group leader) ended with pthread_exit, so /proc/PID/stat shows "Z".
LURKER = """
import ctypes, os, threading, time
libc = ctypes.CDLL(None)
def lurk():
    libc.prctl(15, b"MARK", 0, 0, 0)  # PR_SET_NAME: the host finds this thread by name
    open("/tmp/lurker-ready", "w").close()
    while True:
        time.sleep(0.05)
threading.Thread(target=lurk).start()
while not os.path.exists("/tmp/lurker-ready"):
    time.sleep(0.01)
libc.pthread_exit(None)
"""

LEAVE_A_LURKER = """
import os, subprocess, sys, time
from where import where
def handler(event, context):
    if event.get("lurk"):
        subprocess.Popen([sys.executable, "-c", LURKER], start_new_session=True)
        deadline = time.monotonic() + 10
        while not os.path.exists("/tmp/lurker-ready") and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # the leader has exited by now
        states = []
        for pid in os.listdir("/proc"):
            if pid.isdigit() and int(pid) > os.getpid():
                with open(f"/proc/{pid}/stat") as handle:
                    states.append(handle.read().rpartition(")")[2].split()[0])
        return {"where": where(), "states": states}
    return {"where": where()}
"""


def threads_named(name: str) -> list[str]:
    """Host threads whose name (comm) is `name`, as "pid/tid"."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as handle:
                    if handle.read().strip() == name:
                        found.append(f"{pid}/{tid}")
            except OSError:
                pass
    return found


def test_a_process_whose_leader_exited_does_not_survive_a_warm_run(invoke, bundle, pool):
    code = bundle(LEAVE_A_LURKER)
    mark = "lk" + code.name[-8:]
    (code / "main.py").write_text((code / "main.py").read_text().replace("LURKER", repr(LURKER.replace("MARK", mark))))
    first, value = invoke(code, event={"lurk": True})
    assert first.outcome == "succeeded", first.reason
    assert "Z" in value["states"]  # the lurker's leader really looked like a zombie
    # Gone before the next run starts, and the next run is in a new environment.
    assert threads_named(mark) == []
    second, again = invoke(code)
    assert second.outcome == "succeeded"
    assert again["where"] != value["where"] and pool.created == 2


READ_MY_MEMORY = """
import os, time
def handler(event, context):
    secret = "run-secret-" + context.aws_request_id
    parent = os.getpid()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # another process of the same uid, like a leftover of an earlier run
        os.close(read)
        outcome = []
        for name in ("mem", "environ", "maps"):
            try:
                with open(f"/proc/{parent}/{name}", "rb") as handle:
                    handle.read(1)
                outcome.append(name + ":read")
            except OSError as exc:
                outcome.append(name + ":" + type(exc).__name__)
        os.write(write, ",".join(outcome).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    return {"outcome": os.read(read, 1000).decode().split(","), "secret": len(secret)}
"""


def test_a_run_cannot_be_read_by_another_process_of_its_uid(run_function):
    run = run_function(READ_MY_MEMORY)
    assert run.result.outcome == "succeeded", run.result.reason
    assert not [o for o in run.value["outcome"] if o.endswith(":read")], run.value
