import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.commands import organization_named
from accounts.services import membership_add


class Command(BaseCommand):
    help = "Add a member to an organization, creating the user when the e-mail is new; prints JSON."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--org", required=True, help="the organization's name")
        parser.add_argument(
            "--role", required=True, help="full_admin, standard_admin, read_only_admin or a custom role's name"
        )
        parser.add_argument("--password", help="sign-in password (without it the user cannot sign in until one is set)")

    def handle(self, *args, email, org, role, password, **options):
        organization = organization_named(org)
        try:
            membership, created = membership_add(organization=organization, email=email, role=role, password=password)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(
            json.dumps(
                {
                    "email": membership.user.email,
                    "organization": {"id": organization.id, "name": organization.name},
                    "role": membership.role_key,
                    "createdUser": created,
                }
            )
        )
