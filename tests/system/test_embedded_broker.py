"""A real Celery worker (prefork, acks_late, as the Procfile starts it) on the embedded broker, without Django.

What the broker must keep of kombu's guarantees: a message sent before any
worker runs waits for one, and a task whose pool process is killed mid-task
is delivered again (reject on worker lost puts the message back).
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery

from tests.integration.processes import stop_process, wait_for

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

APP = '''
import importlib.util, os, pathlib, sys, time
from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

# config/broker.py alone: importing the config package would set up the product's own Celery app and Django.
spec = importlib.util.spec_from_file_location("embedded_broker", os.environ["TEST_BROKER_MODULE"])
sys.modules["embedded_broker"] = module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
TRANSPORT_ALIASES["embedded"] = "embedded_broker:Transport"

app = Celery("broker-test", broker=os.environ["TEST_BROKER_URL"])
app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
                task_default_queue="q", broker_connection_retry_on_startup=True)
MARKS = pathlib.Path(os.environ["TEST_MARKS"])


@app.task(name="mark")
def mark(name):
    started = MARKS / f"{name}.started"
    first = not started.exists()
    started.write_text(str(os.getpid()))
    if name == "hang" and first:
        time.sleep(600)
    (MARKS / f"{name}.done").write_text("")
'''


@pytest.fixture
def embedded(tmp_path):
    url = f"embedded+sqlite:///{tmp_path / 'broker.sqlite3'}"
    marks = tmp_path / "marks"
    marks.mkdir()
    (tmp_path / "brokerapp.py").write_text(APP)
    # Not made Celery's current app: the product's own must stay current for the rest of the session.
    sender = Celery("broker-test-sender", broker=url, set_as_current=False)
    sender.conf.update(task_default_queue="q", broker_connection_retry_on_startup=True)
    workers = []

    def start_worker():
        env = {**os.environ, "TEST_BROKER_URL": url, "TEST_MARKS": str(marks), "DATA_DIR": str(tmp_path),
               "TEST_BROKER_MODULE": str(ROOT / "config" / "broker.py"), "PYTHONPATH": str(tmp_path)}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        log = open(tmp_path / f"worker-{len(workers)}.log", "w")
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "brokerapp", "worker", "--concurrency", "1",
                                   "--loglevel", "INFO"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        workers.append(worker)
        return worker

    yield sender, marks, start_worker
    sender.close()
    for worker in workers:
        stop_process(worker)


def test_a_message_sent_before_any_worker_runs_is_taken_when_one_starts(embedded):
    sender, marks, start_worker = embedded
    sender.send_task("mark", args=["before"])
    start_worker()
    wait_for(lambda: (marks / "before.done").exists(), what="the task sent before the worker started")


def test_a_task_whose_pool_process_is_killed_is_delivered_again(embedded):
    sender, marks, start_worker = embedded
    start_worker()
    sender.send_task("mark", args=["hang"])
    wait_for(lambda: (marks / "hang.started").exists(), what="the task to start")
    os.kill(int((marks / "hang.started").read_text()), signal.SIGKILL)
    wait_for(lambda: (marks / "hang.done").exists(), what="the task to be delivered again")
    sender.send_task("mark", args=["after"])  # and the worker goes on taking messages
    wait_for(lambda: (marks / "after.done").exists(), what="the next task")
