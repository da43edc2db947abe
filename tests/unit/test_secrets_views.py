"""The Secrets tab for every role, and no page of a Function ever showing a value."""

import pytest
from django.urls import get_resolver, reverse
from django.urls.exceptions import NoReverseMatch

from functions.models import RunStatus
from secrets_vault import services
from secrets_vault.models import Secret
from tests.conftest import READ_STATUS, READERS, ROLES, WRITERS
from tests.factories import make_function, make_run

VALUES = {"API_KEY": "s3cr3t-Alpha-0001", "DB_PASSWORD": "p@ss w0rd <b>&amp; \"q\"", "PEM": "-----BEGIN-----\nAAAA\n-----END-----"}


@pytest.fixture
def fn(org, users):
    function = make_function(org, "vaulted")
    for name, value in VALUES.items():
        services.secret_set(function=function, name=name, value=value, actor=users["full_admin"])
    services.secret_create_missing(function=function, names=["LATER"], actor=users["full_admin"])
    return function


def url(name, fn, **kwargs):
    return reverse(f"functions:{name}", kwargs={"org_id": fn.organization_id, "name": fn.name, **kwargs})


def secret(fn, name):
    return Secret.objects.get(function=fn, name=name)


def state(fn):
    return sorted(Secret.objects.of(fn).values_list("name", "ciphertext"), key=lambda r: r[0])


def assert_no_value_in(content):
    text = content.decode() if isinstance(content, bytes) else content
    for value in VALUES.values():
        for form in (value, value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")):
            assert form not in text
    assert "s3cr3t" not in text and "p@ss" not in text


# --- the list: everyone with Functions read sees the names ---------------------------------------

@pytest.mark.parametrize("role", ROLES)
def test_the_secrets_tab_answers_each_role(member, fn, role):
    response = member(role).get(url("secrets", fn))
    assert response.status_code == READ_STATUS[role]
    if response.status_code == 200:
        content = response.content.decode()
        for name in [*VALUES, "LATER"]:
            assert name in content
        assert "value missing" in content and "LATER" in content
        assert ("Add a secret" in content) == (role in WRITERS)
        assert ('name="value"' in content) == (role in WRITERS)
        assert_no_value_in(content)


def test_the_tab_shows_who_changed_each_secret_and_when(member, fn, users):
    content = member("read_only_admin").get(url("secrets", fn)).content.decode()
    assert users["full_admin"].email in content and "<time datetime=" in content


def test_the_history_tab_lists_the_changes_by_name(member, fn):
    history = url("detail", fn) + "history/"
    content = member("custom_functions_read").get(history).content.decode()
    assert "Added secret “API_KEY”" in content and "Added secrets without values from import.metadata.json: LATER" in content
    assert_no_value_in(content)


def test_the_value_inputs_are_write_only_password_fields(member, fn):
    content = member("full_admin").get(url("secrets", fn)).content.decode()
    assert 'type="password" name="value" autocomplete="new-password"' in content
    edit = member("full_admin").get(url("secret_edit", fn, secret_id=secret(fn, "API_KEY").pk)).content.decode()
    assert 'type="password" name="value" autocomplete="new-password"' in edit


# --- adding ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_adding_a_secret_is_for_writers_only(member, fn, role):
    before = state(fn)
    response = member(role).post(url("secrets", fn), {"name": "NEW_ONE", "value": "brand-new-value"})
    if role in WRITERS:
        assert response.status_code == 302 and response["Location"] == url("secrets", fn)
        assert services.secrets_for_run(function=fn)["NEW_ONE"] == "brand-new-value"
        assert secret(fn, "NEW_ONE").updated_by.email == f"{role}@example.com"
    else:
        assert response.status_code == (404 if role == "outsider" else 403)
        assert state(fn) == before


BAD_ADDS = [
    ({"name": "", "value": "the-bad-value-1"}, "A secret needs a name."),
    ({"name": "API_KEY", "value": "the-bad-value-2"}, "A secret named “API_KEY” already exists"),
    ({"name": "x" * 129, "value": "the-bad-value-3"}, "at most 128 characters"),
    ({"name": "bad name", "value": "the-bad-value-4"}, "may only contain letters"),
    ({"name": "BIG", "value": "the-bad-value-5" + "x" * 64 * 1024}, "larger than 64 KB"),
    ({"name": "EMPTY", "value": ""}, "Enter the secret&#x27;s value."),
]


@pytest.mark.parametrize("data,message", BAD_ADDS, ids=["empty-name", "duplicate", "long-name", "bad-chars", "too-big", "empty-value"])
def test_a_bad_addition_says_why_changes_nothing_and_never_echoes_the_value(member, fn, data, message):
    before = state(fn)
    response = member("full_admin").post(url("secrets", fn), data)
    content = response.content.decode()
    assert response.status_code == 400 and message in content
    assert data["value"][:15] not in content or not data["value"]
    assert state(fn) == before


def test_a_value_that_is_not_utf8_is_refused(member, fn):
    before = state(fn)
    body = b"name=RAW&value=%FF%FEabc"
    response = member("full_admin").post(url("secrets", fn), body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and "not valid UTF-8" in response.content.decode()
    assert state(fn) == before


@pytest.mark.slow
def test_the_101st_secret_is_refused_on_the_page(member, fn, users):
    for i in range(100 - Secret.objects.of(fn).count()):
        services.secret_set(function=fn, name=f"FILL_{i}", value=f"fill-value-{i}", actor=users["full_admin"])
    before = state(fn)
    response = member("full_admin").post(url("secrets", fn), {"name": "ONE_MORE", "value": "one-more-value"})
    assert response.status_code == 400 and "at most 100 secrets" in response.content.decode()
    assert state(fn) == before


# --- editing: value, rename, delete -----------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_the_edit_page_is_for_writers_only(member, fn, role):
    response = member(role).get(url("secret_edit", fn, secret_id=secret(fn, "API_KEY").pk))
    expected = 200 if role in WRITERS else 404 if role == "outsider" else 403
    assert response.status_code == expected
    if expected == 200:
        assert_no_value_in(response.content)


@pytest.mark.parametrize("role", ROLES)
def test_replacing_a_value_is_for_writers_only(member, fn, role):
    before = state(fn)
    response = member(role).post(url("secret_value", fn, secret_id=secret(fn, "API_KEY").pk), {"value": "replaced-value"})
    if role in WRITERS:
        assert response.status_code == 302
        assert services.secrets_for_run(function=fn)["API_KEY"] == "replaced-value"
    else:
        assert response.status_code == (404 if role == "outsider" else 403)
        assert state(fn) == before


def test_setting_a_missing_value_from_the_list(member, fn):
    response = member("standard_admin").post(url("secret_value", fn, secret_id=secret(fn, "LATER").pk), {"value": "later-value"})
    assert response.status_code == 302
    assert services.secrets_missing_values(function=fn) == []
    page = member("standard_admin").get(url("secrets", fn)).content.decode()
    assert "Set the value of “LATER”" in page or "value missing" not in page


@pytest.mark.parametrize(
    "value,message",
    [("", "Enter the secret&#x27;s value."), ("too-big-value" + "y" * 64 * 1024, "larger than 64 KB")],
    ids=["empty", "too-big"],
)
def test_a_bad_replacement_value_says_why_and_changes_nothing(member, fn, value, message):
    before = state(fn)
    response = member("full_admin").post(url("secret_value", fn, secret_id=secret(fn, "API_KEY").pk), {"value": value})
    assert response.status_code == 400 and message in response.content.decode()
    assert "too-big-value" not in response.content.decode()
    assert state(fn) == before


@pytest.mark.parametrize("role", ROLES)
def test_renaming_is_for_writers_only(member, fn, role):
    before = state(fn)
    response = member(role).post(url("secret_rename", fn, secret_id=secret(fn, "API_KEY").pk), {"name": "API_KEY_V2"})
    if role in WRITERS:
        assert response.status_code == 302
        assert services.secrets_for_run(function=fn)["API_KEY_V2"] == VALUES["API_KEY"]
    else:
        assert response.status_code == (404 if role == "outsider" else 403)
        assert state(fn) == before


@pytest.mark.parametrize(
    "name,message",
    [("DB_PASSWORD", "A secret named “DB_PASSWORD” already exists"), ("", "A secret needs a name."), ("no/slash", "may only contain")],
    ids=["duplicate", "empty", "bad-chars"],
)
def test_a_bad_rename_says_why_and_changes_nothing(member, fn, name, message):
    before = state(fn)
    response = member("full_admin").post(url("secret_rename", fn, secret_id=secret(fn, "API_KEY").pk), {"name": name})
    assert response.status_code == 400 and message in response.content.decode()
    assert state(fn) == before
    assert_no_value_in(response.content)


@pytest.mark.parametrize("role", ROLES)
def test_deleting_is_for_writers_only(member, fn, role):
    before = state(fn)
    response = member(role).post(url("secret_delete", fn, secret_id=secret(fn, "API_KEY").pk))
    if role in WRITERS:
        assert response.status_code == 302
        assert "API_KEY" not in services.secrets_for_run(function=fn)
    else:
        assert response.status_code == (404 if role == "outsider" else 403)
        assert state(fn) == before


def test_delete_asks_for_confirmation_in_the_page(member, fn):
    content = member("full_admin").get(url("secrets", fn)).content.decode()
    assert 'data-confirm="Delete the secret API_KEY?' in content


@pytest.mark.parametrize("view", ["secret_edit", "secret_value", "secret_rename", "secret_delete"])
def test_a_secret_of_another_function_is_not_found(member, org, fn, users, view):
    other = make_function(org, "other")
    foreign, _ = services.secret_set(function=other, name="THEIRS", value="their-value", actor=users["full_admin"])
    client = member("full_admin")
    target = url(view, fn, secret_id=foreign.pk)
    response = client.get(target) if view == "secret_edit" else client.post(target, {"value": "x-value", "name": "X"})
    assert response.status_code == 404
    assert services.secrets_for_run(function=other) == {"THEIRS": "their-value"}


@pytest.mark.parametrize("view", ["secret_value", "secret_rename", "secret_delete"])
def test_the_write_views_refuse_get(member, fn, view):
    assert member("full_admin").get(url(view, fn, secret_id=secret(fn, "API_KEY").pk)).status_code == 405


def test_a_value_that_cannot_be_decrypted_is_flagged_on_the_tab(member, fn):
    Secret.objects.filter(pk=secret(fn, "API_KEY").pk).update(key_id="deadbeef")
    content = member("read_only_admin").get(url("secrets", fn)).content.decode()
    assert "cannot decrypt" in content and "Cannot be decrypted with the configured keys" in content


# --- no page of the Function ever shows a value -----------------------------------------------------


def function_pages(fn, run):
    """Every address of the `functions` namespace that takes this Function's name, as far as it reverses now."""
    resolver = get_resolver().namespace_dict["functions"][1]
    names = sorted(key for key in resolver.reverse_dict if isinstance(key, str))
    extra_kwargs = [{}, {"secret_id": secret(fn, "API_KEY").pk}, {"secret_id": secret(fn, "LATER").pk},
                    {"correlation_id": run.correlation_id}]
    pages = set()
    for name in names:
        for extra in extra_kwargs:
            try:
                pages.add(reverse(f"functions:{name}", kwargs={"org_id": fn.organization_id, "name": fn.name, **extra}))
            except NoReverseMatch:
                pass
    return sorted(pages)


@pytest.mark.parametrize("role", WRITERS + READERS)
def test_no_page_of_a_function_with_secrets_shows_a_value(member, fn, role):
    run = make_run(fn, status=RunStatus.QUEUED)
    pages = function_pages(fn, run)
    must_have = {url("detail", fn), url("secrets", fn), url("secret_edit", fn, secret_id=secret(fn, "API_KEY").pk)}
    assert must_have <= set(pages)
    client = member(role)
    seen = 0
    for page in pages:
        response = client.get(page)
        assert response.status_code < 500, page
        if response.status_code == 200 and hasattr(response, "content"):
            assert_no_value_in(response.content)
            seen += 1
        elif response.status_code == 200:  # streamed (a download)
            assert_no_value_in(b"".join(response.streaming_content))
            seen += 1
    assert seen >= (3 if role in WRITERS else 2)
    print(f"{role}: checked {seen} of {len(pages)} pages: {pages}")
