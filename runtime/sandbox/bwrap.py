"""The bwrap command line: what the sandbox binds, unshares and sets, and what the host offers for it.

The isolation itself is described in runtime/sandbox/__init__.py; this module
is its one spelling, shared by a cold attempt and a warm environment's zygote.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from .contract import CODE_PATH, RUNTIME_PATH, TEMP_PATH, Invocation, SandboxStartError, function_environment

BOOTSTRAP = Path(__file__).resolve().parent.parent / "bootstrap.py"

# Paths inside the sandbox.
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

# Python's options for bootstrap: unbuffered (lines arrive as they are written), isolated, no .pyc.
PYTHON_ARGS = ("-u", "-I", "-B")


# --------------------------------------------------------------------------
# What the host offers


# A worker running as root starts each sandbox's bwrap as an unprivileged host uid of its own,
# so the sandbox's uid 65534 is that uid on the host: not root, its files not root's, its
# RLIMIT_NPROC its own, and no two sandboxes running at once share one. Nothing on the host
# owns uids in this range.
HOST_UID_BASE = 3_000_000
HOST_UID_COUNT = 1_000_000
_host_uids = itertools.count(random.randrange(HOST_UID_COUNT))

# An unprivileged bwrap resolves its bind sources as its own uid, and the worker's files are out
# of its reach (the base interpreter under /root, 0700; the bundles in DATA_DIR's 0700 cache).
# So, in a mount namespace of this launch only (the host's mounts are untouched), root binds each
# source at /mnt/N of a fresh tmpfs, then drops to the uid and execs bwrap on those views.
# Every step execs the next: the process the worker started is bwrap itself.
_AS_HOST_UID = (
    'set -e; env=$1; setpriv=$2; uid=$3; n=$4; shift 4; '
    'mount -t tmpfs -o mode=0755,size=64k sfn-sandbox-view /mnt; i=0; '
    'while [ "$i" -lt "$n" ]; do if [ -d "$1" ]; then mkdir "/mnt/$i"; else : > "/mnt/$i"; fi; '
    'mount --bind "$1" "/mnt/$i"; shift; i=$((i + 1)); done; '
    # env -i: bwrap starts with an empty environment, as without this (sh would add PWD).
    'exec "$env" -i "$setpriv" --reuid="$uid" --regid="$uid" --clear-groups -- "$@"'
)


def host_uid() -> int | None:
    """The host uid a new sandbox runs as: None for a non-root worker (bwrap maps its own uid)."""
    if os.geteuid() != 0:
        return None
    return HOST_UID_BASE + next(_host_uids) % HOST_UID_COUNT


def as_host_uid(args: list[str], uid: int) -> list[str]:
    """bwrap's command line (``args[0]`` resolved) run as host uid `uid` by a root worker."""
    tools = {name: shutil.which(name) for name in ("unshare", "mount", "setpriv", "sh", "env")}
    missing = [name for name, path in tools.items() if not path]
    if missing:
        raise SandboxStartError(
            f"the worker runs as root and {', '.join(missing)} (util-linux) is missing: it is needed to run "
            "sandboxes as an unprivileged host user"
        )
    sources, rewritten, i = [], [], 0
    while i < len(args):
        option = args[i]
        if option == "--":
            rewritten += args[i:]
            break
        if option in ("--bind", "--ro-bind") and i + 2 < len(args):
            rewritten += [option, f"/mnt/{len(sources)}", args[i + 2]]
            sources.append(args[i + 1])
            i += 3
            continue
        rewritten.append(option)
        i += 1
    return [tools["unshare"], "--mount", "--propagation", "private", "--", tools["sh"], "-c", _AS_HOST_UID,
            "sh", tools["env"], tools["setpriv"], str(uid), str(len(sources)), *sources, *rewritten]


def root_layout_args() -> list[str]:
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
            *root_layout_args(), "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/",
            "--", "/usr/bin/true"]
    try:
        uid = host_uid()
        if uid is not None:
            args = as_host_uid(args, uid)
        proc = subprocess.run(args, env={}, capture_output=True, text=True, timeout=20)
    except SandboxStartError as exc:
        return False, str(exc)
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
class Interpreter:
    prefix: Path        # the runtime venv (sys.prefix)
    base_prefix: Path   # the interpreter it was made from (sys.base_prefix)
    inside: str         # the python to run inside the sandbox


@lru_cache(maxsize=8)
def interpreter(python: str) -> Interpreter:
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
    return Interpreter(prefix=prefix, base_prefix=base, inside=inside)



# --------------------------------------------------------------------------
# The command line


def etc_files(network: str) -> dict[str, str]:
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


def bwrap_args(invocation: Invocation, interp: Interpreter, bootstrap_argv: Sequence[str], *,
               info_w: int, block_r: int, etc_fds: dict[str, int], tmp_mb: int = 512) -> list[str]:
    """bwrap's whole command line for one sandbox: ``args[0]`` is "bwrap", for the caller to resolve.

    Started with an empty environment (bwrap's own /proc/1/environ is readable inside): the
    Function's environment is only what ``--setenv`` gives it. Never a credential here: the
    payload carries those.
    """
    env = function_environment(invocation)
    args = ["bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--unshare-net",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--hostname", SANDBOX_HOSTNAME,
            "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--disable-userns",
            "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    args += root_layout_args()
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
    # /tmp is a filesystem of its own, of the attempt's size: a write past it fails with ENOSPC
    # inside the Function, never fills the worker's disk, and it is gone with the sandbox (a
    # warm environment's zygote empties it after every run).
    args += ["--ro-bind", str(Path(invocation.code_dir).resolve()), CODE_PATH,
             "--ro-bind", str(BOOTSTRAP), BOOTSTRAP_PATH,
             "--size", str(tmp_mb * 1024 * 1024), "--perms", "0700", "--tmpfs", TEMP_PATH]
    if invocation.aws is not None:
        # Read-only is enough to connect to a socket, and the Function
        # cannot put anything of its own there.
        args += ["--ro-bind", str(Path(invocation.aws.socket_path).parent.resolve()), AWS_SOCKET_DIR]
    args += ["--proc", "/proc", "--dev", "/dev",
             "--remount-ro", "/",
             "--chdir", CODE_PATH,
             "--info-fd", str(info_w), "--block-fd", str(block_r),
             "--", interp.inside, *PYTHON_ARGS, *bootstrap_argv]
    return args
