"""The normalised event stream every adapter produces (SPEC section 4).

The chat and the proxy API consume only these, whatever the upstream spoke.
"""

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str
    # OpenRouter `reasoning_details` items as they arrived (kept verbatim for
    # the next turn), or an Anthropic thinking signature.
    details: tuple[dict, ...] = ()
    signature: str = ""


@dataclass(frozen=True)
class TextWasReasoning:
    """The answer's text so far was reasoning: a lone "</think>" came.

    `text` is all of that reasoning (the text sent, and what came before the
    tag); the answer starts again, empty, after it.
    """

    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""  # a fragment of the JSON arguments


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cost: Decimal | None = None  # USD
    cost_source: str = ""  # "provider", "generation" (OpenRouter look-up) or "catalogue"


@dataclass(frozen=True)
class Finish:
    reason: str  # "stop", "length", "tool_calls", "content_filter", ...
    # What to send back with this answer in later turns: OpenRouter
    # reasoning_details merged by index, or Anthropic thinking blocks with
    # their signatures. Empty for providers that take nothing back.
    reasoning_details: list[dict] = field(default_factory=list)
    tool_calls: list[dict] = field(default_factory=list)  # assembled from fragments
    response_id: str = ""


@dataclass(frozen=True)
class StreamError:
    message: str
    status: int | None = None  # the upstream's HTTP status, when there was one
    code: str = ""  # "rate_limited", "auth", "timeout", "unreachable", "upstream", ...
    retryable: bool = False


StreamEvent = TextDelta | ReasoningDelta | TextWasReasoning | ToolCallDelta | Usage | Finish | StreamError
