"""Kept PostgreSQL connections are checked without a round trip (config/postgresql/base.py): a
connection the server ended is replaced before its next use, a healthy one is reused as it is."""

import pytest
from django.db import close_old_connections, connection

pytestmark = [pytest.mark.django_db(transaction=True)]


def _backend_pid():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _other_connection():
    import psycopg

    settings = connection.settings_dict
    return psycopg.connect(host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"],
                           password=settings["PASSWORD"], dbname=settings["NAME"], autocommit=True)


def _terminate(pid):
    with _other_connection() as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]


def _wait_readable(raw, seconds=5.0):
    import select

    select.select([raw.fileno()], [], [], seconds)


def _start_of_task():
    # What the worker does before each task (runtime.tasks) and Django before each request.
    close_old_connections()


def _last_statement(pid):
    with _other_connection() as other:
        return other.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[0]


def test_a_healthy_kept_connection_is_reused_without_a_statement():
    pid = _backend_pid()
    raw = connection.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'the last statement'")
    _start_of_task()
    connection.close_if_health_check_failed()  # what Django runs before the connection's next use
    assert connection.connection is raw
    # Django's own check would have sent SELECT 1: the server saw nothing after our statement.
    assert _last_statement(pid) == "SELECT 'the last statement'"
    assert _backend_pid() == pid


def test_a_connection_the_server_ended_is_replaced_before_its_next_use():
    pid = _backend_pid()
    raw = connection.connection
    _terminate(pid)
    _wait_readable(raw)  # the server's last message and the end of the socket have arrived
    assert not connection.is_usable()
    _start_of_task()
    assert _backend_pid() != pid  # a fresh connection, and the statement worked
    assert connection.connection is not raw


def test_a_connection_left_inside_a_transaction_is_not_reused():
    from psycopg.pq import TransactionStatus

    connection.ensure_connection()
    raw = connection.connection
    raw.execute("BEGIN")
    assert raw.info.transaction_status == TransactionStatus.INTRANS
    assert not connection.is_usable()
    raw.execute("ROLLBACK")
    assert connection.is_usable()
