import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.commands import organization_named
from functions import services
from functions.models import Function

ACTOR_LABEL = "manage.py deploy_function"


def parse_param(text):
    name, sep, value = text.partition("=")
    if not sep:
        raise CommandError(f"--param {text!r} is not KEY=VALUE (for example --param REGION=us).")
    return name, value


def error_text(error):
    """A ValidationError as one line, each message once, field names as the command spells them."""
    flags = {"bundle": "--zip", "handler": "--handler", "description": "--description", "params": "--param",
             "timeout_seconds": "--timeout", "tmp_mb": "--tmp-mb", "message": "--message", "name": "FN"}
    if hasattr(error, "error_dict"):
        parts = []
        for field, errors in error.message_dict.items():
            prefix = f"{flags[field]}: " if field in flags else ""
            parts += [prefix + message for message in errors]
        return " ".join(parts)
    return " ".join(error.messages)


class Command(BaseCommand):
    help = (
        "Create a Function from a zip, or deploy a new version of an existing one; "
        "prints {name, version, sha256} as JSON."
    )

    def add_arguments(self, parser):
        parser.add_argument("function", metavar="FN", help="the Function's name")
        parser.add_argument("--org", required=True, help="the organization's name")
        parser.add_argument("--zip", required=True, dest="zip_path", metavar="PATH", help="the code package (.zip)")
        parser.add_argument("--handler", help="path/to/module.function; required when creating the Function")
        parser.add_argument("--description", help="the Function's description")
        parser.add_argument(
            "--param", action="append", default=None, metavar="KEY=VALUE",
            help="an event parameter; repeat for more. Given, they replace the Function's whole set.",
        )
        parser.add_argument("--timeout", type=int, metavar="SECONDS", help="the Function's own time limit, 1-900")
        parser.add_argument("--tmp-mb", type=int, metavar="MB", help="the size of the Function's /tmp, up to 10240")
        parser.add_argument("--message", default="", help="a note on this version")

    def handle(self, *args, function, org, zip_path, handler, description, param, timeout, message, tmp_mb=None,
               **options):
        organization = organization_named(org)
        params = [parse_param(p) for p in param] if param is not None else None
        try:
            bundle = open(zip_path, "rb")
        except OSError as exc:
            raise CommandError(f"Cannot read --zip {zip_path}: {exc.strerror}.") from None
        with bundle:
            try:
                existing = Function.objects.of(organization).named(function).first()
                if existing is None:
                    with transaction.atomic():
                        version = self._create(organization, function, bundle, handler, description, params, timeout,
                                               message)
                        if tmp_mb is not None:
                            created = Function.objects.get(pk=version.function_id)
                            self._configure(created, None, None, None, tmp_mb)
                else:
                    version = self._deploy(existing, bundle, handler, description, params, timeout, message, tmp_mb)
            except ValidationError as error:
                raise CommandError(error_text(error)) from None
        self.stdout.write(
            json.dumps({"name": version.function.name, "version": version.number, "sha256": version.sha256})
        )

    def _create(self, organization, name, bundle, handler, description, params, timeout, message):
        if not handler:
            raise CommandError(f"{name} does not exist yet in {organization.name}: --handler is required to create it.")
        function = services.function_create(
            organization=organization, actor=None, actor_label=ACTOR_LABEL, name=name, description=description or "",
            handler=handler, bundle=bundle, event_parameters=params or (), message=message, timeout_seconds=timeout,
        )
        return function.deployed_version

    def _deploy(self, function, bundle, handler, description, params, timeout, message, tmp_mb=None):
        # One transaction: a refused configuration change leaves no new version behind.
        with transaction.atomic():
            version = services.code_version_upload(
                function=function, actor=None, actor_label=ACTOR_LABEL, bundle=bundle, message=message,
                deploy=True, handler=handler,
            )
            self._configure(function, description, params, timeout, tmp_mb)
        return version

    def _configure(self, function, description, params, timeout, tmp_mb):
        if description is not None or params is not None or timeout is not None or tmp_mb is not None:
            services.function_update(
                function=function, actor=None, actor_label=ACTOR_LABEL, revision=function.revision,
                description=function.description if description is None else description,
                handler=function.handler,
                event_parameters=function.event_parameters if params is None else params,
                visible_to_customers=function.visible_to_customers,
                timeout_seconds=services.UNCHANGED if timeout is None else timeout,
                tmp_mb=services.UNCHANGED if tmp_mb is None else tmp_mb,
            )
