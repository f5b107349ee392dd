"""One chat completion against any provider, as a normalised event stream.

The chat and the title generator call `stream_completion` / `complete`; the
adapter of the provider's protocol builds the body and reads the answer, the
transport does the HTTP. Whatever goes wrong ends the stream with one
StreamError: nothing raises out of `stream_completion`, and no message or
log line ever contains the key.

A consumer that stops early should close the generator (`async with
contextlib.aclosing(...)`, or cancel its task): that closes the upstream
connection, which is how the upstream learns the answer is not wanted.
"""

import asyncio
import base64
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, aclosing
from dataclasses import dataclass, field

import httpx

from providers.adapters import (
    Adapter,
    SSEDecoder,
    StreamParser,
    adapter_for,
    cut_short,
    decimal_or_none,
    error_for_status,
)
from providers.catalogue import acost_from_prices
from providers.credentials import Endpoint
from providers.events import Finish, ReasoningDelta, StreamError, StreamEvent, TextDelta, TextWasReasoning, Usage
from providers.registry import Provider
from providers.transport import UpstreamBlocked, UpstreamUnavailable, http_client, open_upstream

logger = logging.getLogger(__name__)

ERROR_BODY_LIMIT = 64 * 1024  # enough for any error message, not a whole page
MAX_ERROR_CHARS = 500  # of an upstream's error message, shown and logged
GENERATION_TRIES = 3  # OpenRouter's generation record appears a moment after the stream ends
GENERATION_PAUSE = 0.3
GENERATION_TIMEOUT = 5.0


def is_image(media_type: str) -> bool:
    """Whether a file of this type goes to the model as a picture (else as text it reads)."""
    return media_type.startswith("image/")


@dataclass
class FilePart:
    """A file sent with a question: an image (PNG, JPEG, GIF, WebP), or a document the model reads as text."""

    name: str
    media_type: str
    data: bytes = b""  # an image's bytes; a text file's, or a PDF's text, in UTF-8
    key: str = ""  # the chat's name for it, while its bytes are still to be read (chatapp.attachments.aread)

    @property
    def is_image(self) -> bool:
        return is_image(self.media_type)

    @property
    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    @property
    def text(self) -> str:
        return self.data.decode("utf-8-sig", errors="replace")


@dataclass
class ChatMessage:
    role: str  # "user" | "assistant" | "system"
    content: str
    reasoning: str = ""
    reasoning_details: list[dict] = field(default_factory=list)  # what Finish.reasoning_details gave for this answer
    files: list[FilePart] = field(default_factory=list)


@dataclass
class CompletionRequest:
    provider: Provider
    model: str
    messages: list[ChatMessage]
    system: str = ""
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    reasoning_effort: str = ""  # "", minimal, low, medium, high, xhigh
    reasoning_budget: int | None = None
    exclude_reasoning: bool = False
    # OpenRouter "provider": {"order": [...], "allow_fallbacks": bool, "sort": "..."}
    provider_routing: dict | None = None
    fallback_models: list[str] = field(default_factory=list)  # OpenRouter "models"


@dataclass
class CompletionResult:
    text: str
    reasoning: str
    usage: Usage | None
    finish: Finish


class CompletionError(Exception):
    """`complete()` failed; `error` is the StreamError a stream would have ended with."""

    def __init__(self, error: StreamError) -> None:
        super().__init__(error.message)
        self.error = error


async def stream_completion(request: CompletionRequest, endpoint: Endpoint) -> AsyncIterator[StreamEvent]:
    """Deltas as they arrive, then Usage (when known) and Finish; or a StreamError, last."""
    try:
        # aclosing: leaving early (an error, or our consumer leaving) closes the upstream at once.
        async with aclosing(_stream(adapter_for(request.provider), request, endpoint)) as events:
            async for event in events:
                if isinstance(event, StreamError):
                    yield _reported(event, request, endpoint)
                    return
                yield event
    except Exception:
        logger.exception("completion from %s failed unexpectedly", request.provider.slug)
        yield StreamError(message="The answer could not be read.", code="internal")


async def complete(request: CompletionRequest, endpoint: Endpoint) -> CompletionResult:
    """The whole answer at once (titles, tools); raises CompletionError."""
    adapter = adapter_for(request.provider)
    events = await _answer_whole(adapter, request, endpoint)
    events = await _with_cost(events, request, endpoint)
    error = next((e for e in events if isinstance(e, StreamError)), None)
    if error is not None:
        raise CompletionError(_reported(error, request, endpoint))
    finish = next(e for e in events if isinstance(e, Finish))
    text, reasoning = _texts(events)
    return CompletionResult(
        text=text,
        reasoning=reasoning,
        usage=next((e for e in events if isinstance(e, Usage)), None),
        finish=finish,
    )


def _texts(events: list[StreamEvent]) -> tuple[str, str]:
    """The answer's text and reasoning."""
    text: list[str] = []
    reasoning: list[str] = []
    for event in events:
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            reasoning.append(event.text)
        elif isinstance(event, TextWasReasoning):
            text.clear()
            reasoning.append(event.text)
    return "".join(text), "".join(reasoning)


# The exchange ---------------------------------------------------------------


async def _stream(adapter: Adapter, request: CompletionRequest, endpoint: Endpoint) -> AsyncIterator[StreamEvent]:
    parser = adapter.stream_parser(request)
    ending: list[StreamEvent] = []
    try:
        async with _post(adapter, request, endpoint, stream=True) as response:
            if not response.is_success:
                yield await _http_error(response, adapter)
                return
            if _is_json(response):  # a server that ignored "stream": true
                ending = _parse_whole(adapter, await response.aread(), request)
            else:
                async with aclosing(_parse_sse(response, parser)) as events:
                    async for event in events:
                        yield event
                        if isinstance(event, StreamError):
                            return
                ending = parser.close()
    except UpstreamUnavailable as exc:
        yield _unavailable_error(exc)
        return
    except httpx.TimeoutException:
        yield StreamError("The upstream stopped sending in the middle of the answer.", code="timeout", retryable=True)
        return
    except httpx.HTTPError:
        yield cut_short()
        return
    # After the connection went back to the pool: the cost look-up may take a moment.
    for event in await _with_cost(ending, request, endpoint):
        yield event


async def _answer_whole(adapter: Adapter, request: CompletionRequest, endpoint: Endpoint) -> list[StreamEvent]:
    try:
        async with _post(adapter, request, endpoint, stream=False) as response:
            if not response.is_success:
                return [await _http_error(response, adapter)]
            body = await response.aread()
    except UpstreamUnavailable as exc:
        return [_unavailable_error(exc)]
    except httpx.TimeoutException:
        return [error_for_status(None, "The upstream did not answer in time.", code="timeout")]
    except httpx.HTTPError:
        return [cut_short()]
    return _parse_whole(adapter, body, request)


def _parse_whole(adapter: Adapter, body: bytes, request: CompletionRequest) -> list[StreamEvent]:
    try:
        payload = json.loads(body)
    except ValueError:
        return [error_for_status(None, "The upstream sent an answer that is not JSON.")]
    return adapter.parse_response(payload, request)


def _post(
    adapter: Adapter, request: CompletionRequest, endpoint: Endpoint, stream: bool
) -> AbstractAsyncContextManager[httpx.Response]:
    provider = request.provider
    headers = {
        **provider.request_headers(endpoint.api_key),
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
    }
    body = json.dumps(adapter.build_body(request, stream=stream)).encode()
    url = provider.url_for(endpoint.base_url, provider.chat_path)
    return open_upstream("POST", url, headers, body, endpoint.user_supplied)


async def _parse_sse(response: httpx.Response, parser: StreamParser) -> AsyncIterator[StreamEvent]:
    decoder = SSEDecoder()
    # Read to the end even after [DONE]: a fully read response returns its
    # connection to the pool for the next request.
    async for chunk in response.aiter_bytes():
        for sse in decoder.feed(chunk):
            for event in parser.feed(sse):
                yield event
    for sse in decoder.close():
        for event in parser.feed(sse):
            yield event


def _is_json(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


# Errors ---------------------------------------------------------------------


async def _http_error(response: httpx.Response, adapter: Adapter) -> StreamError:
    status = response.status_code
    if 300 <= status < 400:
        return error_for_status(
            status, f"The upstream answered with a redirect (HTTP {status}); redirects are not followed.",
            code="redirect",
        )
    body = await _read_limited(response)
    return error_for_status(status, _error_message(body, response, adapter))


async def _read_limited(response: httpx.Response) -> bytes:
    body = b""
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= ERROR_BODY_LIMIT:
            break
    return body[:ERROR_BODY_LIMIT]


def _error_message(body: bytes, response: httpx.Response, adapter: Adapter) -> str:
    try:
        message = adapter.error_message(json.loads(body))
    except ValueError:
        message = ""
    content_type = response.headers.get("content-type", "")
    if not message and content_type.startswith("text/plain"):
        message = body.decode("utf-8", errors="replace").strip()  # cut once the key is out (_reported)
    return message  # an HTML error page says nothing a user could use


def _unavailable_error(exc: UpstreamUnavailable) -> StreamError:
    if isinstance(exc, UpstreamBlocked):
        return StreamError(message=exc.user_message, code=exc.code, retryable=False)
    if exc.code == "timeout":
        return StreamError(message="The upstream did not answer in time.", code="timeout", retryable=True)
    return StreamError(message="The upstream could not be reached.", code="unreachable", retryable=True)


def _reported(error: StreamError, request: CompletionRequest, endpoint: Endpoint) -> StreamError:
    """The error with the key scrubbed from its message, logged once."""
    message = error.message
    if endpoint.api_key and endpoint.api_key in message:
        message = message.replace(endpoint.api_key, "[key]")
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 1] + "…"
    logger.warning(
        "completion from %s (%s) failed: status=%s code=%s %s",
        request.provider.slug, request.model, error.status, error.code, message,
    )
    return dataclasses.replace(error, message=message)


# Cost -----------------------------------------------------------------------


async def _with_cost(events: list[StreamEvent], request: CompletionRequest, endpoint: Endpoint) -> list[StreamEvent]:
    """The ending events with the best cost we can find put on the Usage."""
    finish = next((e for e in events if isinstance(e, Finish)), None)
    if finish is None:
        return events  # an error: nothing to account
    usage = next((e for e in events if isinstance(e, Usage)), None)
    if usage is None or usage.cost is None:
        usage = await usage_from_generation(request.provider, endpoint, finish.response_id, usage) or usage
    if usage is not None and usage.cost is None:
        cost = await acost_from_prices(request.provider.slug, request.model, usage)
        if cost is not None:
            usage = dataclasses.replace(usage, cost=cost, cost_source="catalogue")
    deltas = [e for e in events if not isinstance(e, (Usage, Finish))]
    return deltas + ([usage] if usage is not None else []) + [finish]


async def usage_from_generation(
    provider: Provider, endpoint: Endpoint, response_id: str, usage: Usage | None
) -> Usage | None:
    """OpenRouter's record of a generation: its cost, and tokens if the stream had none.

    A failure here is not a failure of the answer: it only leaves the cost
    unknown. Public: the proxy API looks costs up the same way.
    """
    if not provider.generation_path or not response_id:
        return None
    record = await _generation_record(provider, endpoint, response_id)
    cost = decimal_or_none(record.get("total_cost"))
    if cost is None:
        return None
    if usage is not None:
        return dataclasses.replace(usage, cost=cost, cost_source="generation")
    return Usage(
        prompt_tokens=_count(record, "native_tokens_prompt", "tokens_prompt"),
        completion_tokens=_count(record, "native_tokens_completion", "tokens_completion"),
        reasoning_tokens=_count(record, "native_tokens_reasoning"),
        cached_tokens=_count(record, "native_tokens_cached"),
        cost=cost,
        cost_source="generation",
    )


async def _generation_record(provider: Provider, endpoint: Endpoint, response_id: str) -> dict:
    url = provider.url_for(endpoint.base_url, provider.generation_path)
    headers = provider.request_headers(endpoint.api_key)
    client = http_client(endpoint.user_supplied)
    for attempt in range(1, GENERATION_TRIES + 1):
        try:
            response = await client.get(url, params={"id": response_id}, headers=headers, timeout=GENERATION_TIMEOUT)
        except httpx.HTTPError as exc:
            logger.info("generation look-up at %s failed: %s", provider.slug, type(exc).__name__)
            return {}
        if response.status_code == 404 and attempt < GENERATION_TRIES:
            await asyncio.sleep(GENERATION_PAUSE)
            continue
        if not response.is_success:
            logger.info("generation look-up at %s answered %d", provider.slug, response.status_code)
            return {}
        try:
            data = response.json().get("data")
        except (ValueError, AttributeError):
            return {}
        return data if isinstance(data, dict) else {}
    return {}


def _count(record: dict, *names: str) -> int:
    for name in names:
        value = record.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0
