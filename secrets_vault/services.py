"""The secrets vault: every change to a Function's secrets goes through here.

Each function validates fully before it writes, so a refused change leaves
nothing half-done; a ValidationError's message says what to fix. A value is
write-only: it is encrypted before it reaches the database (crypto.py), and
it never appears in a message, an audit entry or a log line; neither does
its length. Only ``secrets_for_run`` decrypts, for the run engine and the
in-run SSM endpoint.

Decisions where the contract is silent:

* Names are case-sensitive (they are the keys of the JSON object a Function
  reads from SSM), 1-128 characters of ``[A-Za-z0-9_.-]``; duplicates compare
  exactly.
* A value is non-empty UTF-8 text of at most 64 KB (65,536 bytes encoded);
  an empty value is refused rather than stored, so "no value" always means
  "value missing".
* At most 100 secrets per Function.
* Secrets whose value is missing are left out of ``secrets_for_run``; the
  caller warns (``secrets_missing_values`` names them).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import IntegrityError, connection, transaction
from django.views.decorators.debug import sensitive_variables

from config.rows import RowReader, quoted_columns, statement_cursor
from functions.audit import Actor, AuditAction, actor_user, audit_record
from functions.bundles.names import MAX_PARAM_NAME_LENGTH, SECRET_NAME_RE
from functions.models import Function

from .crypto import BindingMismatch, Keyring, SecretDecryptionError, UnknownKey, keyring
from .models import Secret
from .redaction import Redactor

__all__ = [
    "MAX_NAME_LENGTH", "MAX_SECRETS_PER_FUNCTION", "MAX_VALUE_BYTES", "SecretDecryptionError",
    "secret_create", "secret_create_missing", "secret_delete", "secret_rename", "secret_set",
    "RunSecrets", "secret_names", "secret_name_problem", "secrets_for_run", "secrets_missing_values",
    "secrets_read_for_run", "secrets_redactor",
    "secrets_replace", "validate_secret_name",
]

MAX_NAME_LENGTH = MAX_PARAM_NAME_LENGTH
MAX_VALUE_BYTES = 64 * 1024
MAX_SECRETS_PER_FUNCTION = 100
# Shared with the bundle checks, so an import never names a secret the vault refuses.
NAME_RE = SECRET_NAME_RE


# --- validation --------------------------------------------------------------------------


def secret_name_problem(name: Any) -> str | None:
    """Why `name` cannot name a secret, or None when it can."""
    if not isinstance(name, str):
        return "A secret name must be text."
    if not name:
        return "A secret needs a name."
    if len(name) > MAX_NAME_LENGTH:
        return f"A secret name can be at most {MAX_NAME_LENGTH} characters (this one has {len(name)})."
    if not NAME_RE.match(name):
        shown = name if name.isprintable() else repr(name)
        return f"The secret name “{shown}” may only contain letters A-Z and a-z, digits, “_”, “.” and “-”."
    return None


def validate_secret_name(name: Any) -> str:
    problem = secret_name_problem(name)
    if problem:
        raise ValidationError({"name": [problem]})
    return name


@sensitive_variables("value", "data")
def _value_bytes(value: str | bytes) -> bytes:
    """The value as the UTF-8 bytes to encrypt; errors never quote the value or its size."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            data = bytes(value)
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError({"value": ["The value is not valid UTF-8 text."]}) from None
    elif isinstance(value, str):
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates, e.g. from undecodable input
            raise ValidationError({"value": ["The value is not valid UTF-8 text."]}) from None
    else:
        raise ValidationError({"value": ["A secret's value must be text."]})
    if not data:
        raise ValidationError({"value": ["A secret's value cannot be empty."]})
    if len(data) > MAX_VALUE_BYTES:
        raise ValidationError({"value": [f"The value is larger than 64 KB (at most {MAX_VALUE_BYTES:,} bytes of UTF-8)."]})
    return data


def _duplicate(name: str) -> ValidationError:
    return ValidationError({"name": [f"A secret named “{name}” already exists on this Function."]})


def _too_many() -> ValidationError:
    return ValidationError(
        {"name": [f"A Function can have at most {MAX_SECRETS_PER_FUNCTION} secrets: delete one before adding another."]}
    )


def _lock_function(function: Function) -> None:
    """Serialises changes to one Function's secrets (the count limit, the duplicate check)."""
    list(Function.objects.select_for_update().filter(pk=function.pk).values_list("pk", flat=True))


# History entries name secrets only: the callers never pass a value, a part of one or its length.
# `changes` has the History tab's {"field": {"from", "to"}} shape, so the tab shows the names that changed.


def _updated_by_label(actor: Actor, actor_label: str | None) -> str:
    # A user is shown through updated_by; the label names the other actors (a command, an API token).
    return "" if actor_user(actor) else (actor_label or "")[:254]


# --- changes ----------------------------------------------------------------------------


@sensitive_variables("value", "data")
def _write(
    *,
    function: Function,
    name: str,
    value: str | bytes,
    actor: Actor,
    actor_label: str | None,
    replace: bool,
) -> tuple[Secret, bool]:
    validate_secret_name(name)
    data = _value_bytes(value)
    ring = keyring()  # a key problem surfaces before anything is written
    try:
        with transaction.atomic():
            _lock_function(function)
            secret = Secret.objects.of(function).filter(name=name).first()
            created = secret is None
            if created:
                if Secret.objects.of(function).count() >= MAX_SECRETS_PER_FUNCTION:
                    raise _too_many()
                secret = Secret.objects.create(function=function, name=name, created_by=actor_user(actor))
            elif not replace:
                raise _duplicate(name)
            was_missing = secret.value_missing
            # The id exists now, so the value can be bound to this row.
            secret.ciphertext, secret.key_id = ring.encrypt(data, binding=secret.binding)
            secret.updated_by = actor_user(actor)
            secret.updated_by_label = _updated_by_label(actor, actor_label)
            secret.save(update_fields=["ciphertext", "key_id", "updated_by", "updated_by_label", "updated_at"])
            if created:
                action, summary, changes = AuditAction.SECRET_ADDED, f"Added secret “{name}”", {"secret": {"from": None, "to": name}}
            elif was_missing:
                action, summary, changes = (
                    AuditAction.SECRET_VALUE_SET, f"Set the missing value of secret “{name}”", {"secret": {"to": name}}
                )
            else:
                action, summary, changes = (
                    AuditAction.SECRET_VALUE_REPLACED, f"Replaced the value of secret “{name}”", {"secret": {"to": name}}
                )
            audit_record(function=function, actor=actor, action=action, summary=summary, changes=changes, actor_label=actor_label)
    except IntegrityError:  # a concurrent add of the same name won
        raise _duplicate(name) from None
    return secret, created


@sensitive_variables("value")
def secret_set(
    *,
    function: Function,
    name: str,
    value: str | bytes,
    actor: Actor,
    actor_label: str | None = None,
) -> tuple[Secret, bool]:
    """Create the secret or replace its value. Returns (secret, created)."""
    return _write(function=function, name=name, value=value, actor=actor, actor_label=actor_label, replace=True)


@sensitive_variables("value")
def secret_create(
    *,
    function: Function,
    name: str,
    value: str | bytes,
    actor: Actor,
    actor_label: str | None = None,
) -> Secret:
    """Add a new secret; an existing name is refused (the Secrets tab's "Add"). Returns the secret."""
    secret, _ = _write(function=function, name=name, value=value, actor=actor, actor_label=actor_label, replace=False)
    return secret


def secret_rename(*, secret: Secret, new_name: str, actor: Actor, actor_label: str | None = None) -> Secret:
    """Rename; the value stays as it is (it is bound to the row, not to the name)."""
    validate_secret_name(new_name)
    old_name = secret.name
    if new_name == old_name:
        return secret
    function = secret.function
    try:
        with transaction.atomic():
            _lock_function(function)
            if Secret.objects.of(function).filter(name=new_name).exists():
                raise _duplicate(new_name)
            updated = Secret.objects.filter(pk=secret.pk, function=function).update(
                name=new_name, updated_by=actor_user(actor), updated_by_label=_updated_by_label(actor, actor_label)
            )
            if not updated:
                raise ValidationError(f"The secret “{old_name}” no longer exists.")
            audit_record(
                function=function, actor=actor, action=AuditAction.SECRET_RENAMED,
                summary=f"Renamed secret “{old_name}” to “{new_name}”",
                changes={"secret": {"from": old_name, "to": new_name}}, actor_label=actor_label,
            )
    except IntegrityError:
        raise _duplicate(new_name) from None
    secret.refresh_from_db()
    return secret


def secret_delete(*, secret: Secret, actor: Actor, actor_label: str | None = None) -> None:
    function = secret.function
    with transaction.atomic():
        deleted, _ = Secret.objects.filter(pk=secret.pk, function=function).delete()
        if deleted:
            audit_record(
                function=function, actor=actor, action=AuditAction.SECRET_DELETED, summary=f"Deleted secret “{secret.name}”",
                changes={"secret": {"from": secret.name, "to": None}}, actor_label=actor_label,
            )


def secret_create_missing(
    *,
    function: Function,
    names: Iterable[str],
    actor: Actor,
    actor_label: str | None = None,
) -> list[str]:
    """Secrets named in import.metadata.json, created without a value; existing names are left as they are.

    All or nothing: one bad name, or too many secrets, refuses the whole set.
    Returns the names created.
    """
    names = list(names)
    problems = []
    for name in names:
        problem = secret_name_problem(name)
        if problem:
            problems.append(problem)
    if problems:
        raise ValidationError([f"Secret names from import.metadata.json: {p}" for p in problems])
    wanted = list(dict.fromkeys(names))  # first occurrence wins, order kept
    with transaction.atomic():
        _lock_function(function)
        existing = set(Secret.objects.of(function).filter(name__in=wanted).values_list("name", flat=True))
        new = [name for name in wanted if name not in existing]
        if not new:
            return []
        if Secret.objects.of(function).count() + len(new) > MAX_SECRETS_PER_FUNCTION:
            raise ValidationError(
                f"Importing {len(new)} more secrets would exceed the limit of {MAX_SECRETS_PER_FUNCTION} per Function."
            )
        Secret.objects.bulk_create(
            [Secret(function=function, name=name, created_by=actor_user(actor), updated_by=actor_user(actor),
                    updated_by_label=_updated_by_label(actor, actor_label)) for name in new]
        )
        audit_record(
            function=function, actor=actor, action=AuditAction.SECRETS_IMPORTED,
            summary=f"Added secrets without values from import.metadata.json: {', '.join(new)}"[:500],
            changes={"secret_names": {"from": None, "to": new}}, actor_label=actor_label,
        )
    return new


@sensitive_variables("secrets", "pairs", "data", "value", "encoded")
def secrets_replace(
    *,
    function: Function,
    secrets: Mapping[str, Any] | Iterable[tuple[str, Any]],
    actor: Actor,
    actor_label: str | None = None,
) -> dict[str, list[str]]:
    """Make the Function's secrets exactly `secrets` (a dict, or (name, value) pairs), the way
    CONTRACT.md's ``config.secrets`` replaces the whole set.

    An empty (or None) value keeps the current value of an existing secret,
    because the API returns every value empty and a client sends back what it
    read; for a new name it creates the secret with its value missing. Names
    not given are deleted. All or nothing: any bad entry refuses the whole
    set. Returns {"added", "replaced", "deleted"} lists of names.
    """
    pairs = list(secrets.items()) if hasattr(secrets, "items") else list(secrets)
    problems, seen, encoded = [], set(), {}
    for entry in pairs:
        try:
            name, value = entry
        except (TypeError, ValueError):
            problems.append("Each secret needs a name and a value.")
            continue
        problem = secret_name_problem(name)
        if problem is None and name in seen:
            problem = f"The secret “{name}” appears more than once; names must be unique."
        if problem:
            problems.append(problem)
            continue
        seen.add(name)
        if value is None or value == "" or value == b"":
            encoded[name] = None
            continue
        try:
            encoded[name] = _value_bytes(value)
        except ValidationError as error:
            problems.extend(f"{name}: {message}" for message in error.messages)
    if len(encoded) > MAX_SECRETS_PER_FUNCTION:
        problems.append(f"A Function can have at most {MAX_SECRETS_PER_FUNCTION} secrets ({len(encoded)} given).")
    if problems:
        raise ValidationError({"secrets": problems})
    ring = keyring() if any(data is not None for data in encoded.values()) else None
    with transaction.atomic():
        _lock_function(function)
        current = {secret.name: secret for secret in Secret.objects.of(function)}
        deleted = sorted(set(current) - set(encoded))
        Secret.objects.of(function).filter(name__in=deleted).delete()
        added, replaced = [], []
        for name, data in encoded.items():
            secret = current.get(name)
            if secret is None:
                secret = Secret.objects.create(function=function, name=name, created_by=actor_user(actor))
                added.append(name)
            elif data is None:
                continue
            else:
                replaced.append(name)
            if data is not None:
                secret.ciphertext, secret.key_id = ring.encrypt(data, binding=secret.binding)
            secret.updated_by = actor_user(actor)
            secret.updated_by_label = _updated_by_label(actor, actor_label)
            secret.save(update_fields=["ciphertext", "key_id", "updated_by", "updated_by_label", "updated_at"])
        if added or replaced or deleted:
            parts = [
                f"{label} {', '.join(names)}"
                for label, names in (("added", added), ("replaced the value of", replaced), ("deleted", deleted))
                if names
            ]
            changes = {}
            if added or deleted:
                changes["secret_names"] = {"from": sorted(current), "to": sorted(encoded)}
            audit_record(
                function=function, actor=actor, action=AuditAction.SECRETS_REPLACED,
                summary=("Secrets: " + "; ".join(parts))[:500], changes=changes, actor_label=actor_label,
            )
    return {"added": added, "replaced": replaced, "deleted": deleted}


# --- reading (the run engine and the in-run SSM endpoint) --------------------------------


def _decrypt(secret: Secret, ring: Keyring) -> str:
    where = f"The secret “{secret.name}” of the Function “{secret.function.name}”"
    try:
        data = ring.decrypt(secret.ciphertext, binding=secret.binding)
    except UnknownKey:
        if secret.key_id and secret.key_id not in ring.key_ids:
            reason = (
                f"was encrypted with key {secret.key_id}, which is not among the configured keys "
                f"({', '.join(ring.key_ids)}) in {ring.source}. Add that key back (after the new one), "
                "or set the secret's value again."
            )
        else:
            reason = "does not verify with the configured keys (the stored ciphertext is damaged); set its value again."
        raise SecretDecryptionError(f"{where} cannot be decrypted: it {reason}",
                                    secret_name=secret.name, function_name=secret.function.name) from None
    except BindingMismatch:
        raise SecretDecryptionError(
            f"{where} cannot be used: its stored ciphertext belongs to another secret (it was copied between rows); "
            "set its value again.", secret_name=secret.name, function_name=secret.function.name,
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretDecryptionError(f"{where} holds a value that is not UTF-8 text; set its value again.",
                                    secret_name=secret.name, function_name=secret.function.name) from None


_SECRETS = RowReader(Secret)


def _rows(function: Function) -> list[Secret]:
    """The Function's secrets, by name, as the ORM would read them (their values still encrypted).

    A statement written once instead of a query built per call, prepared on PostgreSQL
    (config.rows): this runs at every run's claim (secrets_redactor) and for the in-run
    endpoint (secrets_read_for_run), where Django's compiling of the query cost 2 ms of the
    worker's CPU, ten times the statement.
    """
    sql = _rows_sql()
    with statement_cursor() as cursor:
        cursor.execute(sql, [function.pk])
        secrets = [_SECRETS.read(row) for row in cursor.fetchall()]
    for secret in secrets:
        secret.function = function  # what decryption's messages name, without a read
    return secrets


@functools.cache
def _rows_sql() -> str:
    table = connection.ops.quote_name(Secret._meta.db_table)
    return f"SELECT {quoted_columns(Secret, 's')} FROM {table} AS s WHERE s.function_id = %s ORDER BY s.name"


def _with_values(secrets: list[Secret]) -> list[Secret]:
    """The secrets among `secrets` (_rows) that have a value."""
    return [secret for secret in secrets if secret.ciphertext is not None]


def secrets_for_run(*, function: Function) -> dict[str, str]:
    """{name: value} of the secrets that have a value; raises SecretDecryptionError naming a secret that cannot be read."""
    return _decrypted(_with_values(_rows(function)))


def _decrypted(secrets: list[Secret]) -> dict[str, str]:
    """{name: value} of these secrets; raises SecretDecryptionError naming one that cannot be read."""
    if not secrets:
        return {}
    ring = keyring()
    return {secret.name: _decrypt(secret, ring) for secret in secrets}


@dataclasses.dataclass(frozen=True)
class RunSecrets:
    """One read of a Function's secrets, as the in-run SSM endpoint answers a GetParameter."""

    values: dict[str, str]  # name -> value of those that have one, by name (secrets_for_run)
    missing: list[str]  # names without a value yet, by name (secrets_missing_values)
    changed: datetime | None  # when any of them last changed; None without secrets


def secrets_read_for_run(*, function: Function) -> RunSecrets:
    """secrets_for_run, secrets_missing_values and the last change together, from one statement
    (they were three queries, two of them built by the ORM: 2.5 ms of the worker's CPU for
    every run that read its secrets). Raises SecretDecryptionError as secrets_for_run does."""
    secrets = _rows(function)
    if not secrets:
        return RunSecrets(values={}, missing=[], changed=None)
    values = _decrypted(_with_values(secrets))
    return RunSecrets(values=values, missing=[secret.name for secret in secrets if secret.ciphertext is None],
                      changed=max(secret.updated_at for secret in secrets))


def secrets_missing_values(*, function: Function) -> list[str]:
    """Names of the Function's secrets that have no value yet (imported names waiting for an admin)."""
    return list(Secret.objects.of(function).missing_values().order_by("name").values_list("name", flat=True))


def secret_names(*, function: Function) -> list[str]:
    return list(Secret.objects.of(function).order_by("name").values_list("name", flat=True))


def secrets_redactor(*, function: Function) -> Redactor:
    """A Redactor for the Function's current secret values (see redaction.py).

    A value the keys cannot read is skipped rather than raised: the run cannot
    obtain it either (its SSM read fails), so there is nothing of it to mask.
    """
    secrets = _with_values(_rows(function))
    values = []
    if secrets:
        ring = keyring()
        for secret in secrets:
            try:
                values.append(_decrypt(secret, ring))
            except SecretDecryptionError:
                continue
    return Redactor(values)


def secret_rows(*, function: Function) -> list[Secret]:
    """The Secrets tab's rows: each secret plus whether the configured keys can still read it (no decryption)."""
    rows = list(Secret.objects.of(function).select_related("updated_by").order_by("name"))
    known = None
    if any(not row.value_missing for row in rows):
        try:
            known = set(keyring().key_ids)
        except ImproperlyConfigured:  # a bad key file: every value shows "cannot decrypt" instead of a crash
            known = set()
    for row in rows:
        row.key_unavailable = bool(not row.value_missing and known is not None and row.key_id not in known)
    return rows
