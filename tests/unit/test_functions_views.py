"""The catalogue's pages: every view for every role, the forms' messages, and what the pages show."""

import io
import json
import uuid
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from functions import services
from functions.models import AuditEntry, CodeVersion, Function, RunStatus, TriggerSource
from tests.conftest import READ_STATUS, READERS, ROLES, WRITE_STATUS, WRITERS
from tests.factories import make_run, make_zip

HELLO = "def handler(event, context):\n    return {'ok': True}\n"
NON_WRITERS = [r for r in ROLES if r not in WRITERS]


@pytest.fixture(autouse=True)
def own_storage(settings, tmp_path):
    """A storage folder of the test's own, so what one test stores never shows up in another."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }


def zip_bytes(files=None):
    return make_zip(files if files is not None else {"main.py": HELLO, "VERSION": uuid.uuid4().hex})


def upload(data=None, name="code.zip"):
    return SimpleUploadedFile(name, data if data is not None else zip_bytes(), content_type="application/zip")


@pytest.fixture
def fn(org, users):
    """A Function with two versions (the second deployed) and two parameters, made through the services."""
    function = services.function_create(
        organization=org, actor=users["full_admin"], name="hello", description="Says hello",
        handler="main.handler", bundle=io.BytesIO(zip_bytes({"main.py": HELLO, "lib/util.py": "X = '<b>1</b>'\n"})),
        event_parameters={"GREETING": "hi", "TO": "world"},
    )
    services.code_version_upload(function=function, actor=users["full_admin"], bundle=io.BytesIO(zip_bytes()))
    function.refresh_from_db()
    return function


def url(name, org, function=None, **kwargs):
    if function is not None:
        kwargs["name"] = function.name if hasattr(function, "name") else function
    return reverse(f"functions:{name}", kwargs={"org_id": org.id, **kwargs})


def create_data(**fields):
    data = {"name": "report", "description": "Weekly report", "handler": "main.handler", "bundle": upload(),
            "param_name": ["A", "B", ""], "param_value": ["1", "2", ""], "timeout_seconds": "", "message": ""}
    data.update(fields)
    return data


def edit_data(function, **fields):
    data = {"name": function.name, "description": function.description, "handler": function.handler,
            "revision": function.revision, "timeout_seconds": function.timeout_seconds or "",
            "param_name": [p["name"] for p in function.event_parameters],
            "param_value": [p["value"] for p in function.event_parameters]}
    if function.visible_to_customers:
        data["visible_to_customers"] = "on"
    data.update(fields)
    return data


def snapshot(org):
    """Everything a write could change, to show that a refused one changed nothing."""
    return (
        list(Function.objects.of(org).values()),
        list(CodeVersion.objects.filter(function__organization=org).values()),
        AuditEntry.objects.filter(organization=org).count(),
    )


# --- reads: every page, every role -------------------------------------------------------------

READ_PAGES = [
    ("list", {}),
    ("detail", {}),
    ("history", {}),
    ("schedule", {}),
    ("version", {"number": 1}),
    ("version_file", {"number": 1, "path": "main.py"}),
    ("version_download", {"number": 1}),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page, kwargs", READ_PAGES, ids=[p for p, _ in READ_PAGES])
def test_every_read_page_answers_each_role_as_its_permissions_say(member, org, fn, role, page, kwargs):
    target = url(page, org, None if page == "list" else fn, **kwargs)
    assert member(role).get(target).status_code == READ_STATUS[role]


@pytest.mark.parametrize("role", ROLES)
def test_another_organizations_function_is_a_404_even_by_name(member, org, other_org, users, role):
    services.function_create(organization=other_org, actor=None, name="secret-fn", handler="main.handler",
                             bundle=io.BytesIO(zip_bytes()))
    expected = 403 if role == "custom_none" else 404  # a role without Functions is refused before any lookup
    assert member(role).get(url("detail", org, "secret-fn")).status_code == expected
    assert member(role).get(url("version_download", org, "secret-fn", number=1)).status_code == expected
    assert member(role).get(url("list", org)).content.count(b"secret-fn") == 0


@pytest.mark.parametrize("role", READERS)
def test_read_roles_see_everything_but_no_write_controls(member, org, fn, role):
    client = member(role)
    listing = client.get(url("list", org)).content.decode()
    assert "hello" in listing and "Create Function" not in listing and "Import" not in listing
    detail = client.get(url("detail", org, fn)).content.decode()
    assert "GREETING" in detail and "Version 2" in detail and "Download" in detail
    for control in ("Edit</a>", "Upload new version", "Delete</a>", "Roll back", "version_deploy", "/deploy/"):
        assert control not in detail
    version = client.get(url("version", org, fn, number=1)).content.decode()
    assert "main.py" in version and "Roll back" not in version and "Download zip" in version


def test_write_roles_see_the_write_controls(admin_client, org, fn):
    detail = admin_client.get(url("detail", org, fn)).content.decode()
    for control in ("Edit</a>", "Upload new version", "Delete</a>", "Roll back"):
        assert control in detail


# --- writes: every write URL, every role --------------------------------------------------------

def write_requests(org, fn):
    return [
        ("get", url("create", org), {}),
        ("get", url("create", org) + "?import=1", {}),
        ("post", url("create", org), create_data()),
        ("post", url("create", org) + "?import=1", {"bundle": upload()}),
        ("get", url("edit", org, fn), {}),
        ("post", url("edit", org, fn), edit_data(fn, description="changed")),
        ("get", url("delete", org, fn), {}),
        ("post", url("delete", org, fn), {}),
        ("get", url("version_upload", org, fn), {}),
        ("post", url("version_upload", org, fn), {"bundle": upload(), "deploy": "on"}),
        ("post", url("version_deploy", org, fn, number=1), {}),
    ]


@pytest.mark.parametrize("role", NON_WRITERS)
def test_roles_that_cannot_write_get_403_or_404_on_every_write_url_and_nothing_changes(member, org, fn, role):
    client = member(role)
    before = snapshot(org)
    for method, target, data in write_requests(org, fn):
        response = getattr(client, method)(target, data)
        assert response.status_code == WRITE_STATUS[role], (method, target)
    assert snapshot(org) == before


@pytest.mark.parametrize("role", WRITERS)
def test_write_roles_can_create_a_function(member, org, users, role):
    response = member(role).post(url("create", org), create_data())
    function = Function.objects.get(organization=org, name="report")
    assert response.status_code == 302 and response["Location"] == url("detail", org, function)
    assert function.event_parameters == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert function.created_by == users[role] and function.deployed_version.number == 1


@pytest.mark.parametrize("role", WRITERS)
def test_write_roles_can_edit_a_function(member, org, fn, role):
    response = member(role).post(url("edit", org, fn), edit_data(fn, description="New words"))
    assert response.status_code == 302
    fn.refresh_from_db()
    assert fn.description == "New words" and fn.event_parameters[0] == {"name": "GREETING", "value": "hi"}


@pytest.mark.parametrize("role", WRITERS)
def test_write_roles_can_upload_a_version(member, org, fn, role):
    response = member(role).post(url("version_upload", org, fn), {"bundle": upload(), "message": "v3", "deploy": "on"})
    assert response.status_code == 302
    fn.refresh_from_db()
    assert fn.deployed_version.number == 3 and fn.deployed_version.message == "v3"


@pytest.mark.parametrize("role", WRITERS)
def test_write_roles_can_roll_back(member, org, fn, role):
    response = member(role).post(url("version_deploy", org, fn, number=1), follow=True)
    assert "Version 1 is now deployed: the next run uses it." in response.content.decode()
    fn.refresh_from_db()
    assert fn.deployed_version.number == 1


@pytest.mark.parametrize("role", WRITERS)
def test_write_roles_can_delete_a_function(member, org, fn, role):
    confirm = member(role).get(url("delete", org, fn))
    assert b"Delete hello?" in confirm.content
    response = member(role).post(url("delete", org, fn), follow=True)
    assert response.redirect_chain[-1][0] == url("list", org)
    assert "Deleted hello." in response.content.decode()
    assert not Function.objects.filter(pk=fn.pk).exists()


@pytest.mark.parametrize("role", WRITERS)
def test_write_roles_can_import_a_bundle(member, org, role):
    metadata = {"name": "imported", "handler": "main.handler", "eventParameters": {"K": "v"}}
    data = zip_bytes({"main.py": HELLO, "import.metadata.json": json.dumps(metadata)})
    review = member(role).post(url("create", org) + "?import=1", {"bundle": upload(data)})
    assert review.status_code == 200 and b"Review the import" in review.content
    form = review.context["form"]
    response = member(role).post(url("create", org), {
        "name": form.initial["name"], "handler": form.initial["handler"], "description": "",
        "param_name": ["K"], "param_value": ["v"], "staged_sha256": form.initial["staged_sha256"],
        "staged_filename": "code.zip", "from_import": "True",
    })
    assert response.status_code == 302
    assert Function.objects.get(organization=org, name="imported").parameters_dict == {"K": "v"}


def test_deploy_only_accepts_post(admin_client, org, fn):
    assert admin_client.get(url("version_deploy", org, fn, number=1)).status_code == 405


def test_anonymous_visitors_are_sent_to_sign_in(client, org, fn):
    for target in (url("detail", org, fn), url("create", org), url("history", org, fn)):
        response = client.get(target)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


# --- the list -------------------------------------------------------------------------------------


def test_the_list_shows_each_function_with_its_last_run(admin_client, org, fn):
    make_run(fn, status=RunStatus.FAILED)
    services.function_create(organization=org, actor=None, name="never-run", handler="main.handler",
                             bundle=io.BytesIO(zip_bytes()))
    body = admin_client.get(url("list", org)).content.decode()
    assert "Says hello" in body and "<code>main.handler</code>" in body
    assert 'class="badge bad">Failed</span>' in body and "Never run" in body


def test_the_list_costs_the_same_queries_for_one_or_many_functions(admin_client, org, fn, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        admin_client.get(url("list", org))
    for i in range(8):
        function = services.function_create(organization=org, actor=None, name=f"fn-{i}", handler="main.handler",
                                            bundle=io.BytesIO(zip_bytes()))
        make_run(function, trigger=TriggerSource.API, status=RunStatus.QUEUED)
    with django_assert_max_num_queries(len(one.captured_queries)):
        body = admin_client.get(url("list", org)).content.decode()
    assert body.count('class="fn-name"') == 9


def test_the_list_searches_by_name_and_pages(admin_client, org):
    for i in range(30):
        services.function_create(organization=org, actor=None, name=f"job-{i:02d}", handler="main.handler",
                                 bundle=io.BytesIO(zip_bytes({"main.py": HELLO})))
    services.function_create(organization=org, actor=None, name="Billing", handler="main.handler",
                             bundle=io.BytesIO(zip_bytes({"main.py": HELLO})))
    first = admin_client.get(url("list", org)).content.decode()
    assert first.count('class="fn-name"') == 25 and "Page 1 of 2" in first and "Billing" in first
    second = admin_client.get(url("list", org) + "?page=2").content.decode()
    assert second.count('class="fn-name"') == 6 and "job-29" in second
    found = admin_client.get(url("list", org) + "?q=bill").content.decode()
    assert found.count('class="fn-name"') == 1 and "Billing" in found
    none = admin_client.get(url("list", org) + "?q=zzz").content.decode()
    assert "No Functions match “zzz”" in none


def test_an_empty_list_invites_writers_to_create(member, org, users):
    body = member("standard_admin").get(url("list", org)).content.decode()
    assert "No Functions yet" in body and "Create Function" in body
    body = member("read_only_admin").get(url("list", org)).content.decode()
    assert "No Functions yet" in body and "Create Function" not in body


# --- create: messages on the page, nothing saved -----------------------------------------------


@pytest.mark.parametrize(
    "fields, says",
    [
        ({"name": ""}, "Function name is required"),
        ({"name": "x" * 36}, "is 36 characters long"),
        ({"name": "no spaces"}, "contains &#x27; &#x27;"),
        ({"name": "storage"}, "is reserved"),
        ({"handler": "main"}, "is not valid: use path/to/module.function"),
        ({"handler": "missing.handler"}, "needs the file missing.py"),
        ({"bundle": upload(b"just text\n")}, "is a text file, not a .zip"),
        ({"bundle": ""}, "Choose the code package (.zip) to upload."),
        ({"param_name": ["A", "A"], "param_value": ["1", "2"]}, "appears more than once; names must be unique"),
        ({"param_name": ["", "B"], "param_value": ["1", "2"]}, "Event parameter name is empty"),
        ({"param_name": ["SamsaraFunctionTriggerSource"], "param_value": ["x"]}, "the platform sets it on every run"),
        ({"timeout_seconds": "901"}, "from 1 to 900"),
        ({"timeout_seconds": "soon"}, "The timeout must be a whole number of seconds from 1 to 900."),
    ],
)
def test_create_shows_what_to_fix_and_saves_nothing(admin_client, org, fields, says):
    response = admin_client.post(url("create", org), create_data(**fields))
    assert response.status_code == 400
    assert says in response.content.decode()
    assert not Function.objects.of(org).exists() and not CodeVersion.objects.exists()


def test_create_refuses_a_name_taken_in_another_case(admin_client, org, fn):
    response = admin_client.post(url("create", org), create_data(name="HELLO"))
    assert response.status_code == 400
    assert "A Function named “HELLO” already exists in Acme Fleet" in response.content.decode()
    assert Function.objects.of(org).count() == 1


def test_a_refused_create_keeps_the_uploaded_zip_for_the_next_try(admin_client, org):
    data = zip_bytes()
    first = admin_client.post(url("create", org), create_data(name="bad name", bundle=upload(data, "mine.zip")))
    assert first.status_code == 400 and b"mine.zip" in first.content
    staged = first.context["staged_sha256"]
    second = admin_client.post(url("create", org), create_data(bundle="", staged_sha256=staged, staged_filename="mine.zip"))
    assert second.status_code == 302
    function = Function.objects.get(organization=org, name="report")
    with services.code_version_open(function.deployed_version) as package:
        assert package.read() == data


def test_the_parameter_rows_keep_their_values_and_errors(admin_client, org):
    response = admin_client.post(url("create", org), create_data(param_name=["A", "A"], param_value=["<1>", "2"]))
    body = response.content.decode()
    assert 'name="param_value" value="&lt;1&gt;"' in body
    rows = response.context["parameters"].rows
    assert rows[0]["errors"] == [] and "appears more than once" in rows[1]["errors"][0]


# --- edit ----------------------------------------------------------------------------------------


def test_edit_shows_the_name_read_only(admin_client, org, fn):
    body = admin_client.get(url("edit", org, fn)).content.decode()
    assert 'name="name" value="hello" readonly' in body
    assert 'name="param_name" value="GREETING"' in body and 'name="param_value" value="world"' in body


def test_edit_refuses_a_changed_name(admin_client, org, fn):
    before = snapshot(org)
    response = admin_client.post(url("edit", org, fn), edit_data(fn, name="renamed", description="x"))
    assert response.status_code == 400
    assert "A Function&#x27;s name cannot be changed after creation" in response.content.decode()
    assert snapshot(org) == before


def test_the_second_of_two_admins_editing_at_once_is_refused_and_nothing_is_overwritten(member, org, fn, users):
    alice, bob = member("full_admin"), None
    form_a = alice.get(url("edit", org, fn)).context["form"]
    from django.test import Client

    bob = Client()
    bob.force_login(users["standard_admin"])
    form_b = bob.get(url("edit", org, fn)).context["form"]
    assert form_a.initial["revision"] == form_b.initial["revision"]

    assert alice.post(url("edit", org, fn), edit_data(fn, description="Alice's words")).status_code == 302
    response = bob.post(url("edit", org, fn), edit_data(fn, description="Bob's words"))
    assert response.status_code == 400
    assert "Someone else changed hello while you were editing it. Nothing was saved" in response.content.decode()
    fn.refresh_from_db()
    assert fn.description == "Alice's words"


@pytest.mark.parametrize(
    "fields, says",
    [
        ({"handler": "main.nope"}, "main.py has no top-level function named &#x27;nope&#x27;"),
        ({"param_name": ["X", "X"], "param_value": ["1", "2"]}, "appears more than once"),
        ({"timeout_seconds": "0"}, "from 1 to 900"),
    ],
)
def test_edit_shows_what_to_fix_and_saves_nothing(admin_client, org, fn, fields, says):
    before = snapshot(org)
    response = admin_client.post(url("edit", org, fn), edit_data(fn, **fields))
    assert response.status_code == 400 and says in response.content.decode()
    assert snapshot(org) == before


# --- versions ------------------------------------------------------------------------------------------


def test_the_overview_lists_versions_and_marks_the_deployed_one(admin_client, org, fn):
    body = admin_client.get(url("detail", org, fn)).content.decode()
    assert body.count("<tr class=\"deployed\" data-version=\"2\">") == 1
    assert 'data-version="1"' in body and "Roll back" in body


def test_upload_shows_what_to_fix(admin_client, org, fn):
    response = admin_client.post(url("version_upload", org, fn), {"bundle": upload(zip_bytes({"other.py": HELLO})), "deploy": "on"})
    assert response.status_code == 400 and "needs the file main.py" in response.content.decode()
    response = admin_client.post(url("version_upload", org, fn), {})
    assert response.status_code == 400 and "Choose the code package (.zip) to upload." in response.content.decode()
    response = admin_client.post(url("create", org) + "?import=1", {})
    assert response.status_code == 400 and "Choose the bundle (.zip) to import." in response.content.decode()
    assert fn.versions.count() == 2


def test_an_upload_can_wait_to_be_deployed(admin_client, org, fn):
    response = admin_client.post(url("version_upload", org, fn), {"bundle": upload()}, follow=True)
    assert "Uploaded version 3. Deploy it from the list when ready." in response.content.decode()
    fn.refresh_from_db()
    assert fn.deployed_version.number == 2


def test_the_files_of_a_version_can_be_browsed_by_folder(admin_client, org, fn):
    body = admin_client.get(url("version", org, fn, number=1)).content.decode()
    assert ">lib/</a>" in body and ">main.py</a>" in body and "util.py" not in body
    body = admin_client.get(url("version", org, fn, number=1) + "?dir=lib").content.decode()
    assert ">util.py</a>" in body
    assert admin_client.get(url("version", org, fn, number=1) + "?dir=nothere").status_code == 404
    assert admin_client.get(url("version", org, fn, number=9)).status_code == 404


def test_a_text_file_is_shown_read_only_and_escaped(admin_client, org, fn):
    response = admin_client.get(url("version_file", org, fn, number=1, path="lib/util.py"))
    body = response.content.decode()
    assert "X = &#x27;&lt;b&gt;1&lt;/b&gt;&#x27;" in body and "<b>1</b>" not in body


def test_a_binary_or_huge_file_is_not_shown(admin_client, org, users):
    function = services.function_create(
        organization=org, actor=None, name="blobs", handler="main.handler",
        bundle=io.BytesIO(zip_bytes({"main.py": HELLO, "logo.png": b"\x89PNG\r\n\0\0", "big.txt": "a" * 600_000})),
    )
    binary = admin_client.get(url("version_file", org, function, number=1, path="logo.png")).content.decode()
    assert "This is a binary file" in binary
    big = admin_client.get(url("version_file", org, function, number=1, path="big.txt")).content.decode()
    assert "too large to show here" in big and "aaaaaaaaaa" not in big


def test_a_missing_file_is_a_404(admin_client, org, fn):
    assert admin_client.get(url("version_file", org, fn, number=1, path="nope.py")).status_code == 404
    assert admin_client.get(url("version_file", org, fn, number=1, path="../../etc/passwd")).status_code == 404


def test_a_version_downloads_as_its_zip(member, org, fn):
    response = member("read_only_admin").get(url("version_download", org, fn, number=1))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="hello-v1.zip"'
    data = b"".join(response.streaming_content)
    assert zipfile.ZipFile(io.BytesIO(data)).read("lib/util.py") == b"X = '<b>1</b>'\n"


# --- history and schedule ----------------------------------------------------------------------------


def test_history_lists_who_changed_what_and_when(admin_client, org, fn):
    admin_client.post(url("edit", org, fn), edit_data(fn, description="Now in French", param_name=["GREETING"],
                                                    param_value=["salut"]))
    admin_client.post(url("version_deploy", org, fn, number=1))
    body = admin_client.get(url("history", org, fn)).content.decode()
    assert body.count("full_admin@example.com") >= 4
    assert "Rolled back to version 1 (was version 2)" in body
    assert "Changed description, event parameters (removed TO; changed GREETING)" in body
    assert "Says hello" in body and "Now in French" in body
    assert "Uploaded version 2" in body and "Created hello with version 1" in body


def test_history_never_shows_a_secret_value_recorded_by_name(admin_client, org, fn):
    services.audit_record(function=fn, actor=None, action="secret_set", summary="Set the secret API_KEY",
                          changes={"secret": {"from": None, "to": "API_KEY"}}, actor_label="someone")
    body = admin_client.get(url("history", org, fn)).content.decode()
    assert "Set the secret API_KEY" in body


# --- import ------------------------------------------------------------------------------------------

METADATA = {
    "name": "weekly-report", "description": "Sends the report", "handler": "main.handler",
    "eventParameters": {"RECIPIENT": "ops@example.com"}, "secretsKeys": ["API_TOKEN"],
    "isSchedulingEnabled": True,
    "schedule": {"entries": [{"timeSinceMidnightMs": 8 * 3600 * 1000 + 30 * 60000, "daysOfWeek": [False, True] + [False] * 5}]},
}


def import_upload(metadata=METADATA):
    text = metadata if isinstance(metadata, str) else json.dumps(metadata)
    return upload(zip_bytes({"main.py": HELLO, "import.metadata.json": text}), "bundle.zip")


def test_import_prefills_the_form_and_shows_secrets_and_schedule(admin_client, org):
    response = admin_client.post(url("create", org) + "?import=1", {"bundle": import_upload()})
    body = response.content.decode()
    assert response.status_code == 200
    assert 'value="weekly-report"' in body and "Sends the report" in body and 'value="main.handler"' in body
    assert 'name="param_name" value="RECIPIENT"' in body and 'value="ops@example.com"' in body
    assert "<code>API_TOKEN</code>" in body
    assert "Every Monday at 08:30" in body and "Saved as the Function's schedule, enabled" in body
    assert "not available" not in body
    assert not Function.objects.exists()


def test_saving_an_import_makes_the_bundles_schedule_the_functions_enabled(admin_client, org):
    review = admin_client.post(url("create", org) + "?import=1", {"bundle": import_upload()})
    initial = review.context["form"].initial
    response = admin_client.post(url("create", org), {
        "name": "weekly-report", "description": "Edited before saving", "handler": "main.handler",
        "param_name": ["RECIPIENT"], "param_value": ["me@example.com"], "staged_sha256": initial["staged_sha256"],
        "staged_filename": "bundle.zip", "from_import": "True",
    }, follow=True)
    function = Function.objects.get(organization=org, name="weekly-report")
    assert function.description == "Edited before saving" and function.parameters_dict == {"RECIPIENT": "me@example.com"}
    assert function.imported_schedule["entries"][0]["timeSinceMidnightMs"] == 30600000
    assert function.schedule.enabled and function.schedule.timezone is None
    schedule = admin_client.get(url("schedule", org, function)).content.decode()
    assert "Every Monday at 08:30" in schedule and "America/Chicago" in schedule
    assert "Created weekly-report" in response.content.decode()


def test_an_imported_schedule_the_rules_refuse_is_reported_at_the_bundle_and_nothing_is_saved(admin_client, org):
    entries = [{"timeSinceMidnightMs": n * 60_000, "daysOfWeek": [True] * 7} for n in range(101)]
    review = admin_client.post(url("create", org) + "?import=1",
                               {"bundle": import_upload({**METADATA, "schedule": {"entries": entries}})})
    initial = review.context["form"].initial
    response = admin_client.post(url("create", org), {
        "name": "weekly-report", "description": "", "handler": "main.handler", "param_name": [""],
        "param_value": [""], "staged_sha256": initial["staged_sha256"], "staged_filename": "bundle.zip",
        "from_import": "True",
    })
    assert response.status_code == 400
    assert "import.metadata.json, schedule.entries: at most 100 entries; got 101" in response.content.decode()
    assert not Function.objects.exists()


@pytest.mark.parametrize(
    "metadata, says",
    [
        ('{"name": ', "import.metadata.json is not valid JSON"),
        ("[1, 2]", "import.metadata.json must be a JSON object, not a list"),
        ({"name": "ab"}, "import.metadata.json, name: Function name &#x27;ab&#x27; is 2 characters long"),
        ({"eventParameters": {"A": 1}}, "eventParameters[&quot;A&quot;]: Event parameter &#x27;A&#x27; must have a string value"),
        ({"secretsKeys": "A"}, "secretsKeys: must be a list of secret names, not a string"),
        ({"schedule": {"entries": [{"timeSinceMidnightMs": 1, "daysOfWeek": [False] * 7}]}},
         "schedule.entries[0].daysOfWeek: must have at least one day set to true"),
    ],
)
def test_import_reports_metadata_problems_field_by_field(admin_client, org, metadata, says):
    response = admin_client.post(url("create", org) + "?import=1", {"bundle": import_upload(metadata)})
    assert response.status_code == 400 and says in response.content.decode()
    assert not Function.objects.exists()


def test_import_lists_every_metadata_problem(admin_client, org):
    response = admin_client.post(url("create", org) + "?import=1",
                                 {"bundle": import_upload({"name": 5, "handler": "x", "isSchedulingEnabled": "yes"})})
    errors = response.context["form"].errors["bundle"]
    assert len(errors) == 3
    assert any(e.startswith("import.metadata.json, isSchedulingEnabled: must be true or false") for e in errors)


def test_import_needs_the_metadata_file(admin_client, org):
    response = admin_client.post(url("create", org) + "?import=1", {"bundle": upload()})
    assert response.status_code == 400
    assert "This zip has no import.metadata.json at its root" in response.content.decode()


def test_import_refuses_a_bad_zip(admin_client, org):
    response = admin_client.post(url("create", org) + "?import=1", {"bundle": upload(b"\x1f\x8b\x08 gzip")})
    assert response.status_code == 400 and "is a gzip file" in response.content.decode()


def test_a_refused_upload_keeps_a_sound_zip_and_shows_code_errors_under_the_code_package(admin_client, org, fn):
    # A syntax error in the handler's file is the code's fault: it is shown under the code package.
    broken = zip_bytes({"main.py": "def handler(event, context)\n    return 1\n"})
    response = admin_client.post(url("version_upload", org, fn), {"bundle": upload(broken), "deploy": "on"})
    assert response.status_code == 400
    assert response.context["form"].errors["bundle"] and "handler" not in response.context["form"].errors
    assert "main.py line 1" in response.context["form"].errors["bundle"][0]
    assert response.context["staged_sha256"] == ""  # a wrong zip is not kept
    # A sound zip refused for another field (a typed handler it lacks) is kept for the next try.
    good = zip_bytes({"app.py": HELLO})
    response = admin_client.post(url("version_upload", org, fn),
                                 {"bundle": upload(good), "handler": "ap.handler", "message": "v3", "deploy": "on"})
    assert response.status_code == 400 and response.context["form"].errors["handler"]
    staged = response.context["staged_sha256"]
    assert staged and 'data-testid="staged-bundle"' in response.content.decode()
    response = admin_client.post(url("version_upload", org, fn), {
        "staged_sha256": staged, "staged_filename": "code.zip", "handler": "app.handler", "message": "v3", "deploy": "on"})
    assert response.status_code == 302
    fn.refresh_from_db()
    assert fn.deployed_version.number == 3 and fn.handler == "app.handler"
