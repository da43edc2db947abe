"""Celery tasks: thin. The work is in logs.services."""

from config.celery import app

from . import services


@app.task(name="logs.tasks.prune_logs", ignore_result=True)
def prune_logs():
    # Bounded so an hourly run never overlaps the next; what is left waits an hour.
    result = services.logs_prune(max_seconds=45 * 60)
    return {"deleted": result.deleted, "runsMarked": result.runs_marked, "finished": result.finished,
            "blocksDeleted": result.blocks_deleted}


@app.task(name="logs.tasks.index_log_blocks", ignore_result=True)
def index_log_blocks():
    # Sent (by runtime.tasks) when an attempt stages its first block and again once its run is
    # recorded, and from beat as a sweep for blocks a dead worker left: it drains until none is left.
    result = services.log_blocks_index()
    return {"blocks": result.blocks, "lines": result.lines}
