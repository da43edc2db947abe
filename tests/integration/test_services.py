import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from django.db import connection

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]


def test_the_database_is_postgresql(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        assert "PostgreSQL" in cursor.fetchone()[0]


def test_healthz_is_ok_on_postgresql_and_redis(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "ok"


def test_a_real_worker_answers_on_the_broker(db):
    """A Celery worker started as operators start it connects to the broker and replies."""
    queue = f"itest-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "CELERY_QUEUE": queue}
    name = f"itest-{uuid.uuid4().hex[:8]}@%h"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "-n", name, "--loglevel", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        replies = []
        while time.monotonic() < deadline and not replies:
            replies = [r for r in celery_app.control.ping(timeout=1) if any(name.split("@")[0] in k for k in r)]
        assert replies, "the worker never replied to a ping"
    finally:
        worker.terminate()
        worker.wait(timeout=20)
