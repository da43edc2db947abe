import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.commands import function_named, organization_named
from alerts import services


class Command(BaseCommand):
    help = "Create an enabled alert configuration with Execute Function actions; prints {id, name, functions}."

    def add_arguments(self, parser):
        parser.add_argument("alert", help="the alert's name")
        parser.add_argument("--org", required=True, help="the organization's name")
        parser.add_argument(
            "--function", action="append", required=True, metavar="FN",
            help="a Function (visible to customers) for the alert to execute (repeatable)",
        )

    def handle(self, *args, alert, org, function, **options):
        organization = organization_named(org)
        functions = [function_named(organization, name) for name in function]
        try:
            created = services.alert_create(
                organization=organization, actor=None, actor_label="manage.py create_alert", name=alert,
                functions=functions, enabled=True,
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        names = [action.function.name for action in created.actions.select_related("function")]
        self.stdout.write(json.dumps({"id": str(created.pk), "name": created.name, "functions": names}))
