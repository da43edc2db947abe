"""Celery tasks: thin. The work is in logs.services."""

from celery import shared_task

from . import services


@shared_task(name="logs.tasks.prune_logs", ignore_result=True)
def prune_logs():
    # Bounded so an hourly run never overlaps the next; what is left waits an hour.
    result = services.logs_prune(max_seconds=45 * 60)
    return {"deleted": result.deleted, "runsMarked": result.runs_marked, "finished": result.finished}
