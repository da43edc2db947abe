"""The Functions' runtime environment: a Python 3.12 virtualenv, separate from
the app's, holding exactly the pre-installed packages of CONTRACT.md
(pinned in ``runtime/requirements.txt``).

``ensure_runtime_env(path)`` is idempotent: it (re)builds ``path`` only when
it is missing or when the sha256 of the requirements differs from the stamp
written inside it after a successful build, and returns the environment's
python. Concurrent callers (several workers, xdist) are serialised with a lock
file next to the environment.

    python -m runtime.environment [PATH]     # default: <project>/.runtime-env

Pure Python: no Django import, so set-up scripts can run it before the app is
configured.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_RUNTIME_ENV = PROJECT_DIR / ".runtime-env"
REQUIREMENTS = Path(__file__).resolve().with_name("requirements.txt")
STAMP_NAME = ".requirements.sha256"
PYTHON_VERSION = (3, 12)
# Where this project's machines keep Python 3.12 when it is not on PATH.
FALLBACK_PYTHONS = (Path("/root/.pyenv/versions/3.12.1/bin/python3.12"),)


class RuntimeEnvError(RuntimeError):
    """The runtime environment cannot be built."""


def _probe(python: str | os.PathLike) -> tuple[tuple[int, int], Path] | None:
    """(version, real executable) of an interpreter, or None if it does not run."""
    try:
        out = subprocess.run(
            [os.fspath(python), "-I", "-c",
             "import sys; print(sys.version_info[0], sys.version_info[1]); print(sys.executable)"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout.split("\n")
        return (int(out[0].split()[0]), int(out[0].split()[1])), Path(out[1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def find_python312() -> Path:
    """The base Python 3.12 interpreter used to create the environment.

    Looks for ``python3.12`` on PATH (a pyenv shim is resolved to the real
    interpreter), then at the known fallback locations.
    """
    candidates: list[str | Path] = []
    on_path = shutil.which("python3.12")
    if on_path:
        candidates.append(on_path)
    candidates.extend(FALLBACK_PYTHONS)
    tried = []
    for candidate in candidates:
        probed = _probe(candidate)
        tried.append(str(candidate))
        if probed and probed[0] == PYTHON_VERSION:
            return probed[1]
    raise RuntimeEnvError(
        "Python 3.12 is required to build the Functions runtime environment, but it was "
        f"not found (looked for python3.12 on PATH and at {', '.join(map(str, FALLBACK_PYTHONS))}; "
        f"tried: {', '.join(tried) or 'nothing'}). Install Python 3.12 and put python3.12 on PATH."
    )


def requirements_sha256(requirements: Path = REQUIREMENTS) -> str:
    return hashlib.sha256(requirements.read_bytes()).hexdigest()


def runtime_python(path: Path) -> Path:
    """The python executable of the environment at ``path`` (it may not exist yet)."""
    return Path(path) / "bin" / "python"


def is_current(path: Path, requirements: Path = REQUIREMENTS) -> bool:
    stamp = Path(path) / STAMP_NAME
    try:
        current = stamp.read_text().strip() == requirements_sha256(requirements)
    except OSError:
        return False
    return current and runtime_python(path).exists()


def _clean_env() -> dict[str, str]:
    # pip's own configuration (PIP_*, index settings) is kept; what would make
    # the build see the app's environment instead of the new venv is not.
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONUSERBASE"}}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def ensure_runtime_env(path: Path = DEFAULT_RUNTIME_ENV, *, requirements: Path = REQUIREMENTS,
                       quiet: bool = True) -> Path:
    """Build the runtime environment at ``path`` if missing or stale; return its python."""
    path = Path(path).absolute()
    requirements = Path(requirements)
    if is_current(path, requirements):
        return runtime_python(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.parent / f".{path.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_current(path, requirements):  # built by someone else while we waited
            return runtime_python(path)
        digest = requirements_sha256(requirements)
        base = find_python312()
        if path.exists():
            shutil.rmtree(path)
        env = _clean_env()
        out = subprocess.DEVNULL if quiet else None

        def run(cmd: list[str], what: str) -> None:
            proc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                tail = "\n".join(proc.stderr.strip().splitlines()[-20:])
                raise RuntimeEnvError(f"{what} failed (exit {proc.returncode}):\n{tail}")

        run([str(base), "-m", "venv", str(path)], f"Creating the virtualenv at {path}")
        python = runtime_python(path)
        run([str(python), "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
             "-r", str(requirements)], f"Installing {requirements.name} into {path}")
        # Written last: an interrupted build has no stamp and is redone next time.
        (path / STAMP_NAME).write_text(digest + "\n")
        return python


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0] in {"-h", "--help"}):
        print("usage: python -m runtime.environment [PATH]", file=sys.stderr)
        return 2
    target = Path(args[0]) if args else DEFAULT_RUNTIME_ENV
    try:
        python = ensure_runtime_env(target, quiet=False)
    except RuntimeEnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
