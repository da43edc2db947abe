import getpass
import json
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.commands import function_named, organization_named
from secrets_vault.services import secret_set


def _read_value(stream, key):
    """The value from standard input as bytes: piped text minus ONE trailing newline, or typed without echo."""
    if stream is None:
        if sys.stdin is not None and sys.stdin.isatty():
            return getpass.getpass(f"Value of {key} (not shown): ").encode("utf-8", "surrogateescape")
        stream = sys.stdin.buffer
    data = stream.read()
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    # Only the newline `echo` or a here-string adds; any other whitespace is part of the value.
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    return data


class Command(BaseCommand):
    help = (
        "Set a secret of a Function, reading the value from standard input (one trailing newline is dropped); "
        'prints {"function", "secret", "created"} as JSON, never the value.'
    )
    # For tests and scripts calling call_command(): a binary file-like object to read instead of stdin.
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("function", metavar="FN", help="the Function's name")
        parser.add_argument("key", metavar="KEY", help="the secret's name (case-sensitive)")
        parser.add_argument("--org", required=True, help="the organization's name")

    def handle(self, *args, function, key, org, **options):
        target = function_named(organization_named(org), function)
        data = _read_value(options.get("stdin"), key)
        if not data:
            raise CommandError(f"No value on standard input for {key}: pipe it in, e.g. printf %s \"$VALUE\" | manage.py set_secret ...")
        try:
            _, created = secret_set(function=target, name=key, value=data, actor=None, actor_label="manage.py set_secret")
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(json.dumps({"function": target.name, "secret": key, "created": created}))
