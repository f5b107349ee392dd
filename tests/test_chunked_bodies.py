"""A chunked upstream body is handed over a read at a time: the same bytes, trailers and errors as h11 gives.

The property tests drive two h11 client connections with the same bytes, cut
the same way: one reads chunk by chunk as h11 does, the other through
`join_chunks`. The socket tests run a real server on loopback and read it
through the transport the product uses.
"""

import asyncio

import h11
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.http11 import join_chunks
from tests.test_network import Server, client

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked(chunks: list[bytes], extension: bytes = b"", trailers: bytes = b"") -> bytes:
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(chunk), extension, chunk) for chunk in chunks)
    return body + b"0\r\n" + trailers + b"\r\n"


def responding(joined: bool) -> h11.Connection:
    """An h11 client that has sent a request and read the response's head."""
    connection = h11.Connection(our_role=h11.CLIENT)
    connection.send(h11.Request(method="GET", target="/", headers=[("Host", "upstream")]))
    connection.send(h11.EndOfMessage())
    connection.receive_data(HEAD)
    assert type(connection.next_event()) is h11.Response
    if joined:
        join_chunks(connection)
    return connection


def read(connection: h11.Connection, segments: list[bytes]) -> tuple[list[list[bytes]], object]:
    """The Data of each segment fed, and how the body ended: its trailers, or the error raised."""
    per_segment: list[list[bytes]] = []
    for segment in segments:
        connection.receive_data(segment)
        data: list[bytes] = []
        per_segment.append(data)
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as exc:
                return per_segment, f"error: {exc}"
            if type(event) is h11.Data:
                data.append(bytes(event.data))
            elif type(event) is h11.EndOfMessage:
                return per_segment, list(event.headers)
            else:
                assert event is h11.NEED_DATA
                break
    return per_segment, "unfinished"


def cut(body: bytes, points: list[int]) -> list[bytes]:
    """`body` in pieces, cut at `points` (taken modulo its length); none empty, which h11 would read as the end."""
    edges = [0, *sorted({point % len(body) for point in points} - {0}), len(body)]
    return [body[start:end] for start, end in zip(edges, edges[1:], strict=False)]


chunk_lists = st.lists(st.binary(min_size=1, max_size=40), max_size=12)
trailer_lines = st.sampled_from([b"", b"X-Checksum: abc\r\n", b"X-One: 1\r\nX-Two: 2\r\n"])


@given(chunk_lists, st.sampled_from([b"", b";name=value"]), trailer_lines, st.lists(st.integers(0, 10_000)))
def test_a_body_cut_anywhere_reads_as_h11_reads_it(chunks, extension, trailers, points):
    segments = cut(chunked(chunks, extension, trailers), points)

    plain, plain_end = read(responding(joined=False), segments)
    joined, joined_end = read(responding(joined=True), segments)

    assert b"".join(b"".join(data) for data in joined) == b"".join(chunks)
    assert b"".join(b"".join(data) for data in plain) == b"".join(chunks)
    assert joined_end == plain_end != "unfinished"
    # What arrived together goes out together: never more than one piece per read.
    assert all(len(data) <= 1 for data in joined)
    assert [b"".join(data) for data in joined] == [b"".join(data) for data in plain]


@given(chunk_lists, st.sampled_from([b"zz\r\n", b"3\r\nabcXY", b"-1\r\n", b"3\r\nab"]), st.lists(st.integers(0, 10_000)))
def test_a_malformed_body_fails_where_h11_fails(chunks, garbage, points):
    body = chunked(chunks)[: -len(b"0\r\n\r\n")] + garbage
    segments = cut(body, points)

    plain, plain_end = read(responding(joined=False), segments)
    joined, joined_end = read(responding(joined=True), segments)

    # The good chunks before the garbage are handed over first, then the same error (or the same wait for more).
    assert [b"".join(data) for data in joined] == [b"".join(data) for data in plain]
    assert joined_end == plain_end


async def pieces(http: httpx.AsyncClient, url: str) -> list[bytes]:
    async with http.stream("GET", url) as response:
        return [piece async for piece in response.aiter_raw()]


async def test_chunks_that_arrive_together_are_handed_over_as_one_piece():
    tokens = [b"data: token %d\n\n" % number for number in range(50)]

    async def stream(reader, writer, head) -> None:
        body = chunked([*tokens, b"data: [DONE]\n\n"])
        last = body.index(b"%x\r\ndata: [DONE]" % len(b"data: [DONE]\n\n"))
        writer.write(HEAD + body[:last])  # fifty tokens in one write
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(body[last:])  # and the last alone
        await writer.drain()

    async with Server(stream) as server, client() as http:
        first = await pieces(http, server.url())
        second = await pieces(http, server.url())

    assert first == second == [b"".join(tokens), b"data: [DONE]\n\n"]
    assert server.connections == 1  # the connection came back to the pool after the joined body's end


async def test_extensions_and_trailers_are_read_and_the_connection_kept():
    async def stream(reader, writer, head) -> None:
        writer.write(HEAD + chunked([b"one ", b"two"], b";checksum=abc", b"X-Checksum: abc\r\n"))
        await writer.drain()

    async with Server(stream) as server, client() as http:
        assert await pieces(http, server.url()) == [b"one two"]
        assert await pieces(http, server.url()) == [b"one two"]

    assert server.connections == 1


async def test_a_malformed_chunk_after_good_ones_gives_the_good_bytes_then_an_error():
    async def broken(reader, writer, head) -> bool:
        writer.write(HEAD + chunked([b"data: 1\n\n", b"data: 2\n\n"])[: -len(b"0\r\n\r\n")] + b"zz\r\n")
        await writer.drain()
        await asyncio.sleep(0.1)
        return False

    received = bytearray()
    async with Server(broken) as server, client() as http:
        async with http.stream("GET", server.url()) as response:
            with pytest.raises(httpx.RemoteProtocolError, match="illegal chunk header"):
                async for piece in response.aiter_raw():
                    received += piece

    assert received == b"data: 1\n\ndata: 2\n\n"
