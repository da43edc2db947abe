"""The vault's services: validation, history without values, imported names, what a run receives."""

import json

import pytest
from django.core.exceptions import ValidationError

from functions.models import AuditEntry
from secrets_vault import services
from secrets_vault.models import Secret
from tests.factories import make_function

VALUE = "s3cr3t-Vaulted-Value-7781"


@pytest.fixture
def fn(org):
    return make_function(org, "vaulted")


@pytest.fixture
def admin(users):
    return users["full_admin"]


def snapshot(function):
    return list(Secret.objects.of(function).order_by("pk").values_list("name", "ciphertext", "key_id"))


def test_setting_a_secret_stores_only_ciphertext_and_a_run_gets_the_value(fn, admin):
    secret, created = services.secret_set(function=fn, name="API_KEY", value=VALUE, actor=admin)
    assert created is True
    stored = Secret.objects.get(pk=secret.pk)
    assert VALUE not in stored.ciphertext and stored.key_id and not stored.value_missing
    assert stored.updated_by == admin and stored.created_by == admin
    assert services.secrets_for_run(function=fn) == {"API_KEY": VALUE}


def test_setting_an_existing_name_replaces_the_value(fn, admin):
    first, _ = services.secret_set(function=fn, name="API_KEY", value=VALUE, actor=admin)
    second, created = services.secret_set(function=fn, name="API_KEY", value="another-value", actor=admin)
    assert created is False and second.pk == first.pk
    assert services.secrets_for_run(function=fn) == {"API_KEY": "another-value"}


def test_names_are_case_sensitive(fn, admin):
    services.secret_set(function=fn, name="token", value="lower-value", actor=admin)
    services.secret_set(function=fn, name="TOKEN", value="upper-value", actor=admin)
    assert services.secrets_for_run(function=fn) == {"TOKEN": "upper-value", "token": "lower-value"}


def test_values_keep_their_whitespace_and_any_unicode(fn, admin):
    value = "  spaced\tvalue with ünïcödé ✓ and a newline\n"
    services.secret_set(function=fn, name="A", value=value, actor=admin)
    services.secret_set(function=fn, name="B", value=value.encode(), actor=admin)
    assert services.secrets_for_run(function=fn) == {"A": value, "B": value}


BAD_NAMES = [
    ("", "needs a name"),
    ("x" * 129, "at most 128 characters"),
    ("has space", "may only contain"),
    ("slash/name", "may only contain"),
    ("ümlaut", "may only contain"),
    ("new\nline", "may only contain"),
]


@pytest.mark.parametrize("name,message", BAD_NAMES, ids=[m for _, m in BAD_NAMES][:1] + ["long", "space", "slash", "unicode", "newline"])
def test_a_bad_name_is_refused_with_a_message_and_nothing_changes(fn, admin, name, message):
    services.secret_set(function=fn, name="KEEP", value=VALUE, actor=admin)
    before, history = snapshot(fn), AuditEntry.objects.count()
    with pytest.raises(ValidationError, match=message):
        services.secret_set(function=fn, name=name, value=VALUE, actor=admin)
    assert snapshot(fn) == before and AuditEntry.objects.count() == history


def test_a_name_of_exactly_128_allowed_characters_is_fine(fn, admin):
    name = ("Ab9_.-" * 22)[:128]
    services.secret_set(function=fn, name=name, value=VALUE, actor=admin)
    assert services.secret_names(function=fn) == [name]


BAD_VALUES = [
    ("", "cannot be empty"),
    ("x" * (64 * 1024 + 1), "larger than 64 KB"),
    ("é" * (32 * 1024 + 1), "larger than 64 KB"),  # 32K+1 characters, but 64K+2 bytes of UTF-8
    (b"\xff\xfe not utf-8", "not valid UTF-8"),
    ("lone \udcff surrogate", "not valid UTF-8"),
    (12345, "must be text"),
]


@pytest.mark.parametrize("value,message", BAD_VALUES, ids=["empty", "too-big", "too-big-utf8", "bytes", "surrogate", "number"])
def test_a_bad_value_is_refused_without_quoting_it_and_nothing_changes(fn, admin, value, message):
    services.secret_set(function=fn, name="KEEP", value=VALUE, actor=admin)
    before, history = snapshot(fn), AuditEntry.objects.count()
    for name in ("KEEP", "NEW"):  # neither a replacement nor an addition
        with pytest.raises(ValidationError, match=message) as caught:
            services.secret_set(function=fn, name=name, value=value, actor=admin)
        text = " ".join(caught.value.messages)
        assert "65537" not in text and "65538" not in text and "not utf-8" not in text
    assert snapshot(fn) == before and AuditEntry.objects.count() == history
    assert services.secrets_for_run(function=fn) == {"KEEP": VALUE}


def test_a_value_of_exactly_64_kb_is_fine(fn, admin):
    services.secret_set(function=fn, name="BIG", value="x" * 64 * 1024, actor=admin)
    assert len(services.secrets_for_run(function=fn)["BIG"]) == 64 * 1024


def test_adding_a_duplicate_name_is_refused_and_keeps_the_value(fn, admin):
    services.secret_create(function=fn, name="API_KEY", value=VALUE, actor=admin)
    before = snapshot(fn)
    with pytest.raises(ValidationError, match="“API_KEY” already exists"):
        services.secret_create(function=fn, name="API_KEY", value="other-value", actor=admin)
    assert snapshot(fn) == before


def test_a_function_holds_at_most_100_secrets(fn, admin):
    for i in range(100):
        services.secret_set(function=fn, name=f"S{i}", value=f"value-{i}", actor=admin)
    before = snapshot(fn)
    with pytest.raises(ValidationError, match="at most 100 secrets"):
        services.secret_set(function=fn, name="ONE_MORE", value=VALUE, actor=admin)
    with pytest.raises(ValidationError, match="limit of 100"):
        services.secret_create_missing(function=fn, names=["ONE_MORE"], actor=admin)
    assert snapshot(fn) == before
    # replacing one of the hundred still works
    services.secret_set(function=fn, name="S7", value="new-value", actor=admin)


def test_the_limit_is_per_function(org, fn, admin):
    for i in range(100):
        services.secret_set(function=fn, name=f"S{i}", value=f"value-{i}", actor=admin)
    with pytest.raises(ValidationError, match="at most 100 secrets"):
        services.secret_set(function=fn, name="S100", value=VALUE, actor=admin)
    other = make_function(org, "other")
    services.secret_set(function=other, name="S1", value=VALUE, actor=admin)
    assert services.secrets_for_run(function=other) == {"S1": VALUE}
    assert len(services.secrets_for_run(function=fn)) == 100


def test_rename_keeps_the_value_and_refuses_bad_or_taken_names(fn, admin):
    secret, _ = services.secret_set(function=fn, name="OLD", value=VALUE, actor=admin)
    services.secret_set(function=fn, name="TAKEN", value="taken-value", actor=admin)
    for bad, message in (("TAKEN", "already exists"), ("", "needs a name"), ("a b", "may only contain"), ("x" * 129, "128")):
        before = snapshot(fn)
        with pytest.raises(ValidationError, match=message):
            services.secret_rename(secret=secret, new_name=bad, actor=admin)
        assert snapshot(fn) == before
    renamed = services.secret_rename(secret=secret, new_name="NEW", actor=admin)
    assert renamed.name == "NEW" and renamed.pk == secret.pk
    assert services.secrets_for_run(function=fn) == {"NEW": VALUE, "TAKEN": "taken-value"}


def test_delete_removes_the_secret(fn, admin):
    secret, _ = services.secret_set(function=fn, name="GONE", value=VALUE, actor=admin)
    services.secret_delete(secret=secret, actor=admin)
    assert services.secrets_for_run(function=fn) == {}
    assert not Secret.objects.filter(pk=secret.pk).exists()


def test_every_change_is_in_the_history_without_the_value(fn, admin):
    secret, _ = services.secret_set(function=fn, name="API_KEY", value=VALUE, actor=admin)
    services.secret_set(function=fn, name="API_KEY", value=VALUE + "-2", actor=admin)
    secret = services.secret_rename(secret=secret, new_name="RENAMED", actor=admin)
    services.secret_create_missing(function=fn, names=["IMPORTED"], actor=admin)
    services.secret_set(function=fn, name="IMPORTED", value=VALUE + "-3", actor=None, actor_label="manage.py set_secret")
    services.secret_delete(secret=secret, actor=admin)
    entries = list(AuditEntry.objects.filter(function=fn).order_by("id"))
    assert [e.action for e in entries] == [
        "secret_added", "secret_value_replaced", "secret_renamed", "secrets_imported", "secret_value_set", "secret_deleted",
    ]
    assert [e.summary for e in entries] == [
        "Added secret “API_KEY”", "Replaced the value of secret “API_KEY”", "Renamed secret “API_KEY” to “RENAMED”",
        "Added secrets without values from import.metadata.json: IMPORTED", "Set the missing value of secret “IMPORTED”",
        "Deleted secret “RENAMED”",
    ]
    assert entries[0].actor == admin and entries[0].actor_label == admin.email
    assert entries[4].actor is None and entries[4].actor_label == "manage.py set_secret"
    assert entries[2].changes == {"secret": {"from": "API_KEY", "to": "RENAMED"}}
    assert entries[3].changes == {"secret_names": {"from": None, "to": ["IMPORTED"]}}
    everything = json.dumps([[e.summary, e.changes, e.actor_label] for e in entries])
    assert VALUE not in everything and VALUE[:8] not in everything
    assert str(len(VALUE)) not in everything


def test_imported_names_are_created_without_values_and_existing_ones_are_untouched(fn, admin):
    services.secret_set(function=fn, name="EXISTING", value=VALUE, actor=admin)
    before = snapshot(fn)
    created = services.secret_create_missing(function=fn, names=["EXISTING", "NEW_ONE", "NEW_TWO", "NEW_ONE"], actor=admin)
    assert created == ["NEW_ONE", "NEW_TWO"]
    assert snapshot(fn)[0] == before[0]
    assert services.secrets_missing_values(function=fn) == ["NEW_ONE", "NEW_TWO"]
    # a run gets the values there are; the caller warns about the rest
    assert services.secrets_for_run(function=fn) == {"EXISTING": VALUE}
    assert services.secret_create_missing(function=fn, names=["EXISTING", "NEW_ONE"], actor=admin) == []


def test_an_import_with_a_bad_name_creates_nothing(fn, admin):
    with pytest.raises(ValidationError, match="import.metadata.json.*may only contain"):
        services.secret_create_missing(function=fn, names=["GOOD", "bad name"], actor=admin)
    assert snapshot(fn) == [] and not AuditEntry.objects.filter(function=fn).exists()


def test_setting_a_missing_value_clears_the_warning(fn, admin):
    services.secret_create_missing(function=fn, names=["LATER"], actor=admin)
    services.secret_set(function=fn, name="LATER", value=VALUE, actor=admin)
    assert services.secrets_missing_values(function=fn) == []
    assert services.secrets_for_run(function=fn) == {"LATER": VALUE}


def test_a_function_without_secrets_gets_an_empty_dict(fn):
    assert services.secrets_for_run(function=fn) == {} and services.secrets_missing_values(function=fn) == []


def test_the_redactor_of_a_function_masks_its_current_values(fn, admin):
    services.secret_set(function=fn, name="API_KEY", value=VALUE, actor=admin)
    services.secret_set(function=fn, name="SHORT", value="abc", actor=admin)
    assert services.secrets_redactor(function=fn).redact(f"key={VALUE} short=abc") == "key=**** short=abc"


def test_the_redactor_skips_a_value_no_key_can_read(fn, admin):
    services.secret_set(function=fn, name="API_KEY", value=VALUE, actor=admin)
    broken, _ = services.secret_set(function=fn, name="BROKEN", value="broken-value", actor=admin)
    Secret.objects.filter(pk=broken.pk).update(ciphertext=broken.ciphertext[:-4] + "AAAA")
    assert services.secrets_redactor(function=fn).redact(f"{VALUE} broken-value") == "**** broken-value"
    with pytest.raises(services.SecretDecryptionError, match="“BROKEN”"):
        services.secrets_for_run(function=fn)


def test_secrets_of_a_deleted_function_go_with_it(fn, admin):
    services.secret_set(function=fn, name="API_KEY", value=VALUE, actor=admin)
    fn.deployed_version = None  # the catalogue's delete clears it first (a version is PROTECTed while deployed)
    fn.save(update_fields=["deployed_version"])
    fn.delete()
    assert not Secret.objects.exists()


# --- the public API's whole-set replacement -------------------------------------------------------


def test_replacing_the_whole_set_adds_keeps_replaces_and_deletes(fn, admin):
    services.secret_set(function=fn, name="KEEP", value="keep-value", actor=admin)
    services.secret_set(function=fn, name="CHANGE", value="old-value", actor=admin)
    services.secret_set(function=fn, name="DROP", value="drop-value", actor=admin)
    result = services.secrets_replace(
        function=fn, secrets={"KEEP": "", "CHANGE": "new-value", "NEW": "added-value", "NAMED_ONLY": None},
        actor=None, actor_label="API token “ci”",
    )
    assert result == {"added": ["NEW", "NAMED_ONLY"], "replaced": ["CHANGE"], "deleted": ["DROP"]}
    assert services.secrets_for_run(function=fn) == {"CHANGE": "new-value", "KEEP": "keep-value", "NEW": "added-value"}
    assert services.secrets_missing_values(function=fn) == ["NAMED_ONLY"]
    entry = AuditEntry.objects.filter(function=fn).first()
    assert entry.action == "secrets_replaced" and entry.actor_label == "API token “ci”"
    assert entry.summary == "Secrets: added NEW, NAMED_ONLY; replaced the value of CHANGE; deleted DROP"
    assert "value" not in json.dumps(entry.changes).replace("secret_names", "")


@pytest.mark.parametrize(
    "secrets,message",
    [
        ([("A", "a-value"), ("A", "b-value")], "appears more than once"),
        ({"bad name": "x-value"}, "may only contain"),
        ({"BIG": "x" * (64 * 1024 + 1)}, "BIG: The value is larger than 64 KB"),
        ({f"S{i}": "v-value" for i in range(101)}, "at most 100 secrets"),
        ([("only-a-name",)], "needs a name and a value"),
    ],
    ids=["duplicate", "bad-name", "too-big", "too-many", "malformed"],
)
def test_a_bad_whole_set_changes_nothing(fn, admin, secrets, message):
    services.secret_set(function=fn, name="KEEP", value=VALUE, actor=admin)
    before, history = snapshot(fn), AuditEntry.objects.count()
    with pytest.raises(ValidationError, match=message):
        services.secrets_replace(function=fn, secrets=secrets, actor=admin)
    assert snapshot(fn) == before and AuditEntry.objects.count() == history


def test_replacing_with_the_same_names_and_empty_values_records_nothing(fn, admin):
    services.secret_set(function=fn, name="KEEP", value=VALUE, actor=admin)
    history = AuditEntry.objects.count()
    assert services.secrets_replace(function=fn, secrets={"KEEP": ""}, actor=admin) == {"added": [], "replaced": [], "deleted": []}
    assert AuditEntry.objects.count() == history


def test_a_runs_one_read_gives_the_values_the_missing_names_and_the_last_change(fn, org, admin):
    from django.db.models import Max

    assert services.secrets_read_for_run(function=fn) == services.RunSecrets(values={}, missing=[], changed=None)
    services.secret_set(function=fn, name="B_KEY", value=VALUE, actor=admin)
    services.secret_create_missing(function=fn, names=["LATER", "A_LATER"], actor=admin)
    services.secret_set(function=fn, name="A_KEY", value="another-value", actor=admin)
    services.secret_set(function=make_function(org, "other"), name="ELSEWHERE", value=VALUE, actor=admin)
    read = services.secrets_read_for_run(function=fn)
    assert read.values == services.secrets_for_run(function=fn) == {"A_KEY": "another-value", "B_KEY": VALUE}
    assert list(read.values) == ["A_KEY", "B_KEY"]
    assert read.missing == services.secrets_missing_values(function=fn) == ["A_LATER", "LATER"]
    assert read.changed == Secret.objects.of(fn).aggregate(at=Max("updated_at"))["at"]
    broken = Secret.objects.get(function=fn, name="B_KEY")
    Secret.objects.filter(pk=broken.pk).update(ciphertext=broken.ciphertext[:-4] + "AAAA")
    with pytest.raises(services.SecretDecryptionError, match="“B_KEY”"):
        services.secrets_read_for_run(function=fn)
