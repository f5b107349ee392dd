"""Database work from async code that no Django request surrounds.

Django recycles database connections around each request: its
`request_started` and `request_finished` signals close a connection that is
past CONN_MAX_AGE or that failed its health check, before anyone uses it.
Code that reaches the database outside that cycle (the chat's WebSocket
consumers, the proxy API, whose handler sends no request signals, and the
background usage writer) does the same itself through
`database_sync_to_async`.

It is channels.db.database_sync_to_async, except that a connection inside an
atomic block is left alone: closing it would break the transaction of
whoever holds it, as the one Django's test runner wraps each test in.
"""

from asgiref.sync import SyncToAsync
from django.db import connections


def recycle_connections() -> None:
    """Django's close_old_connections, for connections that are not inside a transaction."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


class DatabaseSyncToAsync(SyncToAsync):
    def thread_handler(self, loop, *args, **kwargs):
        recycle_connections()
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            recycle_connections()


database_sync_to_async = DatabaseSyncToAsync
