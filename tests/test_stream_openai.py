"""OpenAI-compatible streams (OpenRouter, OpenAI, DeepSeek, local servers) through a real socket."""

import logging
from decimal import Decimal

import pytest

from providers.adapters.openai_chat import ThinkSplitter
from providers.adapters.sse import SSEDecoder, SSEEvent
from providers.completion import ChatMessage, CompletionError, CompletionRequest, complete, stream_completion
from providers.credentials import Endpoint
from providers.events import Finish, ReasoningDelta, StreamError, TextDelta, TextWasReasoning, ToolCallDelta, Usage
from providers.registry import PROVIDERS
from tests.fake_upstream import (
    JSONResponse,
    Status,
    Stream,
    openai_completion,
    openai_text_stream,
    rechunk,
    sse,
)

KEY = "sk-or-v1-secret-test-key"


def chat(provider: str = "openrouter", **options) -> CompletionRequest:
    messages = options.pop("messages", [ChatMessage("user", "Hi")])
    return CompletionRequest(provider=PROVIDERS[provider], model="some/model", messages=messages, **options)


async def collect(upstream, request: CompletionRequest) -> list:
    return [event async for event in stream_completion(request, Endpoint(upstream.url, KEY))]


def shown(events: list) -> tuple[str, str]:
    """The reasoning and the text a reader of the events ends up with."""
    reasoning, text = "", ""
    for event in events:
        if isinstance(event, ReasoningDelta):
            reasoning += event.text
        elif isinstance(event, TextDelta):
            text += event.text
        elif isinstance(event, TextWasReasoning):
            reasoning, text = reasoning + event.text, ""
    return reasoning, text


def text_of(events: list) -> str:
    return shown(events)[1]


def reasoning_of(events: list) -> str:
    return shown(events)[0]


def detail(text: str, **extra) -> dict:
    return {"type": "reasoning.text", "text": text, "index": 0, "format": "unknown", **extra}


async def test_openrouter_stream_gives_reasoning_text_usage_and_finish(upstream):
    chunks = openai_text_stream(
        "Hello world", reasoning="Let me think", signature="sig-1", cost=0.0021, comments=True, response_id="gen-1"
    )
    upstream.enqueue(Stream(chunks, delay=0.002))

    events = await collect(upstream, chat())

    assert events == [
        ReasoningDelta("Let", details=(detail("Let"),)),
        ReasoningDelta(" me", details=(detail(" me"),)),
        ReasoningDelta(" think", details=(detail(" think"),)),
        ReasoningDelta("", details=(detail("", signature="sig-1"),)),
        TextDelta("Hello"),
        TextDelta(" world"),
        Usage(12, 5, reasoning_tokens=3, cost=Decimal("0.0021"), cost_source="provider"),
        Finish(reason="stop", reasoning_details=[detail("Let me think", signature="sig-1")], response_id="gen-1"),
    ]


async def test_reasoning_details_merge_by_index_and_go_back_unmodified(upstream):
    encrypted = {"type": "reasoning.encrypted", "data": "opaque==", "index": 1, "format": "openai-responses-v1"}
    upstream.enqueue(
        Stream(
            [
                sse({"id": "gen-2", "choices": [{"index": 0, "delta": {"reasoning_details": [detail("Step one.")]}}]}),
                sse({"id": "gen-2", "choices": [{"index": 0, "delta": {"reasoning_details": [detail(" Step two.")]}}]}),
                sse({"id": "gen-2", "choices": [{"index": 0, "delta": {"reasoning_details": [encrypted]}}]}),
                sse({"id": "gen-2", "choices": [{"index": 0, "delta": {"content": "Done."}, "finish_reason": "stop"}]}),
                sse("[DONE]"),
            ]
        )
    )
    events = await collect(upstream, chat())
    finish = events[-1]

    assert reasoning_of(events) == "Step one. Step two."
    assert finish.reasoning_details == [detail("Step one. Step two."), encrypted]

    history = [ChatMessage("user", "Hi"), ChatMessage("assistant", "Done.", reasoning_details=finish.reasoning_details)]
    await collect(upstream, chat(messages=[*history, ChatMessage("user", "And?")]))
    sent = upstream.chat_requests[-1].json["messages"]
    assert sent[1] == {"role": "assistant", "content": "Done.", "reasoning_details": finish.reasoning_details}


async def test_crlf_line_ends_and_events_split_anywhere_give_the_same_answer(upstream):
    chunks = openai_text_stream("Grüße aus 東京 😀 ok", reasoning="Hmm…", line_ending="\r\n", comments=True)
    upstream.enqueue(Stream(rechunk(chunks, 7)))

    events = await collect(upstream, chat())

    assert text_of(events) == "Grüße aus 東京 😀 ok"
    assert reasoning_of(events) == "Hmm…"
    assert isinstance(events[-1], Finish) and events[-1].reason == "stop"
    assert not any(isinstance(e, StreamError) for e in events)


async def test_older_usage_shape_with_one_choice_is_read(upstream):
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 40,
        "completion_tokens_details": {"reasoning_tokens": 25},
        "prompt_tokens_details": {"cached_tokens": 64},
    }
    upstream.enqueue(Stream(openai_text_stream("Hi", usage=usage, cost=0.5, usage_shape="one-choice")))

    events = await collect(upstream, chat())

    assert events[-2:] == [
        Usage(100, 40, reasoning_tokens=25, cached_tokens=64, cost=Decimal("0.5"), cost_source="provider"),
        Finish(reason="stop", response_id="gen-fake"),
    ]


@pytest.mark.parametrize("shape", ["top-level", "top-level-no-choices"])
async def test_mid_stream_error_is_reported_after_the_text_so_far(upstream, shape):
    error = {"code": 502, "message": "Provider returned error: upstream disconnected"}
    upstream.enqueue(Stream(openai_text_stream("Partial answer", error_mid_stream=error, error_shape=shape)))

    events = await collect(upstream, chat())

    assert events == [
        TextDelta("Partial"),
        TextDelta(" answer"),
        StreamError("Provider returned error: upstream disconnected", status=502, code="upstream", retryable=True),
    ]
    assert len(upstream.chat_requests) == 1


async def test_finish_reason_error_without_top_level_error_is_an_error(upstream):
    error = {"code": "server_error", "message": "The model stopped unexpectedly"}
    upstream.enqueue(Stream(openai_text_stream("Half", error_mid_stream=error, error_shape="finish-reason")))

    events = await collect(upstream, chat())

    assert events == [
        TextDelta("Half"),
        StreamError(message="The model stopped unexpectedly", status=None, code="upstream", retryable=True),
    ]


async def test_deepseek_reasoning_content_is_reasoning(upstream):
    upstream.enqueue(Stream(openai_text_stream("42", reasoning="Add it up", reasoning_style="deepseek", usage=False)))

    events = await collect(upstream, chat("deepseek"))

    assert events == [
        ReasoningDelta("Add"),
        ReasoningDelta(" it"),
        ReasoningDelta(" up"),
        TextDelta("42"),
        Finish(reason="stop", response_id="gen-fake"),
    ]


async def test_think_tags_split_across_chunks_become_reasoning(upstream):
    chunks = openai_text_stream("The answer.", reasoning="Weigh <b> options", reasoning_style="think-tags")
    upstream.enqueue(Stream(chunks))

    events = await collect(upstream, chat("openai"))

    assert reasoning_of(events) == "Weigh <b> options"
    assert text_of(events) == "The answer."
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert all(not isinstance(e, ReasoningDelta) for e in events[first_text:])


@pytest.mark.parametrize(
    ("content", "reasoning"),
    [("<think>a<b</think>\n\nAnswer </think> stays", "a<b"), ("Weigh it</think>\n\nAnswer </think> stays", "Weigh it")],
    ids=["both tags", "lone closing tag"],
)
def test_think_tags_are_found_whichever_characters_the_chunks_split_at(content, reasoning):
    for cut in range(1, len(content)):
        for second_cut in range(cut, len(content)):
            splitter = ThinkSplitter()
            pieces = [content[:cut], content[cut:second_cut], content[second_cut:]]
            events = [e for piece in pieces for e in splitter.feed(piece)] + splitter.flush()
            assert shown(events) == (reasoning, "Answer </think> stays"), pieces


def test_sse_events_are_found_whichever_bytes_the_chunks_split_at():
    raw = (
        ': OPENROUTER PROCESSING\r\n\r\ndata: {"t": "é😀"}\r\n\r\n'
        "event: ping\ndata: {}\n\ndata: [DONE]\r\n\r\n"
    ).encode()
    expected = [SSEEvent('{"t": "é😀"}'), SSEEvent("{}", event="ping"), SSEEvent("[DONE]")]
    for cut in range(1, len(raw)):
        decoder = SSEDecoder()
        assert decoder.feed(raw[:cut]) + decoder.feed(raw[cut:]) + decoder.close() == expected, cut


@pytest.mark.parametrize("provider", ["ollama", "openai", "openrouter"])
async def test_lone_closing_think_tag_turns_the_text_before_it_into_reasoning(upstream, provider):
    upstream.enqueue(Stream(openai_text_stream("Paris.", reasoning="The capital…", reasoning_style="think-close-only")))

    events = await collect(upstream, chat(provider))

    assert shown(events) == ("The capital…", "Paris.")
    # The text was not held back waiting for a tag that might never come: it
    # streamed as text, and was taken back when the tag came.
    assert events[0] == TextDelta("The")
    assert TextWasReasoning("The capital…") in events


@pytest.mark.parametrize("provider", ["ollama", "openai"])
@pytest.mark.parametrize(
    "answer",
    [
        "Wrap it as <think>notes</think> like so.",
        "Close the block with `</think>` and go on.",
        'The tag "</think>" ends it.',
    ],
)
async def test_think_tags_mentioned_inside_an_answer_are_left_alone(upstream, provider, answer):
    upstream.enqueue(Stream(openai_text_stream(answer)))

    events = await collect(upstream, chat(provider))

    assert shown(events) == ("", answer)
    assert not any(isinstance(e, TextWasReasoning) for e in events)


def test_a_lone_closing_tag_past_the_window_is_part_of_the_answer():
    splitter = ThinkSplitter(lone_close_window=40)
    events = [e for piece in ["x" * 30, " more text", " and </think> here"] for e in splitter.feed(piece)]

    assert shown(events + splitter.flush()) == ("", "x" * 30 + " more text and </think> here")


async def test_content_after_reasoning_in_its_own_field_is_the_answer_whatever_tags_it_holds(upstream):
    chunks = [
        sse({"choices": [{"index": 0, "delta": {"reasoning_content": "Hmm"}}]}),
        sse({"choices": [{"index": 0, "delta": {"content": "Say </think>"}}]}),
        sse({"choices": [{"index": 0, "delta": {"content": " twice."}, "finish_reason": "stop"}]}),
        sse("[DONE]"),
    ]
    upstream.enqueue(Stream(chunks))

    events = await collect(upstream, chat("deepseek"))

    assert shown(events) == ("Hmm", "Say </think> twice.")


async def test_tool_call_fragments_are_assembled(upstream):
    calls = [
        {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
        {"id": "call_2", "name": "get_time", "arguments": '{"tz": "CET"}'},
    ]
    upstream.enqueue(Stream(openai_text_stream("", tool_calls=calls, usage=False)))

    events = await collect(upstream, chat("openai"))

    assert events[:3] == [
        ToolCallDelta(index=0, id="call_1", name="get_weather"),
        ToolCallDelta(index=0, arguments='{"city":'),
        ToolCallDelta(index=0, arguments=' "Oslo"}'),
    ]
    assert events[-1] == Finish(reason="tool_calls", tool_calls=calls, response_id="gen-fake")


async def test_cost_is_fetched_from_the_generation_record_when_the_stream_has_none(upstream):
    upstream.generations["gen-77"] = 0.0123
    upstream.enqueue(Stream(openai_text_stream("Hi", response_id="gen-77")))

    events = await collect(upstream, chat())

    assert events[-2] == Usage(prompt_tokens=12, completion_tokens=1, cost=Decimal("0.0123"), cost_source="generation")
    lookup = upstream.requests[-1]
    assert (lookup.method, lookup.path, lookup.query) == ("GET", "/v1/generation", {"id": "gen-77"})
    assert lookup.headers["authorization"] == f"Bearer {KEY}"


async def test_a_failed_generation_look_up_leaves_the_cost_unknown(upstream):
    upstream.generation_status = 500
    upstream.enqueue(Stream(openai_text_stream("Hi")))

    events = await collect(upstream, chat())

    assert events[-2:] == [Usage(prompt_tokens=12, completion_tokens=1), Finish(reason="stop", response_id="gen-fake")]


async def test_providers_without_a_generation_record_are_not_asked(upstream):
    upstream.enqueue(Stream(openai_text_stream("Hi")))

    events = await collect(upstream, chat("openai"))

    assert events[-2] == Usage(prompt_tokens=12, completion_tokens=1)
    assert [r.path for r in upstream.requests] == ["/v1/chat/completions"]


async def test_http_error_carries_the_upstream_message_and_status(upstream):
    upstream.enqueue(Status(402, {"error": {"message": "Insufficient credits", "code": 402}}))

    events = await collect(upstream, chat())

    assert events == [StreamError(message="Insufficient credits", status=402, code="payment_required", retryable=False)]


async def test_the_key_never_appears_in_an_error_or_a_log_line(upstream, caplog):
    upstream.enqueue(Status(401, {"error": {"message": f"Incorrect API key provided: {KEY}"}}))

    with caplog.at_level(logging.DEBUG):
        events = await collect(upstream, chat())

    assert events == [
        StreamError(message="Incorrect API key provided: [key]", status=401, code="auth", retryable=False)
    ]
    assert KEY not in caplog.text


async def test_a_cut_off_stream_is_an_error_not_a_short_answer(upstream):
    upstream.enqueue(Stream(openai_text_stream("Cut here", done=False)[:3], abort=True))

    events = await collect(upstream, chat())

    assert events == [
        TextDelta("Cut"),
        TextDelta(" here"),
        StreamError(
            message="The upstream closed the stream before the answer was complete.", code="upstream", retryable=True
        ),
    ]


async def test_a_json_answer_to_a_stream_request_is_still_read(upstream):
    upstream.enqueue(JSONResponse(openai_completion("Whole answer", reasoning="Quick", cost=0.001)))

    events = await collect(upstream, chat())

    assert text_of(events) == "Whole answer"
    assert reasoning_of(events) == "Quick"
    assert events[-2].cost == Decimal("0.001")


async def test_complete_reads_a_json_answer(upstream):
    answer = openai_completion("Title: Cats", reasoning="Short", cost=0.0004, response_id="gen-9")
    upstream.enqueue(JSONResponse(answer))

    result = await complete(chat(), Endpoint(upstream.url, KEY))

    assert (result.text, result.reasoning) == ("Title: Cats", "Short")
    assert result.usage == Usage(12, 3, reasoning_tokens=1, cost=Decimal("0.0004"), cost_source="provider")
    assert result.finish == Finish(reason="stop", reasoning_details=[detail("Short")], response_id="gen-9")
    assert upstream.chat_requests[0].json["stream"] is False


async def test_complete_reads_think_tags_and_deepseek_reasoning(upstream):
    upstream.enqueue(JSONResponse(openai_completion("<think>Ponder</think>\n\nYes.", usage=False)))
    upstream.enqueue(JSONResponse(openai_completion("No.", reasoning="Doubt", reasoning_style="deepseek", usage=False)))
    upstream.enqueue(JSONResponse(openai_completion("Mull it over</think>\n\nMaybe.", usage=False)))

    first = await complete(chat("ollama"), Endpoint(upstream.url))
    second = await complete(chat("deepseek"), Endpoint(upstream.url, KEY))
    third = await complete(chat("openai"), Endpoint(upstream.url, KEY))

    assert (first.text, first.reasoning) == ("Yes.", "Ponder")
    assert (second.text, second.reasoning) == ("No.", "Doubt")
    assert (third.text, third.reasoning) == ("Maybe.", "Mull it over")


async def test_complete_raises_with_the_upstream_error(upstream):
    upstream.enqueue(Status(400, {"error": {"message": "model is required", "code": 400}}))

    with pytest.raises(CompletionError) as failure:
        await complete(chat(), Endpoint(upstream.url, KEY))

    assert failure.value.error == StreamError(message="model is required", status=400, code="bad_request")


# Request bodies ---------------------------------------------------------------


async def test_openrouter_request_carries_routing_fallbacks_and_reasoning_options(upstream):
    request = chat(
        system="Be brief.",
        temperature=0.3,
        reasoning_effort="high",
        exclude_reasoning=True,
        provider_routing={"order": ["anthropic", "google-vertex"], "allow_fallbacks": False, "sort": "price"},
        fallback_models=["openai/gpt-4o-mini"],
    )
    await collect(upstream, request)

    sent = upstream.chat_requests[0]
    assert sent.json == {
        "model": "some/model",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.3,
        "reasoning": {"effort": "high", "exclude": True},
        "usage": {"include": True},
        "provider": {"order": ["anthropic", "google-vertex"], "allow_fallbacks": False, "sort": "price"},
        "models": ["some/model", "openai/gpt-4o-mini"],
    }
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["x-title"] == "Switchboard"
    assert sent.headers["accept"] == "text/event-stream"


async def test_openrouter_budget_is_sent_as_reasoning_max_tokens(upstream):
    await collect(upstream, chat(reasoning_budget=3000, max_tokens=5000, top_p=0.9))

    sent = upstream.chat_requests[0].json
    assert sent["reasoning"] == {"max_tokens": 3000}
    assert (sent["max_tokens"], sent["top_p"]) == (5000, 0.9)
    assert "temperature" not in sent


async def test_openai_gets_reasoning_effort_and_max_completion_tokens(upstream):
    await collect(upstream, chat("openai", reasoning_effort="minimal", max_tokens=256))

    sent = upstream.chat_requests[0].json
    assert sent["reasoning_effort"] == "minimal"
    assert sent["max_completion_tokens"] == 256
    assert "max_tokens" not in sent and "reasoning" not in sent


async def test_deepseek_never_gets_reasoning_back(upstream):
    history = [
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Hello", reasoning="Greet them", reasoning_details=[detail("Greet them")]),
        ChatMessage("user", "Again"),
    ]
    await collect(upstream, chat("deepseek", messages=history, reasoning_effort="high"))

    sent = upstream.chat_requests[0].json
    assert sent["messages"][1] == {"role": "assistant", "content": "Hello"}
    assert "reasoning_effort" not in sent and "reasoning" not in sent


async def test_anthropic_thinking_blocks_are_not_sent_to_openrouter(upstream):
    blocks = [{"type": "thinking", "thinking": "Hmm", "signature": "sig"}]
    history = [ChatMessage("user", "Hi"), ChatMessage("assistant", "Hello", reasoning_details=blocks)]
    await collect(upstream, chat(messages=history))

    assert upstream.chat_requests[0].json["messages"][1] == {"role": "assistant", "content": "Hello"}
