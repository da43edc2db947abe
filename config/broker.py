"""The embedded default's broker: kombu's SQLAlchemy transport on a SQLite file, polled quickly.

kombu hands every transport option of this transport to SQLAlchemy's
create_engine, so the virtual transport's own `polling_interval` cannot be
set through options. This subclass polls every 0.1 s instead of every
second, which is most of a trivial run's latency on the embedded default.
Brokers with a server (Redis, RabbitMQ) push messages and need none of this.
"""

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Transport as SQLAlchemyTransport

ALIAS = "embedded"


class Transport(SQLAlchemyTransport):
    polling_interval = 0.1


TRANSPORT_ALIASES.setdefault(ALIAS, "config.broker:Transport")
