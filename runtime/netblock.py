"""Make address ranges unreachable inside a sandbox's network namespace.

slirp4netns has no destination filter (its options cover the host loopback,
DNS and the outbound source address only) and iptables/nft are neither
installed nor wanted inside the sandbox. Routing does the job without them:
an ``unreachable`` route for a prefix makes the kernel *in the sandbox's own
namespace* refuse ``connect()`` to it with ENETUNREACH, so no packet ever
reaches slirp4netns, and the Function (uid 65534, no capabilities, no new user
namespaces) cannot remove it.

The route is added with one rtnetlink message from a socket opened inside the
namespace. Two ways to get there:
  * in-process: a short-lived thread ``setns()``es into the namespace (allowed
    when the worker owns the sandbox's user namespace and has CAP_SYS_ADMIN,
    i.e. runs as root), opens the socket and switches back;
  * otherwise: ``nsenter --preserve-credentials -U -n -t PID ip route add``
    (iproute2), which works for an unprivileged owner of the namespace.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import struct
import subprocess
import threading

RTM_NEWROUTE = 24
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4
RT_SCOPE_UNIVERSE = 0
RTN_UNREACHABLE = 7
RTA_DST = 1
NETLINK_ROUTE = 0


class NetBlockError(OSError):
    pass


def _route_message(network: ipaddress.IPv4Network | ipaddress.IPv6Network, seq: int) -> bytes:
    family = socket.AF_INET if network.version == 4 else socket.AF_INET6
    addr = network.network_address.packed
    rtmsg = struct.pack("=BBBBBBBBI", family, network.prefixlen, 0, 0, RT_TABLE_MAIN,
                        RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNREACHABLE, 0)
    rta = struct.pack("=HH", 4 + len(addr), RTA_DST) + addr
    body = rtmsg + rta
    header = struct.pack("=IHHII", 16 + len(body), RTM_NEWROUTE,
                         NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, 0)
    return header + body


def _send_routes(sock: socket.socket, networks: list) -> None:
    for seq, network in enumerate(networks, start=1):
        sock.send(_route_message(network, seq))
        reply = sock.recv(65536)
        msg_type = struct.unpack_from("=H", reply, 4)[0]
        if msg_type != NLMSG_ERROR:
            raise NetBlockError(f"unexpected rtnetlink reply type {msg_type}")
        error = struct.unpack_from("=i", reply, 16)[0]
        if error:
            raise NetBlockError(-error, f"adding unreachable route {network}: {os.strerror(-error)}")


def _netlink_socket_in(netns_fd: int) -> socket.socket:
    """A NETLINK_ROUTE socket bound to the network namespace ``netns_fd``."""
    box: dict = {}

    def work() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.setns(netns_fd, os.CLONE_NEWNET)
            try:
                box["sock"] = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
            finally:
                os.setns(own, os.CLONE_NEWNET)
        except BaseException as exc:  # reported to the caller's thread
            box["error"] = exc
        finally:
            os.close(own)

    # setns() only moves the calling thread: a throwaway thread keeps the
    # worker's other threads in their own namespace whatever happens.
    thread = threading.Thread(target=work, name="sandbox-netns")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["sock"]


def block_networks(netns_fd: int, networks, userns_fd: int | None = None) -> str:
    """Add an unreachable route for each network in the namespace ``netns_fd``.

    ``userns_fd`` is the user namespace owning it (needed by the nsenter path).
    Returns how it was done ("netlink", "nsenter" or "none"); raises NetBlockError.
    """
    parsed = [ipaddress.ip_network(n, strict=False) for n in networks]
    if not parsed:
        return "none"
    try:
        sock = _netlink_socket_in(netns_fd)
    except PermissionError:
        sock = None
    if sock is not None:
        with sock:
            sock.settimeout(5)
            _send_routes(sock, parsed)
        return "netlink"
    nsenter, ip = shutil.which("nsenter"), shutil.which("ip")
    if not (nsenter and ip and userns_fd is not None):
        raise NetBlockError("cannot enter the sandbox's network namespace (not root) and "
                            "nsenter/ip (util-linux, iproute2) are not available")
    for network in parsed:
        proc = subprocess.run(
            [nsenter, "--preserve-credentials", f"--user=/proc/self/fd/{userns_fd}",
             f"--net=/proc/self/fd/{netns_fd}", "--",
             ip, f"-{network.version}", "route", "add", "unreachable", str(network)],
            capture_output=True, text=True, timeout=10, pass_fds=(userns_fd, netns_fd),
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        if proc.returncode != 0:
            raise NetBlockError(f"adding unreachable route {network}: {proc.stderr.strip()}")
    return "nsenter"
