"""The sandbox's side of the in-run AWS endpoint: the socket, the relay, the environment (no Django).

The worker's endpoint itself is tested in tests/unit/test_aws_*.py; here a
plain Unix-socket echo server stands where it listens, since the relay's
whole contract is to carry bytes both ways unchanged.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from runtime.sandbox import (AWS_CONFIG, BOOTSTRAP_PATH, AwsAccess, Invocation, Limits, attempt_payload, bwrap_args,
                             execute, interpreter)

from .conftest import CONTRACT_ENV

pytestmark = pytest.mark.sandbox

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "ASIATESTTESTTESTTEST", "AWS_SECRET_ACCESS_KEY": "s" * 20 + uuid.uuid4().hex[:20],
               "AWS_SESSION_TOKEN": "token-" + uuid.uuid4().hex}


class EchoServer:
    """Answers every connection with what it receives, until the client half-closes."""

    def __init__(self):
        self.directory = Path(tempfile.mkdtemp(prefix="sfn-aws-test-"))
        self.path = self.directory / "endpoint.sock"
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self.server.listen(128)
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._echo, args=(connection,), daemon=True).start()

    @staticmethod
    def _echo(connection):
        with connection:
            while data := connection.recv(65536):
                connection.sendall(data)
            connection.shutdown(socket.SHUT_WR)

    def close(self):
        self.server.close()
        self.path.unlink(missing_ok=True)
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def echo():
    server = EchoServer()
    yield server
    server.close()


def run_with_endpoint(tmp_path, runtime_python, source, access, mode="bwrap"):
    import json
    import textwrap

    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "main.py").write_text(textwrap.dedent(source))
    invocation = Invocation(code_dir=code, handler="main.handler", event={}, function_name="sandbox-test",
                            request_id=str(uuid.uuid4()), env=dict(CONTRACT_ENV), temp_dir=tmp_path / "tmp",
                            aws=access)
    lines = []
    result = execute(invocation, Limits(timeout_s=30), lines.extend, mode=mode, runtime_python=runtime_python)
    assert result.outcome == "succeeded", (result.reason, [line.message for line in lines])
    return json.loads(result.return_value)


RELAY_CHECK = """
    import os, socket, threading

    def roundtrip(n, size, results):
        url = os.environ["AWS_ENDPOINT_URL_S3"].removeprefix("http://")
        host, port = url.split(":")
        data = bytes([n % 256]) * size
        with socket.create_connection((host, int(port)), timeout=20) as conn:
            sender = threading.Thread(target=conn.sendall, args=(data,))
            sender.start()
            received = bytearray()
            sender.join()
            conn.shutdown(socket.SHUT_WR)
            while chunk := conn.recv(65536):
                received += chunk
        results[n] = received == data

    def handler(event, context):
        results = {}
        threads = [threading.Thread(target=roundtrip, args=(n, 200_000 if n % 5 else 3_000_000, results))
                   for n in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        try:
            open("/run/aws/mine", "w").write("x")
            writable = True
        except OSError:
            writable = False
        return {"ok": sum(results.values()), "env": env, "config": open(env["AWS_CONFIG_FILE"]).read(),
                "run_aws_writable": writable}
"""


def test_the_relay_carries_many_connections_both_ways_unchanged(tmp_path, runtime_python, bwrap_ok, echo):
    value = run_with_endpoint(tmp_path, runtime_python, RELAY_CHECK, AwsAccess(echo.path, dict(CREDENTIALS)))
    assert value["ok"] == 40 and echo.connections == 40
    env = value["env"]
    assert env["AWS_ENDPOINT_URL_STS"] == env["AWS_ENDPOINT_URL_SSM"] == env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:9000"
    assert {k: env[k] for k in CREDENTIALS} == CREDENTIALS
    assert env["AWS_CONFIG_FILE"] == "/opt/aws/config" and value["config"] == AWS_CONFIG
    assert env["AWS_REGION"] == "eu-west-1"
    assert value["run_aws_writable"] is False


PATCHING_FUNCTION = """
    import os, select, selectors, socket

    class Patched(socket.socket):
        def __init__(self, *args, **kwargs):
            raise RuntimeError("patched by the Function")

    def handler(event, context):
        make = socket.socket
        # What gevent's patch_all does to the modules, and worse.
        socket.socket, selectors.DefaultSelector, select.select, select.epoll = Patched, None, None, None
        host, port = os.environ["AWS_ENDPOINT_URL_STS"].removeprefix("http://").split(":")
        with make(socket.AF_INET, socket.SOCK_STREAM) as conn:
            conn.connect((host, int(port)))
            conn.sendall(b"hello relay")
            conn.shutdown(socket.SHUT_WR)
            received = b""
            while chunk := conn.recv(65536):
                received += chunk
        tasks = os.listdir("/proc/self/task")
        return {"echo": received.decode(), "processes": len([p for p in os.listdir("/proc") if p.isdigit()]),
                "threads": len(tasks)}
"""


def test_the_relay_is_a_thread_that_the_functions_own_patches_do_not_reach(tmp_path, runtime_python, bwrap_ok, echo):
    # The relay runs in the attempt's own process (no process of its own to fork, kill and
    # reap), on objects of the C modules made before the Function's code ran.
    value = run_with_endpoint(tmp_path, runtime_python, PATCHING_FUNCTION, AwsAccess(echo.path, dict(CREDENTIALS)))
    assert value["echo"] == "hello relay"
    assert value["processes"] == 2  # bwrap's init and bootstrap: no relay process
    assert value["threads"] == 2    # the handler's and the relay's


def test_process_mode_relays_from_a_free_port(tmp_path, runtime_python, echo):
    value = run_with_endpoint(tmp_path, runtime_python, RELAY_CHECK, AwsAccess(echo.path, dict(CREDENTIALS)),
                              mode="process")
    assert value["ok"] == 40
    port = int(value["env"]["AWS_ENDPOINT_URL_S3"].rsplit(":", 1)[1])
    assert port != 9000 and value["env"]["AWS_CONFIG_FILE"] == str(echo.directory / "config")


def test_the_credentials_travel_in_the_payload_never_on_the_command_line(tmp_path, runtime_python, echo):
    code = tmp_path / "code"
    code.mkdir()
    invocation = Invocation(code_dir=code, handler="main.handler", event={}, function_name="f", request_id="r",
                            env=dict(CONTRACT_ENV), temp_dir=tmp_path / "tmp", aws=AwsAccess(echo.path, dict(CREDENTIALS)))
    args = bwrap_args(invocation, interpreter(str(runtime_python)), [BOOTSTRAP_PATH, "3", "4"], info_w=5, block_r=6,
                      etc_fds={})
    text = "\0".join(args)
    for value in CREDENTIALS.values():
        assert value not in text
    assert ["--ro-bind", str(echo.directory), "/run/aws"] == args[args.index("/run/aws") - 2: args.index("/run/aws") + 1]
    payload = attempt_payload(invocation, Limits(), mode="bwrap", deadline_ms=0).decode()
    assert all(value in payload for value in CREDENTIALS.values())
    assert "AwsAccess" not in repr(invocation) and CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in repr(invocation)


def test_without_an_endpoint_nothing_is_relayed_or_mounted(run_function):
    run = run_function("""
        import os
        def handler(event, context):
            return [sorted(k for k in os.environ if k.startswith("AWS_ENDPOINT") or k.startswith("AWS_ACCESS")),
                    os.path.exists("/run"), len([p for p in os.listdir("/proc") if p.isdigit()])]
    """)
    # bwrap's init and bootstrap (and, in a warm environment, the zygote that forked it).
    assert run.value == [[], False, 3 if run.result.warm_start else 2]


def test_the_relay_dies_with_the_attempt(tmp_path, runtime_python, bwrap_ok, echo):
    # The relay is a child of bootstrap in the sandbox's pid namespace: once
    # the attempt is over, nothing answers on its port and no process is left.
    marker_before = {p for p in os.listdir("/proc") if p.isdigit()}
    run_with_endpoint(tmp_path, runtime_python, "def handler(event, context):\n    return 1\n",
                      AwsAccess(echo.path, dict(CREDENTIALS)), mode="process")
    def leftovers():
        found = []
        for pid in {p for p in os.listdir("/proc") if p.isdigit()} - marker_before:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                # (Warm environments' zygotes of tests running alongside are not this attempt's.)
                if b"bootstrap.py" in cmdline and b"zygote" not in cmdline:
                    found.append(pid)
            except OSError:
                pass
        return found

    deadline = time.monotonic() + 3  # SIGKILL is sent; the kernel reaps asynchronously
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers() == []
