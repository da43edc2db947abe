"""Look-ups shared by the operator commands, failing with a message that says what to do."""

from django.core.management.base import CommandError

from .models import Organization


def organization_named(name):
    organization = Organization.objects.filter(name__iexact=name).first()
    if organization is None:
        raise CommandError(f"No organization named “{name}”: create it with manage.py createorg first.")
    return organization


def function_named(organization, name):
    from functions.models import Function

    function = Function.objects.of(organization).named(name).first()
    if function is None:
        raise CommandError(
            f"No Function named “{name}” in {organization.name}: create it with manage.py deploy_function first."
        )
    return function
