"""The way out to the upstreams: retries before the first byte only, no redirects, prompt cancellation."""

import asyncio
import contextlib
import socket
import time

import httpx
import pytest

from providers import transport
from providers.completion import ChatMessage, CompletionRequest, stream_completion
from providers.credentials import Endpoint
from providers.events import StreamError, TextDelta
from providers.registry import PROVIDERS
from providers.transport import UpstreamTimeout, UpstreamUnreachable, coalesced, http_client, open_upstream
from tests.fake_upstream import Drop, Hang, Status, Stream, openai_text_stream, sse

KEY = "sk-test-key"


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(transport, "BACKOFF_SECONDS", 0.01)


def chat() -> CompletionRequest:
    return CompletionRequest(provider=PROVIDERS["openai"], model="gpt-4o", messages=[ChatMessage("user", "Hi")])


async def collect(base_url: str) -> list:
    return [event async for event in stream_completion(chat(), Endpoint(base_url, KEY))]


def text_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_429_then_success_gives_one_answer_after_retry_after(upstream):
    upstream.enqueue(
        Status(429, {"error": {"message": "Rate limited"}}, headers={"Retry-After": "1"}),
        Stream(openai_text_stream("Hello world")),
    )

    started = time.monotonic()
    events = await collect(upstream.url)

    assert time.monotonic() - started >= 0.9
    assert text_of(events) == "Hello world"
    assert [type(e).__name__ for e in events] == ["TextDelta", "TextDelta", "Usage", "Finish"]
    assert len(upstream.chat_requests) == 2


async def test_5xx_and_529_are_retried_up_to_the_limit(upstream, settings):
    settings.UPSTREAM_MAX_TRIES = 6
    upstream.enqueue(Status(500), Status(502), Status(503), Status(504), Status(504),
                     Status(529, {"error": {"message": "Overloaded"}}))  # fmt: skip

    events = await collect(upstream.url)

    assert events == [StreamError(message="Overloaded", status=529, code="overloaded", retryable=True)]
    assert len(upstream.chat_requests) == 6


async def test_a_client_error_is_not_retried(upstream):
    upstream.enqueue(Status(400, {"error": {"message": "Bad model"}}), Stream(openai_text_stream("unused")))

    events = await collect(upstream.url)

    assert events == [StreamError(message="Bad model", status=400, code="bad_request")]
    assert len(upstream.chat_requests) == 1


async def test_an_error_after_the_first_byte_is_reported_not_retried(upstream):
    cut_off = Stream(openai_text_stream("Some text", done=False)[:2], abort=True)
    upstream.enqueue(cut_off, Stream(openai_text_stream("again")))

    events = await collect(upstream.url)

    assert events[0] == TextDelta("Some")
    assert isinstance(events[-1], StreamError) and events[-1].code == "upstream"
    assert "again" not in text_of(events)
    assert len(upstream.chat_requests) == 1


async def test_a_connection_dropped_before_any_answer_is_retried(upstream):
    upstream.enqueue(Drop(), Stream(openai_text_stream("Recovered")))

    events = await collect(upstream.url)

    assert text_of(events) == "Recovered"
    assert len(upstream.chat_requests) == 2


async def test_an_unreachable_upstream_is_an_error_after_the_tries(settings):
    settings.UPSTREAM_MAX_TRIES = 2

    events = await collect(f"http://127.0.0.1:{free_port()}")

    assert events == [StreamError(message="The upstream could not be reached.", code="unreachable", retryable=True)]


async def test_a_redirect_is_not_followed(upstream):
    upstream.enqueue(Status(302, headers={"Location": f"{upstream.url}/elsewhere/v1/chat/completions"}))

    events = await collect(upstream.url)

    assert len(events) == 1
    assert (events[0].status, events[0].code, events[0].retryable) == (302, "redirect", False)
    assert [r.path for r in upstream.requests] == ["/v1/chat/completions"]


async def test_cancelling_the_consumer_closes_the_upstream_connection(upstream):
    upstream.enqueue(Hang(chunks=openai_text_stream("First words")[:2]))
    first_text = asyncio.Event()

    async def consume() -> None:
        async for event in stream_completion(chat(), Endpoint(upstream.url, KEY)):
            if isinstance(event, TextDelta):
                first_text.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_text.wait(), 2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    assert await upstream.until_disconnected(1.0)
    assert upstream.disconnects == ["/v1/chat/completions"]


async def test_closing_the_stream_early_closes_the_upstream_connection(upstream):
    upstream.enqueue(Stream(openai_text_stream("one two three four five six"), delay=0.05))

    async with contextlib.aclosing(stream_completion(chat(), Endpoint(upstream.url, KEY))) as events:
        async for event in events:
            assert event == TextDelta("one")
            break

    assert await upstream.until_disconnected(1.0)


async def test_a_read_timeout_mid_stream_is_an_error(upstream, settings):
    settings.UPSTREAM_READ_TIMEOUT = 0.2
    upstream.enqueue(Hang(chunks=openai_text_stream("Stalled")[:2]))

    events = await collect(upstream.url)

    assert events == [
        TextDelta("Stalled"),
        StreamError("The upstream stopped sending in the middle of the answer.", code="timeout", retryable=True),
    ]


async def test_finished_streams_reuse_one_connection(upstream):
    await collect(upstream.url)
    await collect(upstream.url)

    assert len(upstream.chat_requests) == 2
    assert upstream.connections_opened == 1


# open_upstream, for the proxy ---------------------------------------------------


async def test_open_upstream_passes_bytes_through_and_streams_raw(upstream):
    upstream.enqueue(Stream([sse({"n": 1}), sse({"n": 2})], delay=0.01))
    body = b'{"model": "x", "stream": true}'

    async with open_upstream("POST", f"{upstream.url}/v1/chat/completions", {"X-Test": "1"}, body) as response:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])

    assert response.status_code == 200
    assert raw == b'data: {"n": 1}\n\ndata: {"n": 2}\n\n'
    assert upstream.chat_requests[0].body == body
    assert upstream.chat_requests[0].headers["x-test"] == "1"


async def test_a_cookie_an_upstream_sets_is_never_sent_back(upstream):
    # One client serves every user: a cookie set in answer to one user's
    # request must not ride along on the next user's.
    upstream.enqueue(
        Status(200, {"ok": True}, headers={"Set-Cookie": "session=alice-secret; Path=/"}), Status(200, {"ok": True})
    )
    for _ in range(2):
        async with open_upstream("POST", f"{upstream.url}/v1/chat/completions", {}, b"{}") as response:
            await response.aread()

    assert [request.headers.get("cookie") for request in upstream.chat_requests] == [None, None]
    assert list(http_client().cookies.jar) == []  # not even kept


# coalesced: the proxy's relay ------------------------------------------------------


async def pieces_of(url: str, pause_after_first: float = 0.0) -> list[bytes]:
    pieces = []
    async with open_upstream("POST", f"{url}/v1/chat/completions", {}, b"{}") as response:
        async for piece in coalesced(response):
            pieces.append(piece)
            if len(pieces) == 1:
                await asyncio.sleep(pause_after_first)
    return pieces


async def test_coalesced_joins_what_arrived_while_the_caller_was_busy(upstream):
    chunks = [sse({"n": n}) for n in range(20)]
    upstream.enqueue(Stream(chunks, delay=0.005))

    pieces = await pieces_of(upstream.url, pause_after_first=0.5)

    assert b"".join(pieces) == "".join(chunks).encode()
    assert pieces[0] == chunks[0].encode() and len(pieces) == 2


async def test_coalesced_passes_a_slow_stream_on_chunk_by_chunk(upstream):
    chunks = [sse({"n": n}) for n in range(5)]
    upstream.enqueue(Stream(chunks, delay=0.05))

    assert await pieces_of(upstream.url) == [chunk.encode() for chunk in chunks]


async def test_coalesced_delivers_what_came_before_the_upstream_broke_off(upstream):
    upstream.enqueue(Stream([sse({"n": 1}), sse({"n": 2})], delay=0.01, abort=True))
    received = []

    with pytest.raises(httpx.HTTPError):
        async with open_upstream("POST", f"{upstream.url}/v1/chat/completions", {}, b"{}") as response:
            async for piece in coalesced(response):
                received.append(piece)

    assert b"".join(received) == b'data: {"n": 1}\n\ndata: {"n": 2}\n\n'


async def test_leaving_a_coalesced_stream_early_closes_the_upstream_connection(upstream):
    upstream.enqueue(Stream([sse({"n": n}) for n in range(10)], delay=0.05))

    async with open_upstream("POST", f"{upstream.url}/v1/chat/completions", {}, b"{}") as response:
        async with contextlib.aclosing(coalesced(response)) as pieces:
            async for piece in pieces:
                assert piece == b'data: {"n": 0}\n\n'
                break

    assert await upstream.until_disconnected(1.0)


async def test_open_upstream_hands_over_the_last_retryable_answer(upstream, settings):
    settings.UPSTREAM_MAX_TRIES = 2
    upstream.enqueue(Status(503, "busy"), Status(503, "still busy", headers={"Retry-After": "0"}))

    async with open_upstream("POST", f"{upstream.url}/v1/chat/completions", {}, b"{}") as response:
        body = await response.aread()

    assert (response.status_code, body) == (503, b"still busy")


async def test_open_upstream_raises_typed_errors(upstream, settings):
    settings.UPSTREAM_MAX_TRIES = 1
    settings.UPSTREAM_READ_TIMEOUT = 0.2
    upstream.enqueue(Hang(send_head=False))

    with pytest.raises(UpstreamTimeout) as timeout:
        async with open_upstream("POST", f"{upstream.url}/v1/chat/completions", {}, b"{}"):
            pass
    with pytest.raises(UpstreamUnreachable) as unreachable:
        async with open_upstream("GET", f"http://127.0.0.1:{free_port()}/v1/models", {}):
            pass

    assert (timeout.value.http_status, unreachable.value.http_status) == (504, 502)
    assert KEY not in str(timeout.value) + str(unreachable.value)


async def test_a_user_url_on_a_private_address_is_refused(upstream, settings):
    settings.ALLOW_PRIVATE_ENDPOINTS = False

    events = [e async for e in stream_completion(chat(), Endpoint(upstream.url, KEY, user_supplied=True))]

    assert len(events) == 1
    assert (events[0].code, events[0].retryable) == ("blocked_endpoint", False)
    assert upstream.requests == []


# One client per event loop ---------------------------------------------------------


def test_each_event_loop_gets_its_own_client_and_both_work(upstream):
    async def fetch() -> tuple[httpx.AsyncClient, int]:
        client = http_client()
        assert http_client() is client
        response = await client.get(f"{upstream.url}/v1/models")
        return client, response.status_code

    first_client, first_status = asyncio.run(fetch())
    second_client, second_status = asyncio.run(fetch())

    assert first_client is not second_client
    assert (first_status, second_status) == (200, 200)


def test_guarded_and_trusted_clients_are_separate(settings):
    settings.ALLOW_PRIVATE_ENDPOINTS = False

    async def clients() -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
        return http_client(user_supplied=True), http_client(user_supplied=False)

    guarded, trusted = asyncio.run(clients())

    assert guarded is not trusted
    assert not guarded.follow_redirects and not trusted.follow_redirects
