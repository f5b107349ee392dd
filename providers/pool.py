"""The upstream connection pool: httpcore's, with its bookkeeping linear in the connections.

httpcore 1.0 re-plans its pool (`_assign_requests_to_connections`) on every
request and at every response's end. That pass is quadratic in the pool's
connections, and it probes the socket of every idle connection each time (a
poll(2) plus anyio's table of socket attributes, ~10 us apiece). Its idle
limit also counts every connection instead of the idle ones, so with more
streams in flight than `max_keepalive_connections` each finished stream's
connection is closed rather than kept. Measured in the benchmark (100
streams starting together, a second round after the first): the proxy's
median time to first token grew by ~0.3 s with 32 kept-alive connections
and by ~1 s with 200, against none.

This pool keeps httpcore's rules and changes their cost:
- one pass over the connections and one over the queued requests;
- the idle limit counts idle connections;
- an idle connection's socket is probed just before it is reused, so one
  the server closed is never handed out; the other idle connections are
  probed at most once every SWEEP_SECONDS, which is how dead ones leave.

HTTP/1.1 only, as our clients are: a pool built for HTTP/2 keeps httpcore's
own pass. pydantic's httpcore2 fork fixes the same pass along the same lines.
"""

import time

import httpcore
import httpx

from providers.http11 import JoiningHTTPConnection
from providers.network import AsyncioBackend

SWEEP_SECONDS = 1.0


class ConnectionPool(httpcore.AsyncConnectionPool):
    _next_sweep = 0.0

    def create_connection(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        if self._proxy is not None:
            return super().create_connection(origin)
        # httpcore's own, with a chunked body handed over a read at a time (providers.http11).
        return JoiningHTTPConnection(
            origin=origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
            http1=self._http1,
            http2=self._http2,
            retries=self._retries,
            local_address=self._local_address,
            uds=self._uds,
            network_backend=self._network_backend,
            socket_options=self._socket_options,
        )

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        if self._http2:
            return super()._assign_requests_to_connections()
        now = time.monotonic()
        sweep = now >= self._next_sweep
        if sweep:
            self._next_sweep = now + SWEEP_SECONDS
        closing: list[httpcore.AsyncConnectionInterface] = []
        # A connection assigned to a request is that request's, even while it
        # is still idle (assigned, not yet sent on).
        taken = {request.connection for request in self._requests if request.connection is not None}
        retained = []
        idle = []
        for connection in self._connections:
            if connection.is_closed():
                continue
            if connection not in taken and connection.is_idle():
                if sweep and connection.has_expired():
                    closing.append(connection)
                    continue
                idle.append(connection)
            retained.append(connection)

        # Surplus idle connections go, oldest first.
        surplus = len(idle) - self._max_keepalive_connections
        if surplus > 0:
            dropped = set(idle[:surplus])
            closing += idle[:surplus]
            retained = [connection for connection in retained if connection not in dropped]
            idle = idle[surplus:]

        budget = self._max_connections - len(retained)
        for request in self._requests:
            if not idle and budget <= 0:
                break  # nothing left to assign: the rest stay queued
            if not request.is_queued():
                continue
            origin = request.request.url.origin
            connection = self._reuse(idle, origin, retained, closing, probe=not sweep)
            if connection is None:
                if budget > 0:
                    budget -= 1
                elif idle:
                    # Full: an idle connection to another origin makes room.
                    victim = idle.pop(0)
                    retained.remove(victim)
                    closing.append(victim)
                else:
                    break
                connection = self.create_connection(origin)
                retained.append(connection)
            request.assign_to_connection(connection)

        self._connections = retained
        return closing

    @staticmethod
    def _reuse(idle, origin, retained, closing, probe: bool):
        """An idle connection to `origin`, taken out of `idle`; any found closed by the server are closed."""
        while True:
            index = next((i for i, connection in enumerate(idle) if connection.can_handle_request(origin)), None)
            if index is None:
                return None
            connection = idle.pop(index)
            if not (probe and connection.has_expired()):
                return connection
            retained.remove(connection)
            closing.append(connection)


class PooledTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a ConnectionPool (same settings as httpx would give its own), over asyncio's sockets."""

    def __init__(self, *, limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),
                 network_backend: httpcore.AsyncNetworkBackend | None = None, **options) -> None:  # fmt: skip
        super().__init__(limits=limits, **options)
        own = self._pool
        self._pool = ConnectionPool(
            ssl_context=own._ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=own._http1,
            http2=own._http2,
            local_address=own._local_address,
            retries=own._retries,
            socket_options=own._socket_options,
            network_backend=network_backend or AsyncioBackend(),
        )
