"""The worker's side of a run: claim it, execute one attempt in the sandbox, record the outcome.

Every step is safe to repeat: a claim is a conditional update (a redelivered
message finds the run already taken), and recording an attempt checks that
the attempt is still the run's current one (a worker presumed lost that comes
back late cannot overwrite what happened since).
"""

import contextlib
import dataclasses
import gc
import hashlib
import logging
import operator
import os
import queue
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ContextManager
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from functions.bundles.archive import extract_bundle
from functions.models import REASON_MAX_LENGTH, Attempt, AttemptOutcome, CodeVersion, Function, Run, RunStatus, StartKind
from logs.models import Stream
from logs.services import AttemptLog, log_volume_admit
from monitor.services import failure_notice_note
from secrets_vault.redaction import Redactor
from secrets_vault.services import secrets_redactor

from . import dispatch, priority, sandbox, warm
from config.rows import rows_update
from .capacity import disk_shortage
from .netblock import networks_to_block
from .aws.endpoint import attempt_endpoint

logger = logging.getLogger(__name__)

WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"
HEARTBEAT_EVERY_SECONDS = 5
# A worker short of disk sends a run back after this many seconds (runtime/capacity.py).
OUT_OF_DISK_RETRY_SECONDS = 30
# Lines per write (one transaction): at a flood's rate a batch this size fills in a few
# hundredths of a second, and each transaction costs its own statements and commit. As large as
# logs.services.LOG_STAGING_THRESHOLD, so a flood's first batch is its entries and each later
# one a block. Measured on PostgreSQL (bench/ingest.py, two alternated pairs): a million lines
# recorded at 1.74x and 1.76x of the bare script against 1.91x and 1.90x at 10,000 (the
# statements of each batch, in the worker and the database, on cores the Function shares);
# on SQLite no difference.
LOG_BATCH_SIZE = 20_000
# How long output lines may wait to be written with the next ones (how late a line can
# appear on the run's live page): short runs then write their output once.
LOG_FLUSH_SECONDS = 0.1
# About 130 MB of queued lines at most per attempt (a million short ones).
MAX_BACKLOG_LINES = 1_000_000
_MESSAGE = operator.itemgetter(2)


class PlatformError(Exception):
    """The platform, not the Function, could not run the attempt. Not retried."""


# What the worker's services hand back to runtime.tasks, the one module that talks to the
# broker: these services only say which runs must be sent again, and tasks send them.


@dataclasses.dataclass(frozen=True)
class Resend:
    """A run whose id must go to a worker again, after countdown seconds (None: at once)."""

    run_id: int
    countdown: int | None = None


@dataclasses.dataclass(frozen=True)
class Recorded:
    """An attempt recorded: the run as it now stands, the retry to send if one was queued, and whether
    the attempt staged output for the log indexer (logs.services.log_blocks_index) to expand."""

    run: Run
    resend: tuple[Resend, ...] = ()
    logs_staged: bool = False


@dataclasses.dataclass(frozen=True)
class Reaped:
    """The reaper's pass: how many lost attempts it closed, and the runs to send again."""

    lost: int
    resend: tuple[Resend, ...] = ()


# --- claiming -----------------------------------------------------------------------


def run_claim(*, run_id: int) -> tuple[Run, Attempt] | tuple[None, None]:
    """Take this queued run (if its organization has room) and open its next attempt; None when another
    worker has it or it is done. Workers take the fairest run instead (run_execute)."""
    return dispatch.run_claim(run_id=run_id, worker=WORKER_NAME, isolation=isolation_summary())


def isolation_summary() -> str:
    """What this worker's sandbox gives a run, for the run page: never claim more than is true.

    At most Attempt.isolation's 200 characters: a long list of allowed networks is cut short.
    """
    if settings.FUNCTIONS_SANDBOX == "process":
        return "none: FUNCTIONS_SANDBOX=process (rlimits only)"
    # A root worker runs each sandbox as an unprivileged host uid of its own (runtime/sandbox/bwrap.py).
    user = "; host user: unprivileged, one per sandbox" if os.geteuid() == 0 else ""
    if sandbox.network_mode() == "slirp4netns":
        network = "bubblewrap; network: outbound; loopback, private, link-local and host addresses blocked"
        allowed = settings.FUNCTIONS_ALLOWED_NETWORKS
        if allowed:
            room = 200 - len(network) - len(user) - len(" except ") - len(" and 999 more")
            shown, rest = [], list(allowed)
            while rest and len(", ".join([*shown, rest[0]])) <= room:
                shown.append(rest.pop(0))
            network += " except " + ", ".join(shown) + (f" and {len(rest)} more" if rest else "")
        return network + user
    return "bubblewrap; network: none (slirp4netns is not installed on this worker)" + user


def _recent(kept: dict, key: tuple, seconds: float, work_out: Callable[[], Any]) -> Any:
    """work_out()'s answer for key, as found at most `seconds` ago. One entry per store: the key
    holds the settings the answer depends on, which change only in tests."""
    now = time.monotonic()
    found = kept.get(key)
    if found is None or found[0] < now:
        kept.clear()
        found = kept[key] = (now + seconds, work_out())
    return found[1]


# The host's addresses can change (a new interface, DHCP): the list is recomputed this often.
BLOCKED_NETWORKS_SECONDS = 30
_blocked: dict[tuple, tuple[float, tuple[str, ...]]] = {}


def blocked_networks() -> tuple[str, ...]:
    """What a run may not reach (runtime/netblock.py), less FUNCTIONS_ALLOWED_NETWORKS.

    Kept for BLOCKED_NETWORKS_SECONDS: working it out (the host's addresses, the allowed holes)
    took 0.3 ms of every warm run's worker CPU.
    """
    allowed = tuple(settings.FUNCTIONS_ALLOWED_NETWORKS)
    return _recent(_blocked, allowed, BLOCKED_NETWORKS_SECONDS, lambda: networks_to_block(allowed))


# A disk does not fill up between two runs a few milliseconds apart: the answer of a disk check
# holds this long. Looking (two statvfs calls and the paths' checks) cost 0.13 ms of every run.
DISK_CHECK_SECONDS = 1.0
_disk_checked: dict[tuple, tuple[float, dict | None]] = {}


def disk_shortage_recent() -> dict | None:
    """runtime.capacity.disk_shortage(), as found at most DISK_CHECK_SECONDS ago with the same settings."""
    key = (settings.FUNCTIONS_MIN_FREE_DISK_MB, str(settings.FUNCTIONS_CACHE_DIR), str(settings.DATA_DIR))
    return _recent(_disk_checked, key, DISK_CHECK_SECONDS, disk_shortage)


# --- preparing the attempt -----------------------------------------------------------


def bundle_directory(version: CodeVersion) -> Path:
    """The unpacked code of a version in this worker's cache, fetched through the storage API.

    Keyed by the package's hash, so versions never mix and a second run of
    the same version unpacks nothing. The hash is checked on the way in.
    """
    root = Path(settings.FUNCTIONS_CACHE_DIR) / "bundles"
    destination = root / version.sha256
    if destination.is_dir():
        return destination
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f".{version.sha256}.{os.getpid()}.{threading.get_ident()}.zip"
    try:
        digest = hashlib.sha256()
        with default_storage.open(version.storage_key, "rb") as source, open(partial, "wb") as target:
            for chunk in iter(lambda: source.read(1024 * 1024), b""):
                digest.update(chunk)
                target.write(chunk)
        if digest.hexdigest() != version.sha256:
            raise PlatformError(
                f"The stored code package of version {version.number} does not match its hash: "
                "storage may be corrupt. Upload the package again."
            )
        with open(partial, "rb") as package:
            extract_bundle(package, destination)
    except FileNotFoundError:
        raise PlatformError(f"The code package of version {version.number} is missing from storage.") from None
    finally:
        partial.unlink(missing_ok=True)
    return destination


def attempt_environment(run: Run) -> dict[str, str]:
    """The contract's environment variables (CONTRACT.md, "Environment") except the paths the sandbox sets."""
    function = run.function
    organization = function.organization
    return {
        "SamsaraFunctionName": function.name,
        "SamsaraFunctionOrgId": str(organization.id),
        "SamsaraFunctionExecRoleArn": f"arn:aws:iam::{organization.id:012d}:role/samsara-functions/{function.name}",
        "SamsaraFunctionSecretsPath": f"/samsara/functions/{organization.id}/{function.name}/secrets",
        "SamsaraFunctionStorageName": f"samsara-functions-storage-{organization.id}",
        "AWS_DEFAULT_REGION": organization.aws_region,
        "AWS_REGION": organization.aws_region,
        # Non-empty: the official SDK treats an empty value as "running locally".
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(run.memory_mb),
    }


def redactor_for(function: Function) -> Callable[[str], str]:
    """Masks the Function's secret values in its output, return value and error text."""
    return secrets_redactor(function=function).redact


# --- output ----------------------------------------------------------------------------


class _Call:
    """Work another thread hands to the attempt's database thread, with its answer."""

    def __init__(self, function: Callable[[], Any]):
        self.function, self.done = function, threading.Event()
        self.result = self.error = None

    def run(self) -> None:
        try:
            self.result = self.function()
        except BaseException as error:  # handed back to the caller's thread
            self.error = error
        finally:
            self.done.set()


class AttemptChannel:
    """The one thread of an attempt that talks to the database, and the queue that feeds it.

    The sandbox delivers output from its own thread, and the in-run endpoint
    serves the Function from others; they only enqueue here. This thread
    writes the log entries in batches, runs their database calls, and keeps
    the attempt's heartbeat, so a slow database never stalls the Function's
    pipes and all of an attempt's queries share the worker's one connection.
    """

    def __init__(
        self, run: Run, attempt: Attempt, redact: Callable[[str], str], *, keep_last_batch: bool = False,
        on_blocks_staged: Callable[[], None] | None = None,
    ):
        self.run, self.attempt = run, attempt
        # keep_last_batch: the batch that ends with close() (the REPORT line, and any output
        # that came with it) is not written here but kept for write_last_batch(), which
        # run_record_attempt calls in the transaction that records the outcome: the batch's
        # daily-volume count, its rows and the outcome are one commit instead of two.
        self.keep_last_batch = keep_last_batch
        # Entries, or past a flood's first lines, blocks for the log indexer (logs.services.AttemptLog).
        self.log = AttemptLog(run=run, attempt=attempt.number)
        # Called when a block is committed and the log indexer is due (AttemptLog.write says when), so a
        # Function printing for long has its lines indexed as it goes (runtime.tasks sends it: this
        # module never talks to the broker).
        self.on_blocks_staged = on_blocks_staged
        self._last_pending: list = []
        # The Redactor behind `redact` (redactor_for hands its bound method), which can clear
        # a whole batch of lines with one search and learn values the endpoint hands out later
        # (mask_also); None for any other callable, which is then applied line by line.
        redactor = getattr(redact, "__self__", None)
        self._redactor = redactor if isinstance(redactor, Redactor) else None
        self._redact_other = redact
        # REPORT lines queued (add_report_line): only a batch that may hold one is searched for it.
        self._reports_queued = 0
        self.queue = queue.SimpleQueue()
        # Lines queued and not yet written. The sandbox's delivery waits while
        # there are too many, so a flood over a slow database holds a bounded
        # amount of memory here; the sandbox then keeps up to its own bound
        # and drops beyond it with a marker line, never slowing the Function.
        self.backlog = 0
        self.backlog_room = threading.Condition()
        # Lines dropped over the organization's daily log volume (the REPORT line says how many).
        self.dropped_lines = 0

    def __call__(self, lines: list[sandbox.OutputLine]) -> None:
        """The sandbox's on_output: redact, and queue for writing.

        An OutputLine is already the (timestamp, stream, message) row
        log_entries_write takes. This runs on the thread the sandbox hands
        output to, and must keep up with a Function printing as fast as it
        can (bench/ingest.py): a batch in which the Redactor finds nothing
        (no secrets, or none printed: the usual case) is queued as it came,
        without a Python step per line; otherwise each line is redacted on
        its own, exactly as before.
        """
        redactor = self._redactor  # read once: mask_also may swap it meanwhile
        if redactor is not None and redactor.leaves_unchanged("\n".join(map(_MESSAGE, lines))):
            rows = lines
        else:
            redact = redactor.redact if redactor is not None else self._redact_other
            rows = [(timestamp, stream, redact(message)) for timestamp, stream, message in lines]
        with self.backlog_room:
            self.backlog_room.wait_for(lambda: self.backlog < MAX_BACKLOG_LINES)
            self.backlog += len(rows)
        self.queue.put(rows)

    def redact(self, text: str) -> str:
        """Mask every secret value the attempt knows of: those read at the claim, and any the
        endpoint has handed the Function since (mask_also)."""
        redactor = self._redactor
        return redactor.redact(text) if redactor is not None else self._redact_other(text)

    def mask_also(self, values: Iterable[str]) -> None:
        """Secret values the endpoint is about to hand the Function: masked from now on too.

        The claim read the secrets once; one changed in the dashboard since then would reach the
        Function unmasked. Called before the value is answered, so any line printing it comes after.
        """
        if self._redactor is not None:
            self._redactor = self._redactor.with_values(values)

    def call(self, function: Callable[[], Any], timeout: float = 60) -> Any:
        """Run function() on the database thread and return its result (or raise its error)."""
        work = _Call(function)
        self.queue.put(work)
        if not work.done.wait(timeout):
            raise TimeoutError("the worker's database thread did not answer in time")
        if work.error is not None:
            raise work.error
        return work.result

    def _entry(self, timestamp: datetime, stream: str, message: str) -> tuple[datetime, str, str]:
        return (timestamp, stream, message)

    def add_platform_line(self, message: str, *, stream: str = Stream.PLATFORM) -> None:
        # Platform lines quote the Function (its error in the REPORT line): redacted too.
        # Never waits for room: the database thread itself adds some.
        with self.backlog_room:
            self.backlog += 1
        self.queue.put([self._entry(timezone.now(), stream, self.redact(message))])

    def add_report_line(self, render: Callable[[int], str]) -> None:
        """The attempt's last line, rendered on the database thread once every line before it
        has been counted: ``render(dropped_lines)`` (the REPORT line says how many were dropped)."""
        with self.backlog_room:
            self.backlog += 1
            self._reports_queued += 1
        self.queue.put([(timezone.now(), Stream.PLATFORM, render)])

    def close(self) -> None:
        """No more output: let serve_until_closed return once it has written everything."""
        self.queue.put(None)

    def write_last_batch(self) -> None:
        """Store the kept last batch (keep_last_batch), admitted and rendered as _write would store it:
        to call once, in the caller's transaction, after serve_until_closed has returned."""
        pending, self._last_pending = self._last_pending, []
        if pending:
            self.log.write(self._admitted(pending), joined=True)

    def _write(self, rows: list) -> None:
        if self.log.write(self._admitted(rows)) and self.on_blocks_staged is not None:
            self.on_blocks_staged()

    def _admitted(self, rows: list) -> list:
        """What of `rows` to store: what the organization's daily log volume still admits, the
        first drop marked once, the REPORT line rendered."""
        # The REPORT line (add_report_line) is the attempt's last: rendered after the rest is
        # counted, and always stored, since it is the platform's record of the attempt.
        reports = [row for row in rows if callable(row[2])] if self._reports_queued else []
        if reports:
            rows = [row for row in rows if not callable(row[2])]
        admitted, dropped = log_volume_admit(organization_id=self.run.function.organization_id, rows=rows)
        if dropped:
            if not self.dropped_lines:
                admitted.append(self._entry(timezone.now(), Stream.PLATFORM, (
                    f"Output dropped from here: the organization's daily log volume of "
                    f"{settings.LOGS_DAILY_VOLUME_MB} MB is used up until midnight UTC. "
                    "Dropped lines are counted (see the REPORT line)."
                )))
            self.dropped_lines += dropped
        for timestamp, stream, render in reports:
            admitted.append(self._entry(timestamp, stream, self.redact(render(self.dropped_lines))))
        return admitted

    # While any attempt's output is being served in this process: the cyclic garbage collector's
    # first generation waits for this many new container objects instead of Python's 700.
    # Each output line is a tuple that lives until its batch is written, so a flood of output
    # keeps hundreds of thousands of them alive, and a collection every 700 lines walked them
    # again and again: measured, it quadrupled the cost of reading the Function's pipes
    # (bench/ingest.py, a million lines: 1.6 s of the reading thread's CPU instead of 0.3 s).
    # Reference counting still frees every line as soon as it is written; only cycles wait.
    GC_FIRST_GENERATION = 50_000
    _gc_lock = threading.Lock()
    _gc_serving = 0
    _gc_saved: tuple[int, ...] | None = None

    @classmethod
    @contextlib.contextmanager
    def _fewer_collections(cls) -> Iterator[None]:
        with cls._gc_lock:
            if not cls._gc_serving:
                cls._gc_saved = gc.get_threshold()
                gc.set_threshold(max(cls._gc_saved[0], cls.GC_FIRST_GENERATION), *cls._gc_saved[1:])
            cls._gc_serving += 1
        try:
            yield
        finally:
            with cls._gc_lock:
                cls._gc_serving -= 1
                if not cls._gc_serving:
                    gc.set_threshold(*cls._gc_saved)

    def serve_until_closed(self) -> None:
        """Write batches and run calls as they come, and keep the heartbeat, until close()."""
        with self._fewer_collections():
            self._serve()

    def _serve(self) -> None:
        last_beat = time.monotonic()
        done = False
        while not done:
            pending, calls = [], []
            try:
                item = self.queue.get(timeout=HEARTBEAT_EVERY_SECONDS)
            except queue.Empty:
                item = []
            # Lines wait up to LOG_FLUSH_SECONDS for more: a short run's output and its REPORT
            # line are then one write (one transaction) instead of one per burst of output.
            flush_at = time.monotonic() + LOG_FLUSH_SECONDS
            while True:
                if item is None:
                    done = True
                    break
                if isinstance(item, _Call):
                    calls.append(item)
                else:
                    pending.extend(item)
                if len(pending) >= LOG_BATCH_SIZE or calls:
                    break
                try:
                    wait = flush_at - time.monotonic() if pending else 0
                    item = self.queue.get(timeout=wait) if wait > 0 else self.queue.get_nowait()
                except queue.Empty:
                    break
            if pending:
                if done and self.keep_last_batch:
                    self._last_pending = pending
                else:
                    self._write(pending)
                with self.backlog_room:
                    self.backlog -= len(pending)
                    self.backlog_room.notify_all()
            for work in calls:
                work.run()
            if time.monotonic() - last_beat >= HEARTBEAT_EVERY_SECONDS:
                Attempt.objects.filter(pk=self.attempt.pk).update(heartbeat_at=timezone.now())
                last_beat = time.monotonic()


# --- executing ---------------------------------------------------------------------------


def _sandbox_limits(run: Run) -> sandbox.Limits:
    """The attempt's limits: the run's time, memory and /tmp; about one vCPU in its organization's CPU group."""
    return sandbox.Limits(
        timeout_s=float(run.timeout_seconds), memory_mb=run.memory_mb,
        max_output_bytes=settings.FUNCTIONS_MAX_OUTPUT_MB * 1024 * 1024,
        tmp_mb=run.tmp_mb,
        # No single file larger than /tmp itself: a write fails with ENOSPC, not SIGXFSZ.
        max_file_size_mb=run.tmp_mb + 1 if settings.FUNCTIONS_SANDBOX == "bwrap" else 512,
        cpus=settings.FUNCTIONS_RUN_CPU_PERCENT / 100,
        cpu_group=str(run.function.organization_id),
    )


def _execute_attempt(run: Run, attempt: Attempt, channel: AttemptChannel) -> sandbox.AttemptResult:
    mode = settings.FUNCTIONS_SANDBOX
    if mode == "bwrap":
        available, why = sandbox.sandbox_available()
        if not available:
            raise PlatformError(
                f"The sandbox cannot start on worker {WORKER_NAME}: {why}. Install bubblewrap, or set "
                "FUNCTIONS_SANDBOX=process to run without isolation (unsafe)."
            )
    # Made by the sandbox only when the attempt runs cold (sandbox.prepare_temp_dir): a warm
    # environment has its own, and creating and removing one per run cost journal writes.
    temp_dir = Path(settings.FUNCTIONS_CACHE_DIR) / "tmp" / f"{run.correlation_id}-{attempt.number}"
    invocation = _invocation(run, temp_dir)
    env, limits, runtime_python = invocation.env, _sandbox_limits(run), _runtime_python()
    try:
        if mode == "bwrap" and settings.FUNCTIONS_WARM_ENVIRONMENTS:
            return _execute_warm(run, channel, invocation, env, limits, runtime_python)
        # The attempt's own AWS endpoint (secrets and storage), open exactly as long as the sandbox runs.
        with attempt_endpoint(run=run, channel=channel, env=env, timeout_s=limits.timeout_s) as aws:
            return sandbox.execute(
                dataclasses.replace(invocation, aws=aws), limits, channel, mode=mode, runtime_python=runtime_python,
                blocked_networks=blocked_networks(),
            )
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def _runtime_python() -> Path:
    return Path(settings.FUNCTIONS_RUNTIME_ENV) / "bin" / "python"


def _invocation(run: Run, temp_dir: Path) -> sandbox.Invocation:
    return sandbox.Invocation(
        code_dir=bundle_directory(run.code_version),
        handler=run.function.handler,
        event=run.event,
        function_name=run.function.name,
        request_id=str(run.correlation_id),
        env=attempt_environment(run),
        temp_dir=temp_dir,
    )


def _warm_pool() -> warm.WarmPool:
    return warm.pool(
        size=settings.FUNCTIONS_WARM_POOL_SIZE,
        idle_seconds=settings.FUNCTIONS_WARM_IDLE_SECONDS,
        temp_root=Path(settings.FUNCTIONS_CACHE_DIR) / "tmp",
        spare_warm_up=settings.FUNCTIONS_WARM_SPARE_WARM_UP,
    )


def _warm_owner(run: Run) -> tuple:
    return (run.function.organization_id, run.function_id, run.code_version.sha256)


def _execute_warm(
    run: Run, channel: AttemptChannel, invocation: sandbox.Invocation, env: dict[str, str], limits: sandbox.Limits,
    runtime_python: Path,
) -> sandbox.AttemptResult:
    """The attempt in the warm execution environment of its organization, Function and code version."""
    pool = _warm_pool()

    def open_aws(directory: Path | None) -> ContextManager[sandbox.AwsAccess]:
        return attempt_endpoint(run=run, channel=channel, env=env, timeout_s=limits.timeout_s, directory=directory)

    created = pool.created
    result = pool.execute(
        invocation, limits, channel, owner=_warm_owner(run), runtime_python=runtime_python, open_aws=open_aws,
        blocked_networks=blocked_networks(),
    )
    if pool.created != created:
        # The environment was started for this attempt: it paid the imports, a cold start.
        result = dataclasses.replace(result, warm_start=False)
    return result


def warm_environments_prestart(*, now: datetime | None = None) -> int:
    """Start, in the background, the warm environments the next runs of recently run Functions will use.

    A worker that just started, or a Function just deployed, would otherwise make its
    next run pay a cold start the user did not cause. Picks the Functions run in the last
    FUNCTIONS_WARM_PRESTART_RECENT_SECONDS, most recent first, at their deployed version,
    and asks this process's pool for their environments: only into free places, never for
    a key it already has, never delaying a run (the pool starts them on a thread of their
    own). A Run object built here, never saved, gives exactly the key a real run gets.
    Returns how many started.
    """
    if settings.FUNCTIONS_SANDBOX != "bwrap" or not settings.FUNCTIONS_WARM_ENVIRONMENTS:
        return 0
    if not settings.FUNCTIONS_WARM_PRESTART_RECENT_SECONDS or not sandbox.sandbox_available()[0]:
        return 0
    now = now or timezone.now()
    pool = _warm_pool()
    since = now - timedelta(seconds=settings.FUNCTIONS_WARM_PRESTART_RECENT_SECONDS)
    # The newest runs by primary key (its index; created_at has none of its own), at most 1,000 rows.
    recent = Run.objects.order_by("-pk").values_list("function_id", "timeout_seconds", "memory_mb", "created_at")
    chosen: dict[int, tuple[int, int]] = {}
    for function_id, timeout_seconds, memory_mb, created_at in recent[:1000]:
        if created_at < since:
            break
        chosen.setdefault(function_id, (timeout_seconds, memory_mb))
        if len(chosen) >= pool.size:
            break
    functions = Function.objects.filter(pk__in=chosen, deployed_version__isnull=False).select_related(
        "organization", "deployed_version")
    started = 0
    for function in functions:
        timeout_seconds, memory_mb = chosen[function.pk]
        run = Run(function=function, code_version=function.deployed_version, timeout_seconds=timeout_seconds,
                  memory_mb=memory_mb, event={})
        try:
            invocation = _invocation(run, Path(settings.FUNCTIONS_CACHE_DIR) / "tmp")
        except PlatformError as error:
            logger.warning("not pre-starting %s: %s", function.name, error)
            continue
        # The same key a run would look up: the same blocked networks included.
        started += pool.prestart(invocation, _sandbox_limits(run), owner=_warm_owner(run),
                                 runtime_python=_runtime_python(), with_aws=True, blocked_networks=blocked_networks())
    return started


def run_execute(*, run_id: int, on_blocks_staged: Callable[[], None] | None = None) -> Recorded | None:
    """Claim the run, execute one attempt, record it. Safe to call twice for the same message.

    The sandbox runs in a helper thread while this thread writes the output
    and heartbeats: all database work stays on the caller's connection.
    ``on_blocks_staged``: called (on this thread) when the attempt has staged a block of a flood's
    output and the log indexer is due (logs.services.AttemptLog), for the caller to send it; the
    result's logs_staged says whether any block was staged.
    """
    shortage = disk_shortage_recent()
    if shortage:
        # Not claimed: the run stays queued and goes back for any worker (this one too, once
        # space is freed), instead of failing here and then failing the database.
        logger.warning("run %s not claimed: %s", run_id, shortage["message"])
        return Recorded(run=Run.objects.get(pk=run_id), resend=(Resend(run_id=run_id, countdown=OUT_OF_DISK_RETRY_SECONDS),))
    # The message is a turn: the worker takes the fairest due run, not necessarily this one (runtime.dispatch).
    run, attempt = dispatch.run_claim_next(worker=WORKER_NAME, isolation=isolation_summary())
    if run is None:
        return None
    claimed = time.monotonic()
    # A run taken while its organization had others executing runs at a lower CPU priority, so that
    # another organization's run shares the cores with it on better terms (runtime.priority).
    with priority.run_priority(executing_alongside=run.executing_alongside,
                               step=settings.FUNCTIONS_BUSY_ORGANIZATION_NICE):
        redact = redactor_for(run.function)
        channel = AttemptChannel(run, attempt, redact, keep_last_batch=True, on_blocks_staged=on_blocks_staged)
        outcome = {}

        def execute_in_sandbox() -> None:
            try:
                outcome["result"] = _start_measured(_execute_attempt(run, attempt, channel), claimed)
            except PlatformError as error:
                outcome["result"] = _platform_failure(str(error))
                outcome["retryable"] = False
            except Exception as error:
                logger.exception("run %s: attempt %s failed on the platform side", run.correlation_id,
                                 attempt.number)
                outcome["result"] = _platform_failure(f"Platform error: {type(error).__name__}")
            finally:
                result = outcome.get("result")
                if result is not None:
                    # Queued behind the last output: written with it, in one transaction.
                    if result.error:
                        # The error the runtime reports is one entry whose lines stay in order, as
                        # Lambda logs it; only what the Function itself prints is a line per entry.
                        channel.add_platform_line(error_entry(result.error), stream=Stream.STDERR)
                    if result.tmp_full:
                        channel.add_platform_line(
                            f"/tmp reached its limit of {run.tmp_mb} MB: writes past it fail with \"No space left on "
                            f"device\" (a Function may set a larger /tmp, up to {settings.FUNCTIONS_MAX_TMP_MB} MB)"
                        )
                        if result.outcome != "succeeded":
                            result = dataclasses.replace(
                                result, reason=f"{result.reason}; /tmp full ({run.tmp_mb} MB limit)")
                    if output_flooded(result):
                        # Like a timeout of its own making, except that a second attempt would print
                        # the same flood into the shared database again: not retried.
                        result = dataclasses.replace(result, reason=f"{result.reason}; {OUTPUT_NOT_RETRIED}")
                        outcome["retryable"] = False
                    outcome["result"] = result
                    report_result = result
                    channel.add_report_line(
                        lambda dropped: report_line(run, attempt, report_result, dropped_lines=dropped)
                    )
                channel.close()

        executor = threading.Thread(target=execute_in_sandbox, name=f"run-{run.correlation_id}", daemon=True)
        executor.start()
        channel.serve_until_closed()
        executor.join()
        result = outcome["result"]
        recorded = run_record_attempt(
            run=run, attempt=attempt, result=result, redact=channel.redact, retryable=outcome.get("retryable", True),
            write_last_batch=channel.write_last_batch,
        )
    return dataclasses.replace(
        recorded, resend=recorded.resend + _wake_up(run.organization_id), logs_staged=bool(channel.log.staged),
    )


def _wake_up(organization_id: int) -> tuple[Resend, ...]:
    """A place among the organization's executing runs is free: the run a limit kept waiting, if any."""
    waiting = dispatch.run_wake_up(organization_id=organization_id)
    return (Resend(run_id=waiting),) if waiting is not None else ()


OUTPUT_NOT_RETRIED = "not retried: the Function's own output stopped it"


def output_flooded(result: sandbox.AttemptResult) -> bool:
    """Whether the attempt was stopped for passing the output limit (runtime/sandbox's reason)."""
    return result.outcome == "failed" and (result.reason or "").startswith("Output limit of ")


def _start_measured(result: sandbox.AttemptResult, claimed: float) -> sandbox.AttemptResult:
    """The result with startup_ms counted from the claim: fetching the code and opening the
    environment (or forking from a warm one) up to the handler's process saying "started"."""
    if result.startup_ms is None:
        return result
    before_sandbox_ms = max(0, int((time.monotonic() - claimed) * 1000) - result.duration_ms)
    return dataclasses.replace(result, startup_ms=before_sandbox_ms + result.startup_ms)


def _platform_failure(reason: str) -> sandbox.AttemptResult:
    return sandbox.AttemptResult(
        outcome="failed", reason=reason, return_value=None, error=None, exit_code=None, duration_ms=0, peak_memory_mb=None
    )


def report_line(run: Run, attempt: Attempt, result: sandbox.AttemptResult, *, dropped_lines: int = 0) -> str:
    """Lambda's REPORT line, with the attempt, the outcome (one line: the reason's first) and any lines
    dropped over the daily log volume."""
    memory = f"{result.peak_memory_mb:.0f} MB" if result.peak_memory_mb is not None else "unknown"
    reason = (result.reason or "").strip().partition("\n")[0]
    return (
        f"REPORT RequestId: {run.correlation_id} Attempt: {attempt.number}/{run.max_attempts} "
        f"Duration: {result.duration_ms} ms Memory Size: {run.memory_mb} MB Max Memory Used: {memory} "
        f"Outcome: {result.outcome}" + (f" Reason: {reason}" if result.outcome != "succeeded" else "")
        + (f" Dropped lines: {dropped_lines}" if dropped_lines else "")
    )


def error_entry(error: dict) -> str:
    """The attempt's error as Lambda logs it: "[ERROR] Type: message" and the traceback, one entry."""
    text = f"[ERROR] {error.get('type', 'Error')}: {error.get('message', '')}"
    traceback = (error.get("traceback") or "").rstrip("\n")
    return f"{text}\n{traceback}" if traceback else text


def _capped(reason: str) -> str:
    if len(reason) <= REASON_MAX_LENGTH:
        return reason
    return reason[: REASON_MAX_LENGTH - 1] + "…"


def _redacted_error(error: dict | None, redact: Callable[[str], str]) -> dict | None:
    if not error:
        return None
    return {key: redact(value) if isinstance(value, str) else value for key, value in error.items()}


def run_record_attempt(
    *, run: Run, attempt: Attempt, result: sandbox.AttemptResult, redact: Callable[[str], str], retryable: bool = True,
    write_last_batch: Callable[[], None] | None = None,
) -> Recorded:
    """Close the attempt; then finish the run, or queue its next attempt and say so to the caller.

    ``write_last_batch``: stores the attempt's last log lines (AttemptChannel.write_last_batch),
    counted and written in the same transaction, whatever it finds: as entries, or for a flood as
    its last block, so a run is recorded as finished once all of its output is committed.
    """
    now = timezone.now()
    outcome = {"succeeded": AttemptOutcome.SUCCEEDED, "timed_out": AttemptOutcome.TIMED_OUT}.get(
        result.outcome, AttemptOutcome.FAILED
    )
    reason = _capped(redact(result.reason or ""))
    resend: tuple[Resend, ...] = ()
    with transaction.atomic():
        if write_last_batch is not None:
            write_last_batch()
        # Both statements written once, not compiled per run (config.rows says why).
        closed = rows_update(Attempt, where={"id": attempt.pk, "outcome": AttemptOutcome.RUNNING}, changes=dict(
            outcome=outcome, reason=reason, exit_code=result.exit_code, peak_memory_mb=result.peak_memory_mb,
            finished_at=now, duration_ms=result.duration_ms,
            # Only an attempt whose sandbox started has a start kind (a platform failure has neither).
            start_kind=(StartKind.WARM if result.warm_start else StartKind.COLD) if result.startup_ms is not None else "",
            startup_ms=result.startup_ms,
        ))
        if not closed:
            # The reaper already declared this attempt lost and moved the run on.
            logger.warning("run %s: attempt %s finished after it was declared lost", run.correlation_id, attempt.number)
            return Recorded(run=Run.objects.get(pk=run.pk))
        current = {"id": run.pk, "status": RunStatus.RUNNING, "attempts": attempt.number}
        common = dict(
            reason=reason,
            error=_redacted_error(result.error, redact),
            peak_memory_mb=result.peak_memory_mb,
            duration_ms=result.duration_ms,
        )
        if outcome == AttemptOutcome.SUCCEEDED:
            changes = dict(
                status=RunStatus.SUCCEEDED, return_value=redact(result.return_value) if result.return_value else result.return_value,
                finished_at=now, **common,
            )
            updated = rows_update(Run, where=current, changes=changes)
        elif retryable and attempt.number < run.max_attempts:
            delay = settings.FUNCTIONS_RETRY_BACKOFF_SECONDS[min(attempt.number, len(settings.FUNCTIONS_RETRY_BACKOFF_SECONDS)) - 1]
            changes = dict(status=RunStatus.QUEUED, next_attempt_at=now + timedelta(seconds=delay), **common)
            updated = rows_update(Run, where=current, changes=changes)
            if updated:
                resend = (Resend(run_id=run.pk, countdown=delay),)
        else:
            final = RunStatus.TIMED_OUT if outcome == AttemptOutcome.TIMED_OUT else RunStatus.FAILED
            changes = dict(status=final, finished_at=now, **common)
            updated = rows_update(Run, where=current, changes=changes)
            if updated:
                failure_notice_note(run=run, now=now)
    if not updated:
        return Recorded(run=Run.objects.get(pk=run.pk), resend=resend)
    # The row is exactly what we wrote: no need to read it back (one round trip fewer per run).
    for field, value in changes.items():
        setattr(run, field, value)
    return Recorded(run=run, resend=resend)


# --- lost workers ---------------------------------------------------------------------------


def runs_reap_lost(*, now: datetime | None = None) -> Reaped:
    """Attempts whose worker stopped writing heartbeats: queue their runs again, or fail them as "worker lost".

    Also names runs that have waited in the queue far too long (a message
    lost with a broker restart) to be sent again; a duplicate message is
    harmless, since the claim is conditional.
    """
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.FUNCTIONS_HEARTBEAT_TIMEOUT_SECONDS)
    reaped = 0
    resend = []
    for attempt in Attempt.objects.filter(outcome=AttemptOutcome.RUNNING, heartbeat_at__lt=stale).select_related("run"):
        with transaction.atomic():
            if not Attempt.objects.filter(pk=attempt.pk, outcome=AttemptOutcome.RUNNING, heartbeat_at__lt=stale).update(
                outcome=AttemptOutcome.WORKER_LOST, reason=f"Worker lost ({attempt.worker})", finished_at=now
            ):
                continue
            run = attempt.run
            current = Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, attempts=attempt.number)
            reason = f"Worker lost during attempt {attempt.number} of {run.max_attempts}"
            if attempt.number < run.max_attempts:
                if current.update(status=RunStatus.QUEUED, next_attempt_at=now, reason=reason):
                    resend.append(Resend(run_id=run.pk))
            elif current.update(status=RunStatus.FAILED, finished_at=now, reason=reason):
                failure_notice_note(run=run, now=now)
            reaped += 1
            resend.extend(_wake_up(run.organization_id))
    forgotten = Run.objects.filter(status=RunStatus.QUEUED).filter(
        Q(next_attempt_at__lt=now - timedelta(minutes=5))
        | Q(next_attempt_at__isnull=True, created_at__lt=now - timedelta(minutes=5))
    )
    # Runs waiting behind their organization's limit are not forgotten: one of its runs ending sends
    # for them (dispatch.run_wake_up), so sending them again now would only add empty turns.
    full = dispatch.organizations_at_limit()
    if full:
        forgotten = forgotten.exclude(organization_id__in=full)
    resend.extend(Resend(run_id=run_id) for run_id in forgotten.values_list("pk", flat=True)[:500])
    return Reaped(lost=reaped, resend=tuple(resend))
