"""Scheduled upkeep of the catalogue. Thin: the work is functions.services."""

from config.celery import app

from .services import staged_uploads_sweep


@app.task(name="functions.tasks.sweep_staged_uploads", ignore_result=True)
def sweep_staged_uploads():
    return len(staged_uploads_sweep())
