"""OpenAI Chat Completions, as OpenAI, OpenRouter, DeepSeek, Gemini and local servers speak it.

One dialect with provider accents: OpenRouter streams `reasoning` plus
`reasoning_details` (to be sent back verbatim) and a cost in its usage;
DeepSeek and vLLM stream `reasoning_content`; open models served raw put
their reasoning in the content between <think> tags.
"""

import json
import logging
from typing import TYPE_CHECKING, Any

from providers.adapters import (
    Adapter,
    StreamParser,
    cut_short,
    decimal_or_none,
    error_for_status,
    question_content,
    sampling_options,
    usage_then_finish,
)
from providers.adapters.sse import SSEEvent
from providers.events import (
    Finish,
    ReasoningDelta,
    StreamError,
    StreamEvent,
    TextDelta,
    TextWasReasoning,
    ToolCallDelta,
    Usage,
)

if TYPE_CHECKING:
    from providers.completion import ChatMessage, CompletionRequest, FilePart

logger = logging.getLogger(__name__)

# How far into an answer a lone "</think>" still means that the text before it
# was reasoning: chat templates that open the block in the prompt (DeepSeek-R1,
# QwQ, Qwen3 served raw by Ollama, vLLM or llama.cpp) stream only its end.
# Reasoning runs long, so the window is wide; the text streams meanwhile.
LONE_CLOSE_WINDOW = 64_000  # characters

# Rough budgets to translate a token budget into an effort, for providers
# that only take an effort.
_BUDGET_EFFORTS = ((1024, "minimal"), (4096, "low"), (16384, "medium"), (32768, "high"))
_GOOGLE_EFFORTS = {"xhigh": "high"}


class OpenAIChat(Adapter):
    protocol = "openai-chat"

    def build_body(self, request: "CompletionRequest", stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model, "messages": _messages(request), "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        body.update(_sampling(request))
        body.update(_reasoning_options(request))
        if request.provider.slug == "openrouter":
            body.update(_openrouter_options(request))
        return body

    def stream_parser(self, request: "CompletionRequest") -> "ChatStream":
        return ChatStream(request)

    def parse_response(self, payload: Any, request: "CompletionRequest") -> list[StreamEvent]:
        if not isinstance(payload, dict):
            return [error_for_status(None, "The upstream sent an answer that is not a JSON object.")]
        parser = ChatStream(request)
        choices = payload.get("choices") or []
        choice = choices[0] if choices and isinstance(choices[0], dict) else {}
        as_chunk = {
            "id": payload.get("id"),
            "error": payload.get("error"),
            "usage": payload.get("usage"),
            "choices": [{"delta": _message_as_delta(choice.get("message") or {}), **_without(choice, "message")}],
        }
        events = parser.take_chunk(as_chunk)
        if any(isinstance(event, StreamError) for event in events):
            return events
        parser.done = True
        return events + parser.close()

    def error_message(self, payload: Any) -> str:
        return _error_text(payload.get("error") if isinstance(payload, dict) else None)


# Request ------------------------------------------------------------------


def _messages(request: "CompletionRequest") -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages.extend(_message(request, message) for message in request.messages)
    return messages


def _message(request: "CompletionRequest", message: "ChatMessage") -> dict[str, Any]:
    entry: dict[str, Any] = {"role": message.role, "content": question_content(message, _image_part)}
    # Only OpenRouter takes reasoning back (and wants it unmodified); DeepSeek
    # rejects reasoning_content in the history, OpenAI ignores it.
    if message.role == "assistant" and request.provider.reasoning == "openrouter":
        details = [d for d in message.reasoning_details if str(d.get("type", "")).startswith("reasoning.")]
        if details:
            entry["reasoning_details"] = details
    return entry


def _image_part(part: "FilePart") -> dict[str, Any]:
    # A data URL: what every OpenAI-compatible API reads (OpenRouter, Gemini, vLLM, Ollama).
    return {"type": "image_url", "image_url": {"url": f"data:{part.media_type};base64,{part.base64}"}}


def _sampling(request: "CompletionRequest") -> dict[str, Any]:
    options = sampling_options(request)
    if request.max_tokens is not None:
        # OpenAI's reasoning models refuse max_tokens; its successor works for all its models.
        name = "max_completion_tokens" if request.provider.slug == "openai" else "max_tokens"
        options[name] = request.max_tokens
    return options


def _reasoning_options(request: "CompletionRequest") -> dict[str, Any]:
    style = request.provider.reasoning
    if style == "openrouter":
        reasoning: dict[str, Any] = {}
        if request.reasoning_budget:
            reasoning["max_tokens"] = request.reasoning_budget
        elif request.reasoning_effort:
            reasoning["effort"] = request.reasoning_effort
        if request.exclude_reasoning:
            reasoning["exclude"] = True
        return {"reasoning": reasoning} if reasoning else {}
    if style == "openai":
        effort = request.reasoning_effort or _effort_for_budget(request.reasoning_budget)
        if request.provider.slug == "google":
            effort = _GOOGLE_EFFORTS.get(effort, effort)
        return {"reasoning_effort": effort} if effort else {}
    return {}  # DeepSeek and local servers: the model decides


def _effort_for_budget(budget: int | None) -> str:
    if not budget:
        return ""
    return next((effort for limit, effort in _BUDGET_EFFORTS if budget <= limit), "xhigh")


def _openrouter_options(request: "CompletionRequest") -> dict[str, Any]:
    options: dict[str, Any] = {"usage": {"include": True}}
    if request.provider_routing:
        options["provider"] = request.provider_routing
    if request.fallback_models:
        # The primary first: OpenRouter tries `models` in order.
        options["models"] = list(dict.fromkeys([request.model, *request.fallback_models]))
    return options


# Answer -------------------------------------------------------------------


class ChatStream(StreamParser):
    """Chat completion chunks to StreamEvents, keeping what Finish needs."""

    def __init__(self, request: "CompletionRequest") -> None:
        self.done = False
        self._think = ThinkSplitter()
        self._details: list[dict] = []  # reasoning_details merged by index
        self._tool_calls: dict[int, dict[str, str]] = {}
        self._usage: Usage | None = None
        self._finish_reason = ""
        self._response_id = ""

    def feed(self, sse: SSEEvent) -> list[StreamEvent]:
        if sse.data.strip() == "[DONE]":
            self.done = True
            return []
        try:
            chunk = json.loads(sse.data)
        except ValueError:
            logger.debug("skipping an SSE event that is not JSON")
            return []
        return self.take_chunk(chunk) if isinstance(chunk, dict) else []

    def take_chunk(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        self._response_id = self._response_id or str(chunk.get("id") or "")
        events: list[StreamEvent] = []
        choices = [c for c in chunk.get("choices") or [] if isinstance(c, dict)]
        # n=1 always: other choices, if a server sends them, are not ours.
        for choice in choices[:1]:
            events += self._take_delta(choice.get("delta") or {})
            if choice.get("finish_reason"):
                self._finish_reason = str(choice["finish_reason"])
        if isinstance(chunk.get("usage"), dict):
            self._usage = usage_from(chunk["usage"])
        error = _chunk_error(chunk, choices[:1])
        return events + [error] if error else events

    def close(self) -> list[StreamEvent]:
        events = self._think.flush()
        if not (self.done or self._finish_reason):
            return events + [cut_short()]
        return events + usage_then_finish(self._usage, self._finish())

    def _finish(self) -> Finish:
        return Finish(
            reason=self._finish_reason or "stop",
            reasoning_details=self._details,
            tool_calls=[self._tool_calls[index] for index in sorted(self._tool_calls)],
            response_id=self._response_id,
        )

    def _take_delta(self, delta: dict[str, Any]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        reasoning = delta.get("reasoning") or delta.get("reasoning_content")
        details = [d for d in delta.get("reasoning_details") or [] if isinstance(d, dict)]
        if reasoning or details:
            self._think.native_reasoning_seen()
            self._merge_details(details)
            text = reasoning if isinstance(reasoning, str) else _details_text(details)
            events.append(ReasoningDelta(text=text, details=tuple(details)))
        if isinstance(delta.get("content"), str) and delta["content"]:
            events += self._think.feed(delta["content"])
        for fragment in delta.get("tool_calls") or []:
            if isinstance(fragment, dict):
                events.append(self._take_tool_fragment(fragment))
        return events

    def _merge_details(self, details: list[dict]) -> None:
        """Pieces of one reasoning block share an index; their texts are concatenated."""
        for item in details:
            index = item.get("index")
            merged = next((d for d in self._details if d.get("index") == index), None)
            if merged is None and index is None and self._details and self._details[-1].get("type") == item.get("type"):
                merged = self._details[-1]
            if merged is None:
                self._details.append(dict(item))
                continue
            for key, value in item.items():
                if key in ("text", "summary", "data") and isinstance(value, str) and isinstance(merged.get(key), str):
                    merged[key] += value
                elif value not in (None, ""):
                    merged[key] = value  # signature, id, format: sent once
        self._details.sort(key=lambda d: d.get("index") if isinstance(d.get("index"), int) else 0)

    def _take_tool_fragment(self, fragment: dict[str, Any]) -> ToolCallDelta:
        index = fragment.get("index") if isinstance(fragment.get("index"), int) else len(self._tool_calls)
        function = fragment.get("function") or {}
        call = self._tool_calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
        call_id, name = str(fragment.get("id") or ""), str(function.get("name") or "")
        arguments = function.get("arguments") or ""
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)  # a few servers send an object
        call["id"] = call["id"] or call_id
        call["name"] = call["name"] or name
        call["arguments"] += arguments
        return ToolCallDelta(index=index, id=call_id, name=name, arguments=arguments)


def usage_from(data: dict[str, Any]) -> Usage:
    completion_details = data.get("completion_tokens_details") or {}
    prompt_details = data.get("prompt_tokens_details") or {}
    cost = decimal_or_none(data.get("cost"))
    return Usage(
        prompt_tokens=_int(data.get("prompt_tokens")),
        completion_tokens=_int(data.get("completion_tokens")),
        reasoning_tokens=_int(completion_details.get("reasoning_tokens")),
        # DeepSeek names its cache hits differently.
        cached_tokens=_int(prompt_details.get("cached_tokens") or data.get("prompt_cache_hit_tokens")),
        cost=cost,
        cost_source="provider" if cost is not None else "",
    )


def _chunk_error(chunk: dict[str, Any], choices: list[dict]) -> StreamError | None:
    """OpenRouter's mid-stream errors: a top-level `error`, or finish_reason "error"."""
    error = chunk.get("error")
    failed_choice = next((c for c in choices if c.get("finish_reason") == "error"), None)
    if not error and failed_choice is None:
        return None
    if not error and failed_choice is not None:
        error = failed_choice.get("error")
    message = _error_text(error) or "The model's provider reported an error in the middle of the answer."
    code = error.get("code") if isinstance(error, dict) else None
    status = int(code) if isinstance(code, int) or (isinstance(code, str) and code.isdigit()) else None
    return error_for_status(status, message)


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or "")
    return error if isinstance(error, str) else ""


def _details_text(details: list[dict]) -> str:
    return "".join(str(d.get("text") or d.get("summary") or "") for d in details)


def _message_as_delta(message: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed message in the shape of one all-in-one delta."""
    delta = dict(message)
    calls = message.get("tool_calls") or []
    delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(calls) if isinstance(call, dict)]
    return delta


def _without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# <think> tags -------------------------------------------------------------

OPEN_TAG, CLOSE_TAG = "<think>", "</think>"
QUOTES = ("`", "'", '"')  # a tag right after one of these is quoted, not a tag


class ThinkSplitter:
    """Moves a leading reasoning block out of the content into reasoning.

    Two shapes count, both only at the very start of the answer:
    - "<think>...</think>": known at once. Only what may be the start of a
      tag is held back, as tags may be split across chunks at any character.
    - reasoning closed by a lone "</think>", the chat template having opened
      the block in the prompt. That is known only when the tag comes, and
      holding the text back until then would hold back every answer's first
      words. So it streams as text, and a lone "</think>" within
      `lone_close_window` characters takes it back: TextWasReasoning.
      Text that mentions "<think>" first, or the tag in quotes or backticks,
      is an answer talking about tags.
    Once reasoning comes in its own field, the content is the answer.
    """

    def __init__(self, lone_close_window: int = LONE_CLOSE_WINDOW) -> None:
        # start -> thinking -> after -> text, or start -> provisional -> (after ->) text
        self._state = "start"
        self._held = ""
        # provisional: the text sent so far (it may yet be reasoning), its length, and its end
        self._streamed: list[str] = []
        self._sent = 0
        self._tail = ""
        self._lone_close_window = lone_close_window

    def native_reasoning_seen(self) -> None:
        self._lone_close_window = 0
        if self._state == "provisional":
            self._state, self._streamed = "text", []

    def feed(self, text: str) -> list[StreamEvent]:
        if self._state == "text":
            return [TextDelta(text)]
        self._held += text
        return self._advance()

    def flush(self) -> list[StreamEvent]:
        held, self._held = self._held, ""
        if not held or self._state == "after":
            return []
        return [ReasoningDelta(held)] if self._state == "thinking" else [TextDelta(held)]

    def _advance(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if self._state == "start":
            self._decide_start()
        if self._state == "thinking":
            events += self._think()
        if self._state == "provisional":
            events += self._watch()
        if self._state == "after":
            self._held = self._held.lstrip()
            if self._held:
                self._state = "text"
        if self._state == "text" and self._held:
            events.append(TextDelta(self._held))
            self._held = ""
        return events

    def _decide_start(self) -> None:
        stripped = self._held.lstrip()
        if stripped.startswith(OPEN_TAG):
            self._held, self._state = stripped[len(OPEN_TAG) :], "thinking"
        elif OPEN_TAG.startswith(stripped):
            pass  # empty so far, or the beginning of "<think>"
        else:
            self._state = "provisional" if self._lone_close_window else "text"

    def _think(self) -> list[StreamEvent]:
        if CLOSE_TAG in self._held:
            reasoning, _tag, self._held = self._held.partition(CLOSE_TAG)
            self._state = "after"
        else:
            keep = _partial_tag_length(self._held, CLOSE_TAG)
            reasoning, self._held = self._held[: len(self._held) - keep], self._held[len(self._held) - keep :]
        return [ReasoningDelta(reasoning)] if reasoning else []

    def _watch(self) -> list[StreamEvent]:
        """Provisional text: sent on as text, unless a lone "</think>" shows that it was reasoning."""
        # Earlier text held no tag: look only where the new text could complete one.
        text = self._tail + self._held
        close, opened = text.find(CLOSE_TAG), text.find(OPEN_TAG)
        at = self._sent - len(self._tail) + close  # where the tag starts in the whole answer
        if close < 0 or at > self._lone_close_window or 0 <= opened < close or text[close - 1 : close] in QUOTES:
            new, self._held = self._held, ""
            if close >= 0 or opened >= 0 or self._sent + len(new) > self._lone_close_window:
                self._state, self._streamed = "text", []  # an answer: no more watching
            else:
                self._streamed.append(new)
                self._sent += len(new)
                self._tail = text[-len(CLOSE_TAG) :]
            return [TextDelta(new)] if new else []
        whole = "".join(self._streamed) + self._held
        reasoning, self._held = whole[:at], whole[at + len(CLOSE_TAG) :]
        self._state, self._streamed = "after", []
        if self._sent:
            return [TextWasReasoning(reasoning)]
        return [ReasoningDelta(reasoning)] if reasoning else []


def _partial_tag_length(text: str, tag: str) -> int:
    """How many trailing characters of `text` could be the start of `tag`."""
    for length in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:length]):
            return length
    return 0
