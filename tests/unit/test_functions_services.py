"""functions.services: the catalogue's rules, as the pages, the API and the command meet them."""

import io
import json
import stat
import uuid
import zipfile

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import connection

from functions import services
from functions.audit import AuditAction
from functions.models import AuditEntry, CodeVersion, Function, Run, RunStatus
from secrets_vault.services import secret_names
from tests.factories import make_run, make_zip, zip_of_zeros

HELLO = "def handler(event, context):\n    return {'ok': True}\n"


def bundle(files=None, **extra):
    """A zip of {path: text} as a seekable file, unique unless the files are given."""
    files = files if files is not None else {"main.py": HELLO, "VERSION": uuid.uuid4().hex, **extra}
    return io.BytesIO(make_zip(files))


def raw_zip(items, compression=zipfile.ZIP_DEFLATED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in items:
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


@pytest.fixture(autouse=True)
def own_storage(settings, tmp_path):
    """A storage folder of the test's own, so what one test stores never shows up in another."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }


def create(org, user=None, **fields):
    values = {"name": "hello", "handler": "main.handler", "bundle": bundle(), **fields}
    return services.function_create(organization=org, actor=user, **values)


def refusal(call, **kwargs):
    with pytest.raises(ValidationError) as info:
        call(**kwargs)
    return info.value


def messages_of(error, field):
    return " ".join(error.message_dict[field])


def nothing_created(org):
    return not Function.objects.of(org).exists() and not CodeVersion.objects.filter(function__organization=org).exists()


# --- create ----------------------------------------------------------------------------


def test_it_creates_a_function_with_version_1_deployed(org, users):
    function = create(
        org, users["full_admin"], description="Says hello", event_parameters=[("GREETING", "hi"), ("TO", "world")],
        visible_to_customers=True, message="first", timeout_seconds=60,
    )
    version = function.deployed_version
    assert (version.number, version.handler, version.message, version.file_count) == (1, "main.handler", "first", 2)
    assert function.event_parameters == [{"name": "GREETING", "value": "hi"}, {"name": "TO", "value": "world"}]
    assert function.visible_to_customers and function.timeout_seconds == 60
    assert version.storage_key == services.package_key(org, version.sha256) == f"packages/{org.id}/{version.sha256}.zip"
    with services.code_version_open(version) as package:
        assert zipfile.ZipFile(package).read("main.py").decode() == HELLO
    entry = AuditEntry.objects.get(function=function)
    assert (entry.action, entry.actor_label) == (AuditAction.CREATED, "full_admin@example.com")
    assert "Created hello with version 1" in entry.summary


def test_it_accepts_parameters_as_a_dict_or_rows(org):
    a = create(org, name="a", event_parameters={"X": "1"})
    b = create(org, name="b", event_parameters=[{"name": "X", "value": "1"}])
    assert a.event_parameters == b.event_parameters == [{"name": "X", "value": "1"}]


@pytest.mark.parametrize(
    "name, says",
    [
        ("", "Function name is required"),
        ("x" * 36, "is 36 characters long; use 1-35 characters"),
        ("hello world", "contains ' '"),
        ("héllo", "contains 'é'"),
        ("a/b", "contains '/'"),
        ("storage", "“storage” is reserved"),
        ("NEW", "“NEW” is reserved"),
    ],
)
def test_it_refuses_a_bad_name(org, name, says):
    error = refusal(create, org=org, name=name)
    assert says in messages_of(error, "name")
    assert nothing_created(org)


def test_it_refuses_a_name_already_used_in_the_organization_whatever_the_case(org):
    create(org, name="Report")
    error = refusal(create, org=org, name="report")
    assert "A Function named “report” already exists in Acme Fleet" in messages_of(error, "name")
    assert Function.objects.of(org).count() == 1 and CodeVersion.objects.count() == 1


def test_the_same_name_may_exist_in_another_organization(org, other_org):
    create(org, name="report")
    assert create(other_org, name="report").organization == other_org


@pytest.mark.parametrize(
    "handler, files, says",
    [
        ("main", None, "is not valid: use path/to/module.function"),
        ("main.handler()", None, "is not valid"),
        ("", None, "Handler is required"),
        ("app.handler", None, "needs the file app.py at the root of the zip"),
        ("main.other", None, "main.py has no top-level function named 'other'"),
        ("main.handler", {"main.py": "async def handler(event, context):\n    pass\n"}, "is an async def"),
        ("main.handler", {"main.py": "def handler(event):\n    pass\n"}, "takes 1 positional parameter (event)"),
        ("main.handler", {"main.py": "def handler(a, b, c):\n    pass\n"}, "takes 3 positional parameters"),
        ("main.handler", {"main.py": "def handler(event, context)\n    pass\n"}, "main.py line 1:"),
    ],
)
def test_it_refuses_a_bad_handler(org, handler, files, says):
    error = refusal(create, org=org, handler=handler, bundle=bundle(files) if files else bundle())
    assert says in messages_of(error, "handler")
    assert nothing_created(org)


def test_a_syntax_error_names_the_file_and_line(org):
    source = "import os\n\ndef handler(event, context):\n    return (\n"
    error = refusal(create, org=org, handler="lib/app.handler", bundle=bundle({"lib/app.py": source}))
    assert messages_of(error, "handler").startswith("lib/app.py line 4:")


def _symlink_zip():
    link = zipfile.ZipInfo("link.py")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    return raw_zip([("main.py", HELLO), (link, "/etc/passwd")])


def _corrupt_zip():
    payload = b"print('hello')\n" * 50
    data = bytearray(raw_zip([("main.py", HELLO), ("data.py", payload)], zipfile.ZIP_STORED).getvalue())
    data[data.index(payload) + 10] ^= 0xFF
    return io.BytesIO(bytes(data))


def _over_200_mb_uncompressed():
    return zip_of_zeros({"main.py": HELLO}, "data.bin", 201)


def _over_50_mb():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("main.py", HELLO)
        archive.writestr("blob.bin", b"\1" * (50 * 1024 * 1024 + 10))
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda: io.BytesIO(b"hello, I am text, not a zip\n"), "is a text file, not a .zip"),
        (lambda: io.BytesIO(b""), "The uploaded file is empty"),
        (_corrupt_zip, "The zip is damaged: 'data.py' fails its checksum"),
        (lambda: io.BytesIO(make_zip({"main.py": HELLO})[:60]), "The zip is damaged"),
        (_over_50_mb, "the limit is 50 MB compressed"),
        (_over_200_mb_uncompressed, "larger than 200 MB when uncompressed"),
        (lambda: raw_zip([(f"f{i}.txt", b"") for i in range(10_001)], zipfile.ZIP_STORED),
         "The zip has 10,001 entries; the limit is 10,000"),
        (lambda: raw_zip([("main.py", HELLO), ("/etc/cron.d/evil", "x")]), "an absolute path"),
        (lambda: raw_zip([("main.py", HELLO), ("../evil.py", "x")]), "a path with '..' that points outside"),
        (_symlink_zip, "'link.py', a symbolic link"),
        (lambda: raw_zip([]), "The zip has no files in it"),
        (lambda: raw_zip([("lib/", "")]), "The zip has no files in it"),
    ],
    ids=["not-a-zip", "empty-file", "corrupt", "truncated", "over-50-mb", "over-200-mb-uncompressed",
         "too-many-entries", "absolute-path", "zip-slip", "symlink", "empty-archive", "only-folders"],
)
def test_it_refuses_a_bad_zip(org, make, says):
    data = make()
    error = refusal(create, org=org, bundle=data)
    assert says in messages_of(error, "bundle")
    assert nothing_created(org)
    assert not default_storage.exists(f"packages/{org.id}")


def test_it_requires_a_bundle(org):
    error = refusal(create, org=org, bundle=None)
    assert "Choose the code package (.zip) to upload." in messages_of(error, "bundle")


@pytest.mark.parametrize(
    "params, says",
    [
        ([("", "x")], "Event parameter name is empty"),
        ([("  ", "x")], "Event parameter name is empty"),
        ([("A", "1"), ("A", "2")], "Event parameter 'A' appears more than once; names must be unique"),
        ([("A", 1)], "Event parameter 'A' must have a string value, not a number"),
        ([("A", None)], "Event parameter 'A' must have a string value, not null"),
        ({"SamsaraFunctionTriggerSource": "x"}, "is reserved: the platform sets it on every run"),
        ({"SamsaraFunctionCorrelationId": "x"}, "is reserved: the platform sets it on every run"),
        ([("A",)], "Each event parameter needs a name and a value."),
    ],
)
def test_it_refuses_bad_event_parameters(org, params, says):
    error = refusal(create, org=org, event_parameters=params)
    assert says in messages_of(error, "params")
    assert nothing_created(org)


@pytest.mark.parametrize("timeout", [0, 901, -5, "soon", True, 1.5])
def test_it_refuses_a_timeout_outside_1_to_900_seconds(org, timeout):
    error = refusal(create, org=org, timeout_seconds=timeout)
    assert "from 1 to 900 (15 minutes)" in messages_of(error, "timeout_seconds")
    assert nothing_created(org)


def test_it_reports_every_problem_at_once(org):
    error = refusal(create, org=org, name="bad name", handler="nope", event_parameters=[("", "x")], bundle=None)
    assert set(error.message_dict) == {"name", "handler", "params", "bundle"}


# --- storage ---------------------------------------------------------------------------


def test_uploading_the_same_zip_twice_stores_it_once(org):
    data = make_zip({"main.py": HELLO, "id": uuid.uuid4().hex})
    function = create(org, bundle=io.BytesIO(data))
    second = services.code_version_upload(function=function, actor=None, bundle=io.BytesIO(data))
    other = create(org, name="other", bundle=io.BytesIO(data))
    first = function.versions.get(number=1)
    assert second.number == 2 and second.sha256 == first.sha256 == other.deployed_version.sha256
    assert second.storage_key == first.storage_key == other.deployed_version.storage_key
    stored = [name for name in default_storage.listdir(f"packages/{org.id}")[1] if name.startswith(first.sha256[:16])]
    assert stored == [f"{first.sha256}.zip"]


def test_organizations_do_not_share_stored_packages(org, other_org):
    data = make_zip({"main.py": HELLO, "id": uuid.uuid4().hex})
    a = create(org, bundle=io.BytesIO(data)).deployed_version
    b = create(other_org, bundle=io.BytesIO(data)).deployed_version
    assert a.storage_key != b.storage_key and default_storage.exists(a.storage_key) and default_storage.exists(b.storage_key)


# --- versions ----------------------------------------------------------------------------


def test_an_upload_becomes_a_new_deployed_version(org, users):
    function = create(org)
    revision = function.revision
    version = services.code_version_upload(
        function=function, actor=users["standard_admin"], bundle=bundle(), message="faster"
    )
    function.refresh_from_db()
    assert function.deployed_version == version and version.number == 2 and version.message == "faster"
    assert version.uploaded_by == users["standard_admin"] and function.revision == revision + 1
    assert version.uploaded_by_label == "standard_admin@example.com"
    entry = AuditEntry.objects.filter(function=function).first()
    assert entry.action == AuditAction.VERSION_UPLOADED and "Uploaded version 2" in entry.summary


def test_an_upload_without_deploy_keeps_the_running_version(org):
    function = create(org)
    version = services.code_version_upload(function=function, actor=None, bundle=bundle(), deploy=False)
    function.refresh_from_db()
    assert version.number == 2 and function.deployed_version.number == 1


def test_an_upload_is_checked_against_the_handler_that_will_run_it(org):
    function = create(org)
    error = refusal(services.code_version_upload, function=function, actor=None, bundle=bundle({"other.py": HELLO}))
    # The handler was kept: what is wrong is the code, so the code package is named.
    assert "needs the file main.py" in messages_of(error, "bundle")
    error = refusal(services.code_version_upload, function=function, actor=None, bundle=bundle({"other.py": HELLO}),
                    handler="others.handler")
    assert "needs the file others.py" in messages_of(error, "handler")
    version = services.code_version_upload(
        function=function, actor=None, bundle=bundle({"other.py": HELLO}), handler="other.handler"
    )
    function.refresh_from_db()
    assert function.handler == "other.handler" == version.handler
    assert function.versions.count() == 2


def test_a_refused_upload_stores_nothing(org):
    function = create(org)
    refusal(services.code_version_upload, function=function, actor=None, bundle=io.BytesIO(b"not a zip"))
    refusal(services.code_version_upload, function=function, actor=None, bundle=bundle(), message="m" * 501)
    assert function.versions.count() == 1


def test_rolling_back_changes_which_version_runs_next_and_nothing_else(org, users):
    function = create(org, description="d", event_parameters={"A": "1"}, visible_to_customers=True, timeout_seconds=30)
    v2 = services.code_version_upload(function=function, actor=None, bundle=bundle())
    function.refresh_from_db()
    before = {f: getattr(function, f) for f in ("name", "description", "handler", "event_parameters",
                                                  "visible_to_customers", "timeout_seconds")}
    v1 = function.versions.get(number=1)

    services.code_version_deploy(function=function, version=v1, actor=users["full_admin"])

    function.refresh_from_db()
    assert function.deployed_version == v1
    assert {f: getattr(function, f) for f in before} == before
    assert list(function.versions.values_list("number", flat=True)) == [2, 1]
    assert CodeVersion.objects.get(pk=v2.pk).sha256 == v2.sha256
    entry = AuditEntry.objects.filter(function=function).first()
    assert entry.action == AuditAction.VERSION_DEPLOYED
    assert entry.summary == "Rolled back to version 1 (was version 2)"
    assert entry.changes == {"deployed_version": {"from": 2, "to": 1}}


def test_rolling_back_across_a_handler_change_brings_the_versions_handler_back(org):
    function = create(org)
    services.code_version_upload(function=function, actor=None, bundle=bundle({"app.py": HELLO}), handler="app.handler")
    function.refresh_from_db()
    services.code_version_deploy(function=function, version=function.versions.get(number=1), actor=None)
    function.refresh_from_db()
    assert (function.deployed_version.number, function.handler) == (1, "main.handler")


def test_deploying_the_deployed_version_does_nothing(org):
    function = create(org)
    count = AuditEntry.objects.count()
    services.code_version_deploy(function=function, version=function.deployed_version, actor=None)
    assert AuditEntry.objects.count() == count


def test_a_version_of_another_function_cannot_be_deployed(org):
    a, b = create(org, name="a"), create(org, name="b")
    error = refusal(services.code_version_deploy, function=a, version=b.deployed_version, actor=None)
    assert "is not a version of a" in error.messages[0]


def test_it_lists_and_reads_the_files_of_a_version(org):
    function = create(org, bundle=bundle({"main.py": HELLO, "lib/util.py": "X = 1\n", "img.png": b"\x89PNG\0\0\1"}))
    version = function.deployed_version
    assert services.code_version_files(version) == [("img.png", 7), ("lib/util.py", 6), ("main.py", len(HELLO))]
    assert services.code_version_read_file(version, "lib/util.py")["text"] == "X = 1\n"
    assert services.code_version_read_file(version, "img.png")["reason"] == "binary"
    assert services.code_version_read_file(version, "nope.py") is None
    assert services.code_version_read_file(version, "lib") is None


def test_the_file_viewer_refuses_files_over_its_size_cap(org):
    function = create(org, bundle=bundle({"main.py": HELLO, "big.txt": "a" * (512 * 1024 + 1)}))
    result = services.code_version_read_file(function.deployed_version, "big.txt")
    assert result["text"] is None and result["reason"] == "too_large"


# --- update and optimistic locking ---------------------------------------------------------


def update(function, **changes):
    values = {
        "revision": function.revision, "description": function.description, "handler": function.handler,
        "event_parameters": function.event_parameters, "visible_to_customers": function.visible_to_customers,
        **changes,
    }
    return services.function_update(function=function, actor=None, **values)


def test_it_updates_the_configuration_and_records_what_changed(org, users):
    function = create(org, description="old", event_parameters={"A": "1", "B": "2"})
    services.function_update(
        function=function, actor=users["full_admin"], revision=function.revision, description="new",
        handler="main.handler", event_parameters=[("A", "9"), ("C", "3")], visible_to_customers=True,
        timeout_seconds=120,
    )
    function.refresh_from_db()
    assert (function.description, function.visible_to_customers, function.timeout_seconds) == ("new", True, 120)
    assert function.revision == 2
    entry = AuditEntry.objects.filter(function=function).first()
    assert entry.action == AuditAction.UPDATED
    assert entry.changes["description"] == {"from": "old", "to": "new"}
    assert "event parameters (added C; removed B; changed A)" in entry.summary
    assert entry.changes["timeout_seconds"] == {"from": None, "to": 120}


def test_a_stale_revision_is_refused_and_nothing_is_written(org):
    function = create(org, description="first")
    stale = Function.objects.get(pk=function.pk)
    update(function, description="second")
    error = refusal(update, function=stale, description="third")
    assert "Someone else changed hello while you were editing it. Nothing was saved" in error.messages[0]
    function.refresh_from_db()
    assert function.description == "second" and function.revision == 2


def test_of_two_saves_racing_from_the_same_revision_only_one_wins(org):
    """The other save lands between our read and our write; the conditional UPDATE notices."""
    function = create(org, description="first")

    def concurrent_save(execute, sql, params, many, context):
        if sql.startswith('UPDATE "functions_function"') and "revision" in sql and not concurrent_save.done:
            concurrent_save.done = True
            Function.objects.filter(pk=function.pk).update(description="theirs", revision=2)
        return execute(sql, params, many, context)

    concurrent_save.done = False
    with connection.execute_wrapper(concurrent_save):
        error = refusal(update, function=function, description="ours")
    assert concurrent_save.done and "Someone else changed hello" in error.messages[0]
    # (The other save ran inside our transaction here, so the refusal rolled it back too.)
    function.refresh_from_db()
    assert function.description != "ours"
    assert not AuditEntry.objects.filter(function=function, action=AuditAction.UPDATED).exists()


def test_an_upload_makes_an_open_edit_stale(org):
    function = create(org)
    stale = Function.objects.get(pk=function.pk)
    services.code_version_upload(function=function, actor=None, bundle=bundle())
    assert "Someone else changed" in refusal(update, function=stale, description="x").messages[0]


def test_a_new_handler_must_exist_in_the_deployed_code(org):
    function = create(org)
    error = refusal(update, function=function, handler="main.missing")
    assert "no top-level function named 'missing'" in messages_of(error, "handler")
    assert "deployed version 1" in messages_of(error, "handler")
    function.refresh_from_db()
    assert function.handler == "main.handler" and function.revision == 1


def test_an_update_validates_parameters_and_timeout(org):
    function = create(org)
    error = refusal(update, function=function, event_parameters=[("X", "1"), ("X", "2")], timeout_seconds=1000)
    assert set(error.message_dict) == {"params", "timeout_seconds"}
    function.refresh_from_db()
    assert function.event_parameters == [] and function.revision == 1


def test_an_update_without_changes_records_no_history(org):
    function = create(org)
    update(function)
    assert AuditEntry.objects.filter(function=function).count() == 1


# --- delete --------------------------------------------------------------------------------


def test_deleting_removes_the_function_its_runs_and_unused_packages_but_keeps_history(org, django_capture_on_commit_callbacks):
    function = create(org)
    key = function.deployed_version.storage_key
    make_run(function, status=RunStatus.QUEUED)
    with django_capture_on_commit_callbacks(execute=True):
        services.function_delete(function=function, actor=None, actor_label="test")
    assert not Function.objects.filter(pk=function.pk).exists() and not Run.objects.exists()
    assert not default_storage.exists(key)
    entries = AuditEntry.objects.filter(organization=org, function_name="hello")
    assert [e.action for e in entries] == [AuditAction.DELETED, AuditAction.CREATED]


def test_deleting_keeps_a_package_another_function_still_uses(org, django_capture_on_commit_callbacks):
    data = make_zip({"main.py": HELLO, "id": uuid.uuid4().hex})
    a = create(org, name="a", bundle=io.BytesIO(data))
    create(org, name="b", bundle=io.BytesIO(data))
    with django_capture_on_commit_callbacks(execute=True):
        services.function_delete(function=a, actor=None)
    assert default_storage.exists(services.package_key(org, a.deployed_version.sha256))


# --- audit ------------------------------------------------------------------------------------


def test_audit_record_is_the_history_other_areas_write_to(org, users):
    function = create(org)
    entry = services.audit_record(
        function=function, actor=users["standard_admin"], action="secret_set", summary="Set secret API_KEY",
        changes={"secret": {"from": None, "to": "API_KEY"}},
    )
    assert entry.organization == org and entry.function_name == "hello"
    assert entry.actor_label == "standard_admin@example.com"
    command = services.audit_record(function=function, actor=None, action="x", summary="y", actor_label="api token ci")
    assert command.actor is None and command.actor_label == "api token ci"


# --- import ------------------------------------------------------------------------------------

METADATA = {
    "name": "weekly-report",
    "description": "Sends the report",
    "handler": "main.handler",
    "eventParameters": {"RECIPIENT": "ops@example.com"},
    "secretsKeys": ["API_TOKEN", "SMTP_PASSWORD"],
    "isSchedulingEnabled": True,
    "schedule": {"entries": [{"timeSinceMidnightMs": 8 * 3600 * 1000, "daysOfWeek": [False, True] + [False] * 5}]},
}


def import_bundle(metadata=METADATA):
    text = metadata if isinstance(metadata, str) else json.dumps(metadata)
    return bundle({"main.py": HELLO, "import.metadata.json": text})


def test_an_import_keeps_the_schedule_and_hands_secret_names_to_the_vault(org, users):
    function, names, created = services.function_import(
        organization=org, actor=users["full_admin"], name="weekly-report", description="Sends the report",
        handler="main.handler", bundle=import_bundle(), event_parameters={"RECIPIENT": "ops@example.com"},
    )
    assert names == ("API_TOKEN", "SMTP_PASSWORD")
    assert function.imported_schedule == {
        "isSchedulingEnabled": True,
        "entries": [{"timeSinceMidnightMs": 28800000, "daysOfWeek": [False, True, False, False, False, False, False]}],
    }
    entry = AuditEntry.objects.filter(function=function, action=AuditAction.IMPORTED).get()
    assert entry.changes["secret_names"] == {"from": None, "to": ["API_TOKEN", "SMTP_PASSWORD"]}
    assert created and sorted(secret_names(function=function)) == ["API_TOKEN", "SMTP_PASSWORD"]


def test_an_import_with_broken_metadata_is_refused_field_by_field(org):
    metadata = {**METADATA, "secretsKeys": ["A", "A"], "schedule": {"entries": [{"timeSinceMidnightMs": -1, "daysOfWeek": []}]}}
    error = refusal(
        services.function_import, organization=org, actor=None, name="x", handler="main.handler",
        bundle=import_bundle(metadata),
    )
    text = messages_of(error, "bundle")
    assert "import.metadata.json, secretsKeys[1]: Secret 'A' appears more than once" in text
    assert "schedule.entries[0].timeSinceMidnightMs: must be between 0 and 86399999 (got -1)" in text
    assert "schedule.entries[0].daysOfWeek: must have 7 booleans" in text
    assert nothing_created(org)


def test_an_import_with_invalid_json_says_where(org):
    error = refusal(
        services.function_import, organization=org, actor=None, name="x", handler="main.handler",
        bundle=import_bundle('{"name": "x",}'),
    )
    assert "import.metadata.json is not valid JSON: Expecting property name enclosed in double quotes at line 1" in (
        messages_of(error, "bundle")
    )
    assert nothing_created(org)


def test_a_staged_upload_is_kept_per_organization_and_can_be_discarded(org, other_org):
    info = services.staged_upload_save(organization=org, bundle=bundle())
    with services.staged_upload_open(organization=org, sha256=info.sha256) as staged:
        assert staged.read(2) == b"PK"
    error = refusal(services.staged_upload_open, organization=other_org, sha256=info.sha256)
    assert "no longer available" in messages_of(error, "bundle")
    refusal(services.staged_upload_open, organization=org, sha256="../../etc/passwd")
    services.staged_upload_delete(organization=org, sha256=info.sha256)
    assert not default_storage.exists(services.staged_upload_key(org, info.sha256))
