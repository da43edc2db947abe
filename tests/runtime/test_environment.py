"""The Functions' runtime environment: pinned contract packages, built idempotently."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from runtime import environment
from runtime.environment import (
    REQUIREMENTS,
    RuntimeEnvError,
    ensure_runtime_env,
    find_python312,
    is_current,
    requirements_sha256,
)

pytestmark = pytest.mark.sandbox

# CONTRACT.md, "Pre-installed packages".
CONTRACT_PACKAGES = {
    "boto3", "botocore", "requests", "urllib3", "certifi", "idna", "charset-normalizer", "aiohttp",
    "paramiko", "cryptography", "pynacl", "bcrypt", "python-dateutil", "pytz", "tenacity", "geopy",
    "lxml", "pillow", "zeep", "isodate", "platformdirs", "requests-file", "requests-toolbelt",
    "samsara-api",
}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned() -> dict[str, str]:
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pins[normalise(name)] = version
    return pins


def test_the_requirements_pin_every_contract_package_and_nothing_of_the_app():
    pins = pinned()
    assert CONTRACT_PACKAGES <= set(pins)
    assert not {"django", "celery", "kombu", "psycopg", "redis", "gunicorn"} & set(pins)


def test_the_built_environment_holds_exactly_the_pinned_packages(runtime_python):
    frozen = subprocess.run([str(runtime_python), "-m", "pip", "freeze", "--disable-pip-version-check"],
                            capture_output=True, text=True, check=True).stdout
    installed = {}
    for line in frozen.splitlines():
        name, _, version = line.partition("==")
        installed[normalise(name)] = version
    assert installed == pinned()
    version = subprocess.run([str(runtime_python), "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == "(3, 12)"


def test_ensuring_a_current_environment_does_nothing(runtime_python, monkeypatch):
    env_dir = runtime_python.parent.parent
    assert is_current(env_dir)
    stamp = (env_dir / environment.STAMP_NAME).read_text().strip()
    assert stamp == requirements_sha256()
    # Nothing is built, or even started: no interpreter, no pip.
    def no_process(*args, **kwargs):
        raise AssertionError(f"a current environment started a process: {args}")

    monkeypatch.setattr(environment.subprocess, "run", no_process)
    assert ensure_runtime_env(env_dir) == runtime_python


def test_a_changed_requirements_file_makes_the_environment_stale(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# nothing pre-installed\n")
    env_dir = tmp_path / "env"
    (env_dir / "bin").mkdir(parents=True)
    (env_dir / "bin" / "python").symlink_to(sys.executable)
    assert not is_current(env_dir, requirements)  # no stamp: an interrupted build
    (env_dir / environment.STAMP_NAME).write_text(requirements_sha256(requirements) + "\n")
    assert is_current(env_dir, requirements)
    assert ensure_runtime_env(env_dir, requirements=requirements) == env_dir / "bin" / "python"
    requirements.write_text("# nothing pre-installed, edited\n")
    assert not is_current(env_dir, requirements)


def test_it_fails_clearly_without_python_3_12(monkeypatch, tmp_path):
    monkeypatch.setattr(environment.shutil, "which", lambda name: None)
    monkeypatch.setattr(environment, "FALLBACK_PYTHONS", (tmp_path / "python3.12",))
    with pytest.raises(RuntimeEnvError, match="Python 3.12 is required"):
        find_python312()


def test_the_command_line_prints_the_python_path(runtime_python):
    out = subprocess.run([sys.executable, "-m", "runtime.environment", str(runtime_python.parent.parent)],
                         capture_output=True, text=True, cwd=Path(environment.__file__).parent.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(runtime_python)
