"""The one base fixture set: an organization with a user per role, plus an outsider.

`member(role)` gives a signed-in test client for any of ROLES, so every view
can be tested for each role with one parametrize.
"""

import os
from pathlib import Path

import pytest
from django.db import connection
from django.db.backends.signals import connection_created

from accounts.models import Access, BuiltinRole, CustomRole, Membership, Organization, User
from runtime.environment import ensure_runtime_env
from tests.factories import make_function, make_run

PASSWORD = "correct-horse-battery-staple"

# Every role the fixtures know, with what it may do on Functions and storage.
ROLES = {
    "full_admin": (Access.WRITE, Access.WRITE),
    "standard_admin": (Access.WRITE, Access.WRITE),
    "read_only_admin": (Access.READ, Access.READ),
    "custom_functions_read": (Access.READ, Access.NONE),
    "custom_none": (Access.NONE, Access.NONE),
    "outsider": None,
}
WRITERS = ["full_admin", "standard_admin"]
READERS = ["read_only_admin", "custom_functions_read"]
# What each role gets from a Functions page: readers see it, a role without Functions is refused, and
# the outsider does not learn that the organization exists.
READ_STATUS = {"full_admin": 200, "standard_admin": 200, "read_only_admin": 200, "custom_functions_read": 200,
               "custom_none": 403, "outsider": 404}
# What a role that may not write gets from a Functions write (writers' answers depend on the request).
WRITE_STATUS = {"read_only_admin": 403, "custom_functions_read": 403, "custom_none": 403, "outsider": 404}


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).parts
        # A browser test starts Chromium and waits on pages: always more than a few seconds.
        for folder, markers in (("integration", ["integration"]), ("browser", ["browser", "slow"]),
                                ("runtime", ["sandbox"]), ("engine", ["sandbox"])):
            if folder in parts:
                for marker in markers:
                    item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(scope="session")
def runtime_env(django_test_environment):
    """The Functions' runtime environment (the python the sandbox runs), built once if missing; its python.

    Every test that runs real Function code asks for it (tests/engine uses it for all of its tests).
    """
    from django.conf import settings

    return ensure_runtime_env(Path(settings.FUNCTIONS_RUNTIME_ENV))


@pytest.fixture
def org(db):
    return Organization.objects.create(name="Acme Fleet", region="us", timezone="America/Chicago")


@pytest.fixture
def other_org(db):
    return Organization.objects.create(name="Other Org", region="eu", timezone="Europe/Berlin")


@pytest.fixture
def users(org, other_org):
    """One user per role in `org`; the outsider is a Full Admin of `other_org` only."""
    functions_read = CustomRole.objects.create(
        organization=org, name="Functions viewer", functions_access=Access.READ, storage_access=Access.NONE
    )
    nothing = CustomRole.objects.create(
        organization=org, name="Drivers only", functions_access=Access.NONE, storage_access=Access.NONE
    )
    made = {}
    for key in ROLES:
        user = User.objects.create_user(f"{key}@example.com", PASSWORD, name=key.replace("_", " ").title())
        if key == "outsider":
            Membership.objects.create(user=user, organization=other_org, builtin_role=BuiltinRole.FULL_ADMIN)
        elif key == "custom_functions_read":
            Membership.objects.create(user=user, organization=org, custom_role=functions_read)
        elif key == "custom_none":
            Membership.objects.create(user=user, organization=org, custom_role=nothing)
        else:
            Membership.objects.create(user=user, organization=org, builtin_role=key)
        made[key] = user
    return made


@pytest.fixture
def member(users, client):
    """member("read_only_admin") -> a client signed in as that role's user."""

    def sign_in(role):
        client.force_login(users[role])
        return client

    return sign_in


@pytest.fixture
def admin_client(member):
    return member("full_admin")


@pytest.fixture
def function(org):
    """A Function "hello" of `org` with one deployed version (tests/factories.make_function)."""
    return make_function(org, "hello")


@pytest.fixture
def run(function):
    """A finished run of `function` (tests/factories.make_run)."""
    return make_run(function)


@pytest.fixture
def artifacts_dir(request):
    """A per-test folder under test-results/ for screenshots and other outputs worth looking at."""
    root = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-results"))
    path = root / request.node.name.replace("/", "_").replace("[", "-").replace("]", "")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def reads_without_table_locks():
    """The test database is SQLite in memory with a shared cache, where a reader meets another
    connection's open write as "table is locked" at once instead of waiting for it (a file
    database, as in use, has no such locks). For tests whose threads each have a connection of their
    own and read while another writes (the live server's requests, a worker's thread, the engine):
    reading uncommitted rows keeps their polls from failing while the writer's transaction is open."""

    def read_uncommitted(sender, connection, **kwargs):
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA read_uncommitted = 1")

    connection_created.connect(read_uncommitted)
    read_uncommitted(None, connection)
    yield
    connection_created.disconnect(read_uncommitted)
