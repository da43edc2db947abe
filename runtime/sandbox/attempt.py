"""One attempt, worker side: feed the payload, read the output and the result, enforce the caps, conclude.

How the command starts and ends is the launcher's (runtime/sandbox/launcher.py):
``execute`` runs a cold attempt in a fresh sandbox, runtime/warm.py runs the
same ``Attempt`` with a warm environment's launcher, so output handling,
limits, caps and reasons are one code for both.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from storage.sizes import format_bytes

from .bwrap import AWS_CONFIG, AWS_CONFIG_PATH, AWS_PORT, AWS_SOCKET_DIR, DEFAULT_BLOCKED_NETWORKS
from .contract import (
    CODE_PATH,
    AttemptResult,
    AwsAccess,
    Invocation,
    Limits,
    OutputLine,
    TMP_FULL_BYTES,
    SandboxStartError,
    handler_problem,
)
from .fds import close_fds, pipe, wait_readable
from .launcher import START_TIMEOUT_S, ChildPipes, Ending, Launcher, SandboxLauncher, Stopped
from .output import LineSplitter, OutputSink

DRAIN_GRACE_S = 1.0
MB = 1024 * 1024


def execute(invocation: Invocation, limits: Limits, on_output: Callable[[list[OutputLine]], None],
            *, mode: str = "bwrap", runtime_python: Path,
            blocked_networks: Sequence[str] = DEFAULT_BLOCKED_NETWORKS) -> AttemptResult:
    """Run one attempt of the Function in a fresh sandbox; never raises for anything the Function does."""
    if mode not in ("bwrap", "process"):
        raise ValueError(f"unknown sandbox mode {mode!r} (bwrap or process)")
    launcher = SandboxLauncher(invocation, limits, mode=mode, runtime_python=Path(runtime_python),
                               blocked_networks=blocked_networks)
    return Attempt(invocation, limits, on_output, launcher).run()


def attempt_payload(invocation: Invocation, limits: Limits, *, mode: str, deadline_ms: int) -> bytes:
    """What bootstrap reads on its payload pipe: the event, the context, the limits, the AWS access.

    The attempt's credentials travel here, never on a command line or in an environment.
    """
    region = invocation.env.get("AWS_REGION") or invocation.env.get("AWS_DEFAULT_REGION") or "us-west-2"
    name = invocation.function_name
    code_dir = CODE_PATH if mode == "bwrap" else str(Path(invocation.code_dir).resolve())
    return json.dumps({
        "handler": invocation.handler,
        "event": invocation.event,
        "code_dir": code_dir,
        "deadline_ms": deadline_ms,
        "limits": {
            "memory_mb": limits.memory_mb,
            "max_processes": limits.max_processes,
            "max_open_files": limits.max_open_files,
            "max_file_size_mb": limits.max_file_size_mb,
            "max_return_bytes": limits.max_return_bytes,
        },
        "aws": _aws_payload(invocation.aws, mode),
        "context": {
            "request_id": invocation.request_id,
            "function_name": name,
            "memory_limit_in_mb": limits.memory_mb,
            "invoked_function_arn": f"arn:aws:lambda:{region}:000000000000:function:{name}",
            "log_group_name": f"/aws/lambda/{name}",
            "log_stream_name": f"{datetime.now(timezone.utc):%Y/%m/%d}/[$LATEST]"
                               f"{invocation.request_id.replace('-', '')}",
        },
    }).encode()


def _aws_payload(aws: AwsAccess | None, mode: str) -> dict | None:
    if aws is None:
        return None
    if mode == "bwrap":
        socket, config, port = f"{AWS_SOCKET_DIR}/{Path(aws.socket_path).name}", AWS_CONFIG_PATH, AWS_PORT
    else:
        # The host's loopback is shared: let the kernel pick a free port.
        config = Path(aws.socket_path).with_name("config")
        config.write_text(AWS_CONFIG)
        socket, config, port = str(aws.socket_path), str(config), 0
    return {"socket": socket, "port": port, "config_file": config, "credentials": dict(aws.credentials)}


def prepare_temp_dir(path: Path) -> None:
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


class Attempt:
    """One attempt of a Function: the same for a fresh sandbox and a warm environment, only the launcher differs."""

    def __init__(self, invocation: Invocation, limits: Limits,
                 on_output: Callable[[list[OutputLine]], None] | None, launcher: Launcher):
        self.inv = invocation
        self.limits = limits
        self.on_output = on_output
        self.launcher = launcher
        self.fds: list[int] = []          # ours, closed at the end
        self.exit_fd: int | None = None
        self.sink: OutputSink | None = None
        self.splitters = {"stdout": LineSplitter("stdout", limits.max_line_bytes),
                          "stderr": LineSplitter("stderr", limits.max_line_bytes)}
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
        self.stopped = False
        self.stopped_with = Stopped()
        self.ended_with_result = False

    # -- the whole run -----------------------------------------------------

    def run(self) -> AttemptResult:
        self.t0 = time.monotonic()
        self.deadline = self.t0 + self.limits.timeout_s
        self.deadline_ms = int((time.time() + self.limits.timeout_s) * 1000)
        problem = handler_problem(self.inv.handler)
        if problem:
            return self._result("failed", problem)
        self.sink = OutputSink(self.on_output)
        try:
            try:
                prepare_temp_dir(Path(self.inv.temp_dir))
                self._launch()
            except (SandboxStartError, OSError) as exc:
                self._stop()
                return self._result("failed", f"Sandbox failed to start: {exc}")
            self._pump()
            self._stop()
            self._drain()
        finally:
            self._stop()
            self.sink.close()
            close_fds(*self.fds)
            self.fds.clear()
        return self._conclude()

    # -- start -------------------------------------------------------------

    def _payload(self) -> bytes:
        return attempt_payload(self.inv, self.limits, mode=self.launcher.mode, deadline_ms=self.deadline_ms)

    def _own(self, *fds: int) -> None:
        self.fds.extend(fds)

    def _launch(self) -> None:
        code_dir = Path(self.inv.code_dir)
        if not code_dir.is_dir():
            raise SandboxStartError(f"code directory {code_dir} does not exist")
        payload_r, payload_w = pipe()
        result_r, result_w = pipe()
        out_r, out_w = pipe(big=True)
        err_r, err_w = pipe(big=True)
        self._own(payload_w, result_r, out_r, err_r)
        self.streams = {out_r: "stdout", err_r: "stderr", result_r: "result"}
        try:
            self.exit_fd = self.launcher.start(ChildPipes(payload_r, result_w, out_w, err_w, err_r),
                                               wait_started=lambda: self._wait_started(result_r))
        finally:
            close_fds(payload_r, result_w, out_w, err_w)
        payload = self._payload()

        def done() -> None:
            close_fds(payload_w)
            if payload_w in self.fds:
                self.fds.remove(payload_w)

        # What fits in the pipe now is written now (nearly every payload: the event and the
        # context); only a larger one gets a thread for the rest, since the command reads it
        # while we start pumping its output. A thread's start was a scheduling wait on the
        # path of every warm run.
        view = memoryview(payload)
        try:
            os.set_blocking(payload_w, False)
            while view:
                view = view[os.write(payload_w, view):]
        except BlockingIOError:
            pass
        except OSError:
            view = view[:0]  # the sandbox died first; the result says why
        if not view:
            done()
            return

        def write_rest() -> None:
            nonlocal view
            try:
                os.set_blocking(payload_w, True)
                while view:
                    view = view[os.write(payload_w, view):]
            except OSError:
                pass  # the sandbox died first; the result says why
            finally:
                done()

        threading.Thread(target=write_rest, name="sandbox-payload", daemon=True).start()

    def _wait_started(self, result_r: int) -> bool:
        """Read the result pipe until bootstrap says "started"; False if it closed first."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.started_ok:
            if not wait_readable(result_r, deadline - time.monotonic()):
                raise SandboxStartError("the sandbox did not start in time")
            data = os.read(result_r, 1 << 16)
            if not data:
                return False
            self._feed_result(data)
        return True

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
                self.started_at = time.monotonic()
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
        sel.register(self.exit_fd, selectors.EVENT_READ, "exit")
        exited_at = None
        try:
            while True:
                now = time.monotonic()
                if now >= self.deadline:
                    self.timed_out = True
                    return
                if exited_at is not None and (not open_fds or now - exited_at > DRAIN_GRACE_S):
                    return
                if (exited_at is None and not open_fds and self.launcher.ends_with_result
                        and self.result_complete()):
                    # A warm run's process closes its pipes after its result (bootstrap's
                    # finish): the run is over now. Its exit and what it may have left behind
                    # are the environment's to check, off the run's path (runtime/warm.py).
                    self.ended_with_result = True
                    return
                for key, _ in sel.select(min(self.deadline - now, 0.25)):
                    name = key.data
                    if name == "exit":
                        sel.unregister(key.fd)
                        exited_at = time.monotonic()
                        # The command is gone: end whatever it left behind
                        # now, so that the pipes they hold reach EOF.
                        self.launcher.kill()
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
            while time.monotonic() < end and wait_readable(fd, 0):
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

    def _sample_memory(self) -> None:
        now = time.monotonic()
        if now < self.next_sample or self.launcher.measures_memory:
            return
        self.next_sample = now + 0.5
        pid = self.launcher.main_pid()
        if pid is None:
            return
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.sampled_peak_kb = max(self.sampled_peak_kb, int(line.split()[1]))
        except (OSError, ValueError, IndexError):
            pass

    # -- stop --------------------------------------------------------------

    def _stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self._sample_memory()
        if self.timed_out:
            problem = "timed out"
        elif self.output_exceeded:
            problem = "output cap"
        elif self.result_broken or not self.result_complete():
            problem = "no result"
        else:
            problem = None
        self.stopped_with = self.launcher.stop(Ending(started=self.started_ok, timed_out=self.timed_out,
                                                      problem=problem, ended_with_result=self.ended_with_result))

    # -- result ------------------------------------------------------------

    def _peak_mb(self) -> float | None:
        # Measured outside the sandbox only: the cgroup's peak, or VmHWM sampled from the
        # host's /proc. Never what came over the result channel, which the Function can write.
        candidates = [self.sampled_peak_kb * 1024]
        if self.stopped_with.peak_memory_bytes:
            candidates.append(self.stopped_with.peak_memory_bytes)
        peak = max(candidates)
        return round(peak / MB, 1) if peak else None

    def _result(self, outcome: str, reason: str, *, return_value: str | None = None,
                error: dict | None = None) -> AttemptResult:
        return AttemptResult(
            outcome=outcome, reason=reason, return_value=return_value, error=error,
            exit_code=self.launcher.exit_code(),
            duration_ms=int((time.monotonic() - self.t0) * 1000) if hasattr(self, "t0") else 0,
            peak_memory_mb=self._peak_mb(),
            warm_start=self.launcher.warm,
            startup_ms=int((self.started_at - self.t0) * 1000) if getattr(self, "started_at", None) else None,
            tmp_full=self._tmp_full(),
        )

    def _tmp_full(self) -> bool:
        # Bootstrap's own statvfs of /tmp as the Function ended, or the warm zygote's after it.
        # Only ever a note on the run's page (a Function that forges it misleads nobody but
        # itself); never a limit or a measured fact.
        free = (self.result_header or {}).get("tmp_free_bytes")
        stopped = getattr(self, "stopped_with", None)
        return (isinstance(free, int) and free < TMP_FULL_BYTES) or bool(stopped and stopped.tmp_full)

    def _conclude(self) -> AttemptResult:
        limits = self.limits
        oom = f"Out of memory (limit {limits.memory_mb} MB)"
        header = self.result_header if self.result_complete() else None
        if self.output_exceeded:
            return self._result("failed", f"Output limit of {format_bytes(limits.max_output_bytes)} exceeded")
        if self.timed_out:
            # Whatever the Function wrote before, or made its parent do: the deadline is the platform's.
            return self._result("timed_out", f"Timed out after {limits.timeout_s:g} s")
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
                    # The whole message: its cause is often on the second line (botocore's
                    # "Parameter validation failed:"). The run record caps it.
                    text = message.strip()
                    reason = f"Handler raised {kind}: {text}" if text else f"Handler raised {kind}"
                return self._result("failed", reason, error=error)
            if status == "unserializable":
                return self._result("failed", f"Return value is not JSON serialisable: {header.get('message')}")
            if status == "too_large":
                return self._result("failed", f"Return value too large: {header.get('size')} bytes "
                                              f"(limit {limits.max_return_bytes} bytes)")
        if self.result_broken:
            return self._result("failed", f"Invalid result from the sandbox: {self.result_broken}")
        if not self.started_ok:
            text = [line.message for line in self.prestart if line.message.strip()]
            detail = text[-1] if text else f"exit code {self.launcher.exit_code()}"
            return self._result("failed", f"Sandbox failed to start: {detail}")
        if self.stopped_with.oom_killed:
            return self._result("failed", oom)
        code = self.launcher.exit_code()
        if code is not None and code > 128:
            try:
                name = signal.Signals(code - 128).name
            except ValueError:
                name = f"signal {code - 128}"
            return self._result("failed", f"Killed by signal {name}")
        if code == 0:
            return self._result("failed", "Process exited with code 0 before the handler returned")
        if code is None and self.launcher.warm:
            return self._result("failed", "The execution environment ended during the run")
        return self._result("failed", f"Process exited with code {code}")
