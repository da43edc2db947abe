"""Scheduled upkeep of the organizations' storage. Thin: the work is storage.services."""

from celery import shared_task

from .services import blob_sweep


@shared_task(name="storage.tasks.sweep_orphaned_blobs", ignore_result=True)
def sweep_orphaned_blobs():
    return len(blob_sweep())
