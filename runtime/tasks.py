"""Celery tasks: thin, by id, idempotent. The work is in runtime.services."""

from celery import shared_task

from . import services


@shared_task(name="runtime.tasks.execute_run", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def execute_run(run_id):
    services.run_execute(run_id=run_id)


@shared_task(name="runtime.tasks.reap_lost_runs", ignore_result=True)
def reap_lost_runs():
    return services.runs_reap_lost()
