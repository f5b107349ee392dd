"""httpcore's network layer on asyncio's own transports, for the upstream connections.

httpcore talks to sockets through a network backend; under asyncio its
default is anyio's. anyio makes every read and write a checkpoint: the task
yields to the event loop and comes back, with a cancel scope and a timeout
scope around each call, even when the bytes are already there or the write
goes straight out. Under a burst of requests that is a trip to the back of
the loop's queue per read and per write, and much of httpx's CPU per request.

This backend uses a plain asyncio.Protocol: a read returns at once all that
has arrived since the last one (so a body read by a busy caller comes in as
few pieces as it can) and only waits when nothing has, a write hands its
bytes to the transport and only waits when the transport asks us to stop
writing. A timeout is one timer on that wait. TLS is asyncio's
(`loop.start_tls`), the same OpenSSL with the same context httpx gives us.
"""

import asyncio
import collections
import ssl
import typing

import httpcore
from httpcore._utils import is_socket_readable

HAPPY_EYEBALLS_DELAY = 0.25  # seconds before trying the next address of a host, as anyio does
READ_HIGH_WATER = 1 << 18  # bytes buffered unread before we stop reading from the socket


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


async def _wait(connection: "_Connection", slot: str, timeout: float | None) -> None:
    """Wait until `connection` wakes its `slot` ("readable" or "writable"); TimeoutError after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    setattr(connection, slot, waiter)
    timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
    try:
        await waiter
    finally:
        setattr(connection, slot, None)
        if timer is not None:
            timer.cancel()


class _Connection(asyncio.Protocol):
    """What a socket (or the TLS layer above it) delivered, and whether it may be written to."""

    def __init__(self) -> None:
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.eof = False
        self.error: Exception | None = None
        self.transport: asyncio.Transport | None = None
        self.reading_paused = False
        self.writing_paused = False
        self.readable: asyncio.Future | None = None
        self.writable: asyncio.Future | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > READ_HIGH_WATER and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # close our side too: HTTP/1.1 has nothing to say after the server's end

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake_writer()

    def take(self, max_bytes: int) -> bytes:
        """All that has arrived, up to `max_bytes`, as one piece."""
        chunks = self.chunks
        data = chunks.popleft()
        if chunks and len(data) < max_bytes:
            pieces = [data]
            size = len(data)
            while chunks and size < max_bytes:
                data = chunks.popleft()
                pieces.append(data)
                size += len(data)
            data = b"".join(pieces)
        if len(data) > max_bytes:
            chunks.appendleft(data[max_bytes:])
            data = data[:max_bytes]
        self.buffered -= len(data)
        if self.reading_paused and self.buffered <= READ_HIGH_WATER // 4:
            self.reading_paused = False
            self.transport.resume_reading()
        return data

    def _wake_reader(self) -> None:
        if self.readable is not None and not self.readable.done():
            self.readable.set_result(None)

    def _wake_writer(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    @property
    def _transport(self) -> asyncio.Transport:
        return self._connection.transport  # the TLS transport, once start_tls has put it there

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        connection = self._connection
        while not connection.chunks:
            if connection.eof:
                if connection.error is not None:
                    raise httpcore.ReadError(str(connection.error) or type(connection.error).__name__)
                return b""
            try:
                await _wait(connection, "readable", timeout)
            except TimeoutError:
                raise httpcore.ReadTimeout("timed out reading from the server") from None
        return connection.take(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        connection = self._connection
        if connection.eof or self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._transport.write(buffer)
        while connection.writing_paused and not connection.eof:
            try:
                await _wait(connection, "writable", timeout)
            except TimeoutError:
                raise httpcore.WriteTimeout("timed out writing to the server") from None
        if connection.error is not None:
            raise httpcore.WriteError(str(connection.error) or type(connection.error).__name__)

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> "AsyncioStream":
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._connection, ssl_context, server_hostname=server_hostname
                )
        except BaseException as exc:  # a failed or cancelled handshake leaves no socket open
            self._transport.close()
            if isinstance(exc, TimeoutError):
                raise httpcore.ConnectTimeout("timed out in the TLS handshake") from None
            if isinstance(exc, (OSError, EOFError)):  # ssl.SSLError is an OSError
                raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
            raise
        self._connection.transport = transport
        return AsyncioStream(self._connection)

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "is_readable":
            # An idle connection with something to read was closed (or
            # spoken to out of turn) by the server: it must not be reused.
            connection = self._connection
            if connection.chunks or connection.eof:
                return True
            sock = self._transport.get_extra_info("socket")
            return sock is None or is_socket_readable(sock)
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> AsyncioStream:
        loop = asyncio.get_running_loop()
        connecting = loop.create_connection(
            _Connection, host, port,
            local_addr=None if local_address is None else (local_address, 0),
            happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY,
        )  # fmt: skip
        return await self._connected(connecting, timeout, socket_options, f"{host}:{port}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> AsyncioStream:
        connecting = asyncio.get_running_loop().create_unix_connection(_Connection, path)
        return await self._connected(connecting, timeout, socket_options, path)

    @staticmethod
    async def _connected(
        connecting: typing.Awaitable, timeout: float | None, socket_options, where: str
    ) -> AsyncioStream:
        try:
            async with asyncio.timeout(timeout):
                transport, connection = await connecting
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {where}") from None
        except OSError as exc:  # socket.gaierror too
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(connection)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
