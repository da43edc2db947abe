"""Warm execution environments: one long-lived sandbox per Function version, a fork per run.

Pure Python, no Django, like runtime/sandbox/. ``WarmPool.execute`` runs an
attempt like ``sandbox.execute`` and returns the same ``AttemptResult``.

An environment is a bwrap sandbox made exactly as a cold attempt's (same
namespaces, binds, slirp4netns network, cgroup, uid 65534, empty
environment: the very same ``SandboxLauncher``), running bootstrap.py
in "zygote" mode: it sets the rlimits, imports the platform's heavy
pre-installed packages (boto3, botocore, requests, urllib3, samsara; never
the Function's code; none at all when the bundle ships its own copy of one
of them or its memory is under PRELOAD_MIN_MEMORY_MB), forks the next run's
process ahead of time (the spare: for a bundle that uses boto3 it makes
throw-away clients, so the pages a run touches are its own before the run
arrives; at idle priority when this worker can give it normal priority back,
which ``WarmLauncher.start`` does before sending the run), then waits on a
control socket. Per run the worker empties the
environment's /tmp (host side, nothing runs inside then), opens the attempt's
AWS endpoint on a fresh socket in the environment's /run/aws directory, and
sends the payload, result, stdout and stderr pipes (SCM_RIGHTS); the zygote
hands them to the spare, which runs the attempt exactly as a cold bootstrap does
(imports the handler's module afresh, so module globals die with the run)
and reports its exit status, its peak memory and anything it left behind; only
then is the next spare forked, from the zygote as it was before any run. The run
itself is over sooner: once its result is in and its process has closed its pipes
(bootstrap closes them before exiting), the worker records it while the pool's
settler thread waits for that report (``WarmLauncher.settle``); the environment
takes no other run until it has come and shows nothing amiss.
The worker side is the sandbox's ``Attempt`` itself (same output handling,
limits, caps and reasons) with a ``WarmLauncher``: the sandbox package's
public launcher seam, where the zygote's fork replaces bwrap.

Never shared: the key is the caller's owner (organization, Function, code
version), the bundle, the handler, the whole environment and the limits. One
run at a time per environment; at most ``size`` environments per pool (LRU),
idle ones destroyed after ``idle_seconds``. Anything abnormal destroys the
environment (its pid namespace killed, as for a cold attempt) and the next
run starts cold: a timeout, the output cap, a child that crashed, exited
non-zero or without a result, processes, System V IPC objects, new entries
in /dev (/dev/shm included) or keys in the environment's keyrings left
behind, an OOM kill in the cgroup, the zygote's death, a protocol error.
POSIX message queues cannot be made at all (RLIMIT_MSGQUEUE 0). The /tmp of
an environment is emptied before each run, so unlike Lambda nothing written
there survives to the next run. When the environment fails before the Function's code could run (the
child never said "started"), the attempt is run cold instead, transparently.

Environments are started from one long-lived thread of the pool: bwrap's
``--die-with-parent`` is tied to the thread that started it, and a run's own
thread ends with the run.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import os
import queue
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, ContextManager, Sequence

from . import priority, sandbox
from .sandbox import (
    BOOTSTRAP_PATH,
    DEFAULT_BLOCKED_NETWORKS,
    START_TIMEOUT_S,
    Attempt,
    AttemptResult,
    AwsAccess,
    ChildPipes,
    Ending,
    Invocation,
    Limits,
    OutputLine,
    SandboxLauncher,
    SandboxStartError,
    Stopped,
    function_environment,
)
from .sandbox.contract import TMP_FULL_BYTES
from .sandbox.fds import close_fds, pipe, wait_readable
from .sandbox.launcher import first_child_pid, give_socket

log = logging.getLogger(__name__)

OpenAws = Callable[[Path | None], ContextManager[AwsAccess]]
PLACEHOLDER_SOCKET = "none"
# How long the zygote has to report the exit of a run that ended with its result (normally
# milliseconds); a process still holding on after its result and its pipes is ended with the
# environment then.
SETTLE_TIMEOUT_S = 2.0
PRELOAD_MIN_MEMORY_MB = 512


def _limits_argument(limits: Limits, handler: str, spare_warm_up: bool) -> str:
    # The handler (part of the environment's key) lets the zygote compile its module once.
    return json.dumps({"memory_mb": limits.memory_mb, "max_processes": limits.max_processes,
                       "max_open_files": limits.max_open_files, "max_file_size_mb": limits.max_file_size_mb,
                       "idle_warmup": priority.can_raise_priority(), "spare_warm_up": spare_warm_up,
                       "handler": handler})


def _zygote_argv(limits: Limits, handler: str, spare_warm_up: bool) -> Callable[[ChildPipes], list[str]]:
    """Bootstrap as a zygote, its control socket on the payload fd."""

    def argv(pipes: ChildPipes) -> list[str]:
        args = [BOOTSTRAP_PATH, "zygote", str(pipes.payload_r), _limits_argument(limits, handler, spare_warm_up)]
        if limits.memory_mb < PRELOAD_MIN_MEMORY_MB:
            # The preloaded packages (boto3 with its models: about 40 MB, inherited by every run) would eat a small
            # Function's memory limit: only the interpreter start is saved then.
            args.append("bare")
        return args

    return argv


class WarmEnvironment:
    def __init__(self, key, invocation: Invocation, limits: Limits, runtime_python: Path,
                 blocked_networks: tuple[str, ...], temp_root: Path, with_aws: bool = True,
                 spare_warm_up: bool = True):
        self.key = key
        self.spare_warm_up = spare_warm_up  # False: spares never warm up (WarmPool)
        self.limits = limits
        self.runtime_python = runtime_python
        self.blocked_networks = blocked_networks
        temp_root.mkdir(parents=True, exist_ok=True)
        self.temp_dir = Path(tempfile.mkdtemp(prefix="warm-", dir=temp_root))
        stat = self.temp_dir.stat()
        self.temp_identity = (stat.st_dev, stat.st_ino)
        self.aws_dir = Path(tempfile.mkdtemp(prefix="sfn-awsw-"))
        self.invocation = dataclasses.replace(
            invocation, temp_dir=self.temp_dir, event={}, request_id="",
            aws=AwsAccess(socket_path=self.aws_dir / PLACEHOLDER_SOCKET, credentials={}) if with_aws else None,
        )
        self.launcher: SandboxLauncher | None = None
        self.control: socket.socket | None = None
        self.output_fds: list[int] = []     # the zygote's stdout and stderr, ours
        self.zygote_host_pid: int | None = None
        self.preloaded = False
        self.prewarm = False    # each run's process warms boto3's clients up before its run arrives
        self.precompiled = False    # the zygote compiled the handler's module for its runs
        self.idle_warmup = False  # ... at idle priority, given normal priority back before its run
        self.busy = True
        self.dead = False
        # A run that ended with its result (WarmLauncher.stop) leaves its launcher here until the
        # zygote has reported the exit; ``settled`` is clear meanwhile, and the environment busy.
        self.unsettled: WarmLauncher | None = None
        self.settled = threading.Event()
        self.settled.set()
        self.runs = 0
        self.last_used = time.monotonic()
        self.lock = threading.Lock()

    # -- life ----------------------------------------------------------------

    def start(self) -> None:
        """Start the sandbox and wait until the zygote is ready (raises SandboxStartError)."""
        t = time.monotonic()
        launcher = self.launcher = SandboxLauncher(
            self.invocation, self.limits, mode="bwrap", runtime_python=self.runtime_python,
            blocked_networks=self.blocked_networks,
            bootstrap_argv=_zygote_argv(self.limits, self.invocation.handler, self.spare_warm_up),
        )
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.control = ours
        out_r, out_w = pipe()
        err_r, err_w = pipe()
        self.output_fds = [out_r, err_r]
        messages: list[dict] = []

        def next_message(deadline: float) -> bool:
            if not wait_readable(ours.fileno(), deadline - time.monotonic()):
                raise SandboxStartError("the warm environment did not get ready in time")
            data = ours.recv(65536)
            if not data:
                return False
            messages.append(json.loads(data))
            return True

        def wait_started() -> bool:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not any(m.get("type") == "started" for m in messages):
                if not next_message(deadline):
                    return False
            return True

        try:
            launcher.start(ChildPipes(theirs.fileno(), theirs.fileno(), out_w, err_w, err_r), wait_started)
        finally:
            theirs.close()
            close_fds(out_w, err_w)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any(m.get("type") == "ready" for m in messages):
            if not next_message(deadline):
                raise SandboxStartError(launcher.start_error())
        self.preloaded = bool(messages[-1].get("preloaded"))
        self.prewarm = bool(messages[-1].get("prewarm"))
        self.idle_warmup = bool(messages[-1].get("idle_warmup"))
        self.precompiled = bool(messages[-1].get("precompiled"))
        self.zygote_host_pid = launcher.main_pid()
        if self.zygote_host_pid is not None:
            priority.as_worker(self.zygote_host_pid)
        log.debug("warm environment ready in %.1f ms (preloaded: %s)", (time.monotonic() - t) * 1000,
                  self.preloaded)

    def alive(self) -> bool:
        if self.dead or self.control is None or self.launcher is None or not self.launcher.running():
            return False
        try:
            # Emptied host side before each run: it must still be the directory bound at /tmp.
            stat = self.temp_dir.stat()
        except OSError:
            return False
        if (stat.st_dev, stat.st_ino) != self.temp_identity:
            return False
        # Idle, nothing may be waiting on the control socket.
        return not wait_readable(self.control.fileno(), 0)

    def destroy(self) -> None:
        with self.lock:
            if self.dead:
                return
            self.dead = True
        try:
            if self.launcher is not None:
                self.launcher.stop()
        finally:
            close_fds(*self.output_fds)
            self.output_fds.clear()
            if self.control is not None:
                self.control.close()
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            shutil.rmtree(self.aws_dir, ignore_errors=True)

    def oom_kills(self) -> int:
        group = self.launcher.cgroup if self.launcher else None
        if group is None:
            return 0
        return group.oom_kill_count()

    # -- one run -------------------------------------------------------------

    def run(self, invocation: Invocation, limits: Limits, on_output, open_aws: OpenAws | None):
        """-> (AttemptResult, whether the environment failed before the Function's code ran)."""
        invocation = dataclasses.replace(invocation, temp_dir=self.temp_dir)
        launcher = WarmLauncher(self)
        with (open_aws(self.aws_dir) if open_aws else contextlib.nullcontext()) as aws:
            if aws is not None and self.launcher is not None and self.launcher.host_uid is not None:
                give_socket(aws.socket_path, self.launcher.host_uid)
            result = Attempt(dataclasses.replace(invocation, aws=aws), limits, on_output, launcher).run()
        self.runs += 1
        return result, launcher.platform_failure


class WarmLauncher:
    """The sandbox's Launcher for one run in a warm environment: the zygote forks the command.

    The command's end is the zygote's report on the control socket (exit status, peak
    memory, anything left behind); a run that did not end cleanly destroys the environment.
    """

    mode = "bwrap"
    warm = True
    ends_with_result = True

    def __init__(self, env: WarmEnvironment):
        self.env = env
        self.report: dict | None = None
        self.report_eof = False
        self.platform_failure = False
        self.oom_before = env.oom_kills()
        self.oom_killed = False
        # This run's peak is the environment cgroup's, reset now and read by the worker: never the
        # zygote's report (inside the sandbox). Without a cgroup the child's VmHWM is sampled.
        self.group = env.launcher.cgroup if env.launcher else None
        if self.group is not None:
            self.group.peak_reset()
        self.measures_memory = self.group is not None

    def start(self, pipes: ChildPipes, wait_started: Callable[[], bool]) -> int:
        if priority.can_raise_priority():
            # The zygote's only child between runs is the spare that will run this one: this thread's
            # priority for it before the run is handed over (it warmed up at idle priority, and a run
            # of a busy organization runs at a lower one: runtime.priority).
            spare = first_child_pid(self.env.zygote_host_pid)
            if spare is not None:
                priority.hand_over(spare, from_idle=self.env.idle_warmup)
        try:
            socket.send_fds(self.env.control, [b"run"], [pipes.payload_r, pipes.result_w, pipes.out_w, pipes.err_w])
        except OSError as exc:
            self.platform_failure = True
            raise SandboxStartError(f"the warm environment is gone: {exc}") from None
        # Readable once the zygote reports the child's end (or dies).
        return self.env.control.fileno()

    def _read_report(self, timeout: float) -> None:
        if self.report is not None or self.report_eof:
            return
        fd = self.env.control.fileno() if self.env.control.fileno() >= 0 else None
        if fd is None or not wait_readable(fd, timeout):
            return
        try:
            data = self.env.control.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.report_eof = True
            return
        try:
            self.report = json.loads(data)
        except ValueError:
            self.report = {"type": "garbled"}

    def _report_problem(self) -> str | None:
        report = self.report
        if report is None:
            return "the zygote ended" if self.report_eof else "no report"
        if report.get("type") != "exit" or report.get("status") is None:
            return f"bad report {report!r}"[:200]
        if report["status"] != 0:
            return f"child exit status {report['status']}"
        if report.get("dirty"):
            return "left behind: " + ", ".join(report["dirty"])[:200]
        return None

    def _destroy_environment(self) -> None:
        # The cgroup's counters go with it: read them first.
        self.oom_killed = self.oom_killed or self.env.oom_kills() > self.oom_before
        self.env.destroy()

    def main_pid(self) -> int | None:
        return first_child_pid(self.env.zygote_host_pid)

    def exit_code(self) -> int | None:
        if not self.report or self.report.get("status") is None:
            return None
        code = os.waitstatus_to_exitcode(self.report["status"])
        return 128 - code if code < 0 else code

    def kill(self) -> None:
        # The zygote reported (or died): end the environment at once when something is left
        # that could hold the pipes; a clean child left nothing.
        self._read_report(0)
        if self._report_problem():
            self._destroy_environment()

    def stop(self, ending: Ending) -> Stopped:
        self._read_report(0)
        peak = self.group.peak_memory_bytes() if self.group is not None and not self.env.dead else None
        if not self.env.dead:
            self.oom_killed = self.oom_killed or self.env.oom_kills() > self.oom_before
        if (ending.ended_with_result and ending.problem is None and not self.oom_killed and self.report is None
                and not self.report_eof):
            # The run is over: the zygote's report of its process's exit is awaited after it
            # (settle), before anything else runs in the environment. Its /tmp as it ended is
            # in the result (bootstrap's own statvfs).
            self.env.unsettled = self
            return Stopped(peak_memory_bytes=peak)
        problem = self._report_problem() or ending.problem or ("OOM kill" if self.oom_killed else None)
        if problem is not None:
            log.debug("warm environment destroyed: %s", problem)
            if not ending.started and not ending.timed_out:
                self.platform_failure = True
            self._destroy_environment()
        free = self.report.get("tmp_free_bytes") if self.report else None
        return Stopped(peak_memory_bytes=peak, oom_killed=self.oom_killed,
                       tmp_full=isinstance(free, int) and free < TMP_FULL_BYTES)

    def settle(self, timeout: float = SETTLE_TIMEOUT_S) -> None:
        """After a run that ended with its result: wait for the zygote's report of its exit, and end
        the environment if the process did not exit cleanly, left anything behind, or is still
        there after ``timeout`` (its result was in and its pipes closed: nothing of it is awaited)."""
        self._read_report(timeout)
        problem = self._report_problem()
        if problem is None and not self.env.dead and self.env.oom_kills() > self.oom_before:
            problem = "OOM kill"
        if problem is not None:
            log.debug("warm environment destroyed after its run: %s", problem)
            self._destroy_environment()


# --------------------------------------------------------------------------
# The pool


class _Spawner:
    """One long-lived thread that starts every environment (see the module docstring)."""

    def __init__(self, name: str = "warm-spawner"):
        self.work: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        while True:
            function, done, box = self.work.get()
            try:
                box["result"] = function()
            except BaseException as exc:  # handed back to the caller
                box["error"] = exc
            done.set()

    def call(self, function):
        done, box = threading.Event(), {}
        self.work.put((function, done, box))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def submit(self, function) -> None:
        """Run function() on the thread without waiting for it (it handles its own errors)."""
        self.work.put((function, threading.Event(), {}))


class WarmPool:
    def __init__(self, *, size: int = 4, idle_seconds: float = 300.0, temp_root: Path | None = None,
                 spare_warm_up: bool = True):
        self.size = max(1, size)
        # Whether the spare of a bundle that uses boto3 warms up before its run (bootstrap._Spare):
        # off, runs of such bundles take longer but no CPU goes to warm-ups.
        self.spare_warm_up = spare_warm_up
        self.idle_seconds = idle_seconds
        self.temp_root = Path(temp_root or tempfile.gettempdir()) / "sfn-warm"
        self.lock = threading.Lock()
        self.envs: collections.OrderedDict[tuple, WarmEnvironment] = collections.OrderedDict()
        self.spawner = _Spawner()
        # Pre-started environments get a thread of their own: a run that needs a new
        # environment never waits behind one nobody is waiting for.
        self.prestarter = _Spawner(name="warm-prestarter")
        # Settles environments whose run ended with its result (WarmLauncher.settle), after the run.
        self.settler = _Spawner(name="warm-settler")
        self.created = 0
        self.prestarted = 0
        self.last_environment: WarmEnvironment | None = None  # for tests and benchmarks
        threading.Thread(target=self._expire_forever, name="warm-expiry", daemon=True).start()

    @staticmethod
    def key(owner, invocation: Invocation, limits: Limits, runtime_python: Path,
            blocked_networks: Sequence[str]) -> tuple:
        return (owner, str(Path(invocation.code_dir).resolve()), invocation.handler, invocation.function_name,
                tuple(sorted(function_environment(invocation).items())), limits, str(runtime_python),
                tuple(blocked_networks))

    def execute(self, invocation: Invocation, limits: Limits, on_output: Callable[[list[OutputLine]], None],
                *, owner, runtime_python: Path, open_aws: OpenAws | None = None,
                blocked_networks: Sequence[str] = DEFAULT_BLOCKED_NETWORKS) -> AttemptResult:
        """Run one attempt in the warm environment of its key (made if need be), else cold.

        ``invocation.aws`` is ignored: ``open_aws(directory)`` opens the attempt's endpoint with
        its socket in ``directory`` (None: a private directory of its own, for a cold attempt).
        """
        blocked = tuple(blocked_networks)
        env = None
        if not sandbox.handler_problem(invocation.handler) and Path(invocation.code_dir).is_dir():
            key = (*self.key(owner, invocation, limits, runtime_python, blocked), open_aws is not None)
            env = self._acquire(key, invocation, limits, Path(runtime_python), blocked, open_aws is not None)
        if env is not None:
            self.last_environment = env
            try:
                result, fallback = env.run(invocation, limits, on_output, open_aws)
            finally:
                self._release(env)
            if not fallback:
                return result
            log.warning("warm environment failed before the run started; running it cold")
        with (open_aws(None) if open_aws else contextlib.nullcontext()) as aws:
            return sandbox.execute(dataclasses.replace(invocation, aws=aws), limits, on_output, mode="bwrap",
                                   runtime_python=runtime_python, blocked_networks=blocked)

    def prestart(self, invocation: Invocation, limits: Limits, *, owner, runtime_python: Path, with_aws: bool = True,
                 blocked_networks: Sequence[str] = DEFAULT_BLOCKED_NETWORKS) -> bool:
        """Start the environment a run of this invocation would use, in the background.

        Only into a free place (never evicting another environment) and only when its key has
        none yet; True when one is being started. The environment is exactly the one ``execute``
        would make on demand (same key, same start); until it is ready it counts as busy, so a
        run that arrives meanwhile runs cold instead of waiting. Returns at once.
        """
        blocked = tuple(blocked_networks)
        if sandbox.handler_problem(invocation.handler) or not Path(invocation.code_dir).is_dir():
            return False
        key = (*self.key(owner, invocation, limits, runtime_python, blocked), with_aws)
        with self.lock:
            if key in self.envs or len(self.envs) >= self.size:
                return False
            env = WarmEnvironment(key, invocation, limits, Path(runtime_python), blocked, self.temp_root, with_aws,
                                  spare_warm_up=self.spare_warm_up)
            self.envs[key] = env
            self.envs.move_to_end(key, last=False)  # least recently used: first out if runs need room
            # Counted apart from ``created`` (environments a run had to start itself, a cold start).
            self.prestarted += 1

        def start() -> None:
            try:
                env.start()
            except Exception as exc:
                log.warning("could not pre-start a warm environment: %s", exc)
                self._forget(env)
                env.destroy()
                return
            self._release(env)

        self.prestarter.submit(start)
        return True

    def _acquire(self, key, invocation, limits, runtime_python, blocked, with_aws) -> WarmEnvironment | None:
        with self.lock:
            settling = self.envs.get(key)
        if settling is not None and not settling.settled.is_set():
            # The previous run in it is over and its exit being checked (a few ms): wait for
            # that rather than run cold.
            settling.settled.wait(SETTLE_TIMEOUT_S + 1)
        stale = []
        with self.lock:
            env = self.envs.get(key)
            if env is not None and env.busy:
                return None  # one run at a time per environment: this one runs cold
            if env is not None and not env.alive():
                stale.append(self.envs.pop(key))
                env = None
            if env is not None:
                env.busy = True
                self.envs.move_to_end(key)
            else:
                while len(self.envs) >= self.size:
                    idle = next((k for k, e in self.envs.items() if not e.busy), None)
                    if idle is None:
                        break
                    stale.append(self.envs.pop(idle))
                if len(self.envs) >= self.size:
                    env = None
                else:
                    env = WarmEnvironment(key, invocation, limits, runtime_python, blocked, self.temp_root,
                                          with_aws, spare_warm_up=self.spare_warm_up)
                    self.envs[key] = env
                    self.created += 1
        for old in stale:
            old.destroy()
        if env is None:
            return None
        if env.launcher is None:
            try:
                self.spawner.call(env.start)
            except Exception as exc:  # the run goes cold; nothing is left of the environment
                log.warning("could not start a warm environment: %s", exc)
                self._forget(env)
                env.destroy()
                return None
        return env

    def _forget(self, env: WarmEnvironment) -> None:
        with self.lock:
            if self.envs.get(env.key) is env:
                del self.envs[env.key]

    def _release(self, env: WarmEnvironment) -> None:
        launcher, env.unsettled = env.unsettled, None
        if launcher is not None and not env.dead:
            env.settled.clear()
            self.settler.submit(lambda: self._settle(env, launcher))
            return
        env.last_used = time.monotonic()
        if env.dead:
            self._forget(env)
        with self.lock:
            env.busy = False

    def _settle(self, env: WarmEnvironment, launcher: WarmLauncher) -> None:
        try:
            launcher.settle()
        except Exception:
            log.exception("checking the end of a warm run failed; ending its environment")
            env.destroy()
        finally:
            self._release(env)
            env.settled.set()

    def wait_settled(self, timeout: float = SETTLE_TIMEOUT_S + 1) -> None:
        """Until every environment whose run ended with its result has been checked (tests, benchmarks)."""
        with self.lock:
            envs = list(self.envs.values())
        for env in envs:
            env.settled.wait(timeout)

    def expire(self, now: float | None = None) -> int:
        """Destroy environments idle for longer than idle_seconds; how many."""
        now = time.monotonic() if now is None else now
        with self.lock:
            old = [k for k, e in self.envs.items() if not e.busy and now - e.last_used > self.idle_seconds]
            gone = [self.envs.pop(k) for k in old]
        for env in gone:
            env.destroy()
        return len(gone)

    def clear(self) -> None:
        """Destroy every idle environment, those whose last run's exit is still being checked included."""
        self.wait_settled()
        with self.lock:
            gone = [e for e in self.envs.values() if not e.busy]
            for env in gone:
                del self.envs[env.key]
        for env in gone:
            env.destroy()

    def _expire_forever(self) -> None:
        while True:
            time.sleep(max(0.5, min(self.idle_seconds / 2, 10.0)))
            try:
                self.expire()
            except Exception:
                log.exception("expiring warm environments failed")


_pool: WarmPool | None = None
_pool_lock = threading.Lock()


def pool(*, size: int = 4, idle_seconds: float = 300.0, temp_root: Path | None = None,
         spare_warm_up: bool = True) -> WarmPool:
    """This process's pool (made on first use with these settings)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = WarmPool(size=size, idle_seconds=idle_seconds, temp_root=temp_root, spare_warm_up=spare_warm_up)
        return _pool
