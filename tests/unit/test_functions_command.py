"""manage.py deploy_function: the same validation and services as the pages."""

import json
import uuid

import pytest
from django.core.management import CommandError, call_command

from functions.models import AuditEntry, Function
from tests.factories import make_zip

HELLO = "def handler(event, context):\n    return {'ok': True}\n"


@pytest.fixture(autouse=True)
def own_storage(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(tmp_path / "storage")}},
    }


@pytest.fixture
def zip_path(tmp_path):
    def write(files=None, name=None):
        path = tmp_path / (name or f"{uuid.uuid4().hex}.zip")
        path.write_bytes(make_zip(files or {"main.py": HELLO, "id": uuid.uuid4().hex}))
        return str(path)

    return write


def deploy(capsys, *args):
    call_command("deploy_function", *args)
    return json.loads(capsys.readouterr().out)


def test_it_creates_a_function_and_prints_name_version_and_sha256(org, zip_path, capsys):
    out = deploy(capsys, "--org", "acme fleet", "reporter", "--zip", zip_path(), "--handler", "main.handler",
                 "--description", "Reports", "--param", "A=1", "--param", "B=x=y", "--timeout", "120",
                 "--message", "first")
    function = Function.objects.get(organization=org, name="reporter")
    assert out == {"name": "reporter", "version": 1, "sha256": function.deployed_version.sha256}
    assert function.parameters_dict == {"A": "1", "B": "x=y"}
    assert (function.description, function.timeout_seconds, function.deployed_version.message) == ("Reports", 120, "first")
    assert AuditEntry.objects.get(function=function).actor_label == "manage.py deploy_function"
    assert function.deployed_version.uploaded_by_label == "manage.py deploy_function"


def test_it_deploys_a_new_version_of_an_existing_function(org, zip_path, capsys):
    deploy(capsys, "--org", org.name, "reporter", "--zip", zip_path(), "--handler", "main.handler", "--param", "A=1")
    out = deploy(capsys, "--org", org.name, "REPORTER", "--zip", zip_path(), "--message", "second")
    function = Function.objects.get(organization=org, name="reporter")
    assert out["name"] == "reporter" and out["version"] == 2 and function.deployed_version.number == 2
    assert function.parameters_dict == {"A": "1"}  # untouched without --param


def test_it_can_change_parameters_description_and_timeout_with_a_deploy(org, zip_path, capsys):
    deploy(capsys, "--org", org.name, "reporter", "--zip", zip_path(), "--handler", "main.handler", "--param", "A=1")
    deploy(capsys, "--org", org.name, "reporter", "--zip", zip_path(), "--param", "B=2", "--description", "new",
           "--timeout", "30")
    function = Function.objects.get(organization=org, name="reporter")
    assert function.parameters_dict == {"B": "2"} and function.description == "new" and function.timeout_seconds == 30


def test_the_handler_is_required_on_creation(org, zip_path):
    with pytest.raises(CommandError, match="--handler is required to create it"):
        call_command("deploy_function", "--org", org.name, "reporter", "--zip", zip_path())
    assert not Function.objects.exists()


@pytest.mark.parametrize(
    "args, says",
    [
        (["--handler", "main.nope"], "--handler: main.py has no top-level function named 'nope'"),
        (["--handler", "main.handler", "--timeout", "901"], "--timeout: The timeout must be a whole number of seconds from 1 to 900"),
        (["--handler", "main.handler", "--param", "A"], "--param 'A' is not KEY=VALUE"),
        (["--handler", "main.handler", "--param", "SamsaraFunctionCorrelationId=1"], "the platform sets it on every run"),
        (["--handler", "main.handler", "--param", "A=1", "--param", "A=2"], "appears more than once"),
    ],
)
def test_it_refuses_bad_input_with_a_clear_message(org, zip_path, args, says):
    with pytest.raises(CommandError) as info:
        call_command("deploy_function", "--org", org.name, "reporter", "--zip", zip_path(), *args)
    assert says in str(info.value)
    assert not Function.objects.exists()


def test_it_refuses_a_bad_name(org, zip_path):
    with pytest.raises(CommandError, match="FN: Function name 'bad name' contains ' '"):
        call_command("deploy_function", "--org", org.name, "bad name", "--zip", zip_path(), "--handler", "main.handler")


def test_it_refuses_a_file_that_is_not_a_zip(org, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(CommandError, match="--zip: The uploaded file is a text file, not a .zip"):
        call_command("deploy_function", "--org", org.name, "reporter", "--zip", str(path), "--handler", "main.handler")


def test_it_refuses_a_missing_zip_or_organization(org, tmp_path):
    with pytest.raises(CommandError, match="Cannot read --zip"):
        call_command("deploy_function", "--org", org.name, "reporter", "--zip", str(tmp_path / "nope.zip"))
    with pytest.raises(CommandError, match="No organization named “Nope”"):
        call_command("deploy_function", "--org", "Nope", "reporter", "--zip", str(tmp_path / "nope.zip"))


def test_a_refused_update_leaves_no_new_version(org, zip_path, capsys):
    deploy(capsys, "--org", org.name, "reporter", "--zip", zip_path(), "--handler", "main.handler")
    with pytest.raises(CommandError, match="from 1 to 900"):
        call_command("deploy_function", "--org", org.name, "reporter", "--zip", zip_path(), "--timeout", "0")
    function = Function.objects.get(organization=org, name="reporter")
    assert function.versions.count() == 1 and function.timeout_seconds is None


@pytest.mark.slow
def test_it_exits_non_zero_from_the_command_line(org, zip_path, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "DJANGO_SETTINGS_MODULE": "config.settings"}

    def manage(*args):
        return subprocess.run([sys.executable, "manage.py", *args], cwd=root, capture_output=True, text=True, env=env)

    assert manage("migrate", "-v", "0").returncode == 0
    assert manage("createorg", "Fleet").returncode == 0
    result = manage("deploy_function", "--org", "Fleet", "fn", "--zip", zip_path())
    assert result.returncode != 0 and "--handler is required to create it" in result.stderr
    ok = manage("deploy_function", "--org", "Fleet", "fn", "--zip", zip_path(), "--handler", "main.handler")
    assert ok.returncode == 0 and json.loads(ok.stdout)["version"] == 1
