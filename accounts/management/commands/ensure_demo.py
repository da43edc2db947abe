"""Create the demo organization and its admin once; print how to sign in every time."""

import json
import os
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import BuiltinRole, Membership, Organization, User

DEMO_ORG = "Demo"
DEMO_EMAIL = "admin@example.com"


class Command(BaseCommand):
    help = "Idempotently create the demo organization and a Full Admin; prints their sign-in details."

    def handle(self, *args, **options):
        credentials = settings.DATA_DIR / "demo-admin.json"
        with transaction.atomic():
            org = Organization.objects.filter(name__iexact=DEMO_ORG).first() or Organization.objects.create(name=DEMO_ORG)
            user = User.objects.filter(email__iexact=DEMO_EMAIL).first()
            if user is None or not credentials.exists():
                password = secrets.token_urlsafe(12)
                if user is None:
                    user = User.objects.create_user(DEMO_EMAIL, password, name="Demo Admin")
                else:
                    user.set_password(password)
                    user.save(update_fields=["password"])
                fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as handle:
                    json.dump({"email": DEMO_EMAIL, "password": password}, handle)
            Membership.objects.get_or_create(
                user=user, organization=org, defaults={"builtin_role": BuiltinRole.FULL_ADMIN}
            )
        data = json.loads(credentials.read_text())
        self.stdout.write(json.dumps({"organization": {"id": org.id, "name": org.name}, **data}))
