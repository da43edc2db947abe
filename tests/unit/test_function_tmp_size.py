"""A Function's /tmp size, set like its timeout (issue 18, item 1): form, command, run, bad input."""

import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from functions.models import Function
from functions.run_services import run_trigger
from tests.conftest import ROLES, WRITERS
from tests.factories import make_function, make_zip


@pytest.fixture
def function(org, users):
    return make_function(org, "hello", user=users["full_admin"])


def edit(client, function, **changes):
    data = {
        "name": function.name, "description": function.description, "handler": function.handler,
        "revision": function.revision, "timeout_seconds": "", "tmp_mb": "", **changes,
    }
    return client.post(reverse("functions:edit", kwargs={"org_id": function.organization_id, "name": function.name}), data)


@pytest.mark.parametrize("role", WRITERS)
def test_a_writer_sets_the_tmp_size_and_runs_get_it(member, function, role, settings):
    response = edit(member(role), function, tmp_mb="2048")
    assert response.status_code == 302, response.content.decode()[:2000]
    function.refresh_from_db()
    assert function.tmp_mb == 2048
    assert run_trigger(function=function, trigger="manual").tmp_mb == 2048
    function.tmp_mb = None
    function.save()
    assert run_trigger(function=function, trigger="manual").tmp_mb == settings.FUNCTIONS_TMP_MB == 512


@pytest.mark.parametrize("role", [r for r in ROLES if r not in WRITERS])
def test_other_roles_cannot_set_it(member, function, role):
    response = edit(member(role), function, tmp_mb="2048")
    assert response.status_code in (403, 404)
    function.refresh_from_db()
    assert function.tmp_mb is None


@pytest.mark.parametrize("value", ["0", "10241", "-5"])
def test_a_size_out_of_range_is_refused_and_nothing_is_saved(admin_client, function, value):
    response = edit(admin_client, function, tmp_mb=value, description="changed")
    assert response.status_code == 400
    assert "from 1 to 10240" in response.content.decode() or "greater than or equal" in response.content.decode()
    function.refresh_from_db()
    assert function.tmp_mb is None and function.description != "changed"


def test_deploy_function_sets_the_tmp_size(org, tmp_path, capsys):
    package = tmp_path / "code.zip"
    package.write_bytes(make_zip({"main.py": "def handler(event, context):\n    return 1\n"}))
    call_command("deploy_function", "fn", "--org", org.name, "--zip", str(package), "--handler", "main.handler",
                 "--tmp-mb", "1024")
    assert Function.objects.get(name="fn").tmp_mb == 1024
    call_command("deploy_function", "fn", "--org", org.name, "--zip", str(package), "--tmp-mb", "4096")
    assert Function.objects.get(name="fn").tmp_mb == 4096
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["name"] == "fn"
