"""Django's PostgreSQL backend, with a health check that costs no round trip.

Django checks a kept connection before its first use in each request and each
worker task (CONN_HEALTH_CHECKS) with a ``SELECT 1``: one more round trip and
statement before every run's claim. A connection the server has ended (a
restart, ``pg_terminate_backend``, an idle timeout, a pooler closing it) has
been sent a last message and closed: its socket is readable while nothing was
asked. So the check is a zero-timeout poll of the socket instead; anything
readable counts as unusable, and Django opens a fresh connection, as it did
when ``SELECT 1`` failed. A peer that vanished without closing (a host lost
with no FIN) is not detected here, nor was it by ``SELECT 1``, which then
waited on the network the same way the next statement does.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        raw = self.connection
        if raw is None or raw.closed or raw.broken:
            return False
        if raw.info.transaction_status != TransactionStatus.IDLE:
            return False  # between requests a kept connection is idle; anything else is not to be reused
        try:
            readable, _, _ = select.select([raw.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable
