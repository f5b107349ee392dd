"""Anthropic's native Messages API, streamed and whole, through a real socket."""

import pytest

from providers.completion import ChatMessage, CompletionRequest, complete, stream_completion
from providers.credentials import Endpoint
from providers.events import Finish, ReasoningDelta, StreamError, TextDelta, ToolCallDelta, Usage
from providers.registry import ANTHROPIC_VERSION, PROVIDERS
from tests.fake_upstream import JSONResponse, Status, Stream, anthropic_message, anthropic_stream, rechunk

KEY = "sk-ant-api03-secret-test-key"


def chat(**options) -> CompletionRequest:
    messages = options.pop("messages", [ChatMessage("user", "Hi")])
    return CompletionRequest(provider=PROVIDERS["anthropic"], model="claude-sonnet-4-5", messages=messages, **options)


async def collect(upstream, request: CompletionRequest) -> list:
    return [event async for event in stream_completion(request, Endpoint(upstream.url, KEY))]


async def test_thinking_with_signature_then_text_then_usage_and_finish(upstream):
    chunks = anthropic_stream("Hello there", thinking="Be kind", signature="EqQBCkYI", message_id="msg_01")
    upstream.enqueue(Stream(chunks, delay=0.002))

    events = await collect(upstream, chat(reasoning_effort="low"))

    assert events == [
        ReasoningDelta("Be"),
        ReasoningDelta(" kind"),
        ReasoningDelta("", signature="EqQBCkYI"),
        TextDelta("Hello"),
        TextDelta(" there"),
        Usage(prompt_tokens=12, completion_tokens=4),
        Finish(
            reason="stop",
            reasoning_details=[{"type": "thinking", "thinking": "Be kind", "signature": "EqQBCkYI"}],
            response_id="msg_01",
        ),
    ]


async def test_redacted_thinking_and_tool_use_are_kept(upstream):
    tool = {"id": "toolu_1", "name": "lookup", "input": {"q": "otters"}}
    upstream.enqueue(Stream(anthropic_stream("Let me check.", redacted="ENCRYPTED", tool_use=tool)))

    events = await collect(upstream, chat())

    assert events[:-2] == [
        TextDelta("Let"),
        TextDelta(" me"),
        TextDelta(" check."),
        ToolCallDelta(index=0, id="toolu_1", name="lookup"),
        ToolCallDelta(index=0, arguments='{"q": "'),
        ToolCallDelta(index=0, arguments='otters"}'),
    ]
    assert events[-1] == Finish(
        reason="tool_calls",
        reasoning_details=[{"type": "redacted_thinking", "data": "ENCRYPTED"}],
        tool_calls=[{"id": "toolu_1", "name": "lookup", "arguments": '{"q": "otters"}'}],
        response_id="msg_fake",
    )


async def test_cached_prompt_tokens_count_in_the_prompt(upstream):
    upstream.enqueue(Stream(anthropic_stream("Yes", input_tokens=10, cache_read_tokens=2000, output_tokens=7)))

    events = await collect(upstream, chat())

    assert events[-2] == Usage(prompt_tokens=2010, completion_tokens=7, cached_tokens=2000)


async def test_overloaded_error_event_ends_the_stream(upstream):
    error = {"type": "overloaded_error", "message": "Overloaded"}
    upstream.enqueue(Stream(anthropic_stream("Partial", error=error)))

    events = await collect(upstream, chat())

    assert events == [
        TextDelta("Partial"),
        StreamError(message="Overloaded", status=529, code="overloaded", retryable=True),
    ]
    assert len(upstream.chat_requests) == 1


async def test_crlf_and_events_split_across_writes(upstream):
    chunks = anthropic_stream("Ünïcödé → fine", thinking="Ok…", line_ending="\r\n")
    upstream.enqueue(Stream(rechunk(chunks, 5)))

    events = await collect(upstream, chat())

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Ünïcödé → fine"
    assert events[-1].reasoning_details == [{"type": "thinking", "thinking": "Ok…", "signature": "sig-fake"}]


async def test_http_error_body_gives_the_message(upstream, settings):
    settings.UPSTREAM_MAX_TRIES = 1
    upstream.enqueue(Status(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))

    events = await collect(upstream, chat())

    assert events == [StreamError(message="Overloaded", status=529, code="overloaded", retryable=True)]


async def test_complete_reads_a_whole_message(upstream):
    upstream.enqueue(JSONResponse(anthropic_message("A title", thinking="Short", signature="sig-9", output_tokens=9)))

    result = await complete(chat(), Endpoint(upstream.url, KEY))

    assert (result.text, result.reasoning) == ("A title", "Short")
    assert result.usage == Usage(prompt_tokens=12, completion_tokens=9)
    assert result.finish == Finish(
        reason="stop",
        reasoning_details=[{"type": "thinking", "thinking": "Short", "signature": "sig-9"}],
        response_id="msg_fake",
    )
    assert "stream" not in upstream.chat_requests[0].json


# Request bodies ---------------------------------------------------------------


async def test_request_has_top_level_system_headers_and_default_max_tokens(upstream):
    history = [ChatMessage("system", "Answer in Danish."), ChatMessage("user", "Hi")]
    await collect(upstream, chat(system="Be brief.", messages=history, temperature=0.2))

    sent = upstream.chat_requests[0]
    assert sent.path == "/v1/messages"
    assert sent.json == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "Hi"}],
        "system": "Be brief.\n\nAnswer in Danish.",
        "temperature": 0.2,
        "max_tokens": 8192,
        "stream": True,
    }
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == ANTHROPIC_VERSION
    assert "authorization" not in sent.headers


@pytest.mark.parametrize(
    ("options", "thinking", "max_tokens"),
    [
        ({"reasoning_effort": "medium"}, {"type": "enabled", "budget_tokens": 8192}, 8192 + 4096),
        ({"reasoning_budget": 2000, "max_tokens": 1000}, {"type": "enabled", "budget_tokens": 2000}, 6096),
        ({"reasoning_budget": 500, "max_tokens": 4000}, {"type": "enabled", "budget_tokens": 1024}, 4000),
        ({"reasoning_effort": "low", "max_tokens": 20000}, {"type": "enabled", "budget_tokens": 2048}, 20000),
    ],
)
async def test_thinking_budget_always_stays_below_max_tokens(upstream, options, thinking, max_tokens):
    await collect(upstream, chat(temperature=0.5, top_p=0.5, **options))

    sent = upstream.chat_requests[0].json
    assert sent["thinking"] == thinking
    assert sent["max_tokens"] == max_tokens > sent["thinking"]["budget_tokens"]
    assert "temperature" not in sent and "top_p" not in sent  # refused together with thinking


async def test_signed_thinking_blocks_go_back_before_the_text(upstream):
    blocks = [
        {"type": "redacted_thinking", "data": "ENC"},
        {"type": "thinking", "thinking": "Plan", "signature": "sig-1"},
        {"type": "thinking", "thinking": "unsigned", "signature": ""},
        {"type": "reasoning.text", "text": "from OpenRouter", "index": 0},
    ]
    history = [
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Hello!", reasoning="Plan", reasoning_details=blocks),
        ChatMessage("user", "More"),
    ]
    await collect(upstream, chat(messages=history, reasoning_effort="low"))

    assert upstream.chat_requests[0].json["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "redacted_thinking", "data": "ENC"},
            {"type": "thinking", "thinking": "Plan", "signature": "sig-1"},
            {"type": "text", "text": "Hello!"},
        ],
    }


async def test_empty_answers_are_left_out_of_the_history(upstream):
    history = [ChatMessage("user", "Hi"), ChatMessage("assistant", ""), ChatMessage("user", "Hello?")]
    await collect(upstream, chat(messages=history))

    assert upstream.chat_requests[0].json["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "user", "content": "Hello?"},
    ]
