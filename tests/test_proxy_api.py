"""The proxy API's request path (SPEC section 8): what goes upstream, what comes back, what is accounted.

Driven through Django's async test client against the fake upstream; the
official SDKs over a real Daphne are in test_proxy_sdks.py, the error
statuses in test_proxy_errors.py.
"""

import json
import logging
from decimal import Decimal

import pytest
from django.test import AsyncClient

from providers import ratelimit
from providers.api_usage import UsageReader, wait_for_accounting
from providers.models import ProviderCredential
from providers.registry import ANTHROPIC_VERSION
from providers.usage import UsageRecord
from tests.conftest import OPENROUTER_SERVER_KEY
from tests.fake_upstream import (
    JSONResponse,
    Stream,
    anthropic_message,
    anthropic_stream,
    openai_completion,
    openai_text_stream,
    rechunk,
    sse,
)

pytestmark = pytest.mark.django_db(transaction=True)

SERVER_KEY = OPENROUTER_SERVER_KEY
USER_KEY = "sk-or-user-fedcba9876543210"
CHAT = "/api/openrouter/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Hi"}]








class Api:
    """Django's async test client with a token on every request (its `headers=` defaults get lost)."""

    def __init__(self, token: str, header: str = "Authorization") -> None:
        self.client = AsyncClient()
        self.auth = {header: f"Bearer {token}" if header == "Authorization" else token}

    async def post(self, path: str, body: dict | bytes, headers: dict | None = None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {**self.auth, **(headers or {})}
        response = await self.client.post(path, data=data, content_type="application/json", headers=headers)
        if response.streaming:
            response.body = b"".join([chunk async for chunk in response.streaming_content])
        else:
            response.body = response.content
        return response

    async def get(self, path: str):
        return await self.client.get(path, headers=self.auth)


@pytest.fixture
def api(token) -> Api:
    return Api(token)


async def record() -> UsageRecord:
    await wait_for_accounting()
    return await UsageRecord.objects.aget()


# What goes upstream -----------------------------------------------------------


async def test_the_original_body_bytes_go_upstream_with_the_server_key(api, openrouter):
    body = b'{"model":"fake/model",  "messages":[{"role":"user","content":"caf\\u00e9 \xc3\xa9"}],"temperature":1.0E0}'
    headers = {"Cookie": "sessionid=abc", "X-Custom": "1", "X-Api-Key": "sb-other"}
    response = await api.post(CHAT, body, headers)
    assert response.status_code == 200
    sent = openrouter.chat_requests[0]
    assert sent.body == body
    assert sent.headers["authorization"] == f"Bearer {SERVER_KEY}"
    assert "cookie" not in sent.headers and "x-custom" not in sent.headers and "x-api-key" not in sent.headers
    assert sent.headers["x-title"] == "Switchboard"


async def test_a_stream_is_asked_for_usage_only_when_the_client_did_not_say(api, openrouter):
    await api.post(CHAT, b'{"model": "fake/model", "stream": true, "messages": []}')
    sent = openrouter.chat_requests[0].body
    assert sent == b'{"stream_options":{"include_usage":true},"model": "fake/model", "stream": true, "messages": []}'
    assert json.loads(sent)["stream_options"] == {"include_usage": True}

    chosen = b'{"model": "fake/model", "stream": true, "stream_options": {"include_usage": false}, "messages": []}'
    await api.post(CHAT, chosen)
    assert openrouter.chat_requests[1].body == chosen

    whole = b'{"model": "fake/model", "messages": []}'
    await api.post(CHAT, whole)
    assert openrouter.chat_requests[2].body == whole


async def test_a_stream_passes_through_byte_for_byte(api, openrouter):
    chunks = openai_text_stream("Hello big world", reasoning="Let me think", comments=True, cost=0.001)
    openrouter.enqueue(Stream(rechunk(chunks, 7)))
    response = await api.post(CHAT, {"model": "fake/model", "stream": True, "messages": MESSAGES})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache" and response["X-Accel-Buffering"] == "no"
    assert response.body == "".join(chunks).encode()


async def test_a_whole_answer_keeps_status_body_and_content_type(api, openrouter):
    answer = openai_completion("Hello", reasoning="hmm", cost=0.5)
    openrouter.enqueue(JSONResponse(answer, headers={"X-Request-Id": "req-1", "Set-Cookie": "upstream=1"}))
    response = await api.post(CHAT, {"model": "fake/model", "messages": MESSAGES})
    assert (response.status_code, response["Content-Type"]) == (200, "application/json")
    assert json.loads(response.body) == answer
    assert response["X-Request-Id"] == "req-1"
    assert "upstream" not in response.cookies


async def test_the_messages_route_sends_anthropic_headers(api, settings, upstream):
    settings.ANTHROPIC_API_KEY = "sk-ant-server-0123456789"
    settings.ANTHROPIC_URL = upstream.url
    headers = {"anthropic-version": "2099-01-01", "anthropic-beta": "interleaved-thinking-2025-05-14"}
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": MESSAGES}
    response = await api.post("/api/anthropic/v1/messages", body, headers)
    assert response.status_code == 200 and json.loads(response.body)["type"] == "message"
    sent = upstream.chat_requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-server-0123456789" and "authorization" not in sent.headers
    assert sent.headers["anthropic-version"] == ANTHROPIC_VERSION  # the registry's, not the client's
    assert sent.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"


async def test_openrouter_messages_go_to_its_anthropic_endpoint(openrouter, token):
    client = Api(token, header="x-api-key")
    version = {"anthropic-version": "2026-10-21", "anthropic-beta": "a,b"}
    openrouter.enqueue(Stream(anthropic_stream("Hi there", thinking="Hmm", model="anthropic/claude-sonnet-4.5")))
    body = {"model": "anthropic/claude-sonnet-4.5", "max_tokens": 100, "stream": True, "messages": MESSAGES}
    response = await client.post("/api/openrouter/v1/messages", body, version)
    assert response.status_code == 200 and b"thinking_delta" in response.body
    sent = openrouter.chat_requests[0]
    assert sent.path == "/v1/messages" and sent.headers["authorization"] == f"Bearer {SERVER_KEY}"
    assert (sent.headers["anthropic-version"], sent.headers["anthropic-beta"]) == ("2026-10-21", "a,b")
    assert "stream_options" not in sent.json


# Models -----------------------------------------------------------------------


async def test_models_lists_the_allowed_models_in_openai_format(api, openrouter, settings):
    settings.CUSTOM_MODELS = "-all,+anthropic/claude-sonnet-4.5@OpenRouter,+my/own@OpenRouter=Mine"
    response = await api.get("/api/openrouter/v1/models")
    assert response.status_code == 200
    listing = response.json()
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == ["anthropic/claude-sonnet-4.5", "my/own"]
    claude, mine = listing["data"]
    assert (claude["object"], claude["created"], claude["owned_by"]) == ("model", 0, "openrouter")
    assert claude["context_length"] == 1000000
    assert claude["pricing"] == {"prompt": "0.000003", "completion": "0.000015"}
    assert mine["name"] == "Mine" and "pricing" not in mine
    assert not openrouter.chat_requests

    detail = await api.get("/api/openrouter/v1/models/anthropic/claude-sonnet-4.5")
    assert detail.status_code == 200 and detail.json()["id"] == "anthropic/claude-sonnet-4.5"
    assert (await api.get("/api/openrouter/v1/models/openai/gpt-4o-mini")).status_code == 404


# Credentials --------------------------------------------------------------------


async def test_the_users_stored_key_and_url_win_and_no_key_is_ever_shown(api, carol, openrouter, settings, caplog):
    caplog.set_level(logging.DEBUG)
    settings.ALLOW_PRIVATE_ENDPOINTS = True
    credential = ProviderCredential(user=carol, provider="openrouter", base_url=f"{openrouter.url}/api")
    credential.set_key(USER_KEY)
    await credential.asave()
    openrouter.enqueue(Stream(openai_text_stream("ok")), JSONResponse({"error": {"message": f"bad {USER_KEY}"}}, 401))
    streamed = await api.post(CHAT, {"model": "fake/model", "stream": True, "messages": MESSAGES})
    refused = await api.post(CHAT, {"model": "fake/model", "messages": MESSAGES})
    assert streamed.status_code == 200 and refused.status_code == 401
    assert [r.path for r in openrouter.chat_requests] == ["/api/v1/chat/completions"] * 2
    assert {r.headers["authorization"] for r in openrouter.chat_requests} == {f"Bearer {USER_KEY}"}
    assert json.loads(refused.body) == {"error": {"message": "bad [key]"}}
    await wait_for_accounting()
    shown = [streamed.body, refused.body, str(dict(streamed.items())), str(dict(refused.items())), caplog.text]
    records = [r async for r in UsageRecord.objects.all()]
    shown += [r.error for r in records]
    assert len(records) == 2
    for text in map(str, shown):
        assert USER_KEY not in text and SERVER_KEY not in text


async def test_the_server_key_is_used_without_a_stored_key_and_never_shown(api, openrouter, caplog):
    caplog.set_level(logging.DEBUG)
    openrouter.enqueue(JSONResponse({"error": {"message": f"Invalid key {SERVER_KEY}"}}, 403))
    refused = await api.post(CHAT, {"model": "fake/model", "messages": MESSAGES})
    assert refused.status_code == 403
    assert openrouter.chat_requests[0].headers["authorization"] == f"Bearer {SERVER_KEY}"
    record_ = await record()
    for text in (refused.body.decode(), str(dict(refused.items())), caplog.text, record_.error):
        assert SERVER_KEY not in text
    assert record_.status_code == 403 and "Invalid key" in record_.error


async def test_a_stored_key_without_url_goes_to_the_servers_url(api, carol, openrouter):
    credential = ProviderCredential(user=carol, provider="openrouter")
    credential.set_key(USER_KEY)
    await credential.asave()
    await api.post(CHAT, {"model": "fake/model", "messages": MESSAGES})
    assert openrouter.chat_requests[0].headers["authorization"] == f"Bearer {USER_KEY}"


async def test_hide_user_api_key_ignores_stored_keys(api, carol, openrouter, settings):
    settings.HIDE_USER_API_KEY = True
    credential = ProviderCredential(user=carol, provider="openrouter")
    credential.set_key(USER_KEY)
    await credential.asave()
    await api.post(CHAT, {"model": "fake/model", "messages": MESSAGES})
    assert openrouter.chat_requests[0].headers["authorization"] == f"Bearer {SERVER_KEY}"


async def test_a_key_saved_or_deleted_after_a_request_acts_at_once(api, carol, openrouter):
    await api.post(CHAT, {"model": "fake/model", "messages": MESSAGES})
    credential = ProviderCredential(user=carol, provider="openrouter")
    credential.set_key(USER_KEY)
    await credential.asave()
    await api.post(CHAT, {"model": "fake/model", "messages": MESSAGES})
    await credential.adelete()
    await api.post(CHAT, {"model": "fake/model", "messages": MESSAGES})
    keys = [r.headers["authorization"] for r in openrouter.chat_requests]
    assert keys == [f"Bearer {SERVER_KEY}", f"Bearer {USER_KEY}", f"Bearer {SERVER_KEY}"]


async def test_a_server_key_pool_hands_out_a_key_per_request(api, openrouter, settings):
    settings.OPENROUTER_API_KEY = "sk-or-first-0123456789,sk-or-second-0123456789"
    for _ in range(20):
        await api.post(CHAT, {"model": "fake/model", "messages": MESSAGES})
    used = {r.headers["authorization"] for r in openrouter.chat_requests}
    assert used == {"Bearer sk-or-first-0123456789", "Bearer sk-or-second-0123456789"}


# Accounting -------------------------------------------------------------------


async def test_a_stream_is_accounted_with_the_cost_of_its_final_chunk(api, carol, openrouter):
    usage = {"prompt_tokens": 30, "completion_tokens": 20, "total_tokens": 50,
             "completion_tokens_details": {"reasoning_tokens": 8}, "prompt_tokens_details": {"cached_tokens": 10}}  # fmt: skip
    chunks = openai_text_stream("Hello big world", reasoning="Think", usage=usage, cost=0.0021)
    openrouter.enqueue(Stream(rechunk(chunks, 5)))
    response = await api.post(CHAT, {"model": "fake/model", "stream": True, "messages": MESSAGES})
    assert response.status_code == 200
    row = await record()
    assert (row.user_id, row.provider, row.model, row.source) == (carol.pk, "openrouter", "fake/model", "api")
    assert (row.prompt_tokens, row.completion_tokens, row.reasoning_tokens, row.cached_tokens) == (30, 20, 8, 10)
    assert (row.cost, row.cost_source, row.status_code) == (Decimal("0.0021"), "provider", 200)
    assert 0 <= row.time_to_first_token <= row.duration


async def test_a_stream_without_cost_gets_it_from_the_generation_endpoint(api, openrouter):
    openrouter.generations["gen-abc"] = 0.0042
    openrouter.enqueue(Stream(openai_text_stream("Hello", response_id="gen-abc", usage={"prompt_tokens": 5,
                                                                                          "completion_tokens": 1})))
    await api.post(CHAT, {"model": "fake/model", "stream": True, "messages": MESSAGES})
    row = await record()
    assert (row.prompt_tokens, row.completion_tokens) == (5, 1)
    assert (row.cost, row.cost_source) == (Decimal("0.0042"), "generation")
    looked_up = [r for r in openrouter.requests if r.path.endswith("/generation")]
    assert looked_up[0].query == {"id": "gen-abc"}
    assert looked_up[0].headers["authorization"] == f"Bearer {SERVER_KEY}"


async def test_a_whole_answer_is_accounted(api, openrouter):
    openrouter.enqueue(JSONResponse(openai_completion("Hi", usage={"prompt_tokens": 7, "completion_tokens": 3},
                                                      cost=0.0007)))
    await api.post(CHAT, {"model": "fake/model", "messages": MESSAGES})
    row = await record()
    assert (row.prompt_tokens, row.completion_tokens, row.cost, row.cost_source) == (7, 3, Decimal("0.0007"),
                                                                                   "provider")


async def test_without_a_reported_cost_the_catalogue_prices_it(api, settings, upstream):
    settings.DEEPSEEK_API_KEY = "sk-deepseek-0123456789"
    settings.DEEPSEEK_URL = upstream.url
    usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    upstream.enqueue(JSONResponse(openai_completion("Hi", usage=usage, model="deepseek/deepseek-r1")))
    response = await api.post("/api/deepseek/v1/chat/completions", {"model": "deepseek/deepseek-r1",
                                                                     "messages": MESSAGES})
    assert response.status_code == 200
    row = await record()
    assert (row.provider, row.cost, row.cost_source) == ("deepseek", Decimal("0.0014"), "catalogue")


async def test_an_anthropic_stream_is_accounted(api, settings, upstream):
    settings.ANTHROPIC_API_KEY = "sk-ant-server-0123456789"
    settings.ANTHROPIC_URL = upstream.url
    upstream.enqueue(Stream(rechunk(anthropic_stream("Hi there", thinking="Let me see", input_tokens=40,
                                                     cache_read_tokens=60, output_tokens=25), 9)))
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True, "messages": MESSAGES}
    response = await api.post("/api/anthropic/v1/messages", body)
    assert response.status_code == 200
    row = await record()
    assert (row.prompt_tokens, row.completion_tokens, row.cached_tokens) == (100, 25, 60)


async def test_an_anthropic_whole_answer_is_accounted(api, settings, upstream):
    settings.ANTHROPIC_API_KEY = "sk-ant-server-0123456789"
    settings.ANTHROPIC_URL = upstream.url
    upstream.enqueue(JSONResponse(anthropic_message("Hi", input_tokens=11, output_tokens=4)))
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": MESSAGES}
    await api.post("/api/anthropic/v1/messages", body)
    row = await record()
    assert (row.prompt_tokens, row.completion_tokens, row.status_code) == (11, 4, 200)


@pytest.mark.parametrize("shape", ["top-level", "top-level-no-choices", "finish-reason"])
async def test_an_error_inside_a_stream_is_accounted(api, openrouter, shape):
    error = {"code": 502, "message": "Provider returned error"}
    openrouter.enqueue(Stream(openai_text_stream("Half an ans", error_mid_stream=error, error_shape=shape)))
    response = await api.post(CHAT, {"model": "fake/model", "stream": True, "messages": MESSAGES})
    assert response.status_code == 200 and b"Provider returned error" in response.body
    row = await record()
    assert (row.status_code, row.error) == (502, "Provider returned error")


# The usage reader ---------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 3, 64, 100000])
def test_usage_is_read_from_a_stream_cut_anywhere(size):
    usage = {"prompt_tokens": 9, "completion_tokens": 4, "completion_tokens_details": {"reasoning_tokens": 2}}
    reader = UsageReader("openai")
    for chunk in rechunk(openai_text_stream("a b c", usage=usage, cost=0.25, response_id="gen-9"), size):
        reader.feed(chunk)
    reader.close()
    assert reader.response_id == "gen-9"
    assert (reader.usage.prompt_tokens, reader.usage.completion_tokens, reader.usage.reasoning_tokens) == (9, 4, 2)
    assert reader.usage.cost == Decimal("0.25")
    assert reader.done


def test_a_stream_is_done_only_after_its_last_event():
    reader = UsageReader("openai")
    chunks = openai_text_stream("data: [DONE] is what servers send", done=False)
    for chunk in chunks:
        reader.feed(chunk.encode())
    assert not reader.done
    reader.feed(sse("[DONE]").encode())
    assert reader.done


def test_null_usage_on_every_chunk_is_not_parsed_but_the_last_one_is():
    reader = UsageReader("openai")
    chunk = {"id": "x", "choices": [{"delta": {"content": '"usage": {'}}], "usage": None}
    for _ in range(3):
        reader.feed(sse(chunk).encode())
    assert reader.usage is None
    reader.feed(sse({"id": "x", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}).encode())
    assert reader.usage.completion_tokens == 2


def test_anthropic_usage_is_read_from_a_stream_without_its_last_newline():
    reader = UsageReader("anthropic")
    data = "".join(anthropic_stream("Hi", input_tokens=3, output_tokens=5, message_id="msg_1")).rstrip("\n")
    for chunk in rechunk([data], 4):
        reader.feed(chunk)
    reader.close()
    assert reader.response_id == "msg_1"
    assert (reader.usage.prompt_tokens, reader.usage.completion_tokens) == (3, 5)
    assert reader.done and not reader.error


def test_an_anthropic_error_event_is_noted():
    reader = UsageReader("anthropic")
    for chunk in anthropic_stream("Hi", error={"type": "overloaded_error", "message": "Overloaded"}):
        reader.feed(chunk.encode())
    assert reader.error == "Overloaded" and not reader.done


# The rate ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate"),
    [("60/m", (60, 60)), ("10/s", (10, 1)), ("1000/h", (1000, 3600)), ("5/10s", (5, 10)), ("100/day", (100, 86400)),
     (" 7 / min ", (7, 60)), ("", None), ("0/m", None), ("off", None)],
)  # fmt: skip
def test_rate_limits_are_parsed(text, rate):
    parsed = ratelimit.parse_rate(text)
    assert (parsed.limit, parsed.period) == rate if rate else parsed is None


@pytest.mark.parametrize("text", ["60", "60/fortnight", "m/60", "-1/m"])
def test_a_bad_rate_limit_is_refused(text):
    with pytest.raises(ValueError):
        ratelimit.parse_rate(text)
