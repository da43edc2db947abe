"""Fixtures for the sandbox tests: real code in the real sandbox, no Django.

These tests need neither a database nor Django settings; they run with or
without pytest-django (``-p no:django --confcutdir tests/runtime`` skips the
project's Django conftest too).
"""

from __future__ import annotations

import os
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from runtime.environment import DEFAULT_RUNTIME_ENV, ensure_runtime_env
from runtime.sandbox import (AttemptResult, Invocation, Limits, OutputLine, execute, handler_problem,
                             sandbox_available)


@pytest.fixture(scope="session")
def runtime_python() -> Path:
    # Built once (it takes a while the first time), then only checked.
    return ensure_runtime_env(Path(os.environ.get("FUNCTIONS_RUNTIME_ENV", DEFAULT_RUNTIME_ENV)))


@pytest.fixture(scope="session")
def bwrap_ok() -> None:
    ok, why = sandbox_available()
    if not ok:
        pytest.skip(f"bwrap sandbox unavailable: {why}")


@dataclass
class Run:
    result: AttemptResult
    batches: list[list[OutputLine]]
    batch_times: list[float]        # time.monotonic() when each batch arrived
    returned_at: float              # time.monotonic() when execute returned
    code_dir: Path
    temp_dir: Path
    marker: str
    value: object = field(default=None)

    @property
    def lines(self) -> list[OutputLine]:
        return [line for batch in self.batches for line in batch]

    def messages(self, stream: str | None = None) -> list[str]:
        return [line.message for line in self.lines if stream in (None, line.stream)]


def processes_with(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if marker.encode() in handle.read():
                    found.append(int(entry))
        except OSError:
            pass
    return [pid for pid in found if pid != os.getpid()]


CONTRACT_ENV = {
    "SamsaraFunctionName": "sandbox-test",
    "SamsaraFunctionOrgId": "42",
    "SamsaraFunctionExecRoleArn": "arn:aws:iam::123456789012:role/fn-run",
    "SamsaraFunctionSecretsPath": "/functions/42/sandbox-test",
    "SamsaraFunctionStorageName": "org-42-storage",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
    "AWS_EXECUTION_ENV": "samsara-functions",
}


@pytest.fixture(scope="session")
def warm_pool(tmp_path_factory):
    """The warm execution environments of this test process (runtime/warm.py)."""
    from runtime.warm import WarmPool

    pool = WarmPool(size=4, idle_seconds=120, temp_root=tmp_path_factory.mktemp("warm"))
    yield pool
    pool.clear()


@pytest.fixture(params=["cold", "warm"])
def run_function(request, tmp_path, runtime_python, bwrap_ok, warm_pool):
    """run_function(files_or_source, handler=..., event=..., limits=..., mode=...) -> Run.

    ``files_or_source`` is the source of main.py, or {relative path: source}.
    The source may use MARKER, a unique string for finding leftover processes.
    Every test runs twice: cold (``sandbox.execute``) and in a warm execution
    environment (a child forked by the zygote of the code's own environment).
    Process mode, and runs that ``prepare`` a temp dir, are always cold.
    """
    counter = iter(range(1000))
    warm = request.param == "warm"

    def run(files, *, handler="main.handler", event=None, limits=None, mode="bwrap",
            on_output=None, prepare=None) -> Run:
        n = next(counter)
        marker = f"sbxmark-{uuid.uuid4().hex}"
        code_dir = tmp_path / f"code{n}"
        temp_dir = tmp_path / f"tmp{n}"
        if isinstance(files, str):
            files = {"main.py": files}
        for relative, source in files.items():
            path = code_dir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source).replace("MARKER", marker))
        code_dir.mkdir(exist_ok=True)
        if prepare:
            prepare(temp_dir)
        batches, times = [], []
        lock = threading.Lock()

        def collect(batch):
            with lock:
                batches.append(list(batch))
                times.append(time.monotonic())
            if on_output:
                on_output(batch)

        invocation = Invocation(
            code_dir=code_dir, handler=handler, event=event or {"SamsaraFunctionTriggerSource": "manual"},
            function_name="sandbox-test", request_id=str(uuid.uuid4()), env=dict(CONTRACT_ENV),
            temp_dir=temp_dir,
        )
        if warm and mode == "bwrap" and prepare is None:
            result = warm_pool.execute(invocation, limits or Limits(timeout_s=30), collect,
                                       owner=("test", str(code_dir)), runtime_python=runtime_python)
            # Really in the environment (no silent cold fallback), unless the handler name was
            # refused before any sandbox.
            assert result.warm_start or handler_problem(handler), result
            if result.warm_start:
                temp_dir = warm_pool.last_environment.temp_dir
        else:
            result = execute(invocation, limits or Limits(timeout_s=30), collect, mode=mode,
                             runtime_python=runtime_python)
        returned = time.monotonic()
        import json

        value = json.loads(result.return_value) if result.return_value is not None else None
        run_ = Run(result, batches, times, returned, code_dir, temp_dir, marker, value)
        run_.invocation = invocation
        return run_

    return run
