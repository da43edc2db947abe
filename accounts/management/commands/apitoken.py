import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.commands import organization_named
from accounts.services import API_SCOPES, API_TOKEN_DEFAULT_DAYS, api_token_create


class Command(BaseCommand):
    help = "Create an API token for the REST API; prints {name, token, scopes, expiresAt}, the only time the token is shown."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="the organization's name")
        parser.add_argument("--name", required=True, help="what uses the token, e.g. “CI deploys”")
        parser.add_argument("--scopes", required=True, help=f"comma-separated: {','.join(API_SCOPES)}")
        parser.add_argument(
            "--expires-days", default=str(API_TOKEN_DEFAULT_DAYS),
            help=f"days until it expires, 1-365 (default {API_TOKEN_DEFAULT_DAYS}), or “never”",
        )

    def handle(self, *args, org, name, scopes, expires_days, **options):
        organization = organization_named(org)
        if expires_days.strip().lower() == "never":
            days = None
        else:
            try:
                days = int(expires_days)
            except ValueError:
                raise CommandError(f"--expires-days {expires_days!r}: give a number of days from 1 to 365, or never.") from None
        try:
            token, raw = api_token_create(
                organization=organization, name=name, scopes=scopes, expires_in_days=days, actor_label="manage.py apitoken"
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(json.dumps({
            "name": token.name,
            "token": raw,
            "scopes": token.scopes,
            "expiresAt": token.expires_at.isoformat().replace("+00:00", "Z") if token.expires_at else None,
        }))
