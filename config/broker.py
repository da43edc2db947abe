"""The embedded default's broker: kombu's message tables in a SQLite file, with a doorbell.

kombu's own SQLAlchemy transport, measured on a 2-core machine, spent about
10 ms on each publish and each take: SQLAlchemy's ORM (three statements and a
unit of work per message) and SQLite's rollback journal with
synchronous=FULL (several fsyncs per commit); and a worker saw a new message
only at its next poll (every 20 ms, so 10 ms on average). This transport
keeps what matters of kombu's and changes those three:

* kept: kombu's virtual transport (exchanges, prefetch, acks, unacknowledged
  messages put back when a channel closes or a task is rejected, which is
  what gives a killed pool process's task back) and kombu's two tables, as
  kombu's models create them, so a broker file written by kombu's transport
  keeps its pending messages.
* statements: plain sqlite3, one connection per channel, in WAL mode with
  synchronous=NORMAL (as the embedded Django database): a commit survives
  any crash or kill of the processes; only a power cut may take back the last
  few, and the reaper sends again any run left queued (runtime.services).
* taking a message deletes its row where kombu marked it invisible: kombu
  never makes an invisible row visible again (a message not acknowledged
  comes back as a new row, above), so those rows were dead weight.
* a doorbell: a consumer (a worker's connection) waits on a FIFO of its own
  in the wake-up directory next to the broker file, instead of sleeping;
  every publisher writes a byte to each FIFO there after its commit, and an
  acknowledgement rings the consumer's own (a prefetch slot came free). The
  20 ms poll stays as the fallback: a bell that could not be rung (no
  directory yet, a consumer starting) costs at most one poll interval.
  FIFOs, not UNIX sockets: a socket's path may not exceed 108 bytes, and
  DATA_DIR may be anywhere.
Brokers with a server (Redis, RabbitMQ) push messages and need none of this.
"""

import contextlib
import errno
import logging
import os
import secrets
import select
import socket
import sqlite3
import threading
import weakref
from json import dumps, loads
from pathlib import Path
from queue import Empty
from time import monotonic, sleep

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqlalchemy
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

logger = logging.getLogger(__name__)

ALIAS = "embedded"
POLL_SECONDS = 0.02
# sqlite3's default wait for another process's write lock, as kombu's transport had it (SQLAlchemy's
# default): a write here holds the lock for microseconds, a WAL checkpoint for a few milliseconds.
BUSY_TIMEOUT_SECONDS = 5.0
WAKE_SUFFIX = "-wake"


def wake_directory(database):
    """Where the consumers of the broker file `database` keep their FIFOs (None for an in-memory one)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database)
    return path.with_name(path.name + WAKE_SUFFIX)


def ring_all(directory):
    """Wake every consumer waiting on this broker: a byte to each FIFO. Never raises.

    A FIFO nobody reads any more (its worker died without removing it) refuses
    to open (ENXIO) and is removed here; a full one already holds a wake-up.
    """
    if directory is None:
        return
    try:
        entries = os.scandir(directory)
    except OSError:
        return  # no consumer has made the directory yet
    with entries:
        for entry in entries:
            if not entry.name.endswith(".fifo") or entry.name.startswith("."):
                continue  # "." names are a consumer's FIFO before it opened it (Doorbell)
            try:
                fd = os.open(entry.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError as error:
                if error.errno == errno.ENXIO:
                    try:
                        os.unlink(entry.path)
                    except OSError:
                        pass
                continue
            try:
                os.write(fd, b"\0")
            except OSError:
                pass
            finally:
                os.close(fd)


class Doorbell:
    """A consumer's FIFO in the wake-up directory: `wait` returns when a byte arrives or after `seconds`."""

    def __init__(self, directory):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{os.getpid()}-{secrets.token_hex(4)}.fifo"
        # Made under a hidden name and opened before it gets its own: a publisher seeing a FIFO with no
        # reader yet would take it for a dead consumer's and remove it.
        hidden = directory / f".{name}"
        os.mkfifo(hidden, 0o600)
        try:
            self._read = os.open(hidden, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            # A writer of our own: once its last writer has gone, a FIFO reads as end of file and select
            # never blocks again. It also rings the bell from inside (ring).
            self._write = os.open(hidden, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            os.rename(hidden, directory / name)
        except BaseException:
            os.unlink(hidden)
            raise
        self.path = directory / name
        self._pid = os.getpid()
        _DOORBELLS.add(self)

    def wait(self, seconds):
        if select.select([self._read], [], [], seconds)[0]:
            try:
                while os.read(self._read, 4096):
                    pass
            except BlockingIOError:
                pass

    def ring(self):
        try:
            os.write(self._write, b"\0")
        except OSError:
            pass  # full: a wake-up is waiting already

    def close(self):
        if self._read is None:
            return
        if self._pid == os.getpid():  # a forked child never removes its parent's FIFO
            try:
                os.unlink(self.path)
            except OSError:
                pass
        for fd in (self._read, self._write):
            os.close(fd)
        self._read = self._write = None

    def _forget_after_fork(self):
        """In a forked child: the parent's FIFO stays the parent's. Holding its reading end open would
        keep it looking alive after the parent died."""
        if self._read is not None:
            self._pid = None
            self.close()


class _Sleep:
    """Polling only, when the directory for a FIFO cannot be made (a read-only file system)."""

    def wait(self, seconds):
        sleep(seconds)

    def ring(self):
        pass

    def close(self):
        pass


_DOORBELLS = weakref.WeakSet()


def _after_fork_in_child():
    for bell in list(_DOORBELLS):
        bell._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)

# A forked child's copies of its parent's SQLite connections: never used nor closed there (closing
# runs SQLite's own clean-up on a file the parent still has open), only kept from the garbage collector.
_INHERITED_CONNECTIONS = []
_SCHEMA_LOCK = threading.Lock()
_SCHEMA_READY = set()
_SWEPT = set()
DEAD_ROWS_BATCH = 500


def _connect(database):
    db = sqlite3.connect(database, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
    try:
        # Persistent in the file: once converted, this only reads the mode.
        db.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError:
        pass  # another process holds it in the old mode for now: still correct, the next connection converts it
    db.execute("PRAGMA synchronous=NORMAL")
    return db


@contextlib.contextmanager
def _write_transaction(db):
    """A transaction holding the file's write lock from its start (BEGIN IMMEDIATE): what it reads
    cannot change before it writes. Committed at the end, rolled back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


class Channel(kombu_sqlalchemy.Channel):
    """kombu's SQLAlchemy channel with its statements in plain sqlite3 and its take a delete."""

    _db = None
    _db_pid = None

    def __init__(self, connection, **kwargs):
        # One channel is used by its consumer's thread and, to put back a rejected message, by the pool's
        # result thread.
        self._lock = threading.RLock()
        self._queue_ids = {}
        self._database = make_url(connection.client.hostname).database
        self._wake_directory = wake_directory(self._database)
        super().__init__(connection, **kwargs)
        self._messages = f'"{self.message_tablename}"'

    def _sql(self):
        """This channel's connection, opened in this process (SQLite connections do not survive fork)."""
        if self._db_pid != os.getpid():
            if self._db is not None:
                _INHERITED_CONNECTIONS.append(self._db)
            self._ensure_schema()
            self._db = _connect(self._database)
            self._db_pid = os.getpid()
            self._queue_ids = {}
        return self._db

    def _ensure_schema(self):
        """kombu's tables and indexes, created by kombu's own models, once per process and file."""
        if self._database in _SCHEMA_READY:
            return
        with _SCHEMA_LOCK:
            if self._database not in _SCHEMA_READY:
                engine = create_engine(self.connection.client.hostname, poolclass=NullPool)
                try:
                    kombu_sqlalchemy.metadata.create_all(engine)
                finally:
                    engine.dispose()
                _SCHEMA_READY.add(self._database)

    def _queue_id(self, db, queue):
        queue_id = self._queue_ids.get(queue)
        if queue_id is None:
            table = f'"{self.queue_tablename}"'
            db.execute(f"INSERT OR IGNORE INTO {table} (name) VALUES (?)", (queue,))
            (queue_id,) = db.execute(f"SELECT id FROM {table} WHERE name = ?", (queue,)).fetchone()
            self._queue_ids[queue] = queue_id  # kombu never deletes a queue's row
        return queue_id

    def _new_queue(self, queue, **kwargs):
        with self._lock:
            self._queue_id(self._sql(), queue)

    def _put(self, queue, payload, **kwargs):
        with self._lock:
            db = self._sql()
            db.execute(
                f"INSERT INTO {self._messages} (queue_id, visible, payload, version) VALUES (?, 1, ?, 1)",
                (self._queue_id(db, queue), dumps(payload)),
            )
        # After the commit (autocommit: the INSERT was its own transaction), so a consumer woken now finds it.
        ring_all(self._wake_directory)

    def _get(self, queue):
        with self._lock:
            db = self._sql()
            queue_id = self._queue_id(db, queue)
            # Pending rows all have a NULL timestamp (kombu sets it only when marking a row invisible), so
            # kombu's order (timestamp, id) is the id's, which the index on `visible` gives.
            pending = f"SELECT id, payload FROM {self._messages} WHERE queue_id = ? AND visible = 1 ORDER BY id LIMIT 1"
            # Most polls find nothing: a read first takes no write lock, so it never holds a publisher up.
            if db.execute(pending, (queue_id,)).fetchone() is None:
                raise Empty()
            with _write_transaction(db):
                row = db.execute(pending, (queue_id,)).fetchone()
                if row is not None:
                    db.execute(f"DELETE FROM {self._messages} WHERE id = ?", (row[0],))
        if row is None:
            raise Empty()  # another consumer took it between the read and the lock
        return loads(row[1])

    def _size(self, queue):
        with self._lock:
            db = self._sql()
            return db.execute(
                f"SELECT count(*) FROM {self._messages} WHERE queue_id = ? AND visible = 1", (self._queue_id(db, queue),)
            ).fetchone()[0]

    def _purge(self, queue):
        with self._lock:
            db = self._sql()
            queue_id = self._queue_id(db, queue)
            with _write_transaction(db):
                count = db.execute(
                    f"SELECT count(*) FROM {self._messages} WHERE queue_id = ? AND visible = 1", (queue_id,)
                ).fetchone()[0]
                # Also the invisible rows kombu's own transport left behind.
                db.execute(f"DELETE FROM {self._messages} WHERE queue_id = ?", (queue_id,))
        return count

    def basic_consume(self, queue, no_ack, callback, consumer_tag, **kwargs):
        super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)
        with self._lock:
            self._delete_dead_rows(self._sql())

    def _delete_dead_rows(self, db):
        """The invisible rows kombu's own transport left (it never deleted a row): once per process and
        file, when a worker starts consuming, in small batches so publishers are never held up for long."""
        if self._database in _SWEPT:
            return
        _SWEPT.add(self._database)
        while db.execute(
            f"DELETE FROM {self._messages} WHERE id IN (SELECT id FROM {self._messages} WHERE visible = 0 LIMIT ?)",
            (DEAD_ROWS_BATCH,),
        ).rowcount == DEAD_ROWS_BATCH:
            pass

    def basic_ack(self, delivery_tag, multiple=False):
        super().basic_ack(delivery_tag, multiple=multiple)
        self._slot_freed()

    def basic_reject(self, delivery_tag, requeue=False):
        super().basic_reject(delivery_tag, requeue=requeue)
        self._slot_freed()

    def _slot_freed(self):
        # Acknowledgements come from the worker's result thread while its consumer thread waits with every
        # prefetch slot taken: ring, so it takes the next message now rather than at its next poll.
        transport = self.connection
        if transport is not None:
            transport.ring_own_doorbell()

    def close(self):
        super().close()  # puts unacknowledged messages back first, through _put
        with self._lock:
            if self._db is not None:
                if self._db_pid == os.getpid():
                    self._db.close()
                else:
                    _INHERITED_CONNECTIONS.append(self._db)
            self._db = self._db_pid = None


class Transport(kombu_sqlalchemy.Transport):
    Channel = Channel
    polling_interval = POLL_SECONDS
    # What sqlite3 raises when the file is locked for too long or unreachable: the publish is retried and
    # a worker's consumer reconnects, as with SQLAlchemy's errors before.
    connection_errors = (*kombu_sqlalchemy.Transport.connection_errors, sqlite3.OperationalError)

    def __init__(self, client, **kwargs):
        super().__init__(client, **kwargs)
        self._doorbell = None
        self._doorbell_lock = threading.Lock()

    def drain_events(self, connection, timeout=None):
        """kombu's loop, waiting on the doorbell where kombu sleeps a polling interval."""
        started = monotonic()
        while True:
            try:
                self.cycle.get(self._deliver, timeout=timeout)
                return
            except Empty:
                waited = monotonic() - started
                if timeout is not None and waited >= timeout:
                    raise socket.timeout() from None
                interval = self.polling_interval if timeout is None else min(self.polling_interval, timeout - waited)
                self._own_doorbell().wait(interval)

    def check_reachable(self):
        """Open and read the broker's file; sqlite3's error when it cannot be. Connecting to this
        transport opens nothing, so /healthz (config.health) asks this instead. Not kombu's
        verify_connection: kombu asks that on every use of a connection."""
        db = sqlite3.connect(make_url(self.client.hostname).database, timeout=BUSY_TIMEOUT_SECONDS)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            db.close()

    def _own_doorbell(self):
        if self._doorbell is None:
            with self._doorbell_lock:
                if self._doorbell is None:
                    directory = wake_directory(make_url(self.client.hostname).database)
                    try:
                        self._doorbell = Doorbell(directory) if directory is not None else _Sleep()
                    except OSError as error:
                        logger.warning("Broker wake-ups unavailable (%s): polling every %s s only.", error,
                                       self.polling_interval)
                        self._doorbell = _Sleep()
        return self._doorbell

    def ring_own_doorbell(self):
        doorbell = self._doorbell  # only a consumer has one
        if doorbell is not None:
            doorbell.ring()

    def close_connection(self, connection):
        try:
            super().close_connection(connection)
        finally:
            with self._doorbell_lock:
                if self._doorbell is not None:
                    self._doorbell.close()
                    self._doorbell = None


TRANSPORT_ALIASES.setdefault(ALIAS, "config.broker:Transport")
