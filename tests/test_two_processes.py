"""Two real Daphne processes sharing PostgreSQL and Redis (issue: The chat, criterion 2).

A generation started through process A is received completely, exactly once,
by a socket that reconnects to process B; a stop sent through B stops it.
The services are the machine's own (PG_URL / REDIS_TEST_URL override them):
locally the test skips when they are down, under CI it fails.
"""

import asyncio
import json
import os
import re
import time
import uuid

import httpx
import psycopg
import pytest
import redis
import websockets

from tests.chat_client import ShownPage
from tests.conftest import needs_service
from tests.fake_upstream import FakeUpstream, Hang, Stream, openai_text_stream
from tests.live_server import AppServer, base_env, manage, prepared_database

PG_SERVER = os.environ.get("PG_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/3")
DATABASE = "switchboard_two_processes"
MODEL = "fake/model@openrouter"


def _postgres_up() -> bool:
    try:
        with psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            connection.execute(f"CREATE DATABASE {DATABASE}")
        return True
    except psycopg.Error:
        return False


def _redis_up() -> bool:
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=3)
        client.flushdb()
        return True
    except redis.RedisError:
        return False


@pytest.fixture(scope="module")
def services():
    needs_service("PostgreSQL", _postgres_up())
    needs_service("Redis", _redis_up())
    yield
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


@pytest.fixture(scope="module")
def upstream():
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def two_servers(services, upstream):
    env = base_env(
        DATABASE_URL=f"{PG_SERVER}/{DATABASE}",
        REDIS_URL=REDIS_URL,
        OPENROUTER_API_KEY="sk-or-two-processes",
        OPENROUTER_URL=upstream.url,
    )
    prepared_database(env)
    servers = [AppServer(env).start(), AppServer(env).start()]
    yield servers
    for server in servers:
        server.stop()


class Socket:
    """A browser's WebSocket to one server, keeping what the page shows."""

    def __init__(self, server: AppServer, conversation_id: uuid.UUID, cookies: dict[str, str]):
        self.url = f"ws://127.0.0.1:{server.port}/ws/chat/{conversation_id}/"
        self.headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()), "Origin": server.url}
        self.page = ShownPage()

    async def __aenter__(self) -> "Socket":
        self.connection = await websockets.connect(self.url, additional_headers=self.headers, open_timeout=5)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.connection.close()

    async def send(self, **action) -> None:
        await self.connection.send(json.dumps(action))

    async def until(self, predicate, timeout: float = 15.0) -> None:
        self.frames = getattr(self, "frames", [])
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self.page):
                    frame = await self.connection.recv()
                    self.frames.append(frame)
                    self.page.apply(frame)
        except TimeoutError:
            raise AssertionError(f"timed out; shown: {self.page.shown}; frames: {self.frames[-5:]}") from None


def _answer(page: ShownPage):
    ids = [k for k, m in page.shown.items() if m.role == "assistant"]
    return page.shown[max(ids)] if ids else None


async def test_a_generation_continues_exactly_once_on_another_process(two_servers, upstream):
    a, b = two_servers
    cookies = a.signed_in_cookies()
    text = " ".join(f"w{i:03d}" for i in range(150))
    upstream.enqueue(Stream(openai_text_stream(text, reasoning="step by step " * 5), delay=0.02))
    chat_id = uuid.uuid4()

    async with Socket(a, chat_id, cookies) as first:
        await first.send(action="send", message="Count to 150", model=MODEL)
        await first.until(lambda page: _answer(page) is not None and len(_answer(page).content) > 40)

    async with Socket(b, chat_id, cookies) as second:
        await second.until(lambda page: _answer(page) is not None and _answer(page).status == "done")
        answer = _answer(second.page)
    assert answer.content == text
    assert answer.reasoning == "step by step " * 5

    # What process B serves on reload is the same text, saved once.
    page = _page(b, chat_id, cookies)
    assert page.count("w149") == 1 and page.count("w000") == 1


async def test_a_stop_sent_through_the_other_process_stops_the_generation(two_servers, upstream):
    a, b = two_servers
    cookies = a.signed_in_cookies()
    upstream.disconnected.clear()
    upstream.enqueue(Hang(openai_text_stream("never ending", usage=False, done=False)))
    chat_id = uuid.uuid4()
    async with Socket(a, chat_id, cookies) as first:
        await first.send(action="send", message="Go", model=MODEL)
        await first.until(lambda page: _answer(page) is not None and _answer(page).content == "never ending")
        async with Socket(b, chat_id, cookies) as second:
            await second.until(lambda page: _answer(page) is not None and _answer(page).content == "never ending")
            await second.send(action="stop")
            assert await upstream.until_disconnected(1.0), "the upstream connection outlived the stop"
            await second.until(lambda page: _answer(page).status == "stopped")
        await first.until(lambda page: _answer(page).status == "stopped")
    assert _answer(first.page).content == "never ending"


async def test_health_is_ok_while_a_socket_listens(two_servers):
    a, _b = two_servers
    async with Socket(a, uuid.uuid4(), a.signed_in_cookies()):
        response = await asyncio.to_thread(httpx.get, f"{a.url}/healthz", timeout=10)
    assert response.json() == {"status": "ok", "database": "ok", "channel_layer": "ok"}


def test_a_token_revoked_through_one_process_is_refused_by_the_other_at_once(two_servers):
    """B remembers a token it has just accepted for a few seconds; A's revocation makes it forget."""
    a, b = two_servers
    raw = manage(a.env, "create_api_token", "alice", "--name", "two processes").strip()
    with httpx.Client(base_url=a.url, cookies=a.signed_in_cookies(), timeout=10) as settings_page:
        page = settings_page.get("/settings/tokens/").text
        revoke = re.search(r'action="(/settings/tokens/\d+/revoke/)"', page)[1]
        csrf = page.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
        models = {"Authorization": f"Bearer {raw}"}
        assert httpx.get(f"{b.url}/api/openrouter/v1/models", headers=models).status_code == 200
        assert settings_page.post(revoke, data={"csrfmiddlewaretoken": csrf}).status_code == 302
    revoked = time.monotonic()
    while (status := httpx.get(f"{b.url}/api/openrouter/v1/models", headers=models).status_code) == 200:
        assert time.monotonic() - revoked < 2.0, "B kept accepting the revoked token (it remembers one 5 s)"
        time.sleep(0.05)
    assert status == 401


def _page(server: AppServer, chat_id: uuid.UUID, cookies: dict[str, str]) -> str:
    return httpx.get(f"{server.url}/c/{chat_id}/", cookies=cookies, timeout=10).text
