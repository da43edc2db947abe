"""Celery tasks: thin. The work is in alerts.services."""

from config.celery import app

from . import services


@app.task(name="alerts.tasks.prune_incident_keys", ignore_result=True)
def prune_incident_keys():
    return {"deleted": services.incident_keys_prune()}
