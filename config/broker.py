"""The embedded default's broker: kombu's SQLAlchemy transport on a SQLite file, polled every 20 ms.

kombu hands every transport option of this transport to SQLAlchemy's
create_engine, so the virtual transport's own `polling_interval` cannot be
set through options. This subclass polls every 20 ms (a cheap indexed
SELECT) instead of every second: waiting for the next poll was most of a
trivial run's latency.
Brokers with a server (Redis, RabbitMQ) push messages and need none of this.
"""

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Transport as SQLAlchemyTransport

ALIAS = "embedded"


class Transport(SQLAlchemyTransport):
    polling_interval = 0.02


TRANSPORT_ALIASES.setdefault(ALIAS, "config.broker:Transport")
