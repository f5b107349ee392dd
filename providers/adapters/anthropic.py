"""Anthropic's native Messages API.

Thinking blocks come back signed; a later turn must send them back as they
were (thinking text plus signature, or redacted data), before the text of
the same assistant message. Finish.reasoning_details carries them in exactly
the shape the API wants back.
"""

import json
import logging
from typing import TYPE_CHECKING, Any

from providers.adapters import (
    Adapter,
    StreamParser,
    cut_short,
    error_for_status,
    question_content,
    sampling_options,
    usage_then_finish,
)
from providers.adapters.sse import SSEEvent
from providers.events import Finish, ReasoningDelta, StreamError, StreamEvent, TextDelta, ToolCallDelta, Usage

if TYPE_CHECKING:
    from providers.completion import ChatMessage, CompletionRequest, FilePart

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 8192  # the API insists on a limit; this one fits every current model
MIN_THINKING_BUDGET = 1024  # the API's floor
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
# Room for the answer when max_tokens had to be raised above the thinking budget.
ANSWER_TOKENS = 4096

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Error types in an error body or an `event: error`, as HTTP statuses.
ERROR_STATUSES = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
REASONING_BLOCKS = ("thinking", "redacted_thinking")
# A whole block replayed as a stream starts out as these, then gets its deltas.
_EMPTY_BLOCK_FIELDS = {"thinking": {"thinking": "", "signature": ""}, "text": {"text": ""}, "tool_use": {"input": {}}}


class AnthropicMessages(Adapter):
    protocol = "anthropic-messages"

    def build_body(self, request: "CompletionRequest", stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model, "messages": _messages(request)}
        system = _system(request)
        if system:
            body["system"] = system
        max_tokens = request.max_tokens or DEFAULT_MAX_TOKENS
        budget = _thinking_budget(request)
        if budget:
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
            if max_tokens <= budget:
                max_tokens = budget + ANSWER_TOKENS
        else:
            # With thinking on, the API refuses any temperature but 1 and most top_p.
            body.update(sampling_options(request))
        body["max_tokens"] = max_tokens
        if stream:
            body["stream"] = True
        return body

    def stream_parser(self, request: "CompletionRequest") -> "MessagesStream":
        return MessagesStream()

    def parse_response(self, payload: Any, request: "CompletionRequest") -> list[StreamEvent]:
        if not isinstance(payload, dict):
            return [error_for_status(None, "The upstream sent an answer that is not a JSON object.")]
        if payload.get("type") == "error":
            return [stream_error(payload.get("error"))]
        parser = MessagesStream()
        parser.take("message_start", {"message": payload})
        events: list[StreamEvent] = []
        for index, block in enumerate(payload.get("content") or []):
            if isinstance(block, dict):
                events += parser.take_whole_block(index, block)
        parser.take("message_delta", {"delta": {"stop_reason": payload.get("stop_reason")}})
        parser.done = True
        return events + parser.close()

    def error_message(self, payload: Any) -> str:
        error = payload.get("error") if isinstance(payload, dict) else None
        return str(error.get("message") or "") if isinstance(error, dict) else ""


# Request ------------------------------------------------------------------


def _system(request: "CompletionRequest") -> str:
    # Anthropic has no system role in `messages`: every system text goes on top.
    parts = [request.system] + [m.content for m in request.messages if m.role == "system"]
    return "\n\n".join(part for part in parts if part)


def _messages(request: "CompletionRequest") -> list[dict[str, Any]]:
    messages = []
    for message in request.messages:
        if message.role == "system":
            continue
        if message.role == "assistant":
            content = _assistant_content(message)
        else:  # images first, as Anthropic advises
            content = question_content(message, _image_block, images_first=True)
        if content:  # the API refuses empty text, e.g. an answer that failed at once
            messages.append({"role": message.role, "content": content})
    return messages


def _image_block(part: "FilePart") -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": part.media_type, "data": part.base64}}


def _assistant_content(message: "ChatMessage") -> str | list[dict[str, Any]]:
    """Signed thinking blocks first, then the text, as the API wants them back."""
    blocks = [dict(block) for block in message.reasoning_details if _can_send_back(block)]
    if not blocks:
        return message.content
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    return blocks


def _can_send_back(block: dict[str, Any]) -> bool:
    if block.get("type") == "thinking":
        return bool(block.get("signature"))  # unsigned thinking is refused
    return block.get("type") == "redacted_thinking" and bool(block.get("data"))


def _thinking_budget(request: "CompletionRequest") -> int:
    budget = request.reasoning_budget or THINKING_BUDGETS.get(request.reasoning_effort, 0)
    return max(budget, MIN_THINKING_BUDGET) if budget else 0


# Answer -------------------------------------------------------------------


class MessagesStream(StreamParser):
    def __init__(self) -> None:
        self.done = False
        self._blocks: dict[int, dict[str, Any]] = {}  # content blocks by index, as assembled
        self._tool_numbers: dict[int, int] = {}  # content block index -> tool call index
        self._response_id = ""
        self._stop_reason = ""
        self._usage: dict[str, int] = {}

    def feed(self, sse: SSEEvent) -> list[StreamEvent]:
        try:
            payload = json.loads(sse.data)
        except ValueError:
            logger.debug("skipping an SSE event that is not JSON")
            return []
        if not isinstance(payload, dict):
            return []
        return self.take(sse.event or str(payload.get("type") or ""), payload)

    def take(self, kind: str, payload: dict[str, Any]) -> list[StreamEvent]:
        handler = {
            "message_start": self._on_message_start,
            "content_block_start": self._on_block_start,
            "content_block_delta": self._on_block_delta,
            "message_delta": self._on_message_delta,
            "message_stop": self._on_message_stop,
            "error": self._on_error,
        }.get(kind)
        # ping, content_block_stop and event types yet to come carry nothing for us.
        return handler(payload) if handler else []

    def take_whole_block(self, index: int, block: dict[str, Any]) -> list[StreamEvent]:
        """A block of a non-streamed answer, as its start and one delta."""
        kind = block.get("type")
        emptied = {**block, **_EMPTY_BLOCK_FIELDS.get(str(kind), {})}
        events = self._on_block_start({"index": index, "content_block": emptied})
        deltas: list[dict[str, Any]] = []
        if kind == "thinking":
            deltas = [
                {"type": "thinking_delta", "thinking": block.get("thinking") or ""},
                {"type": "signature_delta", "signature": block.get("signature") or ""},
            ]
        elif kind == "text":
            deltas = [{"type": "text_delta", "text": block.get("text") or ""}]
        elif kind == "tool_use":
            deltas = [{"type": "input_json_delta", "partial_json": json.dumps(block.get("input") or {})}]
        for delta in deltas:
            events += self._on_block_delta({"index": index, "delta": delta})
        return events

    def close(self) -> list[StreamEvent]:
        if not (self.done or self._stop_reason):
            return [cut_short()]
        return usage_then_finish(self._usage_event(), self._finish())

    def _on_message_start(self, payload: dict[str, Any]) -> list[StreamEvent]:
        message = payload.get("message") or {}
        self._response_id = str(message.get("id") or "")
        self._take_usage(message.get("usage"))
        return []

    def _on_block_start(self, payload: dict[str, Any]) -> list[StreamEvent]:
        index, block = payload.get("index", len(self._blocks)), dict(payload.get("content_block") or {})
        self._blocks[index] = block
        if block.get("type") == "thinking":
            block.setdefault("signature", "")
            return [ReasoningDelta(block["thinking"])] if block.get("thinking") else []
        if block.get("type") == "text":
            return [TextDelta(block["text"])] if block.get("text") else []
        if block.get("type") == "tool_use":
            number = self._tool_numbers[index] = len(self._tool_numbers)
            block["arguments"] = ""
            return [ToolCallDelta(index=number, id=str(block.get("id") or ""), name=str(block.get("name") or ""))]
        return []  # redacted_thinking is whole at its start; nothing to show

    def _on_block_delta(self, payload: dict[str, Any]) -> list[StreamEvent]:
        index, delta = payload.get("index"), payload.get("delta") or {}
        block = self._blocks.setdefault(index, {"type": "text", "text": ""})
        kind = delta.get("type")
        if kind == "thinking_delta":
            piece = str(delta.get("thinking") or "")
            block["thinking"] = str(block.get("thinking") or "") + piece
            return [ReasoningDelta(piece)] if piece else []
        if kind == "signature_delta":
            signature = str(delta.get("signature") or "")
            block["signature"] = str(block.get("signature") or "") + signature
            return [ReasoningDelta("", signature=signature)] if signature else []
        if kind == "text_delta":
            piece = str(delta.get("text") or "")
            block["text"] = str(block.get("text") or "") + piece
            return [TextDelta(piece)] if piece else []
        if kind == "input_json_delta" and index in self._tool_numbers:
            piece = str(delta.get("partial_json") or "")
            block["arguments"] += piece
            return [ToolCallDelta(index=self._tool_numbers[index], arguments=piece)] if piece else []
        return []

    def _on_message_delta(self, payload: dict[str, Any]) -> list[StreamEvent]:
        stop_reason = (payload.get("delta") or {}).get("stop_reason")
        if stop_reason:
            self._stop_reason = str(stop_reason)
        self._take_usage(payload.get("usage"))
        return []

    def _on_message_stop(self, payload: dict[str, Any]) -> list[StreamEvent]:
        self.done = True
        return []

    def _on_error(self, payload: dict[str, Any]) -> list[StreamEvent]:
        return [stream_error(payload.get("error"))]

    def _take_usage(self, usage: Any) -> None:
        # message_delta counts are cumulative: later values replace earlier ones.
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)})

    def _usage_event(self) -> Usage | None:
        if not self._usage:
            return None
        cache_read = self._usage.get("cache_read_input_tokens", 0)
        # input_tokens leaves out cached and cache-written tokens; the prompt is all three.
        prompt = self._usage.get("input_tokens", 0) + cache_read + self._usage.get("cache_creation_input_tokens", 0)
        completion = self._usage.get("output_tokens", 0)
        return Usage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cache_read)

    def _finish(self) -> Finish:
        ordered = [self._blocks[index] for index in sorted(self._blocks, key=lambda i: i if isinstance(i, int) else 0)]
        return Finish(
            reason=FINISH_REASONS.get(self._stop_reason, self._stop_reason or "stop"),
            reasoning_details=[_reasoning_block(b) for b in ordered if b.get("type") in REASONING_BLOCKS],
            tool_calls=[
                {"id": str(b.get("id") or ""), "name": str(b.get("name") or ""), "arguments": b["arguments"]}
                for b in ordered
                if b.get("type") == "tool_use"
            ],
            response_id=self._response_id,
        )


def _reasoning_block(block: dict[str, Any]) -> dict[str, Any]:
    if block.get("type") == "thinking":
        return {"type": "thinking", "thinking": block.get("thinking") or "", "signature": block.get("signature") or ""}
    return {"type": "redacted_thinking", "data": block.get("data") or ""}


def stream_error(error: Any) -> StreamError:
    """An Anthropic error object ({"type": "overloaded_error", "message": ...}) as a StreamError."""
    error = error if isinstance(error, dict) else {}
    status = ERROR_STATUSES.get(str(error.get("type") or ""))
    return error_for_status(status, str(error.get("message") or ""))
