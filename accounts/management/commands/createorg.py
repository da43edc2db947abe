import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Region
from accounts.services import organization_create


class Command(BaseCommand):
    help = "Create an organization; prints {id, name, region, timezone} as JSON."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--region", default=Region.US, help="us, eu or ca (default us)")
        parser.add_argument("--timezone", default="UTC", help="an IANA time zone name (default UTC)")

    def handle(self, *args, name, region, timezone, **options):
        try:
            org = organization_create(name=name, region=region, timezone=timezone)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(json.dumps({"id": org.id, "name": org.name, "region": org.region, "timezone": org.timezone}))
