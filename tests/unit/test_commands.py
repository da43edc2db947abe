import json

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from accounts.models import Membership, Organization


def run(capsys, *args):
    call_command(*args)
    return json.loads(capsys.readouterr().out)


def test_createorg_prints_the_organization(db, capsys):
    out = run(capsys, "createorg", "Fleet Co", "--region", "ca", "--timezone", "America/Toronto")
    org = Organization.objects.get(name="Fleet Co")
    assert out == {"id": org.id, "name": "Fleet Co", "region": "ca", "timezone": "America/Toronto"}


@pytest.mark.parametrize(
    "args,message",
    [(["--region", "xx"], "Unknown region"), (["--timezone", "Nowhere/Land"], "IANA time zone")],
)
def test_createorg_refuses_bad_input(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("createorg", "Fleet Co", *args)
    assert not Organization.objects.exists()


def test_createorg_refuses_a_duplicate_name(org):
    with pytest.raises(CommandError, match="already exists"):
        call_command("createorg", "ACME FLEET")


def test_adduser_creates_a_member_who_can_sign_in(org, capsys):
    out = run(capsys, "adduser", "Ops@Example.com", "--org", "acme fleet", "--role", "standard_admin", "--password", "a-long-enough-pass")
    assert out["email"] == "ops@example.com" and out["role"] == "standard_admin" and out["createdUser"] is True
    assert authenticate(username="ops@example.com", password="a-long-enough-pass") is not None


def test_adduser_accepts_a_custom_role_by_name(users, org, capsys):
    out = run(capsys, "adduser", "v@example.com", "--org", org.name, "--role", "functions viewer")
    assert Membership.objects.get(user__email="v@example.com").custom_role.name == "Functions viewer"
    assert out["role"].startswith("custom:")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--org", "Nope", "--role", "full_admin"], "No organization named"),
        (["--org", "Acme Fleet", "--role", "superuser"], "Unknown role"),
        (["--org", "Acme Fleet", "--role", "full_admin", "--password", "123"], "too short"),
    ],
)
def test_adduser_refuses_bad_input(org, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("adduser", "z@example.com", *args)
    assert not Membership.objects.filter(user__email="z@example.com").exists()


def test_ensure_demo_is_idempotent_and_keeps_the_password(db, capsys):
    first = run(capsys, "ensure_demo")
    second = run(capsys, "ensure_demo")
    assert first == second
    assert authenticate(username=first["email"], password=first["password"]) is not None
    assert Membership.objects.filter(user__email=first["email"], builtin_role="full_admin").count() == 1
