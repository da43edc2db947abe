"""How an attempt's command starts and ends: the launcher seam.

An attempt (runtime/sandbox/attempt.py) feeds the payload, reads the
output and the result, enforces the caps and concludes; a launcher starts
the command that runs bootstrap and ends whatever it leaves. A cold attempt
uses ``SandboxLauncher`` (a fresh bwrap sandbox, or a plain process in
process mode); a warm run uses runtime/warm.py's launcher, which has the
environment's zygote fork the command instead. Warm environments start
their zygote with ``SandboxLauncher`` too, so both are the same sandbox.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

from ..cgroups import AttemptCgroup
from ..netblock import NetBlockError, block_networks
from .bwrap import (
    AWS_CONFIG,
    AWS_CONFIG_PATH,
    BOOTSTRAP,
    BOOTSTRAP_PATH,
    PYTHON_ARGS,
    SLIRP_ALWAYS_BLOCKED,
    as_host_uid,
    bwrap_args,
    etc_files,
    host_uid,
    interpreter,
    network_mode,
)
from .contract import Invocation, Limits, SandboxStartError, function_environment
from .fds import close_fds, pipe, read_until_eof, reap, wait_readable

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
NS_GET_USERNS = 0xB701
MB = 1024 * 1024


@dataclass(frozen=True)
class ChildPipes:
    """The pipe ends the command gets, and the worker's end of its stderr (to quote a failed start)."""

    payload_r: int
    result_w: int
    out_w: int
    err_w: int
    err_r: int


@dataclass(frozen=True)
class Ending:
    """How the attempt ended, as the worker's side knows it when it stops the command."""

    started: bool           # bootstrap said "started": the Function's code may have run
    timed_out: bool
    problem: str | None     # why the command did not end cleanly ("timed out", "output cap", "no result")
    # The whole result was in and every pipe had ended before the command's end was known: a
    # launcher that ``ends_with_result`` may learn how its process ended after the attempt.
    ended_with_result: bool = False


@dataclass(frozen=True)
class Stopped:
    """What the launcher measured, once the command and everything it left are gone."""

    peak_memory_bytes: int | None = None
    oom_killed: bool = False
    tmp_full: bool = False  # /tmp had no room left as the command ended (a warm zygote's statvfs)


class Launcher(Protocol):
    """Starts an attempt's command and ends it. Each method is called from the attempt's thread."""

    mode: str               # "bwrap" (paths in the payload are the sandbox's) or "process" (the host's)
    warm: bool              # the command runs in a warm execution environment
    measures_memory: bool   # peak memory comes from stop(), not from sampling main_pid()
    # The attempt is over once the whole result is in and every pipe has ended, without waiting
    # for the start()'s fd: the launcher checks how the process ended after the attempt, and
    # enforces it (runtime/warm.py).
    ends_with_result: bool

    def start(self, pipes: ChildPipes, wait_started: Callable[[], bool]) -> int:
        """Start bootstrap on these pipe ends; return an fd that becomes readable when the command is over.

        ``wait_started()`` waits for bootstrap's "started" (False: the result pipe closed first),
        for a launcher that must act between the sandbox's set-up and the Function's first line.
        Raises SandboxStartError when the command cannot start.
        """

    def main_pid(self) -> int | None:
        """The host pid of the process running the handler (for sampling its memory), if known."""

    def exit_code(self) -> int | None:
        """The command's exit code, 128 + signal when killed; None while unknown."""

    def kill(self) -> None:
        """The command is over: end whatever it left behind, so the pipes they hold reach EOF."""

    def stop(self, ending: Ending) -> Stopped:
        """End everything of the attempt's command and release it (called once)."""


def first_child_pid(pid: int | None) -> int | None:
    """The first child of ``pid`` (the namespace's init or the zygote runs the handler as its child)."""
    if pid is None:
        return None
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return int(children[0]) if children else None
    except (OSError, ValueError):
        return None


def give_socket(socket_path: Path, uid: int) -> None:
    """Let a sandbox running as host `uid` reach its AWS endpoint: the socket's private directory
    and the socket (connecting needs write access to it) become that uid's; nobody else's."""
    os.chown(Path(socket_path).parent, uid, uid)
    if Path(socket_path).exists():
        os.chown(socket_path, uid, uid)


def default_bootstrap_argv(pipes: ChildPipes) -> list[str]:
    return [BOOTSTRAP_PATH, str(pipes.payload_r), str(pipes.result_w)]


class SandboxLauncher:
    """A fresh sandbox per command: bwrap (with cgroup and slirp4netns network when available), or a
    plain child process in process mode."""

    warm = False
    ends_with_result = False  # a cold sandbox ends when bwrap (its pid namespace's init) exits

    def __init__(self, invocation: Invocation, limits: Limits, *, mode: str, runtime_python: Path,
                 blocked_networks: Sequence[str],
                 bootstrap_argv: Callable[[ChildPipes], list[str]] = default_bootstrap_argv):
        self.inv = invocation
        self.limits = limits
        self.mode = mode
        self.runtime_python = Path(runtime_python)
        self.blocked_networks = tuple(blocked_networks)
        self.bootstrap_argv = bootstrap_argv
        self.network = network_mode() if mode == "bwrap" else "host"
        self.fds: list[int] = []          # ours, closed by stop()
        self.proc: subprocess.Popen | None = None
        self.proc_pidfd: int | None = None
        self.init_pid: int | None = None
        self.init_pidfd: int | None = None
        self.cgroup: AttemptCgroup | None = None
        self.slirp: subprocess.Popen | None = None
        self.slirp_exit_w: int | None = None
        self.err_r: int | None = None
        self.stopped = False
        self.host_uid: int | None = None  # a root worker's sandbox: the unprivileged host uid it runs as

    @property
    def measures_memory(self) -> bool:
        return self.cgroup is not None

    def _own(self, *fds: int) -> None:
        self.fds.extend(fds)

    # -- start -------------------------------------------------------------

    def start(self, pipes: ChildPipes, wait_started: Callable[[], bool]) -> int:
        interp = interpreter(str(self.runtime_python))
        self.err_r = pipes.err_r
        if self.mode == "bwrap":
            self._launch_bwrap(interp, pipes, wait_started)
        else:
            self._launch_process(interp, pipes)
        self.proc_pidfd = os.pidfd_open(self.proc.pid)
        self._own(self.proc_pidfd)
        return self.proc_pidfd

    def _new_cgroup(self) -> None:
        # /tmp's pages are charged to the cgroup like any memory: room for them on top of the
        # Function's own (RLIMIT_DATA still caps each process at memory_mb).
        tmp_mb = self.limits.tmp_mb if self.mode == "bwrap" else 0
        self.cgroup = AttemptCgroup.create(
            max_pids=self.limits.max_processes + 8,  # + bwrap and its init
            memory_bytes=(self.limits.memory_mb + tmp_mb) * MB,
            cpus=self.limits.cpus, organization=self.limits.cpu_group,
        )

    def _launch_process(self, interp, pipes: ChildPipes) -> None:
        env = function_environment(
            self.inv, code_path=str(Path(self.inv.code_dir).resolve()),
            temp_path=str(Path(self.inv.temp_dir).resolve()),
            path=f"{interp.prefix}/bin:/usr/local/bin:/usr/bin:/bin",
        )
        self._new_cgroup()
        self.proc = subprocess.Popen(
            [str(self.runtime_python), *PYTHON_ARGS, str(BOOTSTRAP), str(pipes.payload_r), str(pipes.result_w)],
            env=env, cwd=str(self.inv.code_dir), stdin=subprocess.DEVNULL, stdout=pipes.out_w,
            stderr=pipes.err_w, pass_fds=(pipes.payload_r, pipes.result_w), start_new_session=True,
        )
        if self.cgroup:
            # Before the payload is written: bootstrap waits for it before
            # running anything of the Function's.
            self.cgroup.add(self.proc.pid)

    def _launch_bwrap(self, interp, pipes: ChildPipes, wait_started: Callable[[], bool]) -> None:
        bwrap = shutil.which("bwrap")
        if not bwrap:
            raise SandboxStartError("bubblewrap (bwrap) is not installed")
        info_r, info_w = pipe()
        block_r, block_w = pipe()
        self._own(info_r, block_w)
        etc_fds: dict[str, int] = {}
        try:
            files = etc_files(self.network)
            if self.inv.aws is not None:
                files[AWS_CONFIG_PATH] = AWS_CONFIG
            for dest, text in files.items():
                r, w = pipe()
                os.write(w, text.encode())  # far below a pipe's capacity
                os.close(w)
                etc_fds[dest] = r
            args = bwrap_args(self.inv, interp, self.bootstrap_argv(pipes), info_w=info_w, block_r=block_r,
                              etc_fds=etc_fds, tmp_mb=self.limits.tmp_mb)
            args[0] = bwrap
            self.host_uid = host_uid()
            if self.host_uid is not None:
                # A root worker: the sandbox's user is an unprivileged host uid, never root.
                args = as_host_uid(args, self.host_uid)
                if self.inv.aws is not None:
                    give_socket(self.inv.aws.socket_path, self.host_uid)
            self._new_cgroup()
            self.proc = subprocess.Popen(
                args, env={}, stdin=subprocess.DEVNULL, stdout=pipes.out_w, stderr=pipes.err_w,
                pass_fds=(pipes.payload_r, pipes.result_w, info_w, block_r, *etc_fds.values()),
            )
        finally:
            close_fds(info_w, block_r, *etc_fds.values())
        try:
            raw = read_until_eof(info_r, time.monotonic() + START_TIMEOUT_S)
        except TimeoutError:
            raise SandboxStartError("bwrap did not report its sandbox in time") from None
        try:
            self.init_pid = int(json.loads(raw)["child-pid"])
            self.init_pidfd = os.pidfd_open(self.init_pid)
        except (ValueError, KeyError, TypeError, OSError):
            raise SandboxStartError(self.start_error()) from None
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
            raise SandboxStartError(self.start_error()) from None
        close_fds(block_w)
        self.fds.remove(block_w)
        if self.network == "slirp4netns":
            # Not before bwrap is done: slirp4netns --configure racing with
            # bwrap's own loopback set-up makes bwrap fail now and then
            # ("loopback: Failed RTM_NEWADDR", ~8% under load). Once
            # bootstrap says "started", bwrap is done; bootstrap runs nothing
            # of the Function's before it gets the payload, which is written
            # after the network is ready.
            if not wait_started():
                raise SandboxStartError(self.start_error())
            self._start_network()

    def start_error(self) -> str:
        """Why the sandbox did not start: bwrap's last line on stderr, or its exit code."""
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        text = b""
        while wait_readable(self.err_r, 0.5):
            chunk = os.read(self.err_r, 65536)
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
        ready_r, ready_w = pipe()
        exit_r, exit_w = pipe()
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
            close_fds(ready_w, exit_r)
        try:
            ready = wait_readable(ready_r, 10.0) and os.read(ready_r, 1) == b"1"
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

    # -- while it runs -------------------------------------------------------

    def main_pid(self) -> int | None:
        if self.mode == "process":
            return self.proc.pid if self.proc else None
        return first_child_pid(self.init_pid)

    def running(self) -> bool:
        """The sandbox's pid namespace still lives (bwrap mode)."""
        return self.init_pidfd is not None and not wait_readable(self.init_pidfd, 0)

    def exit_code(self) -> int | None:
        if self.proc is None or self.proc.returncode is None:
            return None
        code = self.proc.returncode
        return 128 - code if code < 0 else code

    # -- stop --------------------------------------------------------------

    def kill(self) -> None:
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

    def stop(self, ending: Ending | None = None) -> Stopped:
        """Kill everything (nothing survives its pid namespace's init), reap, read the cgroup, release."""
        if self.stopped:
            return Stopped()
        self.stopped = True
        try:
            return self._stop()
        finally:
            close_fds(*self.fds)
            self.fds.clear()

    def _stop(self) -> Stopped:
        self.kill()
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log.error("sandbox process %s did not exit", self.proc.pid)
        if self.init_pidfd is not None and not wait_readable(self.init_pidfd, 10):
            log.error("sandbox pid namespace %s did not die", self.init_pid)
        if self.slirp is not None:
            # Closing its exit fd ends slirp4netns (its namespace is gone
            # anyway); reaping it in the background saves ~8 ms per attempt.
            close_fds(self.slirp_exit_w)
            self.fds.remove(self.slirp_exit_w)
            threading.Thread(target=reap, args=(self.slirp,), name="slirp-reaper", daemon=True).start()
        if self.cgroup is None:
            return Stopped()
        stopped = Stopped(peak_memory_bytes=self.cgroup.peak_memory_bytes(), oom_killed=self.cgroup.oom_killed())
        self.cgroup.kill_all()
        self.cgroup.remove()
        return stopped
