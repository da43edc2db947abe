"""Celery tasks: thin. The work is in monitor.services."""

from config.celery import app

from . import services


@app.task(name="monitor.tasks.prune_runs", ignore_result=True)
def prune_runs():
    # Bounded so an hourly run never overlaps the next; what is left waits an hour.
    result = services.runs_prune(max_seconds=45 * 60)
    return {"deleted": result.deleted, "finished": result.finished}
