"""Scheduled upkeep of the catalogue. Thin: the work is functions.services."""

from celery import shared_task

from .services import staged_uploads_sweep


@shared_task(name="functions.tasks.sweep_staged_uploads", ignore_result=True)
def sweep_staged_uploads():
    return len(staged_uploads_sweep())
