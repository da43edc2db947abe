"""Reading and writing rows on the worker's hot path without the ORM's query compiler.

Every run claims a row, opens an attempt and records its outcome. On this kind of
machine Django spends 1-2.5 ms of CPU building each of those queries before it is
sent (a SELECT with select_related: 2.3 ms to compile, 0.45 ms to send and read),
several times the statement's own cost, and the worker's process is what limits how
many trivial runs a 2-core machine takes a second (issue 17). The statements that
run once per run therefore write their SQL by hand (runtime.dispatch, the recording
in runtime.services, the run's read of its secrets in secrets_vault.services); these
helpers give them the ORM's exact handling of values. They live here, below every app,
so that any app's hot path can use them:

* ``RowReader`` turns part of a result row into a model instance through the fields'
  own converters (the ones the ORM applies: SQLite's datetimes and UUIDs, JSON), so
  an instance read here equals one the ORM would have read;
* ``save_values`` adapts values through ``Field.get_db_prep_save``, as an ORM
  ``update()`` or ``save()`` does;
* ``rows_update`` is ``Model.objects.filter(**where).update(**changes)`` for plain
  field values, with its SQL written once per shape.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Model


def statement_cursor():
    """A cursor for the statements written here, for use as ``with statement_cursor() as cursor``.

    On PostgreSQL it binds parameters on the server, unlike the client-side binding
    Django's cursors use: psycopg sends the statement as written and the values apart (no
    Python step per value to write them into the SQL: measured, 0.1-0.3 ms of the worker's
    CPU a statement), and, unless DATABASE_PREPARED_STATEMENTS is off, prepares it on the
    connection. The server then parses and plans each statement once per connection, not
    once per run: planning the claim's two statements took 0.8 ms of its CPU a run, more
    than running them (0.45 ms). Elsewhere, Django's own cursor.
    """
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.ensure_connection()
    raw, prepared = connection.connection, settings.DATABASE_PREPARED_STATEMENTS
    if prepared and raw.prepare_threshold is None:
        # Django turns psycopg's preparing off on its connections (for poolers' sake), and then
        # psycopg ignores prepare=True too. Turned back on for what asks for it by name only:
        # no count of executions ever prepares anything else (Django's own cursors bind
        # client-side and are never prepared anyway).
        raw.prepare_threshold = _NEVER_BY_COUNT
    # Wrapped as Django wraps its own cursors: its error translation (IntegrityError etc.),
    # and the query log when it is on (assertNumQueries, DEBUG).
    return connection._prepare_cursor(_server_binding_cursor(prepared)(raw))


_NEVER_BY_COUNT = 2**31 - 1


@functools.cache
def _server_binding_cursor(prepared: bool) -> type:
    """psycopg's server-binding cursor class; with ``prepared``, one that prepares every statement it runs."""
    import psycopg

    if not prepared:
        return psycopg.Cursor

    class PreparingCursor(psycopg.Cursor):
        def execute(self, query, params=None, *, prepare=None, binary=None):
            return super().execute(query, params, prepare=True if prepare is None else prepare, binary=binary)

    return PreparingCursor


def quoted_columns(model: type[Model], alias: str) -> str:
    """The model's columns, in its concrete fields' order (what RowReader reads), prefixed by alias."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(field.column)}" for field in model._meta.concrete_fields)


class RowReader:
    """Model instances from slices of raw rows laid out as quoted_columns() lists them."""

    def __init__(self, model: type[Model]):
        self.model = model
        self.width = len(model._meta.concrete_fields)
        # Converters belong to a connection (one per thread): worked out once for each.
        self._converters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def _for(self, db) -> list[tuple[int, list, Any]]:
        found = self._converters.get(db)
        if found is None:
            found = []
            for index, field in enumerate(self.model._meta.concrete_fields):
                column = field.get_col(self.model._meta.db_table)
                converters = db.ops.get_db_converters(column) + field.get_db_converters(db)
                if converters:
                    found.append((index, converters, column))
            with self._lock:
                self._converters[db] = found
        return found

    def read(self, row: Sequence, start: int = 0) -> Model:
        """The instance held in row[start:start + width], as the ORM would have built it."""
        db = connections[DEFAULT_DB_ALIAS]  # the thread's own connection (`connection` is its proxy)
        values = list(row[start : start + self.width])
        for index, converters, column in self._for(db):
            value = values[index]
            for converter in converters:
                value = converter(value, column, db)
            values[index] = value
        return self.model.from_db(db.alias, None, values)


def save_values(model: type[Model], values: Mapping[str, Any]) -> list:
    """values (field name -> Python value) adapted for the database, as the ORM adapts what it saves."""
    meta = model._meta
    return [meta.get_field(name).get_db_prep_save(value, connection) for name, value in values.items()]


def lookup_values(model: type[Model], values: Mapping[str, Any]) -> list:
    """values (field name -> Python value) adapted as the ORM adapts an exact lookup's value."""
    meta = model._meta
    return [meta.get_field(name).get_db_prep_value(value, connection) for name, value in values.items()]


_UPDATES: dict[tuple, str] = {}


def rows_update(model: type[Model], *, where: Mapping[str, Any], changes: Mapping[str, Any]) -> int:
    """How many rows matched ``where`` (field name -> value, all equal) and now hold ``changes``.

    The same statement as ``model.objects.filter(**where).update(**changes)`` for plain
    values (no expressions), without compiling a query each time.
    """
    key = (model, connection.vendor, tuple(where), tuple(changes))
    sql = _UPDATES.get(key)
    if sql is None:
        meta, quote = model._meta, connection.ops.quote_name
        assignments = ", ".join(f"{quote(meta.get_field(name).column)} = %s" for name in changes)
        conditions = " AND ".join(f"{quote(meta.get_field(name).column)} = %s" for name in where)
        sql = _UPDATES[key] = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {conditions}"
    with statement_cursor() as cursor:
        cursor.execute(sql, save_values(model, changes) + lookup_values(model, where))
        return cursor.rowcount
