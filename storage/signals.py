"""A deleted object's bytes go when its row goes, however the row went.

Rows are deleted by the services and also by cascade (an organization
deleted); either way the blob is removed only after the deletion commits, so
a rolled-back deletion still has its bytes.
"""

from functools import partial

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import StoredObject


@receiver(post_delete, sender=StoredObject, dispatch_uid="storage_discard_blob")
def discard_blob_after_delete(sender, instance, using, **kwargs):
    from .services import discard_blob

    if instance.blob_name:
        transaction.on_commit(partial(discard_blob, instance.blob_name), using=using)
