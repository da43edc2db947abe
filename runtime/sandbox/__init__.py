"""Run one attempt of a Function in an isolated sandbox.

Pure Python, no Django: ``execute()`` takes an ``Invocation`` and ``Limits``,
streams the Function's output lines to ``on_output`` and returns an
``AttemptResult``. ``runtime/bootstrap.py`` is what runs inside.

The package, by idea:
  * contract.py  - Invocation, Limits, OutputLine, AttemptResult, the handler
    pattern: what goes in and comes out (functions/bundles/handler.py uses the pattern);
  * output.py    - stdout/stderr as lines, and their bounded delivery;
  * bwrap.py     - the bwrap command line and what the host offers for it;
  * launcher.py  - the Launcher seam (start, main pid, exit code, kill, stop)
    and SandboxLauncher, which starts a fresh sandbox;
  * attempt.py   - one attempt with any launcher: payload, output, result,
    caps, the outcome and its reason; ``execute`` for a cold attempt.

Mode "bwrap" (the default) - bubblewrap, started with an empty environment:
  * namespaces: user (uid/gid 65534; a root worker's sandbox is an
    unprivileged host uid of its own, see bwrap.as_host_uid), pid, ipc, uts, cgroup (if possible),
    mount and network; ``--die-with-parent``, ``--new-session``,
    ``--cap-drop ALL``, ``--disable-userns`` (no nested user namespaces);
  * filesystem: an empty root made read-only, with read-only binds of /usr
    (and the /bin, /lib... symlinks or directories), /etc/ssl,
    /etc/ca-certificates, /etc/ld.so.cache, generated /etc/passwd, group,
    hosts, nsswitch.conf and resolv.conf, the runtime environment
    (at /opt/runtime) and its base interpreter prefix (at its own path,
    because the venv's python is a symlink to it and libpython is found by
    an absolute RUNPATH), the bundle at /var/task and bootstrap.py; /tmp,
    a tmpfs of ``Limits.tmp_mb`` (its pages counted in the cgroup on top of
    the memory), is the only writable place; fresh /proc and /dev. The host root, /root, /work and /etc are never bound whole;
    ``/root`` or ``/work`` may exist inside only as the empty parents of
    those binds (e.g. /root/.pyenv/versions/3.12.1 on this machine);
  * environment: exactly the contract variables plus PATH and LANG
    (``--clearenv`` + ``--setenv``); the event and the deadline come over a
    pipe, the result goes back over another (never stdout/stderr);
  * limits: rlimits set by bootstrap.py before any user code is imported
    (RLIMIT_DATA = memory, NPROC, NOFILE, FSIZE, CORE=0; soft = hard), and,
    when the worker may create cgroups (runtime/cgroups.py), a per-attempt
    cgroup with pids.max, a memory cap for the whole sandbox and a CPU quota
    in its organization's group. RLIMIT_NPROC counts per real uid: a root
    worker's sandboxes each have their own host uid; without cgroups and as
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
  * the caller's ``blocked_networks`` are made unreachable the same way:
    the worker passes runtime.netblock.networks_to_block() (private,
    link-local and reserved ranges and every address of the host, less
    FUNCTIONS_ALLOWED_NETWORKS); this package's own default is only the
    metadata range;
  * DNS goes to slirp's 10.0.2.3, forwarded to the host's resolver. IPv6 is
    off.
Without slirp4netns the sandbox has no network at all (loopback only).

The in-run AWS endpoint (runtime/aws; ``Invocation.aws``, set by the worker
for every attempt): the worker serves the attempt's STS/SSM/S3 endpoint on a
Unix socket alone in a private per-attempt directory (0700) and the sandbox
binds that directory read-only at /run/aws (connecting to a socket needs no
write access; /run holds nothing else). The sandbox's network namespace
cannot reach the worker's loopback, by design, so bootstrap binds
127.0.0.1:9000 inside the sandbox's own namespace and starts a relay thread
in the attempt's process that copies bytes between each connection and the
socket (no parsing: every request is SigV4-verified by the worker). In process mode the socket's host
path is used and the relay binds a free port (the host's loopback is shared).
The attempt's base credentials travel in the payload, never on bwrap's
command line or in the environment bwrap starts with; bootstrap puts them,
AWS_ENDPOINT_URL_STS/SSM/S3 and AWS_CONFIG_FILE (generated, read-only at
/opt/aws/config: path-style S3 addressing, SigV4 presigning) into os.environ
before the handler's module is imported. The relay ends with the attempt's process;
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
per Function version (with ``SandboxLauncher``), with bootstrap as a zygote
that forks each run; the worker side of a warm run is ``Attempt`` too, with
a launcher that asks the zygote instead of starting bwrap.

Mode "process" (operator opt-in, FUNCTIONS_SANDBOX=process): the same
bootstrap, the same cleared environment and rlimits (and cgroup if
possible), in a plain child process in its own session. UNSAFE: no
namespaces, the Function sees the host's filesystem, processes and network
(including loopback services) with the worker's uid, and a setsid()
grandchild escapes the process-group kill unless a cgroup is available. For
development machines where bwrap cannot run (e.g. a default Docker
container, which forbids the namespaces bwrap needs).
"""


from .attempt import Attempt, attempt_payload, execute, prepare_temp_dir
from .bwrap import (
    AWS_CONFIG,
    AWS_CONFIG_PATH,
    AWS_PORT,
    AWS_SOCKET_DIR,
    BOOTSTRAP_PATH,
    DEFAULT_BLOCKED_NETWORKS,
    bwrap_args,
    interpreter,
    network_mode,
    sandbox_available,
)
from .contract import (
    CODE_PATH,
    HANDLER_PATTERN,
    RUNTIME_PATH,
    TEMP_PATH,
    AttemptResult,
    AwsAccess,
    Invocation,
    Limits,
    OutputLine,
    SandboxStartError,
    function_environment,
    handler_problem,
)
from .launcher import START_TIMEOUT_S, ChildPipes, Ending, Launcher, SandboxLauncher, Stopped

__all__ = [
    "AWS_CONFIG", "AWS_CONFIG_PATH", "AWS_PORT", "AWS_SOCKET_DIR", "BOOTSTRAP_PATH", "CODE_PATH",
    "DEFAULT_BLOCKED_NETWORKS", "HANDLER_PATTERN", "RUNTIME_PATH", "START_TIMEOUT_S", "TEMP_PATH",
    "Attempt", "AttemptResult", "AwsAccess", "ChildPipes", "Ending", "Invocation", "Launcher", "Limits",
    "OutputLine", "SandboxLauncher", "SandboxStartError", "Stopped", "attempt_payload", "bwrap_args",
    "execute", "function_environment", "handler_problem", "interpreter", "network_mode", "prepare_temp_dir",
    "sandbox_available",
]
