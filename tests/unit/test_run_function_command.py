import json

import pytest
from django.core.management import CommandError, call_command

from functions.models import Run
from tests.factories import make_function


@pytest.fixture
def function(org):
    return make_function(org, "hello", params={"name": "fleet"})


def test_it_starts_a_manual_run_with_overrides_and_prints_its_id(function, capsys, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        call_command("run_function", "--org", "acme fleet", "HELLO", "--param", "name=ops", "--param", "extra=a=b")
    out = json.loads(capsys.readouterr().out)
    run = Run.objects.get()
    assert out == {"correlationId": str(run.correlation_id), "status": "queued"} and len(callbacks) == 1
    assert run.trigger == "manual" and run.overrides == {"name": "ops", "extra": "a=b"}


@pytest.mark.parametrize(
    "args,message",
    [
        (["--org", "Nope", "hello"], "No organization named “Nope”"),
        (["--org", "Acme Fleet", "missing"], "No Function named “missing”"),
        (["--org", "Acme Fleet", "hello", "--param", "novalue"], "write it as KEY=VALUE"),
        (["--org", "Acme Fleet", "hello", "--param", "=x"], "write it as KEY=VALUE"),
        (["--org", "Acme Fleet", "hello", "--wait", "0"], "greater than 0"),
    ],
)
def test_it_refuses_bad_input_and_starts_nothing(function, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("run_function", *args)
    assert not Run.objects.exists()


def test_waiting_for_a_run_no_worker_takes_fails_with_its_status(function, capsys):
    with pytest.raises(CommandError, match="has not ended after 0.3 s \\(status: queued\\)"):
        call_command("run_function", "--org", "Acme Fleet", "hello", "--wait", "0.3")
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "queued" and out["logs"] == []
