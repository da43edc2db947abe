"""Run one attempt of a Function in an isolated sandbox.

Pure Python, no Django: ``execute()`` takes an ``Invocation`` and ``Limits``,
streams the Function's output lines to ``on_output`` and returns an
``AttemptResult``. ``runtime/bootstrap.py`` is what runs inside.

Mode "bwrap" (the default) - bubblewrap, started with an empty environment:
  * namespaces: user (uid/gid 65534), pid, ipc, uts, cgroup (if possible),
    mount and network; ``--die-with-parent``, ``--new-session``,
    ``--cap-drop ALL``, ``--disable-userns`` (no nested user namespaces);
  * filesystem: an empty root made read-only, with read-only binds of /usr
    (and the /bin, /lib... symlinks or directories), /etc/ssl,
    /etc/ca-certificates, /etc/ld.so.cache, generated /etc/passwd, group,
    hosts, nsswitch.conf and resolv.conf, the runtime environment
    (at /opt/runtime) and its base interpreter prefix (at its own path,
    because the venv's python is a symlink to it and libpython is found by
    an absolute RUNPATH), the bundle at /var/task and bootstrap.py; the
    attempt's temp dir is the only writable place, at /tmp; fresh /proc and
    /dev. The host root, /root, /work and /etc are never bound whole;
    ``/root`` or ``/work`` may exist inside only as the empty parents of
    those binds (e.g. /root/.pyenv/versions/3.12.1 on this machine);
  * environment: exactly the contract variables plus PATH and LANG
    (``--clearenv`` + ``--setenv``); the event and the deadline come over a
    pipe, the result goes back over another (never stdout/stderr);
  * limits: rlimits set by bootstrap.py before any user code is imported
    (RLIMIT_DATA = memory, NPROC, NOFILE, FSIZE, CORE=0; soft = hard), and,
    when the worker may create cgroups (runtime/cgroups.py), a per-attempt
    cgroup with pids.max and a memory cap for the whole sandbox. RLIMIT_NPROC
    counts per real uid and is not enforced for root: with a worker running
    as root only the pids cgroup contains a fork bomb. Without cgroups and as
    non-root, NPROC counts every process of the worker's uid;
  * ending: the attempt ends when the handler returns (bootstrap exits at
    once, like Lambda freezing the sandbox), on the wall-clock deadline, or
    when the output passes ``max_output_bytes``. Everything left is killed by
    killing the pid namespace's init (through a pidfd, so no pid reuse race):
    nothing survives that, not even setsid() grandchildren; the cgroup is
    then emptied as a second net.

Network ("slirp4netns" when installed, see ``network_mode()``): the sandbox
gets its own network namespace, and slirp4netns (user-mode TCP/IP, run by the
worker) gives it outbound access through the worker's sockets:
  * ``--disable-host-loopback``: 10.0.2.2 (slirp's alias for the host's
    127.0.0.1) is refused by slirp4netns, and an ``unreachable`` route for
    10.0.2.2/32 makes the sandbox's own kernel refuse it first (defence in
    depth; routing through the gateway does not need its address); the
    sandbox's 127.0.0.1 is its own loopback. So the host's loopback services
    (database, broker) are out of reach, and so are the host's abstract and
    filesystem unix sockets (other network namespace; /run holds only the
    attempt's own AWS endpoint socket, see below);
  * 169.254.0.0/16 (cloud metadata, 169.254.169.254) is made unreachable by
    an ``unreachable`` route inside the namespace (runtime/netblock.py);
    slirp4netns has no destination filter of its own (``--outbound-addr``
    only picks the source address, ``--disable-dns`` only drops 10.0.2.3)
    and iptables is not used;
  * NOT blocked, by design: the host's non-loopback addresses and private
    ranges (a self-hosted Function may need internal services). A service on
    the host listening on 0.0.0.0 is reachable through the host's LAN
    address: bind databases and brokers to 127.0.0.1 or firewall them. Pass
    more prefixes in ``blocked_networks`` to close them;
  * DNS goes to slirp's 10.0.2.3, forwarded to the host's resolver. IPv6 is
    off.
Without slirp4netns the sandbox has no network at all (loopback only).

The in-run AWS endpoint (runtime/aws; ``Invocation.aws``, set by the worker
for every attempt): the worker serves the attempt's STS/SSM/S3 endpoint on a
Unix socket alone in a private per-attempt directory (0700) and the sandbox
binds that directory read-only at /run/aws (connecting to a socket needs no
write access; /run holds nothing else). The sandbox's network namespace
cannot reach the worker's loopback, by design, so bootstrap binds
127.0.0.1:9000 inside the sandbox's own namespace and forks a relay process
that copies bytes between each connection and the socket (no parsing: every
request is SigV4-verified by the worker). In process mode the socket's host
path is used and the relay binds a free port (the host's loopback is shared).
The attempt's base credentials travel in the payload, never on bwrap's
command line or in the environment bwrap starts with; bootstrap puts them,
AWS_ENDPOINT_URL_STS/SSM/S3 and AWS_CONFIG_FILE (generated, read-only at
/opt/aws/config: path-style S3 addressing, SigV4 presigning) into os.environ
before the handler's module is imported. The relay dies with the sandbox;
the endpoint, and with it every credential of the attempt, closes when
``execute`` returns.

Start-up sequence (bwrap): bwrap reports its namespace init's pid on
``--info-fd`` and waits on ``--block-fd``; the worker moves bwrap and that
init into the attempt's cgroup (so every later process is counted) and
releases it; bwrap finishes its set-up and execs bootstrap, which says
"started" on the result pipe and then waits for its payload. Only then is
slirp4netns attached (``--netns-type=path`` with the namespace and its owning
user namespace pinned as fds; ``--configure --mtu=65520
--disable-host-loopback --enable-sandbox --enable-seccomp``, waiting on
``--ready-fd``; it ends when its ``--exit-fd`` closes), the unreachable
routes added, and the payload written: the Function's code never runs
before its network is ready. (Attaching slirp4netns while bwrap still sets
up its loopback makes bwrap fail now and then, hence the order.)

Warm execution environments (runtime/warm.py) start this same sandbox once
per Function version, with bootstrap as a zygote that forks each run; the
worker side of a warm run is this module's ``_Attempt`` too.

Mode "process" (operator opt-in, FUNCTIONS_SANDBOX=process): the same
bootstrap, the same cleared environment and rlimits (and cgroup if
possible), in a plain child process in its own session. UNSAFE: no
namespaces, the Function sees the host's filesystem, processes and network
(including loopback services) with the worker's uid, and a setsid()
grandchild escapes the process-group kill unless a cgroup is available. For
development machines where bwrap cannot run (e.g. a default Docker
container, which forbids the namespaces bwrap needs).
"""

from __future__ import annotations

import collections
import fcntl
import json
import logging
import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

from .cgroups import AttemptCgroup
from .netblock import NetBlockError, block_networks

log = logging.getLogger(__name__)

BOOTSTRAP = Path(__file__).resolve().with_name("bootstrap.py")

# Paths inside the sandbox.
CODE_PATH = "/var/task"
TEMP_PATH = "/tmp"
RUNTIME_PATH = "/opt/runtime"
BOOTSTRAP_PATH = "/opt/bootstrap/bootstrap.py"
# The in-run AWS endpoint (runtime/aws): the worker's per-attempt socket
# directory is bound here, bootstrap relays 127.0.0.1:AWS_PORT to it, and the
# generated AWS config file is bound at AWS_CONFIG_PATH: path-style S3
# addressing (the endpoint is an address, not a domain), and SigV4 for
# presigned URLs too (botocore presigns S3 with SigV2 on a custom endpoint,
# which the endpoint does not accept).
AWS_SOCKET_DIR = "/run/aws"
AWS_CONFIG_PATH = "/opt/aws/config"
AWS_PORT = 9000
AWS_CONFIG = "[default]\ns3 =\n    addressing_style = path\n    signature_version = s3v4\n"
SANDBOX_UID = SANDBOX_GID = 65534
SANDBOX_HOSTNAME = "sandbox"
SLIRP_DNS = "10.0.2.3"
# slirp's gateway is its alias for the host's 127.0.0.1. --disable-host-loopback
# refuses it; the route makes the sandbox's kernel refuse it too, before any
# packet reaches slirp4netns. Routing through the gateway does not need it.
SLIRP_ALWAYS_BLOCKED: tuple[str, ...] = ("10.0.2.2/32",)
DEFAULT_BLOCKED_NETWORKS: tuple[str, ...] = ("169.254.0.0/16",)

# Output delivery: a batch when this many lines are waiting or this long
# after the oldest waiting line, whichever first; at most MAX_BATCH_LINES per
# call; at most MAX_PENDING_BYTES waiting (beyond it lines are dropped and
# counted: a slow consumer must never stall the Function). A full batch, not
# a tenth of one, before waking the deliverer: every wake-up makes the reading
# thread wait for the GIL, and a Function printing flat out then waits on its
# pipe (bench/ingest.py). Slow output still goes out after BATCH_INTERVAL_S.
BATCH_LINES = 1000
BATCH_INTERVAL_S = 0.2
MAX_BATCH_LINES = 1000
MAX_PENDING_BYTES = 32 * 1024 * 1024

START_TIMEOUT_S = 30.0
DRAIN_GRACE_S = 1.0
NS_GET_USERNS = 0xB701
F_SETPIPE_SZ = 1031
HANDLER_PATTERN = re.compile(r"^[A-Za-z0-9_./-]+\.[A-Za-z_][A-Za-z0-9_]*$")
MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 900.0
    memory_mb: int = 1769
    max_output_bytes: int = 100 * 1024 * 1024   # whole attempt; over it the run is stopped
    max_line_bytes: int = 256 * 1024             # longer lines are cut, with a marker
    max_processes: int = 256                     # processes and threads
    max_open_files: int = 1024
    max_file_size_mb: int = 512
    max_return_bytes: int = 6 * 1024 * 1024      # Lambda's payload cap


class OutputLine(NamedTuple):
    # A named tuple, not a frozen dataclass: one is made per line on the
    # reading thread, and a frozen dataclass costs about four times as much
    # to build (bench/ingest.py, a million lines).
    timestamp: datetime  # aware UTC, taken when the line was read
    stream: str          # "stdout" | "stderr"
    message: str         # without the trailing newline


@dataclass(frozen=True)
class AwsAccess:
    """How the Function reaches the in-run AWS endpoint (runtime/aws) of its attempt."""

    socket_path: Path       # host path of the endpoint's Unix socket, alone in its private directory
    # AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN: sent in the
    # payload (never on bwrap's command line), set by bootstrap.
    credentials: dict[str, str] = field(repr=False)


@dataclass(frozen=True)
class Invocation:
    code_dir: Path         # unzipped bundle (host path), mounted read-only in the sandbox
    handler: str           # "path/to/module.function" per CONTRACT.md
    event: dict[str, str]
    function_name: str
    request_id: str        # correlation id -> context.aws_request_id
    env: dict[str, str]    # contract environment variables except the code/temp paths
    temp_dir: Path         # host directory for the writable temp storage; emptied before starting
    aws: AwsAccess | None = field(default=None, repr=False)  # the attempt's AWS endpoint, if any


@dataclass(frozen=True)
class AttemptResult:
    outcome: str            # "succeeded" | "failed" | "timed_out"
    reason: str             # human-readable
    return_value: str | None   # JSON text of the handler's return value, when succeeded
    error: dict | None          # {"type", "message", "traceback"} when the handler raised
    exit_code: int | None       # 128 + signal number when killed by a signal
    duration_ms: int
    peak_memory_mb: float | None
    warm_start: bool = False    # ran in a warm execution environment (runtime/warm.py)


class SandboxStartError(Exception):
    """The sandbox could not be set up; the Function never ran."""


# --------------------------------------------------------------------------
# What the host offers


def _root_layout_args() -> list[str]:
    """Read-only /usr plus the top-level /bin, /lib... as the host has them."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args


@lru_cache(maxsize=1)
def sandbox_available() -> tuple[bool, str]:
    """Can bwrap create the sandbox's namespaces here? (ok, explanation)"""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False, "bubblewrap (bwrap) is not installed (Debian package 'bubblewrap')"
    args = [bwrap, "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-net", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID),
            "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--disable-userns",
            *_root_layout_args(), "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/",
            "--", "/usr/bin/true"]
    try:
        proc = subprocess.run(args, env={}, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"bwrap could not be run: {exc}"
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        return False, (f"bwrap cannot create namespaces here ({detail}); a default Docker "
                       "container forbids them: run the worker on a host or VM, or set "
                       "FUNCTIONS_SANDBOX=process (unsafe)")
    version = subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout.strip()
    return True, version or "bwrap works"


@lru_cache(maxsize=1)
def network_mode() -> str:
    """"slirp4netns" (outbound network without the host's loopback) or "none"."""
    return "slirp4netns" if shutil.which("slirp4netns") else "none"


@dataclass(frozen=True)
class _Interpreter:
    prefix: Path        # the runtime venv (sys.prefix)
    base_prefix: Path   # the interpreter it was made from (sys.base_prefix)
    inside: str         # the python to run inside the sandbox


@lru_cache(maxsize=8)
def _interpreter(python: str) -> _Interpreter:
    """Ask the runtime python once where it lives (cached per path)."""
    try:
        out = subprocess.run(
            [python, "-I", "-c", "import json, sys; print(json.dumps([sys.prefix, sys.base_prefix]))"],
            env={}, capture_output=True, text=True, timeout=60, check=True,
        ).stdout
        prefix, base = (Path(p) for p in json.loads(out))
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise SandboxStartError(f"the runtime python {python} does not run: {exc}") from None
    absolute = Path(os.path.abspath(python))
    if prefix != base:
        try:
            relative = absolute.relative_to(prefix)
        except ValueError:
            relative = Path("bin/python3")
        inside = f"{RUNTIME_PATH}/{relative}"
    else:
        inside = str(absolute)
    return _Interpreter(prefix=prefix, base_prefix=base, inside=inside)


# --------------------------------------------------------------------------
# Handler and environment


def handler_problem(handler: str) -> str | None:
    """Why ``handler`` is not a usable "path/to/module.function", or None."""
    if not HANDLER_PATTERN.match(handler or ""):
        return f"Invalid handler '{handler}': expected path/to/module.function"
    module_part = handler.rpartition(".")[0]
    parts = module_part.replace(".", "/").split("/")
    if module_part.startswith("/") or any(part in ("", "..") for part in parts):
        return f"Invalid handler '{handler}': the module path must stay inside the code package"
    return None


def function_environment(invocation: Invocation, *, code_path: str = CODE_PATH,
                         temp_path: str = TEMP_PATH, path: str | None = None) -> dict[str, str]:
    """The Function's whole environment: the contract variables, PATH and LANG."""
    env = {
        "PATH": path or f"{RUNTIME_PATH}/bin:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
    }
    for key, value in invocation.env.items():
        if key and "=" not in key and "\0" not in key and "\0" not in str(value):
            env[key] = str(value)
    env["SamsaraFunctionCodePath"] = code_path
    env["SamsaraFunctionTempStoragePath"] = temp_path
    env.setdefault("SamsaraFunctionName", invocation.function_name)
    if not env.get("AWS_EXECUTION_ENV"):
        # The official SDK treats an empty value as "running locally".
        env["AWS_EXECUTION_ENV"] = "AWS_Lambda_python3.12"
    return env


def _etc_files(network: str) -> dict[str, str]:
    files = {
        "/etc/passwd": "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
                       f"sbx_user:x:{SANDBOX_UID}:{SANDBOX_GID}:Function:/tmp:/usr/sbin/nologin\n",
        "/etc/group": f"root:x:0:\nsbx_user:x:{SANDBOX_GID}:\n",
        "/etc/hosts": f"127.0.0.1\tlocalhost {SANDBOX_HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        "/etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
        "/etc/hostname": SANDBOX_HOSTNAME + "\n",
    }
    if network == "slirp4netns":
        files["/etc/resolv.conf"] = f"nameserver {SLIRP_DNS}\noptions timeout:2 attempts:2\n"
    return files


def _prepare_temp_dir(path: Path) -> None:
    """Create ``path`` or empty it (without following symlinks)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)

    def retry_writable(function, failed, _exc):
        # A directory the Function made unreadable: open it up and retry.
        os.chmod(os.path.dirname(failed), 0o700)
        if os.path.isdir(failed) and not os.path.islink(failed):
            os.chmod(failed, 0o700)
        function(failed)

    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, onexc=retry_writable)
            else:
                os.unlink(entry.path)


def _mb(n: int) -> str:
    if n % MB == 0:
        return f"{n // MB} MB"
    return f"{n / MB:.1f} MB" if n >= 10 * MB else f"{n} bytes"


# --------------------------------------------------------------------------
# Output: lines and their delivery


class _LineSplitter:
    def __init__(self, stream: str, max_line: int):
        self.stream = stream
        self.max_line = max_line
        self.partial = bytearray()
        self.discarding = False  # inside the tail of a line already cut

    def _line(self, raw: bytes, ts: datetime, cut: bool) -> OutputLine:
        text = raw.decode("utf-8", "replace")
        if cut:
            text += f"... [line truncated at {self.max_line} bytes]"
        elif text.endswith("\r"):
            text = text[:-1]
        return OutputLine(ts, self.stream, text)

    def feed(self, data: bytes, ts: datetime) -> list[OutputLine]:
        out: list[OutputLine] = []
        if self.partial or self.discarding:
            # A read usually ends inside a line: finish that one line first.
            first = data.find(b"\n")
            if first < 0:
                return self._feed_lines(data, ts)
            out = self._feed_lines(data[: first + 1], ts)
            data = data[first + 1 :]
        end = data.rfind(b"\n")
        if end < 0 or len(data) > self.max_line:
            return out + self._feed_lines(data, ts)
        # The usual case: whole lines, none too long (none can be longer than
        # the chunk). One decode and one split for the chunk instead of one
        # per line, the same lines: a newline is never inside a UTF-8
        # sequence, and "\r\n" loses its "\r" as _line does. tuple.__new__
        # makes each OutputLine without the named tuple's Python-level __new__.
        text = data[: end + 1].decode("utf-8", "replace").replace("\r\n", "\n")
        stream, make = self.stream, tuple.__new__
        out += [make(OutputLine, (ts, stream, line)) for line in text.split("\n")]
        out.pop()  # the empty remainder after the last newline
        self.partial += data[end + 1 :]
        return out

    def _feed_lines(self, data: bytes, ts: datetime) -> list[OutputLine]:
        """Line by line: lines continued from an earlier read, and lines cut at max_line."""
        out: list[OutputLine] = []
        pieces = data.split(b"\n")
        rest = pieces.pop()
        for piece in pieces:
            if self.discarding:
                self.discarding = False
                continue
            if self.partial:
                piece = bytes(self.partial) + piece
                self.partial.clear()
            if len(piece) > self.max_line:
                out.append(self._line(piece[: self.max_line], ts, True))
            else:
                out.append(self._line(piece, ts, False))
        if rest and not self.discarding:
            self.partial += rest
            if len(self.partial) > self.max_line:
                out.append(self._line(bytes(self.partial[: self.max_line]), ts, True))
                self.partial.clear()
                self.discarding = True
        return out

    def finish(self, ts: datetime) -> list[OutputLine]:
        if self.partial and not self.discarding:
            line = self._line(bytes(self.partial), ts, False)
            self.partial.clear()
            return [line]
        return []


class _OutputSink:
    """Bounded hand-over from the reading loop to ``on_output``, called from
    one background thread, in order, never concurrently."""

    def __init__(self, callback: Callable[[list[OutputLine]], None] | None):
        self.callback = callback
        self.cond = threading.Condition()
        self.queue: collections.deque[tuple[OutputLine, int]] = collections.deque()
        self.pending_bytes = 0
        self.oldest = 0.0
        self.dropped = 0
        self.closed = False
        self.delivered = 0
        self.thread = threading.Thread(target=self._run, name="sandbox-output", daemon=True)
        self.thread.start()

    def _append(self, line: OutputLine) -> None:
        size = len(line.message) + 100
        if self.pending_bytes + size > MAX_PENDING_BYTES:
            self.dropped += 1
            return
        if self.dropped:
            marker = OutputLine(line.timestamp, "stderr",
                                f"[{self.dropped} log lines dropped: the log consumer could not keep up]")
            self.dropped = 0
            self._append(marker)
        if not self.queue:
            self.oldest = time.monotonic()
        self.queue.append((line, size))
        self.pending_bytes += size

    def put(self, lines: list[OutputLine]) -> None:
        if not lines:
            return
        with self.cond:
            was_empty = not self.queue
            sizes = [len(line.message) + 100 for line in lines]
            total = sum(sizes)
            if not self.dropped and self.pending_bytes + total <= MAX_PENDING_BYTES:
                # The usual case, all at once: what _append does line by line.
                if was_empty:
                    self.oldest = time.monotonic()
                self.queue.extend(zip(lines, sizes))
                self.pending_bytes += total
            else:
                for line in lines:
                    self._append(line)
            # Wake the deliverer to start its timer, or for a full batch.
            if was_empty or len(self.queue) >= BATCH_LINES:
                self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.closed and len(self.queue) < BATCH_LINES:
                    if self.queue:
                        wait = self.oldest + BATCH_INTERVAL_S - time.monotonic()
                        if wait <= 0:
                            break
                        self.cond.wait(wait)
                    else:
                        self.cond.wait()
                if not self.queue:
                    if self.closed:
                        return
                    continue
                if len(self.queue) <= MAX_BATCH_LINES:
                    # Everything waiting fits one batch: take it at once.
                    batch = [line for line, _ in self.queue]
                    self.queue.clear()
                    self.pending_bytes = 0
                else:
                    batch = []
                while self.queue and len(batch) < MAX_BATCH_LINES:
                    line, size = self.queue.popleft()
                    self.pending_bytes -= size
                    batch.append(line)
                if self.queue:
                    self.oldest = time.monotonic()
            if self.callback is not None:
                try:
                    self.callback(batch)
                except Exception:
                    log.exception("on_output failed; %d lines lost", len(batch))
            self.delivered += len(batch)

    def close(self) -> None:
        with self.cond:
            if self.dropped:
                self._append_marker_at_close()
            self.closed = True
            self.cond.notify()
        self.thread.join()

    def _append_marker_at_close(self) -> None:
        n, self.dropped = self.dropped, 0
        marker = OutputLine(datetime.now(timezone.utc), "stderr",
                            f"[{n} log lines dropped: the log consumer could not keep up]")
        self.queue.append((marker, 0))


# --------------------------------------------------------------------------
# One attempt


def execute(invocation: Invocation, limits: Limits, on_output: Callable[[list[OutputLine]], None],
            *, mode: str = "bwrap", runtime_python: Path,
            blocked_networks: Sequence[str] = DEFAULT_BLOCKED_NETWORKS) -> AttemptResult:
    """Run one attempt of the Function; never raises for anything the Function does."""
    if mode not in ("bwrap", "process"):
        raise ValueError(f"unknown sandbox mode {mode!r} (bwrap or process)")
    return _Attempt(invocation, limits, on_output, mode, Path(runtime_python),
                    tuple(blocked_networks)).run()


def _pipe(big: bool = False) -> tuple[int, int]:
    r, w = os.pipe()
    if big:
        try:
            fcntl.fcntl(w, F_SETPIPE_SZ, 1024 * 1024)
        except OSError:
            pass
    return r, w


def _close(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


def _reap(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_readable(fd: int, timeout: float) -> bool:
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        return bool(sel.select(max(0.0, timeout)))


def _read_until_eof(fd: int, deadline: float, limit: int = 1 << 20) -> bytes:
    data = bytearray()
    while len(data) < limit:
        if not _wait_readable(fd, deadline - time.monotonic()):
            raise TimeoutError
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return bytes(data)


class _Attempt:
    def __init__(self, invocation, limits, on_output, mode, runtime_python, blocked_networks):
        self.inv: Invocation = invocation
        self.limits: Limits = limits
        self.on_output = on_output
        self.mode = mode
        self.runtime_python = runtime_python
        self.blocked_networks = blocked_networks
        self.fds: list[int] = []          # ours, closed at the end
        self.proc: subprocess.Popen | None = None
        self.proc_pidfd: int | None = None
        self.init_pid: int | None = None
        self.init_pidfd: int | None = None
        self.cgroup: AttemptCgroup | None = None
        self.slirp: subprocess.Popen | None = None
        self.slirp_exit_w: int | None = None
        self.sink: _OutputSink | None = None
        self.splitters = {"stdout": _LineSplitter("stdout", limits.max_line_bytes),
                          "stderr": _LineSplitter("stderr", limits.max_line_bytes)}
        self.prestart: list[OutputLine] = []
        self.started_ok = False
        self.result_buf = bytearray()
        self.result_header: dict | None = None
        self.result_body: bytes | None = None
        self.result_broken: str | None = None
        self.output_bytes = 0
        self.output_exceeded = False
        self.timed_out = False
        self.last_ts = datetime.now(timezone.utc)
        self.sampled_peak_kb = 0
        self.next_sample = 0.0
        self.network = network_mode() if mode == "bwrap" else "host"
        self.stopped = False
        self.cgroup_peak: int | None = None
        self.cgroup_oom = False

    # -- the whole run -----------------------------------------------------

    def run(self) -> AttemptResult:
        self.t0 = time.monotonic()
        self.deadline = self.t0 + self.limits.timeout_s
        self.deadline_ms = int((time.time() + self.limits.timeout_s) * 1000)
        problem = handler_problem(self.inv.handler)
        if problem:
            return self._result("failed", problem)
        self.sink = _OutputSink(self.on_output)
        try:
            try:
                _prepare_temp_dir(Path(self.inv.temp_dir))
                self._launch()
            except (SandboxStartError, OSError) as exc:
                self._stop_everything()
                return self._result("failed", f"Sandbox failed to start: {exc}")
            self._pump()
            self._stop_everything()
            self._drain()
        finally:
            self._stop_everything()
            self.sink.close()
            _close(*self.fds)
            self.fds.clear()
        return self._conclude()

    # -- start -------------------------------------------------------------

    def _payload(self) -> bytes:
        region = self.inv.env.get("AWS_REGION") or self.inv.env.get("AWS_DEFAULT_REGION") or "us-west-2"
        name = self.inv.function_name
        code_dir = CODE_PATH if self.mode == "bwrap" else str(Path(self.inv.code_dir).resolve())
        return json.dumps({
            "handler": self.inv.handler,
            "event": self.inv.event,
            "code_dir": code_dir,
            "deadline_ms": self.deadline_ms,
            "limits": {
                "memory_mb": self.limits.memory_mb,
                "max_processes": self.limits.max_processes,
                "max_open_files": self.limits.max_open_files,
                "max_file_size_mb": self.limits.max_file_size_mb,
                "max_return_bytes": self.limits.max_return_bytes,
            },
            "aws": self._aws_payload(),
            "context": {
                "request_id": self.inv.request_id,
                "function_name": name,
                "memory_limit_in_mb": self.limits.memory_mb,
                "invoked_function_arn": f"arn:aws:lambda:{region}:000000000000:function:{name}",
                "log_group_name": f"/aws/lambda/{name}",
                "log_stream_name": f"{datetime.now(timezone.utc):%Y/%m/%d}/[$LATEST]"
                                   f"{self.inv.request_id.replace('-', '')}",
            },
        }).encode()

    def _aws_payload(self) -> dict | None:
        aws = self.inv.aws
        if aws is None:
            return None
        if self.mode == "bwrap":
            socket, config, port = f"{AWS_SOCKET_DIR}/{Path(aws.socket_path).name}", AWS_CONFIG_PATH, AWS_PORT
        else:
            # The host's loopback is shared: let the kernel pick a free port.
            config = Path(aws.socket_path).with_name("config")
            config.write_text(AWS_CONFIG)
            socket, config, port = str(aws.socket_path), str(config), 0
        return {"socket": socket, "port": port, "config_file": config, "credentials": dict(aws.credentials)}

    def _own(self, *fds: int) -> None:
        self.fds.extend(fds)

    def _launch(self) -> None:
        code_dir = Path(self.inv.code_dir)
        if not code_dir.is_dir():
            raise SandboxStartError(f"code directory {code_dir} does not exist")
        interp = _interpreter(str(self.runtime_python))
        payload_r, payload_w = _pipe()
        result_r, result_w = _pipe()
        out_r, out_w = _pipe(big=True)
        err_r, err_w = _pipe(big=True)
        self._own(payload_w, result_r, out_r, err_r)
        child_ends = [payload_r, result_w, out_w, err_w]
        self.streams = {out_r: "stdout", err_r: "stderr", result_r: "result"}
        try:
            self._start_command(interp, payload_r, result_w, out_w, err_w)
        finally:
            _close(*child_ends)
        payload = self._payload()

        def write_payload() -> None:
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(payload_w, view):]
            except OSError:
                pass  # the sandbox died first; the result says why
            finally:
                _close(payload_w)
                if payload_w in self.fds:
                    self.fds.remove(payload_w)

        threading.Thread(target=write_payload, name="sandbox-payload", daemon=True).start()

    def _start_command(self, interp, payload_r, result_w, out_w, err_w) -> None:
        """Start bootstrap with these pipe ends; ``proc_pidfd`` becomes readable when it is over."""
        bootstrap_args = ["-u", "-I", "-B"]
        if self.mode == "bwrap":
            self._launch_bwrap(interp, bootstrap_args, payload_r, result_w, out_w, err_w)
        else:
            self._launch_process(interp, bootstrap_args, payload_r, result_w, out_w, err_w)
        self.proc_pidfd = os.pidfd_open(self.proc.pid)
        self._own(self.proc_pidfd)

    def _new_cgroup(self) -> None:
        self.cgroup = AttemptCgroup.create(
            max_pids=self.limits.max_processes + 8,  # + bwrap and its init
            memory_bytes=self.limits.memory_mb * MB,
        )

    def _launch_process(self, interp, py_args, payload_r, result_w, out_w, err_w) -> None:
        env = function_environment(
            self.inv, code_path=str(Path(self.inv.code_dir).resolve()),
            temp_path=str(Path(self.inv.temp_dir).resolve()),
            path=f"{interp.prefix}/bin:/usr/local/bin:/usr/bin:/bin",
        )
        self._new_cgroup()
        self.proc = subprocess.Popen(
            [str(self.runtime_python), *py_args, str(BOOTSTRAP), str(payload_r), str(result_w)],
            env=env, cwd=str(self.inv.code_dir), stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w,
            pass_fds=(payload_r, result_w), start_new_session=True,
        )
        if self.cgroup:
            # Before the payload is written: bootstrap waits for it before
            # running anything of the Function's.
            self.cgroup.add(self.proc.pid)

    def _bwrap_args(self, interp, py_args, payload_r, result_w, info_w, block_r, etc_fds) -> list[str]:
        env = function_environment(self.inv)
        args = ["bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try", "--unshare-net",
                "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--hostname", SANDBOX_HOSTNAME,
                "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--disable-userns",
                "--clearenv"]
        for key, value in env.items():
            args += ["--setenv", key, value]
        args += _root_layout_args()
        for path in ("/etc/ssl", "/etc/ca-certificates", "/etc/ld.so.cache"):
            args += ["--ro-bind-try", path, path]
        for dest, fd in etc_fds.items():
            args += ["--ro-bind-data", str(fd), dest]
        args += ["--ro-bind", str(interp.prefix), RUNTIME_PATH]
        base = interp.base_prefix
        if interp.prefix == base or not (base == Path("/usr") or Path("/usr") in base.parents):
            # The venv's python is a symlink to the base interpreter, which
            # finds libpython through an absolute RUNPATH: same path inside.
            args += ["--ro-bind", str(base), str(base)]
        args += ["--ro-bind", str(Path(self.inv.code_dir).resolve()), CODE_PATH,
                 "--ro-bind", str(BOOTSTRAP), BOOTSTRAP_PATH,
                 "--bind", str(Path(self.inv.temp_dir).resolve()), TEMP_PATH]
        if self.inv.aws is not None:
            # Read-only is enough to connect to a socket, and the Function
            # cannot put anything of its own there.
            args += ["--ro-bind", str(Path(self.inv.aws.socket_path).parent.resolve()), AWS_SOCKET_DIR]
        args += ["--proc", "/proc", "--dev", "/dev",
                 "--remount-ro", "/",
                 "--chdir", CODE_PATH,
                 "--info-fd", str(info_w), "--block-fd", str(block_r),
                 "--", interp.inside, *py_args, *self._bootstrap_argv(payload_r, result_w)]
        return args

    def _bootstrap_argv(self, payload_r, result_w) -> list[str]:
        return [BOOTSTRAP_PATH, str(payload_r), str(result_w)]

    def _launch_bwrap(self, interp, py_args, payload_r, result_w, out_w, err_w) -> None:
        bwrap = shutil.which("bwrap")
        if not bwrap:
            raise SandboxStartError("bubblewrap (bwrap) is not installed")
        info_r, info_w = _pipe()
        block_r, block_w = _pipe()
        self._own(info_r, block_w)
        etc_fds: dict[str, int] = {}
        try:
            files = _etc_files(self.network)
            if self.inv.aws is not None:
                files[AWS_CONFIG_PATH] = AWS_CONFIG
            for dest, text in files.items():
                r, w = _pipe()
                os.write(w, text.encode())  # far below a pipe's capacity
                os.close(w)
                etc_fds[dest] = r
            args = self._bwrap_args(interp, py_args, payload_r, result_w, info_w, block_r, etc_fds)
            args[0] = bwrap
            self._new_cgroup()
            self.proc = subprocess.Popen(
                args, env={}, stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w,
                pass_fds=(payload_r, result_w, info_w, block_r, *etc_fds.values()),
            )
        finally:
            _close(info_w, block_r, *etc_fds.values())
        try:
            raw = _read_until_eof(info_r, time.monotonic() + START_TIMEOUT_S)
        except TimeoutError:
            raise SandboxStartError("bwrap did not report its sandbox in time") from None
        try:
            self.init_pid = int(json.loads(raw)["child-pid"])
            self.init_pidfd = os.pidfd_open(self.init_pid)
        except (ValueError, KeyError, TypeError, OSError):
            raise SandboxStartError(self._bwrap_error()) from None
        self._own(self.init_pidfd)
        if self.cgroup:
            # The namespace's init is blocked on --block-fd and has not
            # forked the command yet: everything that follows inherits.
            self.cgroup.add(self.proc.pid)
            self.cgroup.add(self.init_pid)
        try:
            os.write(block_w, b"1")
        except BrokenPipeError:
            # bwrap died while setting up the mounts (before it reads --block-fd).
            raise SandboxStartError(self._bwrap_error()) from None
        _close(block_w)
        self.fds.remove(block_w)
        if self.network == "slirp4netns":
            # Not before bwrap is done: slirp4netns --configure racing with
            # bwrap's own loopback set-up makes bwrap fail now and then
            # ("loopback: Failed RTM_NEWADDR", ~8% under load). Once
            # bootstrap says "started", bwrap is done; bootstrap runs nothing
            # of the Function's before it gets the payload, which is written
            # after the network is ready.
            self._wait_started(self._stream_fd("result"))
            self._start_network()

    def _stream_fd(self, wanted: str) -> int:
        return next(fd for fd, name in self.streams.items() if name == wanted)

    def _wait_started(self, result_r: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.started_ok:
            if not _wait_readable(result_r, deadline - time.monotonic()):
                raise SandboxStartError("the sandbox did not start in time")
            data = os.read(result_r, 1 << 16)
            if not data:
                raise SandboxStartError(self._bwrap_error())
            self._feed_result(data)

    def _bwrap_error(self) -> str:
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        err_fd = self._stream_fd("stderr")
        text = b""
        while _wait_readable(err_fd, 0.5):
            chunk = os.read(err_fd, 65536)
            if not chunk:
                break
            text += chunk
        lines = text.decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else f"bwrap exited with code {self.proc.returncode}"

    def _start_network(self) -> None:
        t = time.monotonic()
        netns_fd = os.open(f"/proc/{self.init_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._own(netns_fd)
        try:
            # The user namespace owning the network namespace, pinned now:
            # a root-run bwrap switches the command to a nested user
            # namespace later, and slirp4netns' default (/proc/PID/ns/user)
            # would then race with it.
            userns_fd = fcntl.ioctl(netns_fd, NS_GET_USERNS)
            self._own(userns_fd)
        except OSError:
            userns_fd = None
        ready_r, ready_w = _pipe()
        exit_r, exit_w = _pipe()
        self._own(ready_r, exit_w)
        self.slirp_exit_w = exit_w
        args = [shutil.which("slirp4netns") or "slirp4netns", "--configure", "--mtu=65520",
                "--disable-host-loopback", "--enable-sandbox", "--enable-seccomp",
                f"--ready-fd={ready_w}", f"--exit-fd={exit_r}", "--netns-type=path"]
        pass_fds = [ready_w, exit_r, netns_fd]
        if userns_fd is not None:
            args.append(f"--userns-path=/proc/self/fd/{userns_fd}")
            pass_fds.append(userns_fd)
        args += [f"/proc/self/fd/{netns_fd}", "tap0"]
        slirp_log = tempfile.TemporaryFile()
        try:
            self.slirp = subprocess.Popen(args, env={}, stdin=subprocess.DEVNULL,
                                          stdout=slirp_log, stderr=slirp_log, pass_fds=pass_fds)
        finally:
            _close(ready_w, exit_r)
        try:
            ready = _wait_readable(ready_r, 10.0) and os.read(ready_r, 1) == b"1"
            if not ready:
                slirp_log.seek(0)
                lines = slirp_log.read().decode("utf-8", "replace").strip().splitlines()
                raise SandboxStartError(f"slirp4netns failed: {lines[-1] if lines else 'not ready'}")
        finally:
            slirp_log.close()
        # After slirp4netns has configured tap0 (a gateway route may not be
        # accepted over an unreachable /32 everywhere); the Function only runs
        # once the payload is written, after this.
        try:
            block_networks(netns_fd, (*SLIRP_ALWAYS_BLOCKED, *self.blocked_networks), userns_fd)
        except (NetBlockError, OSError) as exc:
            raise SandboxStartError(f"could not make blocked networks unreachable: {exc}") from None
        log.debug("network set up in %.1f ms", (time.monotonic() - t) * 1000)

    # -- run ---------------------------------------------------------------

    def _now(self) -> datetime:
        ts = datetime.now(timezone.utc)
        if ts < self.last_ts:
            ts = self.last_ts
        self.last_ts = ts
        return ts

    def _emit(self, lines: list[OutputLine]) -> None:
        if not lines:
            return
        if self.started_ok:
            self.sink.put(lines)
        elif len(self.prestart) < 10000:
            self.prestart.extend(lines)

    def _feed_output(self, stream: str, data: bytes) -> None:
        allowed = self.limits.max_output_bytes - self.output_bytes
        if len(data) > allowed:
            data = data[:max(0, allowed)]
            self.output_exceeded = True
        self.output_bytes += len(data)
        if data:
            self._emit(self.splitters[stream].feed(data, self._now()))

    def _feed_result(self, data: bytes) -> None:
        if self.result_broken or self.result_body is not None:
            return
        self.result_buf += data
        if len(self.result_buf) > self.limits.max_return_bytes + MB:
            self.result_broken = "too much data on the result channel"
            return
        while True:
            header = self.result_header
            if header is not None and "length" in header and self.result_body is None:
                need = int(header["length"])
                if len(self.result_buf) < need:
                    return
                self.result_body = bytes(self.result_buf[:need])
                del self.result_buf[:need]
                return
            if header is not None:
                return
            newline = self.result_buf.find(b"\n")
            if newline < 0:
                return
            try:
                message = json.loads(self.result_buf[:newline])
            except ValueError:
                self.result_broken = "garbled message on the result channel"
                return
            del self.result_buf[: newline + 1]
            if message.get("type") == "started":
                self.started_ok = True
                pending, self.prestart = self.prestart, []
                self.sink.put(pending)
            elif message.get("type") == "result":
                self.result_header = message

    def _pump(self) -> None:
        sel = selectors.DefaultSelector()
        open_fds = set()
        for fd, name in self.streams.items():
            sel.register(fd, selectors.EVENT_READ, name)
            open_fds.add(fd)
        sel.register(self.proc_pidfd, selectors.EVENT_READ, "exit")
        exited_at = None
        try:
            while True:
                now = time.monotonic()
                if now >= self.deadline:
                    self.timed_out = True
                    return
                if exited_at is not None and (not open_fds or now - exited_at > DRAIN_GRACE_S):
                    return
                for key, _ in sel.select(min(self.deadline - now, 0.25)):
                    name = key.data
                    if name == "exit":
                        sel.unregister(key.fd)
                        exited_at = time.monotonic()
                        # The command is gone: end whatever it left behind
                        # now, so that the pipes they hold reach EOF.
                        self._kill_sandbox()
                        continue
                    try:
                        # Up to a quarter of the 1 MB pipe per read: fewer turns
                        # of this loop, each waiting for the GIL, when output
                        # floods in; no more than the default max_line_bytes, so
                        # the line splitter takes the chunk whole.
                        data = os.read(key.fd, 1 << 18)
                    except BlockingIOError:
                        continue
                    if not data:
                        sel.unregister(key.fd)
                        open_fds.discard(key.fd)
                    self._consume(name, data)
                    if self.output_exceeded:
                        return
                self._sample_memory()
        finally:
            sel.close()

    def result_complete(self) -> bool:
        h = self.result_header
        return h is not None and ("length" not in h or self.result_body is not None)

    def _drain(self) -> None:
        """After the kill: what was written before it is still in the pipes."""
        if self.output_exceeded:
            return
        end = time.monotonic() + DRAIN_GRACE_S
        for fd, name in self.streams.items():
            while time.monotonic() < end and _wait_readable(fd, 0):
                try:
                    data = os.read(fd, 1 << 16)
                except OSError:
                    break
                self._consume(name, data)
                if not data:
                    break
                if self.output_exceeded:
                    return

    def _consume(self, name: str, data: bytes) -> None:
        """What one read of a stream brought: b"" is its end (a last unfinished line is flushed)."""
        if name == "result":
            if data:
                self._feed_result(data)
        elif data:
            self._feed_output(name, data)
        else:
            self._emit(self.splitters[name].finish(self._now()))

    def _main_pid(self) -> int | None:
        if self.mode == "process":
            return self.proc.pid if self.proc else None
        if self.init_pid is None:
            return None
        try:
            children = Path(f"/proc/{self.init_pid}/task/{self.init_pid}/children").read_text().split()
            return int(children[0]) if children else None
        except (OSError, ValueError):
            return None

    def _sample_memory(self) -> None:
        now = time.monotonic()
        if now < self.next_sample or self.cgroup is not None:
            return
        self.next_sample = now + 0.5
        pid = self._main_pid()
        if pid is None:
            return
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.sampled_peak_kb = max(self.sampled_peak_kb, int(line.split()[1]))
        except (OSError, ValueError, IndexError):
            pass

    # -- stop --------------------------------------------------------------

    def _kill_sandbox(self) -> None:
        if self.init_pidfd is not None:
            try:
                signal.pidfd_send_signal(self.init_pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.mode == "process" and self.proc is not None:
            try:
                # The group leader is not reaped yet, so the id cannot be reused.
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.cgroup is not None:
            self.cgroup.kill_all()

    def _stop_everything(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self._sample_memory()
        self._kill_sandbox()
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log.error("sandbox process %s did not exit", self.proc.pid)
        if self.init_pidfd is not None and not _wait_readable(self.init_pidfd, 10):
            log.error("sandbox pid namespace %s did not die", self.init_pid)
        if self.slirp is not None:
            # Closing its exit fd ends slirp4netns (its namespace is gone
            # anyway); reaping it in the background saves ~8 ms per attempt.
            _close(self.slirp_exit_w)
            self.fds.remove(self.slirp_exit_w)
            threading.Thread(target=_reap, args=(self.slirp,), name="slirp-reaper", daemon=True).start()
        if self.cgroup is not None:
            self.cgroup_peak = self.cgroup.peak_memory_bytes()
            self.cgroup_oom = self.cgroup.oom_killed()
            self.cgroup.kill_all()
            self.cgroup.remove()

    # -- result ------------------------------------------------------------

    def _peak_mb(self) -> float | None:
        candidates = [self.sampled_peak_kb * 1024]
        if self.result_header and self.result_header.get("maxrss_kb"):
            candidates.append(int(self.result_header["maxrss_kb"]) * 1024)
        if self.cgroup_peak:
            candidates.append(self.cgroup_peak)
        peak = max(candidates)
        return round(peak / MB, 1) if peak else None

    def _exit_code(self) -> int | None:
        if self.proc is None or self.proc.returncode is None:
            return None
        code = self.proc.returncode
        return 128 - code if code < 0 else code

    def _result(self, outcome: str, reason: str, *, return_value: str | None = None,
                error: dict | None = None) -> AttemptResult:
        return AttemptResult(
            outcome=outcome, reason=reason, return_value=return_value, error=error,
            exit_code=self._exit_code(),
            duration_ms=int((time.monotonic() - self.t0) * 1000) if hasattr(self, "t0") else 0,
            peak_memory_mb=self._peak_mb(),
        )

    def _conclude(self) -> AttemptResult:
        limits = self.limits
        oom = f"Out of memory (limit {limits.memory_mb} MB)"
        header = self.result_header if self.result_complete() else None
        if self.output_exceeded:
            return self._result("failed", f"Output limit of {_mb(limits.max_output_bytes)} exceeded")
        if header is not None:
            status = header.get("status")
            if status == "ok":
                body = self.result_body.decode("utf-8")
                return self._result("succeeded", "Succeeded", return_value=body)
            if status == "error":
                error = header.get("error") or {}
                kind, message = error.get("type", "Error"), error.get("message", "")
                if kind == "MemoryError":
                    reason = oom
                elif kind.startswith("Runtime."):
                    reason = message
                else:
                    first = message.strip().splitlines()[0] if message.strip() else ""
                    reason = f"Handler raised {kind}: {first[:500]}" if first else f"Handler raised {kind}"
                return self._result("failed", reason, error=error)
            if status == "unserializable":
                return self._result("failed", f"Return value is not JSON serialisable: {header.get('message')}")
            if status == "too_large":
                return self._result("failed", f"Return value too large: {header.get('size')} bytes "
                                              f"(limit {limits.max_return_bytes} bytes)")
        if self.timed_out:
            return self._result("timed_out", f"Timed out after {limits.timeout_s:g} s")
        if self.result_broken:
            return self._result("failed", f"Invalid result from the sandbox: {self.result_broken}")
        if not self.started_ok:
            text = [line.message for line in self.prestart if line.message.strip()]
            detail = text[-1] if text else f"exit code {self._exit_code()}"
            return self._result("failed", f"Sandbox failed to start: {detail}")
        if self.cgroup_oom:
            return self._result("failed", oom)
        code = self._exit_code()
        if code is not None and code > 128:
            try:
                name = signal.Signals(code - 128).name
            except ValueError:
                name = f"signal {code - 128}"
            return self._result("failed", f"Killed by signal {name}")
        if code == 0:
            return self._result("failed", "Process exited with code 0 before the handler returned")
        return self._result("failed", f"Process exited with code {code}")
