"""The worker's hand-written statements on PostgreSQL (config.rows.statement_cursor): prepared once
per connection unless DATABASE_PREPARED_STATEMENTS is off, and the same answers either way."""

import pytest
from django.db import connection

from functions.models import Run, RunStatus
from functions.run_services import run_trigger
from config import rows
from runtime import dispatch
from tests.factories import make_function

pytestmark = [pytest.mark.django_db(transaction=True)]


def _prepared():
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        return [statement for (statement,) in cursor.fetchall()]


@pytest.mark.parametrize("prepared", [True, False])
def test_claims_and_recordings_prepared_once_or_not_at_all_take_the_runs_in_order(org, settings, prepared):
    settings.DATABASE_PREPARED_STATEMENTS = prepared
    connection.close()  # a fresh connection: nothing prepared on it yet
    function = make_function(org, "prepared")
    queued = [run_trigger(function=function, trigger="api") for _ in range(4)]
    taken = []
    for _ in queued:
        run, attempt = dispatch.run_claim_next(worker="w", isolation="test")
        taken.append(run.pk)
        assert run.status == RunStatus.RUNNING and attempt.run_id == run.pk and attempt.number == 1
        assert rows.rows_update(Run, where={"id": run.pk, "status": RunStatus.RUNNING},
                                changes={"status": RunStatus.SUCCEEDED}) == 1
    assert taken == [run.pk for run in queued]  # oldest first, each once
    assert dispatch.run_claim_next(worker="w", isolation="test") == (None, None)
    assert not Run.objects.exclude(status=RunStatus.SUCCEEDED).filter(function=function).exists()
    statements = _prepared()
    if prepared:
        # The claim's two statements and the recording's UPDATE, each prepared once however often it ran.
        assert any("INSERT INTO" in s and "functions_runturn" in s for s in statements)
        assert any("WITH claimed AS" in s for s in statements)
        assert any(s.startswith('UPDATE "functions_run"') for s in statements)
        assert len(statements) == len(set(statements))
    else:
        assert statements == []


@pytest.mark.parametrize("prepared", [True, False])
def test_a_runs_read_of_its_secrets_is_prepared_once_and_reads_what_the_orm_reads(org, settings, prepared):
    from secrets_vault.models import Secret
    from secrets_vault.services import secrets_read_for_run, secrets_redactor, secrets_replace

    settings.DATABASE_PREPARED_STATEMENTS = prepared
    connection.close()
    function = make_function(org, "secret-reader")
    secrets_replace(function=function, secrets={"B_TOKEN": "value-of-b-7f3a", "A_TOKEN": "value-of-a-91c2"},
                    actor=None, actor_label="test")
    for _ in range(3):
        read = secrets_read_for_run(function=function)
        assert read.values == {"A_TOKEN": "value-of-a-91c2", "B_TOKEN": "value-of-b-7f3a"}
        assert read.changed == max(Secret.objects.filter(function=function).values_list("updated_at", flat=True))
        assert secrets_redactor(function=function).redact("x value-of-b-7f3a y") == "x **** y"
    secrets_statements = [s for s in _prepared() if "secrets_vault_secret" in s]
    assert secrets_statements == (['SELECT s."id", s."function_id", s."name", s."ciphertext", s."key_id", '
                                   's."created_by_id", s."created_at", s."updated_by_id", s."updated_by_label", '
                                   's."updated_at" FROM "secrets_vault_secret" AS s WHERE s.function_id = $1 '
                                   'ORDER BY s.name'] if prepared else [])
