"""Warm execution environments (runtime/warm.py): reuse, and nothing of one run reaching the next.

Every hostile-code test of test_sandbox.py also runs in a warm environment
(the ``run_function`` fixture is parametrized); these are about what happens
between runs.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from runtime.sandbox import Invocation, Limits, execute
from runtime.warm import WarmPool

from .conftest import CONTRACT_ENV, processes_with

pytestmark = pytest.mark.sandbox

# Which environment ran us: the zygote is our parent (pid 2 in the namespace; a cold bootstrap's parent
# is bwrap's init, pid 1), and its start time tells one zygote from another.
WHERE = """
import os
def where():
    with open(f"/proc/{os.getppid()}/stat") as handle:
        return [os.getppid(), handle.read().rpartition(")")[2].split()[19]]
"""


@pytest.fixture
def pool(tmp_path):
    pool = WarmPool(size=3, idle_seconds=60, temp_root=tmp_path / "warm")
    yield pool
    pool.clear()


@pytest.fixture
def bundle(tmp_path):
    def bundle(source, files=None):
        code_dir = tmp_path / f"code-{uuid.uuid4().hex[:8]}"
        code_dir.mkdir()
        (code_dir / "main.py").write_text(textwrap.dedent(source).replace("MARKER", code_dir.name))
        (code_dir / "where.py").write_text(WHERE)
        for name, text in (files or {}).items():
            (code_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (code_dir / name).write_text(text)
        return code_dir

    return bundle


@pytest.fixture
def invoke(pool, tmp_path, runtime_python, bwrap_ok):
    def invoke(code_dir, *, owner="fn-a", event=None, limits=None, lines=None):
        invocation = Invocation(code_dir=code_dir, handler="main.handler", event=event or {}, function_name="warm-test",
                                request_id=str(uuid.uuid4()), env=dict(CONTRACT_ENV), temp_dir=tmp_path / "unused")
        result = pool.execute(invocation, limits or Limits(timeout_s=20),
                              (lines.extend if lines is not None else lambda batch: None),
                              owner=owner, runtime_python=runtime_python)
        value = json.loads(result.return_value) if result.return_value else None
        return result, value

    return invoke


def test_the_second_run_of_a_version_reuses_its_environment_and_is_faster(invoke, bundle, pool, tmp_path,
                                                                           runtime_python):
    code = bundle("""
        from where import where
        def handler(event, context):
            return where()
    """)
    first, where_1 = invoke(code)
    started = time.monotonic()
    second, where_2 = invoke(code)
    warm_ms = (time.monotonic() - started) * 1000
    assert first.outcome == second.outcome == "succeeded"
    assert second.warm_start
    assert where_1 == where_2 and where_1[0] == 2  # the same zygote forked both
    assert pool.created == 1

    cold_invocation = Invocation(code_dir=code, handler="main.handler", event={}, function_name="warm-test",
                                 request_id="r", env=dict(CONTRACT_ENV), temp_dir=tmp_path / "cold")
    started = time.monotonic()
    cold = execute(cold_invocation, Limits(timeout_s=20), lambda batch: None, runtime_python=runtime_python)
    cold_ms = (time.monotonic() - started) * 1000
    assert cold.outcome == "succeeded" and not cold.warm_start
    assert json.loads(cold.return_value)[0] == 1  # bwrap's init is a cold bootstrap's parent
    print(f"warm {warm_ms:.1f} ms, cold {cold_ms:.1f} ms")
    assert warm_ms < cold_ms


def test_the_temp_dir_is_emptied_between_runs(invoke, bundle):
    code = bundle("""
        import os
        def handler(event, context):
            before = sorted(os.listdir("/tmp"))
            os.makedirs("/tmp/sub/deeper", exist_ok=True)
            with open("/tmp/sub/deeper/old.txt", "w") as handle:
                handle.write("run data")
            with open("/tmp/old.txt", "w") as handle:
                handle.write("run data")
            os.symlink("/var/task/main.py", "/tmp/link")
            os.chmod("/tmp/sub/deeper", 0)
            return before
    """)
    assert invoke(code)[1] == []
    result, value = invoke(code)
    assert result.warm_start and result.outcome == "succeeded", result.reason
    assert value == []


def test_module_globals_and_the_environment_are_not_shared_between_runs(invoke, bundle):
    code = bundle("""
        import os, json, boto3
        SEEN = []
        def handler(event, context):
            SEEN.append(1)
            previous = [len(SEEN), getattr(boto3, "cached_credentials", None), os.environ.get("LEFT_BY_RUN"),
                        getattr(json, "patched", None)]
            boto3.cached_credentials = "run secret"
            json.patched = True
            os.environ["LEFT_BY_RUN"] = "yes"
            return previous
    """)
    expected = [1, None, None, None]
    assert invoke(code)[1] == expected
    result, value = invoke(code)
    assert result.warm_start and value == expected


def test_a_run_gets_the_aws_models_loaded_and_its_changes_to_them_stay_in_the_run(invoke, bundle):
    # The zygote loaded the STS, SSM and S3 models once (bootstrap._warm_aws_models); a run that
    # tampers with the cached model, or asks for its own data path, must not reach the next run.
    code = bundle("""
        import os, boto3
        def handler(event, context):
            session = boto3.session.Session(aws_access_key_id="run-key", aws_secret_access_key="x",
                                            region_name="eu-west-1")
            loader = session._session.get_component("data_loader")
            cached = sorted(key[1] for key in loader._cache if key[0] == "load_service_model")
            model = loader.load_service_model("s3", "service-2")
            seen = model["metadata"].get("tampered")
            model["metadata"]["tampered"] = "by a previous run"
            client = session.client("s3", endpoint_url="http://127.0.0.1:9")
            os.environ["AWS_DATA_PATH"] = "/tmp"
            own = boto3.session.Session()._session
            del os.environ["AWS_DATA_PATH"]
            return {"cached": cached, "seen": seen, "paths": len(loader.search_paths),
                    "paths_again": len(boto3.session.Session()._loader.search_paths),
                    "key": client._request_signer._credentials.access_key,
                    "own_loader": own.get_component("data_loader") is not loader}
    """)
    first = invoke(code)[1]
    result, second = invoke(code)
    assert result.warm_start and result.outcome == "succeeded", result.reason
    for value in (first, second):
        assert {"s3", "ssm", "sts"} <= set(value["cached"])
        assert value["seen"] is None
        assert value["paths"] == value["paths_again"]
        assert value["key"] == "run-key"
        assert value["own_loader"] is True


def test_botocore_sessions_in_a_run_get_their_own_builtin_handlers(invoke, bundle):
    # Sessions start from a table of built-in handlers the zygote made: the same handlers a
    # session registers itself, and a handler one session adds is in no other session.
    code = bundle("""
        import botocore.hooks, botocore.session
        EVENTS = ("before-parameter-build.s3.PutObject", "before-sign.s3", "needs-retry.sts", "choose-signer.ssm",
                  "after-call.sts.AssumeRole", "creating-client-class.s3", "before-call.s3.GetObject")
        def names(session):
            return [[getattr(h, "__name__", repr(h)) for h in session._original_handler._handlers.prefix_search(e)]
                    for e in EVENTS]
        def handler(event, context):
            mine = botocore.session.Session()
            def added(**kwargs):
                pass
            mine.register("before-call.s3.GetObject", added)
            other = botocore.session.Session()
            own_hooks = botocore.session.Session(event_hooks=botocore.hooks.HierarchicalEmitter())
            return {"other": names(other), "own_hooks": names(own_hooks), "mine": names(mine)[-1]}
    """)
    for _ in range(2):
        result, value = invoke(code)
        assert result.outcome == "succeeded", result.reason
        assert value["other"] == value["own_hooks"]
        assert "added" in value["mine"] and "added" not in value["other"][-1]
        assert any(value["other"])
    assert result.warm_start


SPARE_CHECK = """
    import gc, os, sys, time
    import boto3, botocore.client, botocore.session

    def started_at():
        # This process's start, in seconds since boot (as CLOCK_BOOTTIME counts).
        with open("/proc/self/stat") as handle:
            ticks = int(handle.read().rpartition(")")[2].split()[19])
        return ticks / os.sysconf("SC_CLK_TCK")

    def handler(event, context):
        gc.unfreeze()  # the zygote's objects too (frozen before its first fork): its warm-up left none
        gc.collect()
        found = [type(o).__name__ for o in gc.get_objects()
                 if isinstance(o, (botocore.client.BaseClient, botocore.session.Session, boto3.session.Session))]
        keys = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        value = {"pid": os.getpid(), "parent": os.getppid(), "started": started_at(), "objects": found,
                 "default_session": boto3.DEFAULT_SESSION is not None, "aws_env": keys,
                 "leaked": getattr(botocore, "left_by_a_run", None),
                 "ended": time.clock_gettime(time.CLOCK_BOOTTIME)}
        botocore.left_by_a_run = os.environ.get("AWS_SECRET_ACCESS_KEY", "run secret")
        value["policy"] = os.sched_getscheduler(0) == os.SCHED_OTHER
        value["nice"] = os.getpriority(os.PRIO_PROCESS, 0)
        try:
            os.setpriority(os.PRIO_PROCESS, 0, -1)
            value["higher_priority"] = "allowed"
        except OSError:
            value["higher_priority"] = "refused"
        return value
"""


def test_each_run_gets_a_spare_forked_after_the_previous_run_that_holds_nothing_of_its_warm_up(invoke, bundle,
                                                                                                pool):
    # The zygote forks the next run's process ahead of the run (bootstrap._Spare); for a bundle
    # that uses boto3 that process first makes and calls throw-away clients. What the run sees
    # must be exactly what a process forked on demand sees: no session, client or variable of
    # the warm-up, no default session, and nothing of the run before (forked after it ended).
    code = bundle(SPARE_CHECK)
    runs = [invoke(code) for _ in range(3)]
    assert all(result.outcome == "succeeded" for result, _ in runs), [r.reason for r, _ in runs]
    assert all(result.warm_start for result, _ in runs[1:])
    assert pool.last_environment.prewarm
    values = [value for _, value in runs]
    assert len({value["pid"] for value in values}) == 3 and {value["parent"] for value in values} == {2}
    for earlier, later in zip(values, values[1:]):
        tick = 1 / os.sysconf("SC_CLK_TCK")
        assert later["started"] >= earlier["ended"] - 2 * tick, "the spare was forked after the run before ended"
    for value in values:
        # The spare may have warmed up at idle priority: its run never runs at it.
        assert value["policy"] is True and value["nice"] == 0 and value["higher_priority"] == "refused"
        assert value["objects"] == [] and value["default_session"] is False
        assert value["leaked"] is None
        assert "warm-up" not in json.dumps(value["aws_env"])


def test_the_warm_ups_http_responder_is_gone_before_the_run_as_in_a_process_started_cold(invoke, bundle, pool,
                                                                                          tmp_path, runtime_python):
    # The spare's warm-up makes its two calls over real HTTP to a responder thread of its own
    # (bootstrap._CannedResponder), and takes the steps of importing the SDK's samsara.function
    # into a module it throws away. The run's process must hold none of it: the same threads,
    # sockets and open files as a process started on demand, at normal priority, and its own
    # first import of samsara.function (whose defaults are read from the environment then).
    code = bundle("""
        import os, sys, threading
        imported_before = sorted(name for name in sys.modules if name.startswith("samsara.function"))
        import boto3
        from samsara.function import Function
        def kind(fd):
            try:
                return os.readlink(f"/proc/self/fd/{fd}").split(":")[0]
            except OSError:
                return None  # the listing's own descriptor, closed by now
        def handler(event, context):
            fds = sorted(filter(None, map(kind, os.listdir("/proc/self/fd"))))
            return {"threads": [t.name for t in threading.enumerate()], "tasks": len(os.listdir("/proc/self/task")),
                    "fds": fds, "idle": os.sched_getscheduler(0) == os.SCHED_IDLE,
                    "imported_before": imported_before, "sdk_defaults": Function.__init__.__defaults__}
    """)
    cold = execute(Invocation(code_dir=code, handler="main.handler", event={}, function_name="warm-test",
                              request_id="r", env=dict(CONTRACT_ENV), temp_dir=tmp_path / "cold"),
                   Limits(timeout_s=20), lambda batch: None, runtime_python=runtime_python)
    assert cold.outcome == "succeeded", cold.reason
    for _ in range(3):
        time.sleep(0.3)  # time for the spare to finish its warm-up, responder included
        result, value = invoke(code)
        assert result.outcome == "succeeded", result.reason
        assert value == json.loads(cold.return_value)
    assert result.warm_start and pool.last_environment.prewarm
    assert value["tasks"] == 1 and value["threads"] == ["MainThread"] and "socket" not in value["fds"]
    assert value["imported_before"] == [] and value["sdk_defaults"] == [False]


def test_with_spare_warm_ups_off_a_boto3_bundles_runs_are_warm_and_their_process_did_not_warm_up(
        bundle, tmp_path, runtime_python, bwrap_ok):
    # FUNCTIONS_WARM_SPARE_WARM_UP=false (WarmPool(spare_warm_up=False)): the environment is still
    # preloaded and each run still forked ahead, but the spare makes no AWS clients before its run.
    # What the warm-up leaves is measurable: the pages it wrote are the spare's own (private, dirty)
    # before the handler's module is even imported.
    code = bundle("""
        def _private_dirty_kb():
            with open("/proc/self/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Private_Dirty:"):
                        return int(line.split()[1])
        AT_IMPORT = _private_dirty_kb()
        import boto3
        def handler(event, context):
            return {"private_dirty_kb": AT_IMPORT, "clients": boto3.DEFAULT_SESSION is None}
    """)
    seen = {}
    for warm_up in (True, False):
        pool = WarmPool(size=1, idle_seconds=60, temp_root=tmp_path / f"warm-{warm_up}", spare_warm_up=warm_up)
        try:
            values = []
            for _ in range(3):
                time.sleep(0.5)  # time for a spare to warm up, when it does (at idle priority on a busy machine)
                invocation = Invocation(code_dir=code, handler="main.handler", event={}, function_name="warm-test",
                                        request_id=str(uuid.uuid4()), env=dict(CONTRACT_ENV), temp_dir=tmp_path / "x")
                result = pool.execute(invocation, Limits(timeout_s=20), lambda batch: None, owner="fn-a",
                                      runtime_python=runtime_python)
                assert result.outcome == "succeeded", result.reason
                values.append(json.loads(result.return_value))
            assert result.warm_start and pool.last_environment.preloaded
            assert pool.last_environment.prewarm is warm_up
            seen[warm_up] = max(value["private_dirty_kb"] for value in values[1:])
        finally:
            pool.clear()
    # Several MB written by the warm-up's clients and calls, against the fork's own few pages.
    assert seen[True] > seen[False] + 2048, seen


def test_only_bundles_that_use_boto3_warm_their_runs_process_up(invoke, bundle, pool):
    trivial = bundle("""
        def handler(event, context):
            return 1
    """)
    result, _ = invoke(trivial)
    assert result.outcome == "succeeded" and not pool.last_environment.preloaded
    assert not pool.last_environment.prewarm
    sdk = bundle("""
        from samsara.function import Function
        def handler(event, context):
            return 1
    """)
    result, _ = invoke(sdk, owner="fn-b")
    assert result.outcome == "succeeded" and pool.last_environment.prewarm


def test_a_spare_left_at_idle_priority_never_runs_a_function(invoke, bundle, pool, monkeypatch):
    # Where the worker may lift priorities, the spare warms up at SCHED_IDLE and the worker
    # gives it SCHED_OTHER back before its run. If that fails, the zygote replaces the spare
    # with a fresh fork: the run is still warm, and never at idle priority.
    from runtime import priority

    code = bundle(SPARE_CHECK)
    first = invoke(code)[1]
    if not pool.last_environment.idle_warmup:
        pytest.skip("this worker cannot lift priorities (no CAP_SYS_NICE): spares warm up at normal priority")

    def refuse(*args):
        raise PermissionError(1, "refused for the test")

    monkeypatch.setattr(priority.os, "sched_setscheduler", refuse)
    time.sleep(0.2)
    result, second = invoke(code)
    assert result.outcome == "succeeded" and result.warm_start, result.reason
    assert pool.created == 1 and second["pid"] != first["pid"]
    assert second["policy"] is True and second["nice"] == 0


def test_a_spare_that_died_while_idle_is_replaced_by_a_fork_and_the_run_stays_warm(invoke, bundle, pool):
    from runtime.sandbox.launcher import first_child_pid

    code = bundle(SPARE_CHECK)
    first = invoke(code)[1]
    env = pool.last_environment
    pool.wait_settled()  # the run's own process has exited: the zygote's child is the next spare
    deadline = time.monotonic() + 5
    spare = None
    while spare is None and time.monotonic() < deadline:
        spare = first_child_pid(env.zygote_host_pid)
        time.sleep(0.01)
    assert spare is not None
    os.kill(spare, signal.SIGKILL)
    time.sleep(0.1)
    result, second = invoke(code)
    assert result.outcome == "succeeded" and result.warm_start, result.reason
    assert pool.last_environment is env and pool.created == 1
    assert second["pid"] != first["pid"] and second["leaked"] is None


@pytest.mark.slow
def test_a_function_never_runs_in_another_functions_environment(invoke, bundle, pool):
    source = """
        from where import where
        def handler(event, context):
            return where()
    """
    a, b = bundle(source), bundle(source)
    where_a = invoke(a, owner=("org-1", "A"))[1]
    where_b = invoke(b, owner=("org-1", "B"))[1]
    # The same bundle for another organization's Function: still its own environment.
    where_a_elsewhere = invoke(a, owner=("org-2", "A"))[1]
    assert len({tuple(where_a), tuple(where_b), tuple(where_a_elsewhere)}) == 3
    assert pool.created == 3
    assert invoke(a, owner=("org-1", "A"))[1] == where_a


def test_a_setsid_grandchild_ends_the_environment_and_the_next_run_is_cold(invoke, bundle, pool):
    code = bundle("""
        import subprocess, sys
        from where import where
        def handler(event, context):
            if event.get("escape"):
                # Its own session (start_new_session is setsid()), and it stays.
                subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)", "MARKER-grandchild"],
                                 start_new_session=True)
            return where()
    """)
    first = invoke(code, event={"escape": True})
    assert first[0].outcome == "succeeded"
    assert processes_with(f"{code.name}-grandchild") == []
    second = invoke(code)
    assert second[0].outcome == "succeeded"
    assert second[1] != first[1] and pool.created == 2


def test_system_v_ipc_left_behind_ends_the_environment(invoke, bundle, pool):
    code = bundle("""
        import ctypes
        from where import where
        def handler(event, context):
            if event.get("leave"):
                libc = ctypes.CDLL(None)
                assert libc.shmget(0x5F5F, 4096, 0o1600) >= 0  # IPC_CREAT | 0600, never removed
            return where()
    """)
    first = invoke(code, event={"leave": True})
    assert first[0].outcome == "succeeded", first[0].reason
    second = invoke(code)
    assert second[1] != first[1] and pool.created == 2


@pytest.mark.parametrize("leave", [
    "open('/dev/shm/left', 'w').write('x')",
    "open('/dev/left', 'w').write('x')",
    "os.mkdir('/dev/shm/dir')",
])
def test_files_left_in_dev_end_the_environment(invoke, bundle, pool, leave):
    code = bundle(f"""
        import os
        from where import where
        def handler(event, context):
            if event.get("leave"):
                {leave}
            return where()
    """)
    first = invoke(code, event={"leave": True})
    assert first[0].outcome == "succeeded", first[0].reason
    second = invoke(code)
    assert second[1] != first[1] and pool.created == 2


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall numbers of x86_64")
@pytest.mark.parametrize("keyring", [-4, -5])  # user, user session (a new session keyring dies with the child)
def test_a_key_left_in_a_keyring_ends_the_environment(invoke, bundle, pool, keyring):
    code = bundle(f"""
        import ctypes
        from where import where
        def handler(event, context):
            if event.get("leave"):
                libc = ctypes.CDLL(None, use_errno=True)
                libc.syscall.restype = ctypes.c_long
                key = libc.syscall(248, b"user", b"left", b"run secret", 10, ctypes.c_int({keyring}))  # add_key
                assert key > 0, ctypes.get_errno()
            return where()
    """)
    first = invoke(code, event={"leave": True})
    assert first[0].outcome == "succeeded", first[0].reason
    second = invoke(code)
    assert second[1] != first[1] and pool.created == 2


def test_posix_message_queues_cannot_be_made(invoke, bundle):
    code = bundle("""
        import ctypes
        def handler(event, context):
            libc = ctypes.CDLL(None, use_errno=True)
            return [libc.mq_open(b"/left", 0o100 | 2, 0o600, None), ctypes.get_errno()]
    """)
    assert invoke(code)[1][0] == -1


def test_a_timeout_ends_the_environment_and_the_next_run_starts_afresh(invoke, bundle, pool):
    code = bundle("""
        import time
        from where import where
        def handler(event, context):
            while event.get("spin"):
                pass
            return where()
    """)
    limits = Limits(timeout_s=1)
    where_1 = invoke(code, limits=limits)[1]
    timed_out = invoke(code, event={"spin": True}, limits=limits)[0]
    assert (timed_out.outcome, timed_out.reason) == ("timed_out", "Timed out after 1 s")
    where_3 = invoke(code, limits=limits)[1]
    assert where_3 != where_1 and pool.created == 2


def test_a_handler_error_keeps_the_environment(invoke, bundle, pool):
    code = bundle("""
        from where import where
        def handler(event, context):
            if event.get("fail"):
                raise ValueError("bad input")
            return where()
    """)
    where_1 = invoke(code)[1]
    failed = invoke(code, event={"fail": True})[0]
    assert (failed.outcome, failed.reason) == ("failed", "Handler raised ValueError: bad input")
    assert invoke(code)[1] == where_1 and pool.created == 1


def test_a_child_killing_its_zygote_ends_only_its_own_run(invoke, bundle, pool):
    code = bundle("""
        import os, signal
        from where import where
        def handler(event, context):
            if event.get("kill"):
                os.kill(os.getppid(), signal.SIGKILL)
            return where()
    """)
    where_1 = invoke(code)[1]
    killed = invoke(code, event={"kill": True})[0]
    assert killed.outcome in ("succeeded", "failed")  # the result may or may not have been sent first
    where_3 = invoke(code)[1]
    assert where_3 != where_1 and pool.created == 2


def test_the_zygote_cannot_be_read_or_traced_by_its_children(invoke, bundle):
    code = bundle("""
        import os
        def handler(event, context):
            outcome = {}
            for name in ("mem", "environ", "maps"):
                try:
                    with open(f"/proc/{os.getppid()}/{name}", "rb") as handle:
                        handle.read(1)
                    outcome[name] = "read"
                except OSError as exc:
                    outcome[name] = type(exc).__name__
            return outcome
    """)
    result, value = invoke(code)
    assert result.outcome == "succeeded", result.reason
    assert "read" not in value.values(), value


def test_an_environment_that_died_while_idle_is_replaced(invoke, bundle, pool):
    code = bundle("""
        from where import where
        def handler(event, context):
            return where()
    """)
    where_1 = invoke(code)[1]
    os.kill(pool.last_environment.zygote_host_pid, signal.SIGKILL)
    time.sleep(0.2)
    result, where_2 = invoke(code)
    assert result.outcome == "succeeded" and result.warm_start
    assert where_2 != where_1 and pool.created == 2


def test_a_bundle_shipping_a_preloaded_package_gets_its_own_copy(invoke, bundle, pool):
    code = bundle("""
        import requests
        def handler(event, context):
            return requests.WHO
    """, files={"vendor/requests/__init__.py": "WHO = 'vendored'\n"})
    (code / "main.py").write_text("import sys\nsys.path.insert(0, '/var/task/vendor')\n" + (code / "main.py").read_text())
    result, value = invoke(code)
    assert result.outcome == "succeeded", result.reason
    assert value == "vendored"
    assert not pool.last_environment.preloaded


def test_the_pool_keeps_at_most_size_environments_and_expires_idle_ones(invoke, bundle, pool):
    source = """
        from where import where
        def handler(event, context):
            return where()
    """
    codes = [bundle(source) for _ in range(4)]
    for code in codes:
        invoke(code, owner=code.name)
    assert len(pool.envs) == 3 and pool.created == 4
    zygotes = [env.zygote_host_pid for env in pool.envs.values()]
    pool.wait_settled()  # an environment whose run's exit is being checked is busy, not idle
    assert pool.expire(time.monotonic() + 61) == 3
    assert not pool.envs
    assert all(not Path(f"/proc/{pid}").exists() or b"zygote" not in Path(f"/proc/{pid}/cmdline").read_bytes()
               for pid in zygotes)


def test_small_functions_get_no_preloaded_packages(invoke, bundle, pool):
    code = bundle("""
        import sys
        def handler(event, context):
            return "boto3" in sys.modules
    """)
    result, preloaded = invoke(code, limits=Limits(timeout_s=20, memory_mb=256))
    assert result.warm_start and preloaded is False and not pool.last_environment.preloaded
    result, preloaded = invoke(code)
    assert result.warm_start and preloaded is True and pool.last_environment.preloaded


# Names no preloaded package (the source spells none of them), yet imports boto3 and makes a client.
UNNAMED_BOTO = """
    import importlib, sys
    AWS, HTTP = "bo" "to3", "req" "uests"
    def handler(event, context):
        before = sorted(m for m in (AWS, "bo" "tocore", HTTP, "url" "lib3", "sam" "sara") if m in sys.modules)
        client = importlib.import_module(AWS).client("s3", region_name="eu-west-3", aws_access_key_id="a",
                                                     aws_secret_access_key="b")
        return {"before": before, "region": client.meta.region_name,
                "endpoint": client.meta.endpoint_url, "url": client.generate_presigned_url(
                    "get_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=60).split("?")[0]}
"""


def test_a_bundle_that_names_no_preloaded_package_gets_a_small_zygote_and_can_still_use_them(invoke, bundle, pool):
    code = bundle(UNNAMED_BOTO)
    runs = [invoke(code) for _ in range(3)]
    assert all(result.outcome == "succeeded" for result, _ in runs), [r.reason for r, _ in runs]
    assert all(result.warm_start for result, _ in runs[1:])
    assert not pool.last_environment.preloaded and not pool.last_environment.prewarm
    for _, value in runs:
        # Each run imports boto3 itself, as a cold run does: nothing of the run before is left.
        assert value == {"before": [], "region": "eu-west-3", "endpoint": "https://s3.eu-west-3.amazonaws.com",
                         "url": "https://s3.amazonaws.com/b/k"}, value
    # The same bundle naming boto3 gets the full preload, and the same answers.
    named = bundle(UNNAMED_BOTO.replace('"bo" "to3"', '"boto3"', 1))
    result, value = invoke(named, owner="fn-b")
    assert result.outcome == "succeeded" and pool.last_environment.preloaded and pool.last_environment.prewarm
    result, warm = invoke(named, owner="fn-b")
    assert result.warm_start and warm["before"] == ["boto3", "botocore", "requests", "samsara", "urllib3"]
    assert {**warm, "before": []} == runs[0][1]


def test_a_bundle_that_names_requests_only_gets_requests_preloaded_and_not_boto3(invoke, bundle, pool):
    code = bundle(UNNAMED_BOTO.replace('"req" "uests"', '"requests"', 1))
    invoke(code)
    result, value = invoke(code)
    assert result.outcome == "succeeded" and result.warm_start, result.reason
    assert pool.last_environment.preloaded and not pool.last_environment.prewarm
    assert value["before"] == ["requests", "urllib3"] and value["region"] == "eu-west-3"


def test_a_bundle_too_big_to_scan_keeps_the_full_preload(invoke, bundle, pool):
    # Over the 8 MB the zygote reads, it cannot tell what the bundle uses: everything is preloaded.
    code = bundle(UNNAMED_BOTO, files={"data.py": "# " + "x" * (8 * 1024 * 1024) + "\n"})
    invoke(code)
    result, value = invoke(code)
    assert result.outcome == "succeeded" and result.warm_start, result.reason
    assert pool.last_environment.preloaded and not pool.last_environment.prewarm
    assert value["before"] == ["boto3", "botocore", "requests", "samsara", "urllib3"]


PRECOMPILED = """
    import __main__, sys
    RAN = []
    RAN.append(1)  # the module's own code runs in every run, once
    def handler(event, context):
        cached = getattr(__main__, "_handler_code", None)  # bootstrap is the run's __main__
        # Identity, not equality: equal code objects compare equal.
        zygote_code = cached is not None and any(const is handler.__code__ for const in cached[1].co_consts)
        return {"ran": len(RAN), "zygote_code": zygote_code,
                "loader": "get_code" in vars(sys.modules["main"].__loader__), "file": __file__}
"""


def test_the_zygote_compiles_the_handler_module_and_each_run_executes_it_afresh(invoke, bundle, pool, tmp_path,
                                                                                runtime_python):
    code = bundle(PRECOMPILED)
    runs = [invoke(code) for _ in range(3)]
    assert all(result.outcome == "succeeded" for result, _ in runs), [r.reason for r, _ in runs]
    assert pool.last_environment.precompiled
    for _, value in runs:
        # The zygote's compilation, executed afresh: its module code ran once in this run, and
        # the module's loader is the plain one again.
        assert value == {"ran": 1, "zygote_code": True, "loader": False, "file": "/var/task/main.py"}, value
    cold = execute(Invocation(code_dir=code, handler="main.handler", event={}, function_name="warm-test",
                              request_id="r", env=dict(CONTRACT_ENV), temp_dir=tmp_path / "cold"),
                   Limits(timeout_s=20), lambda batch: None, runtime_python=runtime_python)
    assert json.loads(cold.return_value) == {**runs[0][1], "zygote_code": False}


def test_a_handler_module_that_warns_or_fails_to_import_behaves_as_in_a_cold_run(invoke, bundle, pool, tmp_path,
                                                                                 runtime_python):
    # Its SyntaxWarning is the run's to print (the zygote then leaves the compiling to each
    # run), and an error at import has the traceback a cold run gives.
    warns = bundle("""
        PATTERN = "\\d+"
        def handler(event, context):
            return PATTERN
    """)
    fails = bundle("""
        def helper():
            raise ValueError("at import")
        helper()
        def handler(event, context):
            return 1
    """)
    import py_compile
    shipped = bundle(PRECOMPILED)  # with its own bytecode: the runs load it themselves
    py_compile.compile(str(shipped / "main.py"), cfile=str(shipped / "__pycache__" / "main.cpython-312.pyc"))
    for code, precompiled in ((warns, False), (fails, True), (shipped, False)):
        cold_lines, warm_lines = [], []
        cold = execute(Invocation(code_dir=code, handler="main.handler", event={}, function_name="warm-test",
                                  request_id="r", env=dict(CONTRACT_ENV), temp_dir=tmp_path / "cold"),
                       Limits(timeout_s=20), cold_lines.extend, runtime_python=runtime_python)
        invoke(code, owner=code.name)
        warm, _ = invoke(code, owner=code.name, lines=warm_lines)
        assert warm.warm_start and pool.last_environment.precompiled is precompiled
        assert (warm.outcome, warm.return_value, warm.error) == (cold.outcome, cold.return_value, cold.error)
        assert [(line.stream, line.message) for line in warm_lines] == [(line.stream, line.message)
                                                                         for line in cold_lines]
        if code is warns:
            assert any("SyntaxWarning" in line.message for line in warm_lines), warm_lines
        if code is fails:
            assert cold.error["type"] == "Runtime.ImportModuleError" and "at import" in cold.error["traceback"]


def _wait_ready(pool, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with pool.lock:
            if pool.envs and not any(env.busy for env in pool.envs.values()):
                return
        time.sleep(0.02)
    raise AssertionError("the pre-started environment did not get ready")


def test_a_run_in_a_prestarted_environment_behaves_exactly_as_one_started_on_demand(bundle, tmp_path, runtime_python,
                                                                                     bwrap_ok):
    code = bundle("""
        import os, resource, sys
        def handler(event, context):
            print("hello from", context.function_name)
            with open("/tmp/mine", "w") as handle:
                handle.write("x")
            limits = {name: resource.getrlimit(getattr(resource, name))
                      for name in ("RLIMIT_DATA", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_MSGQUEUE")}
            preloaded = sorted(m for m in sys.modules if m.partition(".")[0] in ("boto3", "botocore", "requests", "samsara"))
            import gc, boto3, botocore.client
            gc.collect()
            clients = sum(isinstance(o, botocore.client.BaseClient) for o in gc.get_objects())
            return {"environ": dict(os.environ), "cwd": os.getcwd(), "tmp": sorted(os.listdir("/tmp")),
                    "ids": [os.getuid(), os.getgid(), os.getpid() > 2], "limits": limits, "event": event,
                    "preloaded": preloaded, "remaining": context.get_remaining_time_in_millis() > 0,
                    "main": sys.modules["main"].__file__, "clients": clients,
                    "default_session": boto3.DEFAULT_SESSION is None}
    """)
    limits = Limits(timeout_s=20)
    outcomes = []
    for kind in ("pre-started", "on demand"):
        pool = WarmPool(size=2, idle_seconds=60, temp_root=tmp_path / kind)
        try:
            def invocation():
                return Invocation(code_dir=code, handler="main.handler", event={"n": 1}, function_name="warm-test",
                                  request_id=str(uuid.uuid4()), env=dict(CONTRACT_ENV), temp_dir=tmp_path / "unused")
            if kind == "pre-started":
                assert pool.prestart(invocation(), limits, owner="fn-a", runtime_python=runtime_python, with_aws=False)
                assert not pool.prestart(invocation(), limits, owner="fn-a", runtime_python=runtime_python,
                                         with_aws=False)  # one environment per key
                _wait_ready(pool)
                started = next(iter(pool.envs.values()))
                assert started.zygote_host_pid and pool.prestarted == 1
            lines = []
            result = pool.execute(invocation(), limits, lines.extend, owner="fn-a", runtime_python=runtime_python)
            assert result.outcome == "succeeded" and result.warm_start, result.reason
            assert pool.created + pool.prestarted == 1
            if kind == "pre-started":
                assert pool.last_environment is started and started.runs == 1
            # The bundle names boto3: both environments' runs start in a spare that warmed boto3 up.
            assert pool.last_environment.prewarm
            outcomes.append((json.loads(result.return_value), [(line.stream, line.message) for line in lines]))
        finally:
            pool.clear()
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0]["tmp"] == ["mine"] and outcomes[0][1] == [("stdout", "hello from warm-test")]
    assert outcomes[0][0]["clients"] == 0 and outcomes[0][0]["default_session"] is True


def test_prestarting_never_takes_the_place_of_another_environment(invoke, bundle, pool, runtime_python):
    source = """
        def handler(event, context):
            return 1
    """
    codes = [bundle(source) for _ in range(4)]
    for code in codes[:3]:
        invoke(code, owner=code.name)
    before = dict(pool.envs)
    invocation = Invocation(code_dir=codes[3], handler="main.handler", event={}, function_name="warm-test",
                            request_id="x", env=dict(CONTRACT_ENV), temp_dir=Path("/nonexistent"))
    assert not pool.prestart(invocation, Limits(timeout_s=20), owner=codes[3].name, runtime_python=runtime_python,
                             with_aws=False)
    assert pool.envs == before and pool.prestarted == 0
