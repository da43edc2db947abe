"""The embedded broker (config/broker.py): wake-ups instead of waiting for the poll, and kombu's guarantees kept.

A consumer here polls once an hour (transport option `polling_interval`), so a
message it receives within the test's deadline came through a wake-up.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue

from config import broker

ROOT = Path(__file__).resolve().parents[2]
HOUR = {"polling_interval": 3600}
DEADLINE = 60  # seconds: only a broken wake-up ever waits this long


@pytest.fixture
def url(tmp_path):
    return f"embedded+sqlite:///{tmp_path / 'broker.sqlite3'}"


def wake_dir(url):
    return broker.wake_directory(url.split(":///", 1)[1])


def fifos(url):
    directory = wake_dir(url)
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".fifo")) if directory.exists() else []


def publish(url, body, queue="q"):
    with Connection(url) as connection:
        Producer(connection).publish(body, routing_key=queue, serializer="json", declare=[Queue(queue)])


class Listener:
    """A consumer in a thread of its own, draining until it has `count` messages (or the deadline)."""

    def __init__(self, url, count=1, ack=True, prefetch=None, options=HOUR):
        self.connection = Connection(url, transport_options=options)
        self.messages = []
        self.count = count
        self.error = None

        def received(body, message):
            self.messages.append(message)
            if ack:
                message.ack()

        self.consumer = Consumer(self.connection, [Queue("q")], callbacks=[received], accept=["json"])
        if prefetch:
            self.consumer.qos(prefetch_count=prefetch)
        self.consumer.consume()
        self.thread = threading.Thread(target=self._drain, daemon=True)

    def _drain(self):
        try:
            while len(self.messages) < self.count:
                self.connection.drain_events(timeout=DEADLINE)
        except Exception as error:  # noqa: BLE001 (reported by wait)
            self.error = error

    def start(self):
        self.thread.start()
        return self

    def wait(self):
        self.thread.join(DEADLINE + 5)
        assert self.error is None, f"no wake-up: {self.error!r}"
        return [m.payload for m in self.messages]

    def close(self):
        self.connection.release()


def wait_until(predicate):
    done = threading.Event()
    for _ in range(DEADLINE * 100):
        if predicate():
            return
        done.wait(0.01)
    raise AssertionError("condition never met")


def test_a_published_message_wakes_a_waiting_consumer_without_waiting_for_its_poll(url):
    publish(url, {"n": 0})  # declares the queue; taken at once
    listener = Listener(url, count=2).start()
    wait_until(lambda: len(listener.messages) == 1 and fifos(url))  # it waits on its doorbell now
    publish(url, {"n": 1})
    assert listener.wait() == [{"n": 0}, {"n": 1}]
    listener.close()


def test_an_acknowledgement_wakes_a_consumer_whose_prefetch_slots_are_all_taken(url):
    for n in range(2):
        publish(url, {"n": n})
    listener = Listener(url, count=2, ack=False, prefetch=1).start()
    wait_until(lambda: listener.messages)
    assert [m.payload for m in listener.messages] == [{"n": 0}]  # the second waits for the free slot
    listener.messages[0].ack()  # from another thread, as Celery's result handler does
    assert listener.wait() == [{"n": 0}, {"n": 1}]
    listener.close()


def test_every_waiting_consumer_is_woken_and_each_message_goes_to_one_only(url):
    first, second = Listener(url), Listener(url)
    first.start(), second.start()
    wait_until(lambda: len(fifos(url)) == 2)  # both wait on their doorbells
    for n in range(2):
        publish(url, {"n": n})
    assert sorted(first.wait() + second.wait(), key=lambda body: body["n"]) == [{"n": 0}, {"n": 1}]
    for listener in (first, second):
        listener.close()
    assert fifos(url) == []  # a consumer removes its FIFO when its connection closes


def test_publishing_removes_a_dead_consumers_fifo_and_still_stores_the_message(url):
    directory = wake_dir(url)
    directory.mkdir()
    os.mkfifo(directory / "123-dead.fifo")  # nobody reads it: its worker was killed
    publish(url, {"n": 1})
    assert fifos(url) == []
    with Connection(url) as connection:
        assert connection.SimpleQueue("q").get(timeout=5).payload == {"n": 1}


def test_publishing_and_consuming_work_when_no_wake_up_directory_can_be_made(url):
    wake_dir(url).write_text("not a directory")
    publish(url, {"n": 1})
    listener = Listener(url, options={"polling_interval": 0.01}).start()  # polling is all it has
    assert listener.wait() == [{"n": 1}]
    listener.close()


def test_a_message_rejected_with_requeue_comes_back(url):
    publish(url, {"n": 1})
    with Connection(url) as connection:
        queue = connection.SimpleQueue("q")
        message = queue.get(timeout=5)
        message.reject(requeue=True)  # what a worker does when its pool process dies mid-task
        again = queue.get(timeout=5)
        assert again.payload == {"n": 1}
        again.ack()


def test_an_unacknowledged_message_comes_back_when_its_consumer_goes_away(url):
    publish(url, {"n": 1})
    with Connection(url) as connection:
        assert connection.SimpleQueue("q").get(timeout=5).payload == {"n": 1}  # never acknowledged
    with Connection(url) as connection:
        again = connection.SimpleQueue("q").get(timeout=5)
        assert again.payload == {"n": 1}


def test_a_published_message_survives_its_publisher_being_killed(url):
    script = (
        "import os, signal, sys; sys.path.insert(0, sys.argv[2]);"
        "from kombu import Connection, Producer, Queue; import config.broker;"
        "c = Connection(sys.argv[1]);"
        "Producer(c).publish({'n': 1}, routing_key='q', serializer='json', declare=[Queue('q')]);"
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    done = subprocess.run([sys.executable, "-c", script, url, str(ROOT)], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    with Connection(url) as connection:
        assert connection.SimpleQueue("q").get(timeout=5).payload == {"n": 1}


def test_a_taken_message_leaves_no_row_behind(url, tmp_path):
    publish(url, {"n": 1})
    with Connection(url) as connection:
        connection.SimpleQueue("q").get(timeout=5).ack()
    db = sqlite3.connect(tmp_path / "broker.sqlite3")
    assert db.execute("SELECT count(*) FROM kombu_message").fetchone() == (0,)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_broker_file_of_kombus_own_transport_keeps_its_pending_messages_in_order_and_loses_its_dead_rows(url, tmp_path):
    kombu_url = f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"
    exchange = Exchange("", type="direct")
    with Connection(kombu_url) as connection:
        producer = Producer(connection, exchange=exchange)
        for n in range(3):
            producer.publish({"n": n}, routing_key="q", serializer="json", declare=[Queue("q")])
        connection.SimpleQueue("q").get(timeout=5).ack()  # kombu marks its row invisible
    with Connection(url) as connection:
        queue = connection.SimpleQueue("q")
        taken = [queue.get(timeout=5) for _ in range(2)]
        assert [message.payload for message in taken] == [{"n": 1}, {"n": 2}]
        for message in taken:
            message.ack()
        assert queue.qsize() == 0
    # kombu's invisible row too is gone: it would never have been delivered again.
    db = sqlite3.connect(tmp_path / "broker.sqlite3")
    assert db.execute("SELECT count(*) FROM kombu_message").fetchone() == (0,)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_leaves_its_parents_doorbell_alone(url):
    publish(url, {"n": 0})
    listener = Listener(url, count=2).start()
    wait_until(lambda: listener.messages and fifos(url))
    pid = os.fork()
    if pid == 0:  # the child: its copy of the doorbell is closed by the fork hook, never removed
        os._exit(0 if not any(b._read for b in broker._DOORBELLS) else 1)
    assert os.waitpid(pid, 0)[1] == 0
    assert len(fifos(url)) == 1
    publish(url, {"n": 1})
    assert listener.wait() == [{"n": 0}, {"n": 1}]
    listener.close()
