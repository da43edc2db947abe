"""Encryption at rest: round trip, binding to the row, two-key rotation, key configuration and its errors."""

import base64
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from secrets_vault import crypto
from secrets_vault.crypto import Keyring, parse_keys
from secrets_vault.models import Secret
from secrets_vault.services import SecretDecryptionError, secret_set, secrets_for_run
from tests.factories import make_function

ROOT = Path(__file__).resolve().parents[2]
# Fixed test keys (parametrized ids must be the same in every xdist worker).
KEY_A = base64.urlsafe_b64encode(bytes(range(32))).decode()
KEY_B = base64.urlsafe_b64encode(bytes(range(100, 132))).decode()


@pytest.fixture
def fn(org):
    return make_function(org, "vaulted")


def test_a_value_survives_the_round_trip_and_is_bound_to_its_row():
    ring = Keyring([KEY_A])
    token, key_id = ring.encrypt("pä$$wörd\n".encode(), binding="1:2")
    assert ring.decrypt(token, binding="1:2") == "pä$$wörd\n".encode()
    assert key_id == crypto.key_fingerprint(base64.urlsafe_b64decode(KEY_A)) == ring.primary_id
    assert len(key_id) == 8 and int(key_id, 16) >= 0
    with pytest.raises(crypto.BindingMismatch):
        ring.decrypt(token, binding="1:3")


def test_the_first_key_encrypts_and_every_key_decrypts():
    old, both = Keyring([KEY_A]), Keyring([KEY_B, KEY_A])
    token, _ = old.encrypt(b"value", binding="1:1")
    assert both.decrypt(token, binding="1:1") == b"value"
    new_token, key_id = both.encrypt(b"value", binding="1:1")
    assert key_id == both.primary_id != old.primary_id
    with pytest.raises(crypto.UnknownKey):
        old.decrypt(new_token, binding="1:1")


def test_rotation_re_encrypts_with_the_first_key_so_the_old_one_can_go():
    old_token, _ = Keyring([KEY_A]).encrypt(b"value", binding="4:5")
    rotated, key_id = Keyring([KEY_B, KEY_A]).rotate(old_token)
    assert key_id == Keyring([KEY_B]).primary_id
    assert Keyring([KEY_B]).decrypt(rotated, binding="4:5") == b"value"


@pytest.mark.parametrize(
    "raw,message",
    [
        (f"{KEY_A},not-a-key", "key 2 of 2 is not a valid Fernet key"),
        (f"{KEY_A},,{KEY_B}", "key 2 of 3 is empty"),
        ("", "holds no key"),
        ("é" * 44, "key 1 of 1 is not a valid Fernet key"),
        (KEY_A[:-4], "key 1 of 1 is not a valid Fernet key"),
    ],
    ids=["bad-second", "empty-middle", "none", "not-ascii", "truncated"],
)
def test_a_bad_key_is_named_by_its_position_and_never_printed(raw, message):
    with pytest.raises(ImproperlyConfigured, match=message) as caught:
        parse_keys(raw, source="SECRETS_ENCRYPTION_KEYS")
    assert "empty" in message or "Fernet.generate_key()" in str(caught.value)
    assert KEY_A not in str(caught.value) and KEY_A[:-4] not in str(caught.value)


def test_keys_may_be_separated_by_newlines_and_end_with_one():
    assert parse_keys(f"{KEY_A}\n{KEY_B}\n", source="file") == [KEY_A, KEY_B]


# --- settings and the embedded key file -------------------------------------------------------


def load_settings(tmp_path, **env):
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEPLOYMENT", "SECRETS_ENCRYPTION_KEYS"}}
    clean.update(DATA_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "-c", "import config.settings as s; print(len(s.SECRETS_ENCRYPTION_KEYS))"],
        cwd=ROOT, env=clean, capture_output=True, text=True,
    )


PRODUCTION = dict(
    DEPLOYMENT="production", SECRET_KEY="k" * 30 + "abcdefghijklmnopqrstuvwxyz", ALLOWED_HOSTS="x",
    DATABASE_URL="sqlite:///x", CELERY_BROKER_URL="redis://x",
)


@pytest.mark.slow
def test_production_refuses_to_start_without_a_key_and_says_how_to_make_one(tmp_path):
    result = load_settings(tmp_path, **PRODUCTION)
    assert result.returncode != 0
    assert "SECRETS_ENCRYPTION_KEYS must be set in production" in result.stderr
    assert "Fernet.generate_key().decode()" in result.stderr


@pytest.mark.slow
def test_production_starts_with_keys(tmp_path):
    result = load_settings(tmp_path, SECRETS_ENCRYPTION_KEYS=f" {KEY_A}, {KEY_B} ", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"
    assert not (tmp_path / "secrets.key").exists()


def test_a_bad_key_stops_the_start_naming_its_position(tmp_path):
    result = load_settings(tmp_path, SECRETS_ENCRYPTION_KEYS=f"{KEY_A},{KEY_B[:20]}")
    assert result.returncode != 0 and "key 2 of 2 is not a valid Fernet key" in result.stderr
    assert KEY_B[:20] not in result.stderr


def test_the_embedded_default_creates_one_private_key_file_on_first_use_and_says_so(tmp_path, caplog):
    path = tmp_path / "secrets.key"
    with override_settings(SECRETS_ENCRYPTION_KEYS=[], SECRETS_KEY_FILE=path, PRODUCTION=False):
        assert not path.exists()
        with caplog.at_level(logging.WARNING, logger="secrets_vault.crypto"):
            first = crypto.keyring()
        assert path.stat().st_mode & 0o777 == 0o600
        assert "Generated the secrets encryption key" in caplog.text and str(path) in caplog.text
        assert path.read_text().strip() not in caplog.text
        caplog.clear()
        crypto.reset_keyring()
        with caplog.at_level(logging.WARNING, logger="secrets_vault.crypto"):
            second = crypto.keyring()
        assert second.key_ids == first.key_ids and caplog.text == ""
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_two_processes_starting_together_agree_on_one_key(tmp_path):
    script = (
        "import sys; from pathlib import Path; from secrets_vault.crypto import _read_or_create_key_file;"
        "print(_read_or_create_key_file(Path(sys.argv[1])).strip())"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "secrets.key")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    keys = {p.communicate()[0].strip() for p in procs}
    assert len(keys) == 1 and keys == {(tmp_path / "secrets.key").read_text().strip()}


# --- through the services: what a wrong or missing key looks like ----------------------------------


def test_a_removed_key_gives_an_error_naming_the_secret_not_a_crash(fn, users):
    with override_settings(SECRETS_ENCRYPTION_KEYS=[KEY_A]):
        secret_set(function=fn, name="API_KEY", value="s3cr3t-value-1", actor=users["full_admin"])
        assert secrets_for_run(function=fn) == {"API_KEY": "s3cr3t-value-1"}
    with override_settings(SECRETS_ENCRYPTION_KEYS=[KEY_B]):
        with pytest.raises(SecretDecryptionError) as caught:
            secrets_for_run(function=fn)
    message = str(caught.value)
    assert "“API_KEY”" in message and "“vaulted”" in message and "not among the configured keys" in message
    assert "s3cr3t-value-1" not in message and caught.value.secret_name == "API_KEY"


def test_a_damaged_ciphertext_gives_an_error_naming_the_secret(fn, users):
    with override_settings(SECRETS_ENCRYPTION_KEYS=[KEY_A]):
        secret, _ = secret_set(function=fn, name="TOKEN", value="s3cr3t-value-2", actor=users["full_admin"])
        Secret.objects.filter(pk=secret.pk).update(ciphertext=secret.ciphertext[:-6] + "AAAAAA")
        with pytest.raises(SecretDecryptionError, match="“TOKEN”.*damaged"):
            secrets_for_run(function=fn)


def test_a_ciphertext_copied_to_another_secret_is_refused(org, fn, users):
    other = make_function(org, "other")
    with override_settings(SECRETS_ENCRYPTION_KEYS=[KEY_A]):
        source, _ = secret_set(function=fn, name="PROD_DB", value="s3cr3t-value-3", actor=users["full_admin"])
        target, _ = secret_set(function=other, name="MINE", value="harmless-value", actor=users["full_admin"])
        Secret.objects.filter(pk=target.pk).update(ciphertext=source.ciphertext, key_id=source.key_id)
        with pytest.raises(SecretDecryptionError, match="“MINE”.*belongs to another secret"):
            secrets_for_run(function=other)
        assert secrets_for_run(function=fn) == {"PROD_DB": "s3cr3t-value-3"}
