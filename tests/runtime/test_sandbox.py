"""The sandbox runs real Function code in bubblewrap: behaviour, limits, isolation."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from runtime.cgroups import AttemptCgroup
from runtime.sandbox import (
    CODE_PATH,
    Limits,
    execute,
    Invocation,
    network_mode,
    sandbox_available,
)

from .conftest import CONTRACT_ENV, processes_with

pytestmark = pytest.mark.sandbox


def cgroups_available() -> bool:
    group = AttemptCgroup.create(max_pids=10, memory_bytes=64 * 1024 * 1024)
    if group is None:
        return False
    group.remove()
    return True


# --- results --------------------------------------------------------------


def test_it_returns_the_handler_value_with_event_and_context(run_function):
    run = run_function("""
        def handler(event, context):
            print("got", event["name"])
            return {
                "event": event,
                "request_id": context.aws_request_id,
                "function_name": context.function_name,
                "version": context.function_version,
                "memory": context.memory_limit_in_mb,
                "arn": context.invoked_function_arn,
                "log_group": context.log_group_name,
                "remaining": context.get_remaining_time_in_millis(),
                "number": 1.5,
            }
    """, event={"name": "Ada", "SamsaraFunctionCorrelationId": "c-1"}, limits=Limits(timeout_s=20))
    result = run.result
    assert (result.outcome, result.reason) == ("succeeded", "Succeeded")
    # A warm run is over with its result and its pipes' end, without waiting for its process's exit: its
    # exit code is known (0) only when the zygote's report of it happened to arrive first (WarmLauncher.stop
    # reads it without waiting), as on a loaded machine it may.
    assert result.exit_code in ((None, 0) if result.warm_start else (0,))
    assert run.value["event"] == {"name": "Ada", "SamsaraFunctionCorrelationId": "c-1"}
    assert run.value["request_id"] == run.invocation.request_id
    assert run.value["function_name"] == "sandbox-test"
    assert run.value["version"] == "$LATEST"
    assert run.value["memory"] == "1769"
    assert run.value["arn"] == "arn:aws:lambda:eu-west-1:000000000000:function:sandbox-test"
    assert run.value["log_group"] == "/aws/lambda/sandbox-test"
    assert 10_000 < run.value["remaining"] <= 20_000
    assert run.messages("stdout") == ["got Ada"]
    assert result.error is None
    assert result.duration_ms > 0
    assert result.peak_memory_mb and result.peak_memory_mb > 1


def test_an_event_larger_than_the_payload_pipe_arrives_whole(run_function):
    # A payload that fits the pipe is written at once; a larger one (here about 3 MB) is
    # written by a thread while the worker pumps the Function's output.
    event = {f"key{i}": "x" * 1000 for i in range(3000)}
    run = run_function("""
        import hashlib, json
        def handler(event, context):
            print("keys", len(event))
            return hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()
    """, event=event, limits=Limits(timeout_s=20))
    import hashlib
    import json

    assert run.result.outcome == "succeeded", run.result.reason
    assert run.value == hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()
    assert run.messages("stdout") == ["keys 3000"]


def test_it_gives_the_function_exactly_the_contract_environment(run_function, monkeypatch):
    monkeypatch.setenv("DJANGO_SECRET_KEY", "host-secret")
    monkeypatch.setenv("DATABASE_URL", "postgres://host")
    run = run_function("""
        import os
        def handler(event, context):
            return dict(os.environ)
    """)
    assert run.result.outcome == "succeeded", run.result.reason
    expected = dict(CONTRACT_ENV, SamsaraFunctionCodePath="/var/task", SamsaraFunctionTempStoragePath="/tmp",
                    PATH="/opt/runtime/bin:/usr/local/bin:/usr/bin:/bin", LANG="C.UTF-8", PWD="/var/task")
    assert run.value == expected
    assert not any(key.startswith(("DJANGO", "DATABASE", "HOME", "VIRTUAL_ENV", "PYTHON")) for key in run.value)


def test_it_reports_a_raised_exception_with_its_traceback(run_function):
    run = run_function("""
        def helper():
            raise ValueError("boom")

        def handler(event, context):
            helper()
    """)
    result = run.result
    assert (result.outcome, result.reason) == ("failed", "Handler raised ValueError: boom")
    assert result.error["type"] == "ValueError"
    assert result.error["message"] == "boom"
    assert 'File "/var/task/main.py", line 3, in helper' in result.error["traceback"]
    assert 'File "/var/task/main.py", line 6, in handler' in result.error["traceback"]
    assert result.return_value is None
    # The error travels in the result, not as stderr lines: the worker logs it as one entry.
    assert not any("[ERROR]" in line or "Traceback" in line for line in run.messages("stderr"))


def test_it_reports_the_exit_code_of_sys_exit(run_function):
    run = run_function("""
        import sys
        def handler(event, context):
            print("leaving")
            sys.exit(3)
    """)
    assert (run.result.outcome, run.result.reason, run.result.exit_code) == (
        "failed", "Process exited with code 3", 3)
    assert run.messages("stdout") == ["leaving"]


def test_it_fails_when_the_process_exits_without_a_result(run_function):
    run = run_function("""
        import os
        def handler(event, context):
            os._exit(0)
    """)
    assert (run.result.outcome, run.result.reason) == (
        "failed", "Process exited with code 0 before the handler returned")


def test_it_reports_a_segfault_as_a_signal(run_function):
    run = run_function("""
        import ctypes
        def handler(event, context):
            ctypes.string_at(0)
    """)
    assert (run.result.outcome, run.result.reason) == ("failed", "Killed by signal SIGSEGV")
    assert run.result.exit_code == 128 + 11
    assert any("Segmentation fault" in m for m in run.messages("stderr"))  # faulthandler's dump


def test_it_reports_out_of_memory_for_a_3_gb_allocation(run_function):
    run = run_function("""
        def handler(event, context):
            block = bytearray(3 * 1024 ** 3)
            return len(block)
    """)
    assert (run.result.outcome, run.result.reason) == ("failed", "Out of memory (limit 1769 MB)")
    assert run.result.error["type"] == "MemoryError"


@pytest.mark.skipif(not cgroups_available(), reason="needs a writable memory cgroup")
def test_it_reports_out_of_memory_when_the_sandbox_as_a_whole_is_over(run_function):
    # Each process stays under RLIMIT_DATA; together they pass the cgroup's cap.
    run = run_function("""
        import os, time
        def touch(n):
            block = bytearray(n * 1024 * 1024)
            for i in range(0, len(block), 4096):
                block[i] = 1
            return block

        def handler(event, context):
            for _ in range(2):
                if os.fork() == 0:
                    keep = touch(70)
                    time.sleep(60)
                    os._exit(0)
            time.sleep(0.5)
            keep = touch(250)
            return "survived"
    """, limits=Limits(timeout_s=20, memory_mb=300, tmp_mb=16))
    # The cgroup holds the memory and /tmp's pages (a tmpfs): 300 + 16 MB here.
    assert (run.result.outcome, run.result.reason) == ("failed", "Out of memory (limit 300 MB)")


def test_it_fails_on_a_return_value_that_is_not_json(run_function):
    run = run_function("""
        def handler(event, context):
            return {"ids": {1, 2}}
    """)
    assert run.result.outcome == "failed"
    assert run.result.reason == ("Return value is not JSON serialisable: "
                                 "TypeError: Object of type set is not JSON serializable")


def test_it_fails_on_a_return_value_over_the_payload_cap(run_function):
    run = run_function("""
        def handler(event, context):
            return "x" * (50 * 1024 * 1024)
    """)
    assert run.result.outcome == "failed"
    assert run.result.reason == "Return value too large: 52428802 bytes (limit 6291456 bytes)"
    assert run.result.return_value is None


def test_printed_output_cannot_forge_the_result(run_function):
    run = run_function("""
        import sys
        def handler(event, context):
            forged = '{"type": "result", "status": "ok", "length": 4}\\n"ok"'
            print(forged)
            print(forged, file=sys.stderr)
            raise RuntimeError("real failure")
    """)
    assert (run.result.outcome, run.result.reason) == ("failed", "Handler raised RuntimeError: real failure")
    assert run.result.return_value is None


# --- time, processes, output -------------------------------------------------


def test_it_times_out_an_endless_loop_and_leaves_no_process(run_function):
    run = run_function("""
        import subprocess, sys
        def handler(event, context):
            subprocess.Popen([sys.executable, "-c", "while True: pass", "MARKER"])
            while True:
                pass
    """, limits=Limits(timeout_s=1.5))
    assert (run.result.outcome, run.result.reason) == ("timed_out", "Timed out after 1.5 s")
    assert 1400 <= run.result.duration_ms < 10_000
    assert processes_with(run.marker) == []


@pytest.mark.skipif(os.geteuid() == 0 and not cgroups_available(),
                    reason="as root only a pids cgroup contains a fork bomb (RLIMIT_NPROC does not apply)")
def test_it_contains_a_fork_bomb(run_function):
    run = run_function("""
        import os, subprocess, sys, time
        BOMB = "import os\\nwhile True:\\n    try:\\n        os.fork()\\n    except OSError:\\n        pass\\n"
        def handler(event, context):
            subprocess.Popen([sys.executable, "-c", BOMB, "MARKER"])
            time.sleep(1.5)
            print("processes", len([p for p in os.listdir("/proc") if p.isdigit()]))
            time.sleep(60)
    """, limits=Limits(timeout_s=3, max_processes=64))
    assert (run.result.outcome, run.result.reason) == ("timed_out", "Timed out after 3 s")
    counted = int(run.messages("stdout")[0].split()[1])
    print("processes in the sandbox:", counted)
    assert 30 < counted <= 64 + 8  # it did fork, up to the cap and no further
    assert processes_with(run.marker) == []
    # The host can still start processes.
    assert subprocess.run(["true"]).returncode == 0


def test_a_setsid_grandchild_does_not_outlive_the_attempt(run_function):
    run = run_function("""
        import subprocess, sys
        def handler(event, context):
            # start_new_session is the setsid() (a second os.setsid() would fail and end it at once).
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)", "MARKER"],
                             start_new_session=True)
            return "done"
    """)
    assert run.result.outcome == "succeeded"
    assert run.value == "done"
    assert processes_with(run.marker) == []


@pytest.mark.slow
def test_it_stops_a_flood_of_lines_at_the_output_cap(run_function):
    run = run_function("""
        def handler(event, context):
            for i in range(10_000_000):
                print(i)
    """, limits=Limits(timeout_s=30, max_output_bytes=1024 * 1024))
    assert (run.result.outcome, run.result.reason) == ("failed", "Output limit of 1 MB exceeded")
    messages = run.messages("stdout")
    assert messages[:3] == ["0", "1", "2"]
    assert sum(len(m) + 1 for m in messages) <= 1024 * 1024
    assert run.result.duration_ms < 20_000


@pytest.mark.slow
def test_it_delivers_every_line_in_order(run_function):
    run = run_function("""
        def handler(event, context):
            for i in range(200_000):
                print(i)
            return "ok"
    """)
    assert run.result.outcome == "succeeded", run.result.reason
    assert run.messages("stdout") == [str(i) for i in range(200_000)]
    assert max(len(batch) for batch in run.batches) <= 1000
    stamps = [line.timestamp for line in run.lines]
    assert stamps == sorted(stamps)
    assert all(ts.tzinfo is not None and ts.utcoffset().total_seconds() == 0 for ts in stamps[:10])


def test_it_cuts_an_overlong_line_with_a_marker(run_function):
    run = run_function("""
        import sys
        def handler(event, context):
            sys.stdout.write("x" * 300_000 + "\\n")
            print("after")
    """)
    assert run.result.outcome == "succeeded", run.result.reason
    assert run.value is None
    assert run.messages("stdout") == ["x" * 262144 + "... [line truncated at 262144 bytes]", "after"]


def test_it_streams_lines_while_the_function_runs(run_function):
    run = run_function("""
        import time
        def handler(event, context):
            print("first")
            time.sleep(1.0)
            print("second")
            return "ok"
    """)
    assert run.result.outcome == "succeeded"
    assert run.messages("stdout") == ["first", "second"]
    first_batch_at = run.batch_times[0]
    assert run.batches[0][0].message == "first"
    assert run.returned_at - first_batch_at > 0.5  # arrived while the Function slept
    first, second = run.lines
    assert 0.8 < (second.timestamp - first.timestamp).total_seconds() < 5


def test_a_slow_log_consumer_does_not_stall_the_function(run_function):
    run = run_function("""
        import time
        def handler(event, context):
            start = time.monotonic()
            for i in range(3000):
                print("line", i)
            return time.monotonic() - start
    """, on_output=lambda batch: time.sleep(0.3))
    assert run.result.outcome == "succeeded"
    assert run.value < 1.0
    assert len(run.lines) == 3000


def test_a_failing_log_consumer_does_not_fail_the_run(run_function):
    def explode(batch):
        raise RuntimeError("database down")

    run = run_function("""
        def handler(event, context):
            print("hello")
            return "ok"
    """, on_output=explode)
    assert (run.result.outcome, run.value) == ("succeeded", "ok")


# --- isolation ----------------------------------------------------------------


def test_it_hides_the_host(run_function, tmp_path):
    other_bundle = tmp_path / "other-bundle"
    other_bundle.mkdir()
    (other_bundle / "secret.py").write_text("KEY = 'other org'\n")
    run = run_function(f"""
        import os

        def probe(path):
            try:
                if os.path.isdir(path):
                    return sorted(os.listdir(path))
                with open(path, "rb") as handle:
                    return handle.read().decode()
            except OSError as exc:
                return type(exc).__name__

        def handler(event, context):
            return {{
                "init_environ": probe("/proc/1/environ"),
                "shadow": probe("/etc/shadow"),
                "config": probe("/work/main/config"),
                "work": probe("/work"),
                "root": probe("/root"),
                "root_bashrc": probe("/root/.bashrc"),
                "other_bundle": probe({str(other_bundle)!r}),
                "postgres_socket": probe("/run/postgresql"),
                "var": probe("/var"),
                "etc": probe("/etc"),
                "passwd": probe("/etc/passwd"),
                "pids": [p for p in os.listdir("/proc") if p.isdigit()],
                "uid": [os.getuid(), os.getgid()],
                "hostname": os.uname().nodename,
            }}
    """)
    value = run.value
    assert run.result.outcome == "succeeded", run.result.reason
    assert value["init_environ"] == ""
    assert value["shadow"] == "FileNotFoundError"
    assert value["config"] == "FileNotFoundError"
    assert value["work"] == "FileNotFoundError"
    assert value["root"] in ([".pyenv"], "FileNotFoundError")  # only the interpreter's parent dirs
    assert value["root_bashrc"] == "FileNotFoundError"
    assert value["other_bundle"] == "FileNotFoundError"
    assert value["postgres_socket"] == "FileNotFoundError"
    assert value["var"] == ["task"]
    assert "shadow" not in value["etc"] and "ssl" in value["etc"]
    assert "root:x:0:0" in value["passwd"] and "sbx_user:x:65534:65534" in value["passwd"]
    assert len(value["pids"]) <= 3  # bwrap's init, bootstrap (and nothing of the host's)
    assert value["uid"] == [65534, 65534]
    assert value["hostname"] == "sandbox"


def test_only_tmp_is_writable(run_function):
    run = run_function("""
        import os
        def handler(event, context):
            outcome = {}
            for path in ["/var/task/new.txt", "/var/task/main.py", "/etc/passwd", "/new.txt",
                         "/opt/runtime/new.txt", "/usr/new.txt", "/root/new.txt"]:
                try:
                    with open(path, "w") as handle:
                        handle.write("x")
                    outcome[path] = "written"
                except OSError as exc:
                    outcome[path] = type(exc).__name__
            with open(os.environ["SamsaraFunctionTempStoragePath"] + "/kept.txt", "w") as handle:
                handle.write("temp storage")
            with open("/tmp/kept.txt") as handle:
                outcome["/tmp/kept.txt"] = handle.read()
            return outcome
    """)
    assert run.result.outcome == "succeeded", run.result.reason
    assert run.value.pop("/tmp/kept.txt") == "temp storage"
    assert all(status in ("OSError", "PermissionError") for status in run.value.values()), run.value
    # /tmp is a filesystem of the sandbox's own: nothing of it on the worker's disk.
    assert not (run.temp_dir / "kept.txt").exists()
    assert not (run.code_dir / "new.txt").exists()


def test_it_empties_the_temp_dir_before_the_run(run_function, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("must survive")

    def prepare(temp_dir: Path):
        (temp_dir / "sub" / "deeper").mkdir(parents=True)
        (temp_dir / "sub" / "deeper" / "old.txt").write_text("previous run")
        (temp_dir / "old.txt").write_text("previous run")
        (temp_dir / "link").symlink_to(outside)
        os.chmod(temp_dir / "sub" / "deeper", 0)

    run = run_function("""
        import os
        def handler(event, context):
            return os.listdir("/tmp")
    """, prepare=prepare)
    assert run.result.outcome == "succeeded", run.result.reason
    assert run.value == []
    assert outside.read_text() == "must survive"


@pytest.fixture
def host_listener():
    """A service on the host's loopback, like the database or the broker."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server.getsockname()[1]
    server.close()


def test_host_loopback_services_are_unreachable(run_function, host_listener):
    targets = [("127.0.0.1", 5432), ("127.0.0.1", 6379), ("127.0.0.1", host_listener),
               ("10.0.2.2", 5432), ("10.0.2.2", 6379), ("10.0.2.2", host_listener),
               ("169.254.169.254", 80)]
    run = run_function(f"""
        import socket
        def handler(event, context):
            outcome = {{}}
            for host, port in {targets!r}:
                s = socket.socket()
                s.settimeout(3)
                try:
                    s.connect((host, port))
                    outcome[f"{{host}}:{{port}}"] = "connected"
                except OSError as exc:
                    outcome[f"{{host}}:{{port}}"] = type(exc).__name__
                finally:
                    s.close()
            return outcome
    """)
    assert run.result.outcome == "succeeded", run.result.reason
    assert "connected" not in run.value.values(), run.value
    # The listener is really there for the host.
    socket.create_connection(("127.0.0.1", host_listener), timeout=2).close()


def host_lan_address() -> str | None:
    """The host's own outbound address (a UDP connect sends nothing)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


def test_outbound_connections_work_and_reach_the_hosts_lan_address(run_function):
    # Documented, not blocked: a service listening on the host's LAN address is
    # reachable, like any other outbound destination.
    address = host_lan_address()
    if address is None:
        pytest.skip("no non-loopback address on this host")
    server = socket.socket()
    server.bind((address, 0))
    server.listen()
    server.settimeout(10)
    port = server.getsockname()[1]
    accepted = []

    def serve():
        try:
            conn, _ = server.accept()
            conn.sendall(b"hello from the host")
            conn.close()
            accepted.append(True)
        except OSError:
            pass

    import threading

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        run = run_function(f"""
            import socket
            def handler(event, context):
                with socket.create_connection(({address!r}, {port}), timeout=5) as conn:
                    return conn.recv(100).decode()
        """)
    finally:
        thread.join()
        server.close()
    assert run.result.outcome == "succeeded", run.result.reason
    assert run.value == "hello from the host"


def test_the_network_mode_is_slirp4netns_here():
    assert network_mode() == "slirp4netns"
    ok, why = sandbox_available()
    assert ok, why


# --- code package and packages --------------------------------------------------


def test_preinstalled_packages_import_and_the_apps_do_not(run_function):
    run = run_function("""
        import importlib
        def handler(event, context):
            outcome = {}
            for name in ["boto3", "requests", "samsara", "dateutil", "pytz", "lxml", "PIL", "nacl",
                         "django", "celery", "environ", "psycopg"]:
                try:
                    importlib.import_module(name)
                    outcome[name] = "ok"
                except ImportError:
                    outcome[name] = "missing"
            return outcome
    """)
    assert run.result.outcome == "succeeded", run.result.reason
    assert run.value == {"boto3": "ok", "requests": "ok", "samsara": "ok", "dateutil": "ok", "pytz": "ok",
                         "lxml": "ok", "PIL": "ok", "nacl": "ok",
                         "django": "missing", "celery": "missing", "environ": "missing", "psycopg": "missing"}


def test_a_bundled_samsara_module_shadows_the_sdk(run_function):
    run = run_function({
        "main.py": """
            import samsara
            def handler(event, context):
                return [samsara.WHO, samsara.__file__]
        """,
        "samsara.py": "WHO = 'bundled'\n",
    })
    assert run.result.outcome == "succeeded", run.result.reason
    assert run.value == ["bundled", f"{CODE_PATH}/samsara.py"]


@pytest.mark.parametrize("handler, path", [
    ("a.b.main", "a/b.py"),
    ("dir/mod.fn", "dir/mod.py"),
    ("dir/sub.mod.fn", "dir/sub/mod.py"),
])
def test_the_handler_names_the_file_by_dots_and_slashes(run_function, handler, path):
    function = handler.rpartition(".")[2]
    run = run_function({
        path: f"""
            import os
            def {function}(event, context):
                return [__name__, os.path.relpath(__file__, "{CODE_PATH}"), os.getcwd()]
        """,
        "helper.py": "X = 1\n",
    }, handler=handler)
    assert run.result.outcome == "succeeded", run.result.reason
    assert run.value == [path[:-3].replace("/", "."), path, CODE_PATH]


def test_a_vendored_lib_dir_works_when_the_bundle_adds_it(run_function):
    run = run_function({
        "main.py": """
            import os, sys
            sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
            import vendored
            def handler(event, context):
                return vendored.VALUE
        """,
        "lib/vendored.py": "VALUE = 'from lib'\n",
    })
    assert run.value == "from lib"


@pytest.mark.parametrize("handler, reason", [
    ("../escape.main", "Invalid handler '../escape.main': the module path must stay inside the code package"),
    ("nomodule", "Invalid handler 'nomodule': expected path/to/module.function"),
    ("missing.handler", "Unable to import module 'missing': no file missing.py in the code package"),
    ("main.absent", "Handler 'absent' missing on module 'main'"),
])
def test_a_bad_handler_fails_with_a_clear_reason(run_function, handler, reason):
    run = run_function("def handler(event, context):\n    return 1\n", handler=handler)
    assert (run.result.outcome, run.result.reason) == ("failed", reason)


def test_an_import_error_in_the_bundle_is_reported(run_function):
    run = run_function("import not_a_package\n\ndef handler(event, context):\n    return 1\n")
    assert run.result.outcome == "failed"
    assert run.result.reason == ("Unable to import module 'main': "
                                 "ModuleNotFoundError: No module named 'not_a_package'")
    assert run.result.error["type"] == "Runtime.ImportModuleError"


def test_a_missing_code_dir_is_a_start_failure(tmp_path, runtime_python, bwrap_ok):
    invocation = Invocation(code_dir=tmp_path / "nope", handler="main.handler", event={}, function_name="f",
                            request_id="r", env={}, temp_dir=tmp_path / "tmp")
    result = execute(invocation, Limits(timeout_s=5), lambda batch: None, runtime_python=runtime_python)
    assert result.outcome == "failed"
    assert result.reason == f"Sandbox failed to start: code directory {tmp_path / 'nope'} does not exist"


# --- process mode ---------------------------------------------------------------


def test_process_mode_runs_the_same_bootstrap_with_a_cleared_environment(run_function, monkeypatch):
    monkeypatch.setenv("DJANGO_SECRET_KEY", "host-secret")
    run = run_function("""
        import os, resource
        def handler(event, context):
            return {"env": sorted(os.environ), "code": os.environ["SamsaraFunctionCodePath"],
                    "cwd": os.getcwd(),
                    "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0], "event": event}
    """, mode="process", event={"k": "v"})
    assert run.result.outcome == "succeeded", run.result.reason
    assert "DJANGO_SECRET_KEY" not in run.value["env"]
    assert set(run.value["env"]) == set(CONTRACT_ENV) | {"PATH", "LANG", "SamsaraFunctionCodePath",
                                                         "SamsaraFunctionTempStoragePath"}
    assert run.value["code"] == str(run.code_dir.resolve()) == run.value["cwd"]
    assert run.value["nofile"] == 1024
    assert run.value["event"] == {"k": "v"}


def test_process_mode_times_out_and_cleans_up(run_function):
    run = run_function("""
        import subprocess, sys
        def handler(event, context):
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)", "MARKER"])
            while True:
                pass
    """, mode="process", limits=Limits(timeout_s=1))
    assert run.result.outcome == "timed_out"
    deadline = time.monotonic() + 3
    while processes_with(run.marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(run.marker) == []
