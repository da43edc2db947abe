"""Scheduled upkeep of the organizations' storage. Thin: the work is storage.services."""

from config.celery import app

from .services import blob_sweep


@app.task(name="storage.tasks.sweep_orphaned_blobs", ignore_result=True)
def sweep_orphaned_blobs():
    return len(blob_sweep())
