"""The contract between the worker and the sandbox: what an attempt is given and what it gives back.

Pure Python, no Django, nothing of the run machinery: functions/bundles/handler.py
checks a handler name at upload with the very pattern the sandbox enforces
at run time, and the worker's services build Invocations and read
AttemptResults without knowing how the sandbox runs them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

# "path/to/module.function" (CONTRACT.md), defined here once; handler_problem adds what a pattern cannot say.
HANDLER_PATTERN = re.compile(r"^[A-Za-z0-9_./-]+\.[A-Za-z_][A-Za-z0-9_]*$")

# Paths inside the sandbox the Function is told about (SamsaraFunctionCodePath, ...).
CODE_PATH = "/var/task"
TEMP_PATH = "/tmp"
RUNTIME_PATH = "/opt/runtime"


# /tmp counts as full with less than this free (tmpfs hands out whole pages).
TMP_FULL_BYTES = 64 * 1024


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
    tmp_mb: int = 512                            # /tmp's size (a tmpfs of its own; bwrap mode)
    cpus: float | None = None                    # CPU quota of the attempt's cgroup (1.0 = one vCPU)
    cpu_group: str | None = None                 # the attempt cgroup's parent: its organization, equal weights


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
    startup_ms: int | None = None   # from the attempt's start to the bootstrap's "started"; None if it never said so
    tmp_full: bool = False      # /tmp had no room left when the Function ended (a write past it failed)


class SandboxStartError(Exception):
    """The sandbox could not be set up; the Function never ran."""


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

