"""The embedded broker alone: one message's hop from a publisher to a waiting consumer, and the messages a second.

    .venv/bin/python bench/broker_hop.py [--messages 200] [--gap-ms 30]

A kombu consumer (a process of its own, acknowledging each message as a
Celery worker does with acks_late) waits on a fresh broker file; another
process publishes --messages messages, --gap-ms apart, each carrying its send
time: the hop is receive time minus send time. Then as many again published
at once: messages a second until the last is taken. Baseline: the same on
kombu's own SQLAlchemy transport (`sqla+sqlite`, polling every 20 ms as the
embedded default did before config/broker.py), in the same run. No Django,
no Celery: the broker's share only.
"""

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCHEMES = {"embedded (config/broker.py)": "embedded+sqlite", "kombu's SQLAlchemy transport, 20 ms poll": "sqla+sqlite"}


def _options(scheme):
    # kombu's own transport hands its options to SQLAlchemy: its poll is set on the class instead.
    return {"polling_interval": 0.02} if scheme == "embedded+sqlite" else {}


def consume(url, scheme, count, ready, results):
    import config.broker  # noqa: F401  (registers the embedded transport)
    from kombu import Connection, Consumer, Queue
    from kombu.transport.sqlalchemy import Transport

    Transport.polling_interval = 0.02
    hops, done = [], []
    with Connection(url, transport_options=_options(scheme)) as connection:
        def received(body, message):
            hops.append((time.time() - body["sent"]) * 1000)
            message.ack()
            done.append(time.perf_counter())

        with Consumer(connection, [Queue("bench")], callbacks=[received], accept=["json"]):
            ready.set()
            while len(hops) < 2 * count:
                try:
                    connection.drain_events(timeout=5)
                except TimeoutError:
                    pass
    results.put((hops[:count], done[count:]))


def measure(scheme, count, gap):
    import config.broker  # noqa: F401
    from kombu import Connection, Producer, Queue

    url = f"{scheme}:///{tempfile.mkdtemp(prefix='bench-hop-')}/broker.sqlite3"
    with Connection(url) as connection:  # the queue exists before the consumer starts
        Producer(connection).publish({"sent": 0}, routing_key="warm", serializer="json", declare=[Queue("bench")])
    ready, results = multiprocessing.Event(), multiprocessing.Queue()
    consumer = multiprocessing.Process(target=consume, args=(url, scheme, count, ready, results))
    consumer.start()
    ready.wait()
    time.sleep(0.5)
    with Connection(url) as connection:
        producer = Producer(connection)
        for _ in range(count):
            producer.publish({"sent": time.time()}, routing_key="bench", serializer="json")
            time.sleep(gap)
        started = time.perf_counter()
        for _ in range(count):
            producer.publish({"sent": time.time()}, routing_key="bench", serializer="json")
    hops, finished = results.get(timeout=600)
    consumer.join()
    return hops, count / (finished[-1] - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=30)
    args = parser.parse_args()
    print(f"{args.messages} messages {args.gap_ms:g} ms apart (hop), then {args.messages} at once (rate).\n")
    header = f"{'broker':<42} {'hop p50 ms':>11} {'hop p95 ms':>11} {'messages/s':>11}"
    print(header)
    print("-" * len(header))
    for label, scheme in SCHEMES.items():
        hops, rate = measure(scheme, args.messages, args.gap_ms / 1000)
        p95 = sorted(hops)[int(0.95 * (len(hops) - 1))]
        print(f"{label:<42} {statistics.median(hops):>11.1f} {p95:>11.1f} {rate:>11.0f}")


if __name__ == "__main__":
    main()
