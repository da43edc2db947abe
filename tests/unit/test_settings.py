"""Settings are strict: production refuses to start on a convenient default."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_settings(tmp_path, **env):
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "DEPLOYMENT", "DEBUG"}}
    clean.update(DATA_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "-c", "import config.settings as s; print(s.SECRET_KEY[:4])"],
        cwd=ROOT, env=clean, capture_output=True, text=True,
    )


@pytest.mark.slow
def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = load_settings(tmp_path, DEPLOYMENT="production", ALLOWED_HOSTS="x", DATABASE_URL="sqlite:///x", CELERY_BROKER_URL="redis://x")
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


@pytest.mark.slow
def test_production_refuses_a_placeholder_secret_key(tmp_path):
    result = load_settings(
        tmp_path, DEPLOYMENT="production", SECRET_KEY="django-insecure-" + "a" * 50,
        ALLOWED_HOSTS="x", DATABASE_URL="sqlite:///x", CELERY_BROKER_URL="redis://x",
    )
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


@pytest.mark.parametrize("missing", ["DATABASE_URL", "CELERY_BROKER_URL", "ALLOWED_HOSTS"])
@pytest.mark.slow
def test_production_requires_its_services(tmp_path, missing):
    env = dict(DEPLOYMENT="production", SECRET_KEY="k" * 30 + "abcdefghijklmnopqrstuvwxyz", ALLOWED_HOSTS="x",
               DATABASE_URL="sqlite:///x", CELERY_BROKER_URL="redis://x")
    env.pop(missing)
    result = load_settings(tmp_path, **env)
    assert result.returncode != 0 and missing in result.stderr


@pytest.mark.slow
def test_a_misspelt_boolean_is_an_error(tmp_path):
    result = load_settings(tmp_path, DEBUG="ture")
    assert result.returncode != 0 and "DEBUG='ture' is not a boolean" in result.stderr


@pytest.mark.slow
def test_the_embedded_default_creates_its_key_once_under_the_data_dir(tmp_path):
    first, second = load_settings(tmp_path), load_settings(tmp_path)
    assert first.returncode == 0 and first.stdout == second.stdout
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


@pytest.mark.slow
def test_two_data_dirs_get_two_keys(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    assert load_settings(tmp_path / "a").stdout != load_settings(tmp_path / "b").stdout


@pytest.mark.slow
def test_an_unknown_storage_backend_is_an_error(tmp_path):
    result = load_settings(tmp_path, STORAGE_BACKEND="ftp")
    assert result.returncode != 0 and "STORAGE_BACKEND='ftp'" in result.stderr


@pytest.mark.parametrize("value, says", [
    ("20", "FUNCTIONS_BUSY_ORGANIZATION_NICE=20 is past Linux's range of nice values: use 0 (off) to 19."),
    ("-1", "FUNCTIONS_BUSY_ORGANIZATION_NICE='-1' must be at least 0."),
    ("ten", "FUNCTIONS_BUSY_ORGANIZATION_NICE='ten' is not a whole number."),
])
@pytest.mark.slow
def test_a_busy_organizations_nice_value_outside_linuxs_range_is_an_error(tmp_path, value, says):
    result = load_settings(tmp_path, FUNCTIONS_BUSY_ORGANIZATION_NICE=value)
    assert result.returncode != 0 and says in result.stderr
