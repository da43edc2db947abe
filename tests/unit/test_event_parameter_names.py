"""Samsara's own examples set SamsaraFunction* event parameters (SamsaraFunctionLoggerLevel,
SamsaraFunctionLoggerIsJsonOut): the dashboard, the import and the command accept them; only the two
names the platform sets on every run are refused, with a message saying why (CONTRACT.md)."""

import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from functions.models import Function
from functions.run_services import build_event
from tests.factories import make_zip

HELLO = "def handler(event, context):\n    return event\n"
SAMSARA_EXAMPLE = {"SamsaraFunctionLoggerIsJsonOut": "true", "SamsaraFunctionLoggerLevel": "DEBUG"}
RESERVED = ["SamsaraFunctionTriggerSource", "SamsaraFunctionCorrelationId"]
WHY = "is reserved: the platform sets it on every run"


def create_url(org, *, importing=False):
    return reverse("functions:create", kwargs={"org_id": org.id}) + ("?import=1" if importing else "")


def upload(files, name="code.zip"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, make_zip(files), content_type="application/zip")


@pytest.fixture(autouse=True)
def own_storage(settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "storage")}}}


# --- the dashboard ----------------------------------------------------------------------------


def test_the_dashboard_accepts_samsaras_prefixed_names(admin_client, org):
    response = admin_client.post(create_url(org), {
        "name": "logger", "handler": "main.handler", "bundle": upload({"main.py": HELLO}),
        "param_name": list(SAMSARA_EXAMPLE), "param_value": list(SAMSARA_EXAMPLE.values()),
    })
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    function = Function.objects.get(organization=org, name="logger")
    assert function.parameters_dict == SAMSARA_EXAMPLE
    # They reach the handler like any other parameter.
    event = build_event(function=function, trigger="manual", correlation_id="c-1")
    assert event["SamsaraFunctionLoggerLevel"] == "DEBUG" and event["SamsaraFunctionTriggerSource"] == "manual"


@pytest.mark.parametrize("name", RESERVED)
def test_the_dashboard_refuses_the_two_names_the_platform_sets(admin_client, org, name):
    response = admin_client.post(create_url(org), {
        "name": "logger", "handler": "main.handler", "bundle": upload({"main.py": HELLO}),
        "param_name": [name], "param_value": ["x"],
    })
    assert response.status_code == 400
    assert f"Event parameter name &#x27;{name}&#x27; {WHY}" in response.content.decode()
    assert not Function.objects.exists()


# --- the import -------------------------------------------------------------------------------


def import_bundle(parameters):
    metadata = {"name": "logger", "handler": "main.handler", "eventParameters": parameters}
    return upload({"main.py": HELLO, "import.metadata.json": json.dumps(metadata)}, "bundle.zip")


def test_the_import_accepts_samsaras_prefixed_names(admin_client, org):
    review = admin_client.post(create_url(org, importing=True), {"bundle": import_bundle(SAMSARA_EXAMPLE)})
    assert review.status_code == 200, review.context["form"].errors
    body = review.content.decode()
    for name, value in SAMSARA_EXAMPLE.items():
        assert f'name="param_name" value="{name}"' in body and f'value="{value}"' in body
    staged = review.context["form"].initial["staged_sha256"]
    saved = admin_client.post(create_url(org), {
        "name": "logger", "handler": "main.handler", "param_name": list(SAMSARA_EXAMPLE),
        "param_value": list(SAMSARA_EXAMPLE.values()), "staged_sha256": staged, "staged_filename": "bundle.zip",
        "from_import": "True",
    })
    assert saved.status_code == 302
    assert Function.objects.get(organization=org, name="logger").parameters_dict == SAMSARA_EXAMPLE


@pytest.mark.parametrize("name", RESERVED)
def test_the_import_refuses_the_two_names_the_platform_sets(admin_client, org, name):
    response = admin_client.post(create_url(org, importing=True), {"bundle": import_bundle({name: "x"})})
    assert response.status_code == 400
    assert WHY in response.content.decode() and name in response.content.decode()
    assert not Function.objects.exists()


# --- the command ------------------------------------------------------------------------------


def test_the_command_accepts_samsaras_prefixed_names(org, tmp_path, capsys):
    path = tmp_path / "code.zip"
    path.write_bytes(make_zip({"main.py": HELLO}))
    params = [f"--param={k}={v}" for k, v in SAMSARA_EXAMPLE.items()]
    call_command("deploy_function", "--org", org.name, "logger", "--zip", str(path), "--handler", "main.handler", *params)
    assert json.loads(capsys.readouterr().out)["version"] == 1
    assert Function.objects.get(organization=org, name="logger").parameters_dict == SAMSARA_EXAMPLE


@pytest.mark.parametrize("name", RESERVED)
def test_the_command_refuses_the_two_names_the_platform_sets(org, tmp_path, name):
    path = tmp_path / "code.zip"
    path.write_bytes(make_zip({"main.py": HELLO}))
    with pytest.raises(CommandError) as info:
        call_command("deploy_function", "--org", org.name, "logger", "--zip", str(path), "--handler", "main.handler",
                     f"--param={name}=x")
    assert f"'{name}' {WHY}" in str(info.value)
    assert not Function.objects.exists()
