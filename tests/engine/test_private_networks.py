"""Private networks are out of a Function's reach by default (issue 18, item 8): real sandbox, cold and warm.

The private address is inside a network namespace this test creates (ip
netns, a veth pair to the host, a listener inside), never a real machine.
"""

import os
import random
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest

from functions.models import RunStatus
from functions.run_services import run_trigger
from runtime.netblock import host_addresses, networks_to_block
from tests.factories import make_function

CONNECT = """
import socket
def handler(event, context):
    try:
        with socket.create_connection((event["host"], int(event["port"])), timeout=3) as conn:
            return {"reply": conn.recv(100).decode()}
    except OSError as exc:
        return {"error": type(exc).__name__, "errno": exc.errno}
"""

SERVE = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen(8)
print("listening", flush=True)
while True:
    conn, _ = server.accept()
    conn.sendall(b"hello-from-" + sys.argv[3].encode())
    conn.close()
"""


def sh(*args):
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=20)


def serve(prefix, address, port, name):
    process = subprocess.Popen([*prefix, sys.executable, "-c", SERVE, address, str(port), name],
                               stdout=subprocess.PIPE, text=True)
    if process.stdout.readline().strip() != "listening":
        process.kill()
        process.wait()
        raise OSError(f"the listener on {address}:{port} did not start")
    return process


@pytest.fixture
def private_service():
    """A listener on a private address inside a network namespace of our own, reachable from the host."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("creating a network namespace needs root and iproute2's ip")
    # ip's network namespaces of two test processes at once race (/run/netns mounts, "ip netns
    # exec" against another's "ip netns del"): one test process at a time, set-up to clean-up,
    # and a set-up that still fails now and then (setns: EINVAL on a fresh name) is tried again.
    import fcntl

    lock = open("/tmp/sfnsec-netns.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    made = None
    try:
        for attempt in range(3):
            made = _private_service_try()
            if made["ready"]:
                break
            _private_service_remove(made)
        assert made["ready"], made["error"]
        yield made["service"]
    finally:
        if made:
            _private_service_remove(made)
        lock.close()


def _private_service_try():
    tag = uuid.uuid4().hex[:6]
    made = {"netns": f"sfnsec-{tag}", "host_if": f"vsh{tag}", "ns_if": f"vsn{tag}", "server": None, "ready": False}
    netns, host_if, ns_if = made["netns"], made["host_if"], made["ns_if"]
    subnet = f"10.213.{random.randint(1, 250)}"
    try:
        sh("ip", "netns", "add", netns)
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        sh("ip", "link", "set", ns_if, "netns", netns)
        sh("ip", "addr", "add", f"{subnet}.1/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "netns", "exec", netns, "ip", "addr", "add", f"{subnet}.2/30", "dev", ns_if)
        sh("ip", "netns", "exec", netns, "ip", "link", "set", ns_if, "up")
        sh("ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up")
        made["server"] = serve(["ip", "netns", "exec", netns], f"{subnet}.2", 8080, "netns")
        # The address really answers from the host: a refusal in the sandbox is the sandbox's doing.
        with socket.create_connection((f"{subnet}.2", 8080), timeout=3) as conn:
            assert conn.recv(100) == b"hello-from-netns"
    except (subprocess.CalledProcessError, AssertionError, OSError) as exc:
        made["error"] = f"{exc} {getattr(exc, 'stderr', '')}"
        return made
    made["ready"] = True
    made["service"] = {"host": f"{subnet}.2", "port": 8080, "network": f"{subnet}.0/30"}
    return made


def _private_service_remove(made):
    if made["server"]:
        made["server"].kill()
        made["server"].wait()
        made["server"] = None
    subprocess.run(["ip", "netns", "del", made["netns"]], capture_output=True)
    subprocess.run(["ip", "link", "del", made["host_if"]], capture_output=True)


@pytest.fixture(params=["cold", "warm"])
def connect(request, org, settings, run_to_end):
    settings.FUNCTIONS_WARM_ENVIRONMENTS = request.param == "warm"
    counter = iter(range(100))

    def connect(host, port):
        function = make_function(org, f"net{next(counter)}", files={"main.py": CONNECT},
                                 params={"host": host, "port": str(port)})
        run = run_to_end(run_trigger(function=function, trigger="manual"))
        assert run.status == RunStatus.SUCCEEDED, run.reason
        import json

        return run, json.loads(run.return_value)

    return connect


def test_a_private_address_is_refused_by_default(connect, private_service, admin_client, org):
    run, outcome = connect(private_service["host"], private_service["port"])
    assert outcome.get("errno") in (101, 113), outcome  # ENETUNREACH or EHOSTUNREACH: the sandbox's own kernel refused it
    page = admin_client.get(f"/o/{org.id}/settings/developer/functions/{run.function.name}/runs/{run.correlation_id}/")
    assert "loopback, private, link-local and host addresses blocked" in page.content.decode()


def test_an_allowed_network_is_reachable_and_named_on_the_run_page(connect, private_service, settings, admin_client, org):
    settings.FUNCTIONS_ALLOWED_NETWORKS = [private_service["network"]]
    run, outcome = connect(private_service["host"], private_service["port"])
    assert outcome == {"reply": "hello-from-netns"}
    page = admin_client.get(f"/o/{org.id}/settings/developer/functions/{run.function.name}/runs/{run.correlation_id}/")
    assert f"blocked except {private_service['network']}" in page.content.decode()


def test_the_isolation_line_fits_its_column_however_many_networks_are_allowed(settings):
    from runtime.services import isolation_summary

    settings.FUNCTIONS_ALLOWED_NETWORKS = [f"10.{i}.0.0/16" for i in range(60)]
    line = isolation_summary()
    assert len(line) <= 200 and "10.0.0.0/16" in line and " more" in line


def test_the_hosts_own_address_is_refused(connect):
    addresses = host_addresses()
    if not addresses:
        pytest.skip("this host has no IPv4 address besides loopback")
    address = addresses[0].split("/")[0]
    with socket.socket() as probe:
        probe.bind((address, 0))
        port = probe.getsockname()[1]
    server = serve([], address, port, "host")
    try:
        _, outcome = connect(address, port)
    finally:
        server.kill()
        server.wait()
    assert outcome.get("errno") in (101, 113), outcome


def test_allowed_networks_are_cut_out_of_the_blocked_ranges():
    blocked = networks_to_block(["10.1.0.0/16"])
    assert "10.0.0.0/8" not in blocked and "10.0.0.0/16" in blocked and "10.2.0.0/15" in blocked
    assert not any(n.startswith("10.1.") for n in blocked)
    assert "169.254.0.0/16" in blocked and "192.168.0.0/16" in blocked and "172.16.0.0/12" in blocked
