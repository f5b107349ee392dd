"""The upstream connection pool keeps httpcore's rules: limits, keep-alive, no dead connection reused."""

import asyncio

import httpx
import pytest

from providers.pool import PooledTransport
from tests.fake_upstream import Stream, sse


def client(**limits) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=PooledTransport(limits=httpx.Limits(**limits)))


async def stream(http: httpx.AsyncClient, url: str) -> bytes:
    async with http.stream("POST", f"{url}/v1/chat/completions", json={"stream": True}) as response:
        assert response.status_code == 200
        return b"".join([chunk async for chunk in response.aiter_raw()])


async def until(condition, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_finished_streams_connection_is_kept_while_others_still_run(upstream):
    # More streams in flight than idle connections allowed: httpcore 1.0 closed
    # each finished stream's connection, so the next request opened another.
    upstream.enqueue(*[Stream([sse(n) for n in range(3)], delay=0.2) for _ in range(4)])
    upstream.enqueue(Stream([sse(1)]), Stream([sse("next")]))
    async with client(max_keepalive_connections=2) as http:
        long = [asyncio.create_task(stream(http, upstream.url)) for _ in range(4)]
        await until(lambda: len(upstream.chat_requests) == 4)
        assert await stream(http, upstream.url) == b"data: 1\n\n"
        assert await stream(http, upstream.url) == b"data: next\n\n"
        assert not any(task.done() for task in long)
        await asyncio.gather(*long)

    assert upstream.connections_opened == 5


async def test_idle_connections_beyond_the_limit_are_closed(upstream):
    upstream.enqueue(*[Stream([sse(n) for n in range(3)], delay=0.05) for _ in range(8)])
    async with client(max_keepalive_connections=3) as http:
        bodies = await asyncio.gather(*(stream(http, upstream.url) for _ in range(8)))
        # The limit is enforced as the pool next plans its connections: here, one more request.
        upstream.enqueue(Stream([sse("after")]))
        assert await stream(http, upstream.url) == b"data: after\n\n"
        await until(lambda: upstream.open_connections == 3)

    assert bodies == [b"data: 0\n\ndata: 1\n\ndata: 2\n\n"] * 8
    assert upstream.peak_connections == 8


async def test_an_idle_connection_the_server_closed_is_not_reused(upstream):
    upstream.enqueue(Stream([sse("first")]), Stream([sse("second")]))
    async with client() as http:
        assert await stream(http, upstream.url) == b"data: first\n\n"
        upstream.close_connections()
        await until(lambda: upstream.open_connections == 0)
        await asyncio.sleep(0.05)  # the FIN reaches the pooled socket

        # No retry anywhere here: a dead connection handed out would fail the request.
        assert await stream(http, upstream.url) == b"data: second\n\n"

    assert upstream.connections_opened == 2


@pytest.mark.parametrize("limit", [1, 3])
async def test_the_connection_limit_holds_under_a_burst(upstream, limit):
    upstream.enqueue(*[Stream([sse(n) for n in range(2)], delay=0.02) for _ in range(10)])
    async with client(max_connections=limit, max_keepalive_connections=limit) as http:
        bodies = await asyncio.gather(*(stream(http, upstream.url) for _ in range(10)))

    assert bodies == [b"data: 0\n\ndata: 1\n\n"] * 10
    assert upstream.peak_connections == limit
    assert upstream.connections_opened == limit
