"""Samsara's guide spelling `import samsara; samsara.Function().secrets().load()` works in the real sandbox,
cold and in a warm environment, beside the SDK's own `from samsara.function import Function`; a bundled
samsara.py still wins (CONTRACT.md, "Invocation")."""

import hashlib
import json

import pytest

from functions.run_services import run_trigger
from secrets_vault.services import secret_set
from tests.factories import make_function

# The handler's parent tells a warm start (the zygote, pid 2 in the namespace) from a cold one (bwrap's init, 1).
GUIDE = """
import hashlib, os, sys
import samsara

def handler(event, context):
    lazy = "samsara.function" not in sys.modules
    secrets = samsara.Function().secrets().load()
    return {"parent": os.getppid(), "lazy": lazy,
            "secrets": {k: hashlib.sha256(v.encode()).hexdigest() for k, v in secrets.items()}}
"""

SDK = """
import hashlib, os
from samsara.function import Function

def handler(event, context):
    secrets = Function().secrets().load()
    return {"parent": os.getppid(), "secrets": {k: hashlib.sha256(v.encode()).hexdigest() for k, v in secrets.items()}}
"""

FROM_IMPORT = """
import hashlib, os
from samsara import Function

def handler(event, context):
    secrets = Function().secrets().load()
    return {"parent": os.getppid(), "secrets": {k: hashlib.sha256(v.encode()).hexdigest() for k, v in secrets.items()}}
"""

BUNDLED = """
import os
import samsara

def handler(event, context):
    return {"parent": os.getppid(), "secrets": samsara.Function().secrets().load(), "file": samsara.__file__}
"""

BUNDLED_SAMSARA = """
class Function:
    def secrets(self):
        return self

    def load(self):
        return {"from": "the bundle"}
"""

# Nothing else of the SDK changes: its API client and its own missing-attribute error are as published.
UNCHANGED = """
import samsara

def handler(event, context):
    try:
        samsara.NoSuchThing
    except AttributeError as error:
        missing = str(error)
    return {"client": samsara.Samsara.__name__, "missing": missing,
            "same": samsara.Function is __import__("samsara.function").function.Function}
"""


@pytest.fixture(params=["cold", "warm"])
def execute(request, run_to_end, settings):
    settings.FUNCTIONS_RETRY_BACKOFF_SECONDS = (0, 0)
    settings.FUNCTIONS_WARM_ENVIRONMENTS = request.param == "warm"
    expected_parent = 2 if request.param == "warm" else 1

    def execute(function):
        run = run_trigger(function=function, trigger="manual")
        run = run_to_end(run, limit=1)
        assert run.status == "succeeded", (run.reason, run.error and run.error.get("traceback"))
        value = json.loads(run.return_value)
        assert value.get("parent", expected_parent) == expected_parent, (request.param, value)
        return value

    execute.mode = request.param
    return execute


def digest(value):
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.mark.parametrize("code", [GUIDE, SDK, FROM_IMPORT], ids=["import-samsara", "samsara.function", "from-samsara"])
def test_each_spelling_of_the_sdk_loads_the_functions_secrets(org, execute, code):
    function = make_function(org, "spelling", files={"main.py": code})
    assert execute(function)["secrets"] == {}
    secret_set(function=function, name="API_TOKEN", value="tok-1", actor=None)
    # The second run of a warm version is forked from its environment, which preloaded samsara.
    for _ in range(2):
        assert execute(function)["secrets"] == {"API_TOKEN": digest("tok-1")}


def test_the_guide_spelling_imports_nothing_more_until_it_is_used(org, execute):
    function = make_function(org, "lazy", files={"main.py": GUIDE})
    assert execute(function)["lazy"] is True
    assert execute(function)["lazy"] is True


def test_a_bundled_samsara_module_still_wins(org, execute):
    function = make_function(org, "bundled", files={"main.py": BUNDLED, "samsara.py": BUNDLED_SAMSARA})
    for _ in range(2):
        value = execute(function)
        assert value["secrets"] == {"from": "the bundle"}
        assert value["file"] == "/var/task/samsara.py"


def test_the_rest_of_the_sdk_is_unchanged(org, execute):
    function = make_function(org, "unchanged", files={"main.py": UNCHANGED})
    value = execute(function)
    assert value == {"client": "Samsara", "missing": "No NoSuchThing found in _dynamic_imports for module name -> samsara",
                     "same": True}
