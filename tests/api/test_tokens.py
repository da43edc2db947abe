"""API tokens: stored as a hash, scoped, expiring, revocable; the page is for Full Admins; manage.py apitoken."""

import hashlib
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import ApiToken
from accounts.services import api_token_create

from .conftest import assert_error

pytestmark = pytest.mark.django_db


def test_a_token_is_stored_only_as_its_hash_and_starts_with_a_scannable_prefix(org):
    token, raw = api_token_create(organization=org, name="CI", scopes=["functions:read"])
    assert raw.startswith("sfn_") and len(raw) > 40
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    row = ApiToken.objects.filter(pk=token.pk).values()[0]
    assert raw not in json.dumps(row, default=str)
    assert token.hint == raw[:10]


def test_a_token_expires_after_90_days_by_default_at_most_a_year_or_never_when_chosen(org):
    token, _ = api_token_create(organization=org, name="a", scopes=["functions:read"])
    assert abs((token.expires_at - timezone.now()) - timedelta(days=90)) < timedelta(minutes=1)
    never, _ = api_token_create(organization=org, name="b", scopes=["functions:read"], expires_in_days=None)
    assert never.expires_at is None
    with pytest.raises(Exception) as refused:
        api_token_create(organization=org, name="c", scopes=["functions:read"], expires_in_days=366)
    assert "365" in str(refused.value)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"name": "", "scopes": ["functions:read"]}, "name"),
        ({"name": "x" * 101, "scopes": ["functions:read"]}, "limit is 100"),
        ({"name": "ok", "scopes": []}, "at least one scope"),
        ({"name": "ok", "scopes": ["functions:admin"]}, "Unknown scope functions:admin"),
        ({"name": "ok", "scopes": ["functions:read"], "expires_in_days": 0}, "1 to 365"),
    ],
)
def test_bad_token_fields_are_refused_with_what_to_fix(org, kwargs, fragment):
    with pytest.raises(Exception) as refused:
        api_token_create(organization=org, **kwargs)
    assert fragment in str(refused.value)
    assert not ApiToken.objects.exists()


def test_requests_without_a_valid_token_are_401(api_client, client):
    assert_error(client.get("/api/functions"), 401, "Authorization: Bearer")
    assert_error(client.get("/api/functions", HTTP_AUTHORIZATION="Bearer nope"), 401, "sfn_")
    assert_error(client.get("/api/functions", HTTP_AUTHORIZATION="Bearer sfn_forged"), 401, "not valid")


def test_a_revoked_token_is_refused_at_once(api_client):
    api = api_client(scopes=["functions:read"], name="old")
    assert api.get("/functions").status_code == 200
    ApiToken.objects.filter(pk=api.token.pk).update(revoked_at=timezone.now())
    assert_error(api.get("/functions"), 401, "“old” was revoked")


def test_an_expired_token_is_refused(api_client):
    api = api_client(scopes=["functions:read"], name="short", expires_in_days=1)
    ApiToken.objects.filter(pk=api.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(api.get("/functions"), 401, "“short” expired")


def test_using_a_token_records_its_last_use(api_client):
    api = api_client(scopes=["functions:read"])
    assert api.token.last_used_at is None
    api.get("/functions")
    api.token.refresh_from_db()
    assert api.token.last_used_at is not None


@pytest.mark.parametrize(
    "scopes, method, path, body, missing",
    [
        (["storage:write"], "get", "/functions", None, "functions:read"),
        (["functions:read"], "post", "/functions", {"name": "x", "config": {"handler": "main.handler"}}, "functions:write"),
        (["functions:read"], "post", "/functions/hello/runs", {"paramsOverride": {}}, "functions:write"),
        (["functions:read"], "delete", "/functions/hello", None, "functions:write"),
        (["functions:read"], "post", "/functions/hello/deploy", None, "functions:write"),
        (["functions:write"], "get", "/functions-storage/ls", None, "storage:read"),
        (["storage:read"], "post", "/functions-storage/files", {"name": "a.txt"}, "storage:write"),
        (["storage:read"], "delete", "/functions-storage/files?name=a.txt", None, "storage:write"),
        (["storage:read"], "get", "/functions-storage/ls?includeUploadUrls=true", None, "storage:write"),
    ],
)
def test_a_token_missing_a_scope_gets_403_naming_it(api_client, org, scopes, method, path, body, missing):
    from tests.factories import make_function

    make_function(org, "hello")
    api = api_client(scopes=scopes)
    if method == "get":
        response = api.client.get(f"/api{path}")
    elif method == "delete":
        response = api.delete(path)
    else:
        response = getattr(api, method)(path, body)
    assert_error(response, 403, missing)


def test_write_scopes_imply_read(api_client, org):
    from tests.factories import make_function

    make_function(org, "hello")
    api = api_client(scopes=["functions:write", "storage:write"])
    assert api.get("/functions/hello").status_code == 200
    assert api.get("/functions-storage/ls").status_code == 200


def test_another_organizations_objects_are_404(api_client, org, other_org):
    from tests.factories import make_function

    make_function(other_org, "theirs")
    api = api_client()
    assert_error(api.get("/functions/theirs"), 404)
    assert_error(api.post("/functions/theirs/runs", {"paramsOverride": {}}), 404)
    assert [f["name"] for f in api.get("/functions").json()["data"]] == []


# --- the page ---

PAGE = "/o/{}/settings/developer/api-tokens/"


@pytest.mark.parametrize("role, status", [
    ("full_admin", 200), ("standard_admin", 403), ("read_only_admin", 403), ("custom_functions_read", 403),
    ("custom_none", 403), ("outsider", 404),
])
def test_only_full_admins_see_the_tokens_page(member, org, role, status):
    assert member(role).get(PAGE.format(org.id)).status_code == status


@pytest.mark.parametrize("role, status", [
    ("standard_admin", 403), ("read_only_admin", 403), ("custom_functions_read", 403), ("outsider", 404),
])
def test_only_full_admins_create_and_revoke_tokens(member, org, role, status):
    token, _ = api_token_create(organization=org, name="keep", scopes=["functions:read"])
    client = member(role)
    assert client.post(PAGE.format(org.id), {"name": "x", "scopes": ["functions:read"], "expires": "90"}).status_code == status
    assert client.post(f"{PAGE.format(org.id)}{token.pk}/revoke/").status_code == status
    token.refresh_from_db()
    assert ApiToken.objects.count() == 1 and token.revoked_at is None


def test_a_full_admin_creates_a_token_that_is_shown_once_then_revokes_it(member, org, users):
    client = member("full_admin")
    response = client.post(PAGE.format(org.id), {"name": "CI deploys", "scopes": ["functions:write"], "expires": "30"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    token = ApiToken.objects.get()
    raw = response.context["created"][1]
    assert raw.startswith("sfn_") and raw in response.content.decode()
    assert token.created_by == users["full_admin"]
    assert abs((token.expires_at - timezone.now()) - timedelta(days=30)) < timedelta(minutes=1)
    # Shown once: the list never carries it again.
    again = client.get(PAGE.format(org.id)).content.decode()
    assert raw not in again and token.hint in again
    client.post(f"{PAGE.format(org.id)}{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_the_page_refuses_a_token_without_scopes_and_keeps_nothing(member, org):
    response = member("full_admin").post(PAGE.format(org.id), {"name": "x", "expires": "90"})
    assert response.status_code == 400 and not ApiToken.objects.exists()


def test_a_never_expiring_token_must_be_chosen_explicitly(member, org):
    member("full_admin").post(PAGE.format(org.id), {"name": "forever", "scopes": ["storage:read"], "expires": "never"})
    assert ApiToken.objects.get().expires_at is None


# --- manage.py apitoken ---


def test_apitoken_prints_the_token_once_as_json(org):
    out = StringIO()
    call_command("apitoken", "--org", org.name, "--name", "CI", "--scopes", "functions:read,functions:write", stdout=out)
    printed = json.loads(out.getvalue())
    assert set(printed) == {"name", "token", "scopes", "expiresAt"}
    assert printed["token"].startswith("sfn_") and printed["scopes"] == ["functions:read", "functions:write"]
    token = ApiToken.objects.get()
    assert token.token_hash == hashlib.sha256(printed["token"].encode()).hexdigest()


def test_apitoken_refuses_bad_input_with_a_message(org):
    with pytest.raises(CommandError, match="Unknown scope"):
        call_command("apitoken", "--org", org.name, "--name", "CI", "--scopes", "everything")
    with pytest.raises(CommandError, match="1 to 365"):
        call_command("apitoken", "--org", org.name, "--name", "CI", "--scopes", "storage:read", "--expires-days", "400")
    with pytest.raises(CommandError, match="No organization"):
        call_command("apitoken", "--org", "nope", "--name", "CI", "--scopes", "storage:read")
    out = StringIO()
    call_command("apitoken", "--org", org.name, "--name", "CI", "--scopes", "storage:read", "--expires-days", "never", stdout=out)
    assert json.loads(out.getvalue())["expiresAt"] is None


def test_an_address_guessing_tokens_is_throttled_and_then_refused_even_a_valid_token(api_client, client, settings):
    api = api_client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert_error(client.get("/api/functions", HTTP_AUTHORIZATION="Bearer sfn_guessed"), 401, "not valid")
    # The guess that reaches the limit, and every request after it, answer in the API's own shape.
    for _ in range(2):
        throttled = client.get("/api/functions", HTTP_AUTHORIZATION="Bearer sfn_guessed")
        assert_error(throttled, 429, "unknown, expired or revoked tokens")
        assert int(throttled["Retry-After"]) > 0
    # The lock is the address's: a right token from it waits too, as a right password does.
    assert_error(api.get("/functions"), 429, "Retry after")


def test_a_few_wrong_tokens_do_not_lock_an_address_out(api_client, client, settings):
    api = api_client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.get("/api/functions", HTTP_AUTHORIZATION="Bearer sfn_typo")
    assert api.get("/functions").status_code == 200
