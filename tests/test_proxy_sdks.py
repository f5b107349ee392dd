"""The official `openai` and `anthropic` SDKs, unchanged, against the proxy API (SPEC section 8).

The app is served by a real Daphne on a loopback port (`live_app`), and
forwards to the fake upstream: what the upstream streams (text, OpenRouter
reasoning fields, Anthropic thinking, usage) must reach the SDK intact, and
a client that goes away must make the upstream connection close.
"""

from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from providers.registry import ANTHROPIC_VERSION
from providers.usage import UsageRecord
from tests.conftest import OPENROUTER_SERVER_KEY
from tests.fake_upstream import (
    Hang,
    JSONResponse,
    Stream,
    anthropic_message,
    anthropic_stream,
    openai_completion,
    openai_text_stream,
)

SERVER_KEY = OPENROUTER_SERVER_KEY
ANTHROPIC_KEY = "sk-ant-server-0123456789abcdef"
TEXT = "The quick brown fox jumps over the lazy dog."
REASONING = "The user wants a pangram, so I will give the classic one."
USAGE = {"prompt_tokens": 21, "completion_tokens": 34, "total_tokens": 55,
         "completion_tokens_details": {"reasoning_tokens": 13}}  # fmt: skip
HI = [{"role": "user", "content": "Say a pangram"}]




@pytest.fixture
def anthropic_upstream(settings, upstream):
    settings.ANTHROPIC_API_KEY = ANTHROPIC_KEY
    settings.ANTHROPIC_URL = upstream.url
    return upstream






@pytest.fixture
def openai_client(live_app, token) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_app.url}/api/openrouter/v1", api_key=token, max_retries=0, timeout=10)


@pytest.fixture
def anthropic_client(live_app, token) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=f"{live_app.url}/api/anthropic", api_key=token, max_retries=0, timeout=10)


def accounted(live_app) -> UsageRecord:
    live_app.settle()
    return UsageRecord.objects.get()


# openai ------------------------------------------------------------------------


def test_openai_stream_brings_text_reasoning_and_usage(live_app, openrouter, openai_client, carol):
    openrouter.enqueue(Stream(openai_text_stream(TEXT, reasoning=REASONING, usage=USAGE, cost=0.00123,
                                                 comments=True, signature="sig-1"), delay=0.002))  # fmt: skip
    chunks = list(openai_client.chat.completions.create(model="fake/model", messages=HI, stream=True))

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    deltas = [c.choices[0].delta.model_extra for c in chunks if c.choices]
    assert "".join(d.get("reasoning") or "" for d in deltas) == REASONING
    details = [item for d in deltas for item in d.get("reasoning_details") or []]
    assert details[-1]["signature"] == "sig-1" and details[0]["type"] == "reasoning.text"
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (21, 34)
    assert usage.completion_tokens_details.reasoning_tokens == 13 and usage.model_extra["cost"] == 0.00123

    sent = openrouter.chat_requests[0]
    assert sent.headers["authorization"] == f"Bearer {SERVER_KEY}"
    assert sent.json["stream_options"] == {"include_usage": True}
    record = accounted(live_app)
    assert (record.user_id, record.provider, record.model, record.status_code) == (carol.pk, "openrouter",
                                                                                 "fake/model", 200)
    assert (record.prompt_tokens, record.completion_tokens, record.reasoning_tokens) == (21, 34, 13)
    assert (record.cost, record.cost_source) == (Decimal("0.00123"), "provider")
    assert 0 < record.time_to_first_token < record.duration


def test_openai_whole_answer(live_app, openrouter, openai_client):
    openrouter.enqueue(JSONResponse(openai_completion(TEXT, reasoning=REASONING, usage=USAGE, cost=0.5)))
    answer = openai_client.chat.completions.create(model="fake/model", messages=HI)
    assert answer.choices[0].message.content == TEXT
    assert answer.choices[0].message.model_extra["reasoning"] == REASONING
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (21, 34)
    record = accounted(live_app)
    assert (record.completion_tokens, record.cost) == (34, Decimal("0.5"))


async def test_openai_async_client_streams_and_answers_whole(live_app, openrouter, token):
    client = openai.AsyncOpenAI(base_url=f"{live_app.url}/api/openrouter/v1", api_key=token, max_retries=0)
    openrouter.enqueue(
        Stream(openai_text_stream(TEXT, reasoning=REASONING, usage=USAGE)), JSONResponse(openai_completion(TEXT))
    )
    stream = await client.chat.completions.create(model="fake/model", messages=HI, stream=True)
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    assert "".join(c.choices[0].delta.model_extra.get("reasoning") or "" for c in chunks if c.choices) == REASONING
    assert chunks[-1].usage.completion_tokens == 34
    answer = await client.chat.completions.create(model="fake/model", messages=HI)
    assert answer.choices[0].message.content == TEXT
    await client.close()


def test_openai_lists_models(live_app, openrouter, openai_client, settings):
    settings.CUSTOM_MODELS = "-all,+deepseek/deepseek-r1@OpenRouter,+fake/model@OpenRouter"
    assert [model.id for model in openai_client.models.list()] == ["deepseek/deepseek-r1", "fake/model"]
    assert openai_client.models.retrieve("fake/model").owned_by == "openrouter"


def test_openai_sdk_raises_its_own_errors(live_app, openrouter, openai_client, settings):
    settings.CUSTOM_MODELS = "-all,+fake/model@OpenRouter"
    with pytest.raises(openai.PermissionDeniedError) as denied:
        openai_client.chat.completions.create(model="other/model", messages=HI)
    assert denied.value.body["code"] == "model_not_allowed"
    openrouter.enqueue(JSONResponse({"error": {"message": "No endpoints found", "code": 404}}, status=404))
    with pytest.raises(openai.NotFoundError, match="No endpoints found"):
        openai_client.chat.completions.create(model="fake/model", messages=HI)
    bad = openai.OpenAI(base_url=openai_client.base_url, api_key="sb-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="fake/model", messages=HI)


# anthropic ---------------------------------------------------------------------


def test_anthropic_stream_brings_thinking_text_and_usage(live_app, anthropic_upstream, anthropic_client):
    anthropic_upstream.enqueue(Stream(anthropic_stream(TEXT, thinking=REASONING, signature="sig-9", input_tokens=17,
                                                       output_tokens=40), delay=0.002))  # fmt: skip
    thinking, text = [], []
    with anthropic_client.messages.stream(
        model="claude-test-model", max_tokens=2000, messages=HI, thinking={"type": "enabled", "budget_tokens": 1024}
    ) as stream:
        for event in stream:
            if event.type == "thinking":
                thinking.append(event.thinking)
            elif event.type == "text":
                text.append(event.text)
        final = stream.get_final_message()
    assert ("".join(thinking), "".join(text)) == (REASONING, TEXT)
    assert final.content[0].type == "thinking" and final.content[0].signature == "sig-9"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (17, 40)

    sent = anthropic_upstream.chat_requests[0]
    assert sent.path == "/v1/messages" and sent.json["thinking"]["budget_tokens"] == 1024
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY and "authorization" not in sent.headers
    assert sent.headers["anthropic-version"] == ANTHROPIC_VERSION  # the registry's, whatever the SDK sent
    record = accounted(live_app)
    assert (record.provider, record.prompt_tokens, record.completion_tokens) == ("anthropic", 17, 40)


def test_anthropic_whole_answer(live_app, anthropic_upstream, anthropic_client):
    anthropic_upstream.enqueue(JSONResponse(anthropic_message(TEXT, thinking=REASONING, input_tokens=5,
                                                              output_tokens=9)))  # fmt: skip
    message = anthropic_client.messages.create(model="claude-test-model", max_tokens=100, messages=HI)
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[1].text == TEXT and (message.usage.input_tokens, message.usage.output_tokens) == (5, 9)
    assert accounted(live_app).completion_tokens == 9


def test_anthropic_sdk_through_openrouter(live_app, openrouter, token):
    client = anthropic.Anthropic(base_url=f"{live_app.url}/api/openrouter", api_key=token, max_retries=0)
    openrouter.enqueue(Stream(anthropic_stream(TEXT, thinking=REASONING)))
    with client.messages.stream(model="anthropic/claude-sonnet-4.5", max_tokens=100, messages=HI) as stream:
        assert "".join(stream.text_stream) == TEXT
    sent = openrouter.chat_requests[0]
    assert sent.path == "/v1/messages" and sent.headers["authorization"] == f"Bearer {SERVER_KEY}"
    assert sent.headers["anthropic-version"] == anthropic._constants.ANTHROPIC_API_VERSION


def test_anthropic_sdk_raises_its_own_errors(live_app, anthropic_upstream, anthropic_client, settings):
    settings.UPSTREAM_MAX_TRIES = 1  # 529 is otherwise retried before the client sees it
    anthropic_upstream.enqueue(JSONResponse({"type": "error", "error": {"type": "overloaded_error",
                                                                        "message": "Overloaded"}}, status=529))
    with pytest.raises(anthropic.APIStatusError, match="Overloaded") as overloaded:
        anthropic_client.messages.create(model="claude-test-model", max_tokens=100, messages=HI)
    assert overloaded.value.status_code == 529
    bad = anthropic.Anthropic(base_url=str(anthropic_client.base_url), api_key="sb-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="claude-test-model", max_tokens=100, messages=HI)


# A client that leaves ------------------------------------------------------------


def test_a_client_that_disconnects_cancels_the_upstream(live_app, openrouter, token):
    openrouter.enqueue(Hang(openai_text_stream(TEXT, usage=False)[:4]))
    body = {"model": "fake/model", "messages": HI, "stream": True}
    with httpx.stream("POST", f"{live_app.url}/api/openrouter/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {token}"}, timeout=5) as response:  # fmt: skip
        assert response.status_code == 200
        assert b"chat.completion.chunk" in next(response.iter_raw())
    assert openrouter.wait_for_disconnect(1.0)
    record = accounted(live_app)
    assert record.status_code == 499 and record.error


def test_closing_an_sdk_stream_cancels_the_upstream(live_app, openrouter, openai_client):
    openrouter.enqueue(Stream(openai_text_stream(TEXT * 50), delay=0.05))
    stream = openai_client.chat.completions.create(model="fake/model", messages=HI, stream=True)
    next(iter(stream))
    stream.close()
    assert openrouter.wait_for_disconnect(1.0)


def test_the_api_gets_the_security_headers_and_https_redirect(live_app, openrouter, token, settings):
    # /api/ skips the pages' middleware for speed, not the security middleware's work.
    auth = {"Authorization": f"Bearer {token}"}
    plain = httpx.get(f"{live_app.url}/api/openrouter/v1/models", headers=auth)
    assert plain.status_code == 200
    assert plain.headers["x-content-type-options"] == "nosniff"
    assert plain.headers["referrer-policy"] == "same-origin"
    assert "strict-transport-security" not in plain.headers  # never over plain HTTP

    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    redirected = httpx.post(f"{live_app.url}/api/openrouter/v1/chat/completions?x=1", headers=auth, json={})
    assert redirected.status_code == 301
    assert redirected.headers["location"] == f"https://127.0.0.1:{live_app.port}/api/openrouter/v1/chat/completions?x=1"
    assert openrouter.chat_requests == []  # nothing went upstream over plain HTTP

    secure = httpx.get(f"{live_app.url}/api/openrouter/v1/models", headers={**auth, "X-Forwarded-Proto": "https"})
    assert secure.status_code == 200
    assert secure.headers["strict-transport-security"] == "max-age=3600"
