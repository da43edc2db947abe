"""Per-attempt control groups: a process cap, a memory cap, a CPU cap, peak
memory, OOM detection and a reliable "kill everything" for one sandbox.

CPU: each attempt may use about ``cpus`` CPUs (cpu.max / cfs quota; Samsara
and Lambda give 1 vCPU per 1,769 MB), and each attempt's group sits in its
organization's group (``samsara-org-<id>``), all of equal weight, so
organizations share a worker's CPU evenly however many processes or runs
one of them starts. Organization groups are left in place (one per
organization per worker machine, empty between runs).

Why: RLIMIT_NPROC is not enforced for processes whose real uid is root in the
initial user namespace, and a worker running as root maps the sandbox's uid
65534 to root. A fork bomb is only contained by the pids controller then.
RLIMIT_DATA is per process; the memory controller caps the sandbox as a
whole, like Lambda's memory setting.

Best effort: cgroup v1 (pids and memory hierarchies) or v2 (a delegated
subtree with the pids and memory controllers enabled). When neither is
writable (unprivileged worker without delegation) ``AttemptCgroup.create``
returns None and the sandbox relies on rlimits alone.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PREFIX = "samsara-fn-"
ORG_PREFIX = "samsara-org-"
CPU_PERIOD_US = 100_000
# Equal for every organization: cpu.weight (v2) and cpu.shares (v1) defaults.
ORG_WEIGHT_V2, ORG_SHARES_V1 = 100, 1024


def _own_cgroups() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path."""
    result: dict[str, str] = {}
    try:
        text = Path("/proc/self/cgroup").read_text()
    except OSError:
        return result
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            result[""] = path
        for controller in controllers.split(","):
            result[controller] = path
    return result


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _keyed(path: Path, key: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return None
    return None


class AttemptCgroup:
    def __init__(self, version: int, dirs: dict[str, Path]):
        self.version = version
        self.dirs = dirs  # v1: {"pids": dir, "memory": dir, "cpu": dir}; v2: {"": dir}
        self._peak_fd: int | None = None  # v2: memory.peak reset through this fd (peak_reset)

    @classmethod
    def create(cls, *, max_pids: int, memory_bytes: int, cpus: float | None = None,
               organization: str | None = None) -> AttemptCgroup | None:
        """A new attempt group; ``cpus`` caps its CPU, ``organization`` names its parent group."""
        name = PREFIX + uuid.uuid4().hex[:16]
        own = _own_cgroups()
        for attempt in (cls._create_v2, cls._create_v1):
            try:
                group = attempt(own, name, max_pids, memory_bytes, cpus, organization)
            except OSError as exc:
                log.debug("cgroup set-up failed: %s", exc)
                group = None
            if group is not None:
                return group
        return None

    @classmethod
    def _create_v2(cls, own, name, max_pids, memory_bytes, cpus=None, organization=None):
        if "" not in own or not (CGROUP_ROOT / "cgroup.controllers").exists():
            return None
        parent = CGROUP_ROOT / own[""].lstrip("/")
        enabled = (parent / "cgroup.subtree_control").read_text().split()
        if "pids" not in enabled or "memory" not in enabled:
            return None
        sweep_stale(parent)
        if cpus and "cpu" in enabled and organization:
            parent = _org_group(parent, organization, version=2)
            sweep_stale(parent)
        path = parent / name
        path.mkdir()
        group = cls(2, {"": path})
        try:
            _write(path / "pids.max", str(max_pids))
            _write(path / "memory.max", str(memory_bytes))
            if (path / "memory.swap.max").exists():
                _write(path / "memory.swap.max", "0")
            if cpus and (path / "cpu.max").exists():
                _write(path / "cpu.max", f"{_quota_us(cpus)} {CPU_PERIOD_US}")
        except OSError:
            group.remove()
            raise
        return group

    @classmethod
    def _create_v1(cls, own, name, max_pids, memory_bytes, cpus=None, organization=None):
        pids_root, memory_root, cpu_root = CGROUP_ROOT / "pids", CGROUP_ROOT / "memory", CGROUP_ROOT / "cpu"
        if "pids" not in own or not (pids_root / "cgroup.procs").exists():
            return None
        dirs = {"pids": pids_root / own["pids"].lstrip("/") / name}
        if "memory" in own and (memory_root / "cgroup.procs").exists():
            dirs["memory"] = memory_root / own["memory"].lstrip("/") / name
        if cpus and "cpu" in own and (cpu_root / "cpu.cfs_quota_us").exists():
            cpu_parent = cpu_root / own["cpu"].lstrip("/")
            if organization:
                cpu_parent = _org_group(cpu_parent, organization, version=1)
            dirs["cpu"] = cpu_parent / name
        group = cls(1, {})
        try:
            for key, path in dirs.items():
                sweep_stale(path.parent)
                path.mkdir()
                group.dirs[key] = path
            _write(dirs["pids"] / "pids.max", str(max_pids))
            if "cpu" in dirs:
                _write(dirs["cpu"] / "cpu.cfs_period_us", str(CPU_PERIOD_US))
                _write(dirs["cpu"] / "cpu.cfs_quota_us", str(_quota_us(cpus)))
            if "memory" in dirs:
                _write(dirs["memory"] / "memory.limit_in_bytes", str(memory_bytes))
                memsw = dirs["memory"] / "memory.memsw.limit_in_bytes"
                if memsw.exists():
                    try:
                        _write(memsw, str(memory_bytes))
                    except OSError:
                        pass
        except OSError:
            group.remove()
            raise
        return group

    def cpu_limit(self) -> float | None:
        """The CPUs this group may use, as the kernel has it (None when it has no CPU cap)."""
        if self.version == 2:
            try:
                quota, period = (self.dirs[""] / "cpu.max").read_text().split()
            except (OSError, ValueError):
                return None
            return None if quota == "max" else int(quota) / int(period)
        if "cpu" not in self.dirs:
            return None
        quota, period = _read_int(self.dirs["cpu"] / "cpu.cfs_quota_us"), _read_int(self.dirs["cpu"] / "cpu.cfs_period_us")
        return None if not quota or quota < 0 or not period else quota / period

    def add(self, pid: int) -> None:
        for path in self.dirs.values():
            _write(path / "cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        path = self.dirs.get("") or self.dirs["pids"]
        try:
            return [int(p) for p in (path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def kill_all(self, timeout: float = 5.0) -> bool:
        """SIGKILL every process in the group until it is empty."""
        if self.version == 2 and (self.dirs[""] / "cgroup.kill").exists():
            try:
                _write(self.dirs[""] / "cgroup.kill", "1")
            except OSError:
                pass
        end = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                return True
            if time.monotonic() > end:
                log.warning("processes left in %s: %s", self.dirs, pids)
                return False
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)

    def peak_reset(self) -> None:
        """Measure the peak afresh from now: a warm environment's run reports its own, read by the worker.

        v1: memory.max_usage_in_bytes is reset by writing 0. v2 (Linux 6.12+):
        writing to memory.peak resets it for the writing file descriptor,
        which is kept to read it back.
        """
        if self.version == 2:
            if self._peak_fd is not None:
                os.close(self._peak_fd)
                self._peak_fd = None
            try:
                fd = os.open(self.dirs[""] / "memory.peak", os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                return
            try:
                os.write(fd, b"reset\n")
            except OSError:
                os.close(fd)
                return
            self._peak_fd = fd
        elif "memory" in self.dirs:
            try:
                _write(self.dirs["memory"] / "memory.max_usage_in_bytes", "0")
            except OSError:
                pass

    def peak_memory_bytes(self) -> int | None:
        if self.version == 2:
            if self._peak_fd is not None:
                try:
                    return int(os.pread(self._peak_fd, 64, 0).split()[0])
                except (OSError, ValueError, IndexError):
                    return None
            return _read_int(self.dirs[""] / "memory.peak")
        if "memory" in self.dirs:
            return _read_int(self.dirs["memory"] / "memory.max_usage_in_bytes")
        return None

    def oom_kill_count(self) -> int:
        """OOM kills in the group so far (a warm environment compares before and after a run)."""
        if self.version == 2:
            count = _keyed(self.dirs[""] / "memory.events", "oom_kill")
        elif "memory" in self.dirs:
            count = _keyed(self.dirs["memory"] / "memory.oom_control", "oom_kill")
        else:
            count = None
        return count or 0

    def oom_killed(self) -> bool:
        return self.oom_kill_count() > 0

    def remove(self) -> None:
        """rmdir the group; retried in the background while it is still busy.

        A cgroup stays busy until its last task is reaped, and the sandbox's
        namespace init is reaped by the host's pid 1 (or subreaper), which
        can take a moment after it died.
        """
        if self._peak_fd is not None:
            os.close(self._peak_fd)
            self._peak_fd = None
        pending = [path for path in self.dirs.values() if not _try_rmdir(path)]
        if pending:
            threading.Thread(target=_rmdir_later, args=(pending,), name="cgroup-cleanup",
                             daemon=True).start()


def _quota_us(cpus: float) -> int:
    return max(1000, int(cpus * CPU_PERIOD_US))  # the kernel's minimum quota is 1 ms


def _org_group(parent: Path, organization: str, *, version: int) -> Path:
    """The organization's group under `parent`, made once, of the same weight as every other's.

    Never swept (its prefix is not PREFIX): an attempt of the organization may
    be creating its group in it at any moment.
    """
    safe = "".join(c for c in str(organization) if c.isalnum() or c in "-_")[:64] or "none"
    path = parent / (ORG_PREFIX + safe)
    try:
        path.mkdir()
    except FileExistsError:
        return path
    if version == 2:
        _write(path / "cpu.weight", str(ORG_WEIGHT_V2))
        wanted = [c for c in ("cpu", "memory", "pids") if c in (parent / "cgroup.subtree_control").read_text().split()]
        _write(path / "cgroup.subtree_control", " ".join("+" + c for c in wanted))
    else:
        _write(path / "cpu.shares", str(ORG_SHARES_V1))
    return path


def _try_rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


def _rmdir_later(paths: list[Path], timeout: float = 120.0) -> None:
    delay, end = 0.05, time.monotonic() + timeout
    while paths and time.monotonic() < end:
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
        paths = [path for path in paths if not _try_rmdir(path)]
    for path in paths:
        log.warning("could not remove cgroup %s (still busy)", path)


def sweep_stale(parent: Path, older_than_s: float = 600.0) -> None:
    """Remove empty attempt cgroups left by a worker that died (best effort).

    Only old ones: a fresh one may belong to an attempt being set up.
    rmdir refuses a cgroup that still has tasks, so a live one is safe.
    """
    try:
        entries = list(parent.glob(PREFIX + "*"))
    except OSError:
        return
    now = time.time()
    for path in entries:
        try:
            if now - path.stat().st_mtime > older_than_s:
                path.rmdir()
        except OSError:
            pass
