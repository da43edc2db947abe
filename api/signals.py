"""A deleted Function's code package waiting at its uploadPutUrl goes with it, however it was deleted."""

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from functions.models import Function

from .services import pending_package_key


@receiver(post_delete, sender=Function, dispatch_uid="api_discard_pending_package")
def discard_pending_package(sender, instance, **kwargs):
    key = pending_package_key(instance)
    transaction.on_commit(lambda: default_storage.delete(key))
