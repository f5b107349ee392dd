"""The asyncio network backend under httpx: TLS, flow control both ways, timeouts, resets.

Each test runs a real server on a loopback socket (plain or TLS, with a
certificate made for the test) and talks to it through the transport the
product uses.
"""

import asyncio
import hashlib
import socket
import ssl
import struct

import httpcore
import httpx
import pytest

from providers.network import READ_HIGH_WATER, AsyncioBackend
from providers.pool import PooledTransport
from tests.certificates import self_signed


class Server:
    """A one-handler HTTP/1.1 server on loopback; `handler(reader, writer, head)` answers each request."""

    def __init__(self, handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> "Server":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        return self

    async def __aexit__(self, *exc_info) -> None:
        self.server.close()
        self.server.close_clients()
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    def url(self, host: str = "127.0.0.1") -> str:
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if await self.handler(reader, writer, head) is False:
                    return
        finally:
            writer.close()


def content_length(head: bytes) -> int:
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


async def answer(writer: asyncio.StreamWriter, body: bytes) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()


def client(**options) -> httpx.AsyncClient:
    timeout = options.pop("timeout", 5.0)
    return httpx.AsyncClient(transport=PooledTransport(**options), timeout=timeout)


@pytest.fixture
def tls(tmp_path):
    """(server context, client context) for a certificate issued to `localhost`."""
    return self_signed(tmp_path, "localhost")


async def hello(reader, writer, head) -> None:
    await answer(writer, b"hello over " + head.split(b" ")[1])


async def test_https_is_spoken_and_its_connection_kept(tls):
    server_context, client_context = tls
    async with Server(hello, tls=server_context) as server, client(verify=client_context) as http:
        first = await http.get(server.url("localhost") + "one")
        second = await http.get(server.url("localhost") + "two")

    assert (first.status_code, first.text, second.text) == (200, "hello over /one", "hello over /two")
    assert first.extensions["network_stream"].get_extra_info("ssl_object").version().startswith("TLS")
    assert server.connections == 1


async def test_a_certificate_for_another_name_is_refused(tmp_path):
    server_context, client_context = self_signed(tmp_path, "elsewhere.test")
    async with Server(hello, tls=server_context) as server, client(verify=client_context) as http:
        with pytest.raises(httpx.ConnectError, match="certificate verify failed"):
            await http.get(server.url("localhost"))


async def test_a_server_that_never_starts_tls_times_out_connecting(tls):
    async def silent(reader, writer):
        await reader.read()  # the client's hello goes unanswered

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with client(verify=tls[1], timeout=httpx.Timeout(5.0, connect=0.2)) as http:
            with pytest.raises(httpx.ConnectTimeout):
                await http.get(f"https://localhost:{port}/")
    finally:
        listener.close()
        listener.close_clients()


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "tls"])
async def test_a_large_body_read_slowly_arrives_whole(tls, secure):
    body = bytes(range(256)) * (4 * READ_HIGH_WATER // 256)  # four times what is buffered before reading pauses

    async def large(reader, writer, head) -> None:
        await answer(writer, body)

    async with Server(large, tls=tls[0] if secure else None) as server, client(verify=tls[1]) as http:
        async with http.stream("GET", server.url("localhost")) as response:
            received = bytearray()
            async for chunk in response.aiter_raw():
                received += chunk
                await asyncio.sleep(0.001)  # a slow consumer: the socket must wait, not our memory grow

    assert bytes(received) == body


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "tls"])
async def test_a_large_upload_to_a_slow_reader_is_written_whole(tls, secure):
    upload = bytes(range(256)) * (16 << 12)  # 16 MiB: far more than the socket buffers hold

    async def slow_reader(reader, writer, head) -> None:
        digest, left = hashlib.sha256(), content_length(head)
        while left:
            piece = await reader.read(min(left, 1 << 16))
            digest.update(piece)
            left -= len(piece)
            await asyncio.sleep(0)
        await answer(writer, digest.hexdigest().encode())

    async with Server(slow_reader, tls=tls[0] if secure else None) as server, client(verify=tls[1]) as http:
        response = await http.put(server.url("localhost"), content=upload)

    assert response.text == hashlib.sha256(upload).hexdigest()


async def test_a_server_that_does_not_answer_times_out_reading():
    async def mute(reader, writer, head) -> bool:
        await asyncio.sleep(5)
        return False

    async with Server(mute) as server, client(timeout=httpx.Timeout(5.0, read=0.2)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(server.url())


async def test_a_closed_port_is_a_connect_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        async with client() as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(f"http://127.0.0.1:{port}/")


async def test_a_connection_reset_mid_body_is_a_read_error():
    async def reset(reader, writer, head) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a RST
        writer.transport.abort()
        return False

    async with Server(reset) as server, client() as http:
        async with http.stream("GET", server.url()) as response:
            received = bytearray()
            with pytest.raises(httpx.ReadError):
                async for chunk in response.aiter_raw():
                    received += chunk

    assert received == b"partial"


async def test_a_server_that_closes_early_leaves_the_body_incomplete():
    async def early(reader, writer, head) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
        await writer.drain()
        return False  # a clean close, 993 bytes short

    async with Server(early) as server, client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(server.url())


async def test_a_unix_socket_connects(tmp_path):
    path = str(tmp_path / "upstream.sock")

    async def echo(reader, writer):
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    listener = await asyncio.start_unix_server(echo, path)
    try:
        stream = await AsyncioBackend().connect_unix_socket(path, timeout=1.0)
        await stream.write(b"ping")
        assert await stream.read(100, timeout=1.0) == b"ping"
        assert await stream.read(100, timeout=1.0) == b""  # the server's end
        assert stream.get_extra_info("is_readable")
        await stream.aclose()
    finally:
        listener.close()


async def test_writing_to_a_closed_connection_is_a_write_error():
    async def close_at_once(reader, writer, head) -> bool:
        return False

    async with Server(close_at_once) as server:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", server.port, timeout=1.0)
        await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await stream.read(100, timeout=1.0) == b""
        await stream.aclose()
        with pytest.raises(httpcore.WriteError):
            await stream.write(b"more")
