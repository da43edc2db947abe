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


# Blocked for every run unless FUNCTIONS_ALLOWED_NETWORKS carves a network out:
# a self-hosted platform runs inside company networks, so what is inside them
# is out of reach by default. Private (RFC 1918), shared address space
# (carrier-grade NAT, often internal too), link-local (cloud metadata at
# 169.254.169.254), "this network", IETF protocol assignments, benchmarking,
# multicast and reserved ranges. The sandbox's own 127.0.0.0/8 is its own
# loopback and stays; slirp4netns' 10.0.2.0/24 (DNS at 10.0.2.3) is a more
# specific, connected route and keeps working, its alias of the host's
# loopback (10.0.2.2) is always blocked.
PRIVATE_NETWORKS: tuple[str, ...] = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
)


def host_addresses() -> list[str]:
    """This machine's own IPv4 addresses (every interface's, from the kernel's local table), as /32s.

    A service listening on 0.0.0.0 is reachable through any of them, public
    ones included, so they are blocked like the private ranges.
    """
    found, previous = set(), None
    try:
        with open("/proc/net/fib_trie") as handle:
            for line in handle:
                text = line.strip()
                if text.startswith("|--"):
                    previous = text[3:].strip()
                elif text.startswith("/32 host LOCAL") and previous:
                    found.add(previous)
    except OSError:
        return []
    return sorted(f"{address}/32" for address in found if not address.startswith("127."))


def networks_to_block(allowed=(), *, extra=()) -> tuple[str, ...]:
    """PRIVATE_NETWORKS, this host's addresses and `extra`, minus the `allowed` networks.

    An allowed network inside a blocked one is cut out of it (10.0.0.0/8
    minus 10.1.0.0/16 is a handful of smaller prefixes), so the routes stay
    plain ``unreachable`` routes; one that is outside every blocked range
    changes nothing.
    """
    allowed_nets = [ipaddress.ip_network(n, strict=False) for n in allowed]
    blocked = [ipaddress.ip_network(n, strict=False) for n in (*PRIVATE_NETWORKS, *host_addresses(), *extra)]
    result = []
    for network in ipaddress.collapse_addresses(n for n in blocked if n.version == 4):
        pieces = [network]
        for hole in allowed_nets:
            next_pieces = []
            for piece in pieces:
                if hole.version != piece.version or not piece.overlaps(hole):
                    next_pieces.append(piece)
                elif hole.supernet_of(piece) or hole == piece:
                    continue  # allowed whole
                else:
                    next_pieces.extend(piece.address_exclude(hole))
            pieces = next_pieces
        result.extend(pieces)
    return tuple(str(n) for n in sorted(ipaddress.collapse_addresses(result)))


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
