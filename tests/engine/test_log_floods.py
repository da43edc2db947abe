"""A flood through the real sandbox and the worker's task: staged past the threshold, the indexer sent by
runtime.tasks, every line indexed once; and a trivial run that never meets a block."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from functions.models import RunStatus
from functions.run_services import run_trigger
from logs import services as log_services
from logs.models import LogBlock, LogEntry
from logs.services import log_blocks_index
from runtime import services as runtime_services
from runtime import tasks
from secrets_vault.services import secret_set
from tests.factories import make_function


@pytest.fixture
def sent(monkeypatch):
    """What runtime.tasks sends to the broker by name (the broker itself is not part of these tests)."""
    calls = []
    monkeypatch.setattr(tasks.app, "send_task", lambda name, **options: calls.append((name, options)))
    return calls


def test_a_trivial_run_never_touches_the_blocks(org, run_to_end, sent):
    function = make_function(org, "trivial", files={"main.py": "def handler(event, context):\n    print('hi')\n"})
    run = run_trigger(function=function, trigger="manual")
    with CaptureQueriesContext(connection) as captured:
        run = run_to_end(run)
    assert run.status == RunStatus.SUCCEEDED
    assert not [q["sql"] for q in captured.captured_queries if "logs_logblock" in q["sql"]]
    assert sent == []


def test_a_flood_is_recorded_then_indexed_in_order_with_secrets_masked(org, run_to_end, sent, monkeypatch):
    monkeypatch.setattr(log_services, "LOG_STAGING_THRESHOLD", 2000)
    monkeypatch.setattr(runtime_services, "LOG_BATCH_SIZE", 2000)  # several blocks staged while it prints
    function = make_function(org, "flooder", files={"main.py": (
        "def handler(event, context):\n"
        "    for i in range(30000):\n"
        "        print(f'line {i} hunter2-secret')\n"
    )})
    secret_set(function=function, name="TOKEN", value="hunter2-secret", actor=None)
    run = run_to_end(run_trigger(function=function, trigger="manual"))
    assert run.status == RunStatus.SUCCEEDED
    assert LogBlock.objects.filter(run=run).exists()
    # runtime.tasks sent the indexer while the Function printed (delayed) and once the run was recorded (at once).
    assert [name for name, _ in sent] == ["logs.tasks.index_log_blocks"] * len(sent) and len(sent) >= 2
    assert sent[0][1]["countdown"] == log_services.LOG_INDEX_DELAY_SECONDS and sent[-1][1]["countdown"] is None
    log_blocks_index()
    messages = list(LogEntry.objects.filter(run=run).order_by("id").values_list("message", flat=True))
    assert messages[:-1] == [f"line {i} ****" for i in range(30000)]
    assert messages[-1].startswith("REPORT RequestId:")
    assert not LogBlock.objects.exists()
