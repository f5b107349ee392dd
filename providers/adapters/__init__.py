"""Adapters: one per wire protocol, each turning an upstream into StreamEvents.

An adapter builds the request body for a CompletionRequest and parses the
answer, streamed (a StreamParser fed SSE events) or whole (parse_response).
Both end the same way: deltas, then Usage (when reported) and Finish, or a
StreamError. providers.completion does the HTTP around them.

The proxy API can reuse a parser to read usage on the side of a pass-through
stream: feed an SSEDecoder the raw bytes, feed the parser its events, and
look for the Usage in `close()`.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from html import escape
from typing import TYPE_CHECKING, Any

from providers.adapters.sse import SSEDecoder, SSEEvent
from providers.events import Finish, StreamError, StreamEvent, Usage

if TYPE_CHECKING:
    from providers.completion import ChatMessage, CompletionRequest, FilePart
    from providers.registry import Provider

__all__ = [
    "Adapter",
    "SSEDecoder",
    "SSEEvent",
    "StreamParser",
    "adapter_for",
    "cut_short",
    "decimal_or_none",
    "error_for_status",
    "question_content",
    "usage_then_finish",
]


class StreamParser(ABC):
    """Stateful: one per streamed answer."""

    # The upstream said the answer is complete ([DONE], message_stop); the
    # caller may stop reading.
    done: bool = False

    @abstractmethod
    def feed(self, sse: SSEEvent) -> list[StreamEvent]:
        """Events for one SSE event; a StreamError among them ends the answer."""

    @abstractmethod
    def close(self) -> list[StreamEvent]:
        """At the end of the body: held-back text, then Usage and Finish, or a StreamError."""


class Adapter(ABC):
    protocol: str

    @abstractmethod
    def build_body(self, request: "CompletionRequest", stream: bool) -> dict[str, Any]:
        """The JSON request body."""

    @abstractmethod
    def stream_parser(self, request: "CompletionRequest") -> StreamParser: ...

    @abstractmethod
    def parse_response(self, payload: Any, request: "CompletionRequest") -> list[StreamEvent]:
        """A whole JSON answer as the events a stream of it would have given."""

    @abstractmethod
    def error_message(self, payload: Any) -> str:
        """The human message in an error body, or ""."""


def question_content(
    message: "ChatMessage", image_part: Callable[["FilePart"], dict[str, Any]], images_first: bool = False
) -> str | list[dict[str, Any]]:
    """A question's content: its text, after its text files, each whole in a `<file name="...">` block; and
    its images as parts (`image_part` shapes one for the API) after the text, or before it.

    Every API takes text, so a question without images stays a string.
    """
    files = [f'<file name="{escape(part.name)}">\n{part.text}\n</file>' for part in message.files if not part.is_image]
    text = "\n\n".join([*files, message.content] if message.content else files)
    images = [image_part(part) for part in message.files if part.is_image]
    if not images:
        return text
    if not text:
        return images
    return [*images, {"type": "text", "text": text}] if images_first else [{"type": "text", "text": text}, *images]


def adapter_for(provider: "Provider") -> Adapter:
    from providers.adapters.anthropic import AnthropicMessages
    from providers.adapters.openai_chat import OpenAIChat

    adapters: dict[str, type[Adapter]] = {"openai-chat": OpenAIChat, "anthropic-messages": AnthropicMessages}
    return adapters[provider.protocol]()


_CODES = {
    400: "bad_request",
    401: "auth",
    402: "payment_required",
    403: "auth",
    404: "not_found",
    408: "timeout",
    413: "too_large",
    422: "bad_request",
    429: "rate_limited",
    504: "timeout",
    529: "overloaded",
}
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 529})


def error_for_status(status: int | None, message: str, code: str = "") -> StreamError:
    """A StreamError classified by HTTP status; `retryable` says whether trying again may help."""
    if not code:
        code = _CODES.get(status or 0, "upstream")
    retryable = status in RETRYABLE_STATUSES or (status is None and code in ("upstream", "timeout", "unreachable"))
    message = message or f"The upstream answered HTTP {status}."
    return StreamError(message=message, status=status, code=code, retryable=retryable)


def cut_short() -> StreamError:
    """The body ended before the upstream said the answer was complete."""
    return StreamError(
        message="The upstream closed the stream before the answer was complete.",
        code="upstream",
        retryable=True,
    )


def usage_then_finish(usage: Usage | None, finish: Finish) -> list[StreamEvent]:
    return [usage, finish] if usage is not None else [finish]


def decimal_or_none(value: Any) -> Decimal | None:
    """A price as reported in JSON (number or string), exactly."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def sampling_options(request: "CompletionRequest") -> dict[str, Any]:
    """Temperature and top_p, where the request sets them: both APIs name them alike."""
    options: dict[str, Any] = {}
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.top_p is not None:
        options["top_p"] = request.top_p
    return options
