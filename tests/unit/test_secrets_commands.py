"""manage.py set_secret and rotate_secrets_key, and a database dump that holds no value in clear text."""

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from functions.models import AuditEntry
from secrets_vault import services
from secrets_vault.crypto import Keyring
from secrets_vault.models import Secret
from tests.factories import make_function

ROOT = Path(__file__).resolve().parents[2]
KEY_OLD = base64.urlsafe_b64encode(bytes(range(32))).decode()
KEY_NEW = base64.urlsafe_b64encode(bytes(range(50, 82))).decode()
VALUE = "s3cr3t-Command-Value-4242"


@pytest.fixture
def fn(org):
    return make_function(org, "vaulted")


def set_secret(capsys, *args, stdin):
    call_command("set_secret", *args, stdin=io.BytesIO(stdin))
    return json.loads(capsys.readouterr().out)


# --- set_secret -----------------------------------------------------------------------------------


def test_set_secret_reads_the_value_from_stdin_and_prints_no_value(fn, org, capsys):
    out = set_secret(capsys, "--org", "acme fleet", "VAULTED", "API_KEY", stdin=(VALUE + "\n").encode())
    assert out == {"function": "vaulted", "secret": "API_KEY", "created": True}
    assert services.secrets_for_run(function=fn) == {"API_KEY": VALUE}
    out = set_secret(capsys, "--org", org.name, "vaulted", "API_KEY", stdin=b"second\n")
    assert out["created"] is False and services.secrets_for_run(function=fn) == {"API_KEY": "second"}
    entry = AuditEntry.objects.filter(function=fn).first()
    assert entry.actor is None and entry.actor_label == "manage.py set_secret"


@pytest.mark.parametrize(
    "stdin,stored",
    [(b"value\n\n", "value\n"), (b"value\r\n", "value"), (b"  spaced value  ", "  spaced value  "), ("ünï\n".encode(), "ünï")],
    ids=["two-newlines", "crlf", "spaces", "unicode"],
)
def test_set_secret_strips_exactly_one_trailing_newline(fn, org, capsys, stdin, stored):
    set_secret(capsys, "--org", org.name, "vaulted", "K", stdin=stdin)
    assert services.secrets_for_run(function=fn) == {"K": stored}


@pytest.mark.parametrize(
    "args,stdin,message",
    [
        (["--org", "Nope", "vaulted", "K"], b"v", "No organization named “Nope”"),
        (["--org", "Acme Fleet", "missing", "K"], b"v", "No Function named “missing”"),
        (["--org", "Acme Fleet", "vaulted", "bad key"], b"value", "may only contain"),
        (["--org", "Acme Fleet", "vaulted", "K"], b"\xff\xfe\n", "not valid UTF-8"),
        (["--org", "Acme Fleet", "vaulted", "K"], b"\n", "No value on standard input"),
        (["--org", "Acme Fleet", "vaulted", "K"], b"x" * (64 * 1024 + 1), "larger than 64 KB"),
    ],
    ids=["org", "function", "name", "not-utf8", "empty", "too-big"],
)
def test_set_secret_refuses_bad_input_and_changes_nothing(fn, args, stdin, message):
    with pytest.raises(CommandError, match=message) as caught:
        call_command("set_secret", *args, stdin=io.BytesIO(stdin))
    assert "xxxx" not in str(caught.value)
    assert not Secret.objects.exists()


# --- rotate_secrets_key -----------------------------------------------------------------------------


def rotate(capsys, *args):
    call_command("rotate_secrets_key", *args)
    return json.loads(capsys.readouterr().out)


def test_rotation_re_encrypts_every_value_with_the_first_key_in_batches(org, fn, users, capsys):
    other = make_function(org, "other")
    with override_settings(SECRETS_ENCRYPTION_KEYS=[KEY_OLD]):
        for i in range(7):
            services.secret_set(function=fn if i % 2 else other, name=f"S{i}", value=f"value-{i}", actor=users["full_admin"])
        services.secret_create_missing(function=fn, names=["MISSING"], actor=users["full_admin"])
    old_id, new_id = Keyring([KEY_OLD]).primary_id, Keyring([KEY_NEW]).primary_id
    with override_settings(SECRETS_ENCRYPTION_KEYS=[KEY_NEW, KEY_OLD]):
        services.secret_set(function=fn, name="ALREADY_NEW", value="new-value", actor=users["full_admin"])
        assert rotate(capsys, "--dry-run") == {
            "primaryKey": new_id, "configuredKeys": [new_id, old_id], "remaining": {old_id: 7}, "dryRun": True,
        }
        summary = rotate(capsys, "--batch-size", "3")
        assert summary["rotated"] == 7 and summary["batches"] == 3 and summary["failed"] == []
        assert summary["remaining"] == {} and summary["oldKeysRemovable"] is True
        assert set(Secret.objects.with_values().values_list("key_id", flat=True)) == {new_id}
        # running it again finds nothing to do
        again = rotate(capsys)
        assert again["rotated"] == 0 and again["batches"] == 0
    # the old key can go
    with override_settings(SECRETS_ENCRYPTION_KEYS=[KEY_NEW]):
        assert services.secrets_for_run(function=other) == {"S0": "value-0", "S2": "value-2", "S4": "value-4", "S6": "value-6"}
        assert services.secrets_for_run(function=fn)["S5"] == "value-5"
        assert services.secrets_missing_values(function=fn) == ["MISSING"]


def test_an_interrupted_rotation_resumes_where_it_stopped(fn, users, capsys):
    with override_settings(SECRETS_ENCRYPTION_KEYS=[KEY_OLD]):
        for i in range(5):
            services.secret_set(function=fn, name=f"S{i}", value=f"value-{i}", actor=users["full_admin"])
    new_id = Keyring([KEY_NEW]).primary_id
    with override_settings(SECRETS_ENCRYPTION_KEYS=[KEY_NEW, KEY_OLD]):
        # As if the first run was killed after committing two rows.
        ring = Keyring([KEY_NEW, KEY_OLD])
        for secret in Secret.objects.order_by("pk")[:2]:
            token, key_id = ring.rotate(secret.ciphertext)
            Secret.objects.filter(pk=secret.pk).update(ciphertext=token, key_id=key_id)
        assert rotate(capsys, "--dry-run")["remaining"] == {Keyring([KEY_OLD]).primary_id: 3}
        assert rotate(capsys)["rotated"] == 3
        assert set(Secret.objects.values_list("key_id", flat=True)) == {new_id}
        assert services.secrets_for_run(function=fn) == {f"S{i}": f"value-{i}" for i in range(5)}


def test_rotation_reports_values_no_key_can_read_and_exits_non_zero(fn, users, capsys):
    with override_settings(SECRETS_ENCRYPTION_KEYS=[KEY_OLD]):
        services.secret_set(function=fn, name="LOST", value="lost-value", actor=users["full_admin"])
    with override_settings(SECRETS_ENCRYPTION_KEYS=[KEY_NEW]):
        services.secret_set(function=fn, name="FINE", value="fine-value", actor=users["full_admin"])
        with pytest.raises(CommandError, match="vaulted/LOST") as caught:
            call_command("rotate_secrets_key")
    assert "lost-value" not in str(caught.value)
    summary = json.loads(capsys.readouterr().out)
    assert summary["failed"][0]["secret"] == "LOST" and summary["oldKeysRemovable"] is False


def test_rotation_refuses_a_silly_batch_size(db):
    with pytest.raises(CommandError, match="at least 1"):
        call_command("rotate_secrets_key", "--batch-size", "0")


# --- a database dump holds no value in clear text ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # VACUUM INTO cannot run inside the test's transaction
def test_a_dump_of_the_database_holds_no_secret_value(fn, users, tmp_path, capsys):
    values = {"API_KEY": VALUE, "UNICODE": "Pässwörd-ünïcödé-✓✓", "LONG": "L0ng-" * 200}
    for name, value in values.items():
        services.secret_set(function=fn, name=name, value=value, actor=users["full_admin"])
    services.secret_set(function=fn, name="API_KEY", value=VALUE + "-replaced", actor=users["full_admin"])
    values["REPLACED"] = VALUE + "-replaced"
    capsys.readouterr()
    call_command("dumpdata", "--indent", "0")
    dump = capsys.readouterr().out
    assert '"model": "secrets_vault.secret"' in dump and "API_KEY" in dump
    # The database file itself (the in-memory test database copied out byte for byte).
    copy = tmp_path / "copy.sqlite3"
    with connection.cursor() as cursor:
        cursor.execute("VACUUM INTO %s", [str(copy)])
    raw = copy.read_bytes()
    assert b"API_KEY" in raw
    for value in values.values():
        for needle in (value, value[:12], json.dumps(value)[1:-1]):
            assert needle not in dump
            for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
                assert needle.encode(encoding) not in raw
        assert base64.b64encode(value.encode()) not in raw


@pytest.mark.slow
def test_the_database_file_on_disk_holds_no_secret_value(tmp_path):
    """End to end on a real SQLite file (with its write-ahead log): migrate, set secrets with the command, dump."""
    env = {**os.environ, "DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.pop("SECRETS_ENCRYPTION_KEYS", None)

    def manage(*args, stdin=None):
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, input=stdin, capture_output=True, check=True
        ).stdout

    manage("migrate", "-v0")
    manage("createorg", "Dump Co")
    script = (
        "import django; django.setup();"
        "from accounts.models import Organization; from tests.factories import make_function;"
        "make_function(Organization.objects.get(name='Dump Co'), 'dumped')"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True)
    values = [VALUE, "Pässwörd-ünïcödé-✓✓", "multi\nline\nsecret-value"]
    for i, value in enumerate(values):
        out = json.loads(manage("set_secret", "--org", "Dump Co", "dumped", f"S{i}", stdin=value.encode() + b"\n"))
        assert out == {"function": "dumped", "secret": f"S{i}", "created": True}
    refused = subprocess.run(
        [sys.executable, "manage.py", "set_secret", "--org", "Dump Co", "dumped", "bad key"],
        cwd=ROOT, env=env, input=VALUE.encode(), capture_output=True,
    )
    assert refused.returncode != 0 and b"may only contain" in refused.stderr
    assert VALUE.encode() not in refused.stdout + refused.stderr
    dump = manage("dumpdata")
    files = [p for p in tmp_path.iterdir() if p.name.startswith("db.sqlite3")]
    raw = b"".join(p.read_bytes() for p in files)
    assert b"S0" in dump and b"secrets_vault.secret" in dump and len(raw) > 0
    for value in values:
        for part in (value, value[:12]):
            assert part.encode() not in raw and part.encode() not in dump
    assert (tmp_path / "secrets.key").stat().st_mode & 0o777 == 0o600
