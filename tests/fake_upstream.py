"""A fake LLM upstream: a real HTTP/1.1 server on a free loopback port.

It runs in its own thread with its own event loop, so sync tests, async
tests, Channels consumers and Daphne can all talk to it over a real socket.
Use the `upstream` fixture (tests/conftest.py):

    def test_something(upstream):
        upstream.enqueue(Stream(openai_text_stream("Hello world", cost=0.002), delay=0.01))
        endpoint = Endpoint(base_url=upstream.url, api_key="sk-test")
        ...
        assert upstream.chat_requests[0].json["model"] == "gpt-4o"

What it serves:

- Chat endpoints (`/v1/chat/completions`, `/api/v1/chat/completions`,
  `/v1beta/openai/chat/completions`, `/v1/messages`, `/api/v1/messages`):
  the next queued behaviour (`enqueue`), else a short default answer in the
  protocol of the path, streamed or JSON as the request's `stream` says.
- `*/models` (`/v1/models`, `/api/v1/models`, `/v1beta/openai/models`):
  `{"data": upstream.models}`, or an error when `models_status` is not 200.
- `*/generation?id=` (OpenRouter's cost look-up): `{"data": {"id", "total_cost"}}`
  from `generations[id]`, else `default_generation_cost` (so an OpenRouter
  stream without a cost gets one, cost_source "generation"; set it to None
  for a 404), or `generation_status` when that is not 200.

Behaviours: `Stream` (chunked body, one TCP write per chunk, optional delay
before each), `Hang` (sends its chunks, then never ends), `Status` and
`JSONResponse` (whole answers, any status and headers), `Drop` (closes the
connection without answering). Chunk builders: `openai_text_stream`,
`anthropic_stream`, `openai_completion`, `anthropic_message`, `sse`,
`sse_event`, `rechunk`; `model_entry` builds an OpenRouter-style model.

Every request is recorded in `requests` (`RecordedRequest`), the chat ones
also in `chat_requests`; `connections_opened` counts TCP connections. A streamed
answer whose client went away before it ended is recorded in `disconnects`
(its path) and sets the `disconnected` event: `upstream.wait_for_disconnect(1)`
from sync code, `await upstream.until_disconnected(1)` from async code.
"""

import asyncio
import contextlib
import http
import itertools
import json
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
CHAT_SUFFIXES = ("/chat/completions", "/messages")
POLL_SECONDS = 0.01  # how often a waiting stream looks for a departed client


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: bytes
    json: Any  # the parsed body, or None


# Behaviours -----------------------------------------------------------------


@dataclass
class Stream:
    """A chunked body: `delay` seconds before each chunk, one write per chunk."""

    chunks: list[str | bytes]
    delay: float = 0.0
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: dict(SSE_HEADERS))
    abort: bool = False  # drop the connection after the chunks instead of ending the body


@dataclass
class Hang:
    """Sends its chunks, then nothing more, until the client goes away.

    With `send_head=False` not even the status line goes out: the client
    waits for an answer that never starts (a read timeout before the first byte).
    """

    chunks: list[str | bytes] = field(default_factory=list)
    send_head: bool = True
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: dict(SSE_HEADERS))


@dataclass
class Status:
    """A whole answer; a dict or list body is sent as JSON."""

    status: int
    body: str | bytes | dict | list = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class JSONResponse:
    payload: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Drop:
    """Closes the connection without answering."""


Behaviour = Stream | Hang | Status | JSONResponse | Drop


# The server -----------------------------------------------------------------


class FakeUpstream:
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.models: list[dict] = default_models()
        self.models_status = 200
        self.generations: dict[str, float] = {}
        self.default_generation_cost: float | None = 0.00042
        self.generation_status = 200
        self.default_text = "Hello from the fake upstream."
        self.disconnects: list[str] = []
        self.disconnected = threading.Event()
        self.connections_opened = 0  # TCP connections accepted: 1 for many requests means keep-alive worked
        self.peak_connections = 0  # the most connections open at once
        self.port = 0
        self._queue: deque[Behaviour] = deque()
        self._answer_numbers = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: dict[asyncio.Task, asyncio.StreamWriter] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith(CHAT_SUFFIXES)]

    def enqueue(self, *behaviours: Behaviour) -> None:
        """What the chat endpoints answer next, one behaviour per request."""
        self._queue.extend(behaviours)

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def close_connections(self) -> None:
        """Close every open connection from the server's side, as an upstream ending idle keep-alives does."""
        assert self._loop is not None
        for writer in list(self._connections.values()):
            self._loop.call_soon_threadsafe(writer.close)

    def wait_for_disconnect(self, timeout: float = 1.0) -> bool:
        return self.disconnected.wait(timeout)

    async def until_disconnected(self, timeout: float = 1.0) -> bool:
        """The async twin: waits without blocking the caller's event loop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.disconnected.is_set() and loop.time() < deadline:
            await asyncio.sleep(POLL_SECONDS)
        return self.disconnected.is_set()

    # Life cycle

    def start(self) -> "FakeUpstream":
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="fake-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(5):
            raise RuntimeError("the fake upstream did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        with contextlib.suppress(Exception):
            future.result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop = None

    def __enter__(self) -> "FakeUpstream":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        # Aborting the sockets lets every connection task end on its own (a
        # cancelled stream task upsets asyncio's callbacks on Python 3.12).
        # A connection accepted just before the close starts its task while
        # we wait: a second pass ends it, or it outlives the loop and fails
        # as it is collected.
        for _pass in range(3):
            await asyncio.sleep(0)
            if not self._connections:
                break
            for writer in list(self._connections.values()):
                writer.transport.abort()
            _done, pending = await asyncio.wait(list(self._connections), timeout=2)
            for task in pending:
                task.cancel()

    # HTTP

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        self.connections_opened += 1
        self.peak_connections = max(self.peak_connections, len(self._connections))
        try:
            while (request := await _read_request(reader)) is not None:
                self.requests.append(request)
                keep_alive = await self._answer(request, reader, writer)
                if not keep_alive or request.headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(
        self, request: RecordedRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answers one request; False when the connection must close."""
        behaviour = self._behaviour_for(request)
        if isinstance(behaviour, Drop):
            return False
        if isinstance(behaviour, (Status, JSONResponse)):
            await _send_whole(writer, behaviour)
            return True
        try:
            if isinstance(behaviour, Hang):
                if behaviour.send_head:
                    await _send_head(writer, behaviour.status, {**behaviour.headers, "Transfer-Encoding": "chunked"})
                    for chunk in behaviour.chunks:
                        await _send_chunk(writer, chunk)
                await _sleep_while_connected(reader, writer, seconds=None)
                self._record_disconnect(request)
                return False
            return await self._stream(behaviour, request, reader, writer)
        except ConnectionError:
            self._record_disconnect(request)
            return False

    async def _stream(
        self, behaviour: Stream, request: RecordedRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        await _send_head(writer, behaviour.status, {**behaviour.headers, "Transfer-Encoding": "chunked"})
        for chunk in behaviour.chunks:
            if behaviour.delay and not await _sleep_while_connected(reader, writer, behaviour.delay):
                self._record_disconnect(request)
                return False
            await _send_chunk(writer, chunk)
        if behaviour.abort:
            return False
        if _client_gone(reader, writer):
            self._record_disconnect(request)
            return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    def _record_disconnect(self, request: RecordedRequest) -> None:
        self.disconnects.append(request.path)
        self.disconnected.set()

    def _behaviour_for(self, request: RecordedRequest) -> Behaviour:
        path = request.path
        if path.endswith(CHAT_SUFFIXES) and request.method == "POST":
            return self._queue.popleft() if self._queue else self._default_answer(request)
        if path.endswith("/models"):
            if self.models_status != 200:
                error = {"message": "The model list is unavailable.", "code": self.models_status}
                return Status(self.models_status, {"error": error})
            return JSONResponse({"data": self.models})
        if path.endswith("/generation"):
            return self._generation(request.query.get("id", ""))
        return Status(404, {"error": {"message": f"No route for {request.method} {path}", "code": 404}})

    def _generation(self, generation_id: str) -> Behaviour:
        if self.generation_status != 200:
            return Status(self.generation_status, {"error": {"message": "Generation stats unavailable"}})
        cost = self.generations.get(generation_id, self.default_generation_cost)
        if cost is None:
            return Status(404, {"error": {"message": f"Generation {generation_id} not found", "code": 404}})
        return JSONResponse({"data": {"id": generation_id, "total_cost": cost}})

    def _default_answer(self, request: RecordedRequest) -> Behaviour:
        body = request.json if isinstance(request.json, dict) else {}
        model = str(body.get("model") or "fake/model")
        number = next(self._answer_numbers)
        if request.path.endswith("/messages"):
            message_id = f"msg_fake_{number}"
            if body.get("stream"):
                return Stream(anthropic_stream(self.default_text, model=model, message_id=message_id))
            return JSONResponse(anthropic_message(self.default_text, model=model, message_id=message_id))
        response_id = f"gen-fake-{number}"
        if body.get("stream"):
            return Stream(openai_text_stream(self.default_text, model=model, response_id=response_id))
        return JSONResponse(openai_completion(self.default_text, model=model, response_id=response_id))


async def _read_request(reader: asyncio.StreamReader) -> RecordedRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client closed a kept-alive connection
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        if line:
            name, _sep, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        body = await reader.readexactly(int(headers.get("content-length") or 0))
    url = urlsplit(target)
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    return RecordedRequest(method, url.path, dict(parse_qsl(url.query)), headers, body, parsed)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        body += await reader.readexactly(size)
        await reader.readexactly(2)
    await reader.readuntil(b"\r\n")  # no trailers are ever sent to us
    return body


async def _send_head(writer: asyncio.StreamWriter, status: int, headers: dict[str, str]) -> None:
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()


async def _send_chunk(writer: asyncio.StreamWriter, chunk: str | bytes) -> None:
    data = chunk.encode() if isinstance(chunk, str) else chunk
    if data:  # an empty chunk would end the body
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await writer.drain()


async def _send_whole(writer: asyncio.StreamWriter, behaviour: Status | JSONResponse) -> None:
    headers = dict(behaviour.headers)
    if isinstance(behaviour, JSONResponse):
        body, status = json.dumps(behaviour.payload).encode(), behaviour.status
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(behaviour.body, (dict, list)):
        body, status = json.dumps(behaviour.body).encode(), behaviour.status
        headers.setdefault("Content-Type", "application/json")
    else:
        body = behaviour.body.encode() if isinstance(behaviour.body, str) else behaviour.body
        status = behaviour.status
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
    headers["Content-Length"] = str(len(body))
    await _send_head(writer, status, headers)
    writer.write(body)
    await writer.drain()


def _client_gone(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    return reader.at_eof() or writer.transport.is_closing() or reader.exception() is not None


async def _sleep_while_connected(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seconds: float | None
) -> bool:
    """Waits `seconds` (None: for ever); False as soon as the client goes away."""
    loop = asyncio.get_running_loop()
    deadline = None if seconds is None else loop.time() + seconds
    while not _client_gone(reader, writer):
        if deadline is not None and loop.time() >= deadline:
            return True
        await asyncio.sleep(POLL_SECONDS if deadline is None else min(POLL_SECONDS, deadline - loop.time()))
    return False


# Chunk builders -------------------------------------------------------------


def sse(payload: Any) -> str:
    """One `data:` event; a str payload (e.g. "[DONE]") is sent as it is."""
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


def sse_event(name: str, payload: Any) -> str:
    """One named event, as Anthropic sends them."""
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n"


def words(text: str) -> list[str]:
    """"Hello big world" -> ["Hello", " big", " world"]: how tokens tend to arrive."""
    return re.findall(r"\s*\S+|\s+", text)


def rechunk(chunks: list[str | bytes], size: int) -> list[bytes]:
    """The same bytes cut every `size` bytes: events, lines and characters split across writes."""
    data = b"".join(c.encode() if isinstance(c, str) else c for c in chunks)
    return [data[i : i + size] for i in range(0, len(data), size)]


def openai_text_stream(
    text: str,
    *,
    reasoning: str = "",
    reasoning_style: str = "openrouter",
    signature: str = "",
    tool_calls: list[dict] | None = None,
    usage: dict | bool = True,
    cost: float | None = None,
    usage_shape: str = "empty-choices",
    comments: bool = False,
    error_mid_stream: dict | None = None,
    error_shape: str = "top-level",
    finish_reason: str = "",
    done: bool = True,
    model: str = "fake/model",
    response_id: str = "gen-fake",
    line_ending: str = "\n",
) -> list[str]:
    """SSE chunks of a Chat Completions stream, as OpenAI-compatible servers send them.

    reasoning_style: "openrouter" (`reasoning` + `reasoning_details`, the last
    detail carrying `signature` when given), "deepseek" (`reasoning_content`),
    "think-tags" (`<think>...</think>` in the content, cut every 3 characters
    so tags split) or "think-close-only" (reasoning, "</think>", answer).
    tool_calls: [{"id", "name", "arguments"}], arguments sent in fragments.
    usage: True for made-up counts, a dict for exact ones, False for none;
    `cost` (USD) is added to it. usage_shape: "empty-choices" (a last chunk
    with `choices: []`) or "one-choice" (OpenRouter's older shape).
    error_mid_stream: {"code", "message"} sent after the text, in error_shape
    "top-level" (with a choice whose finish_reason is "error"),
    "top-level-no-choices" or "finish-reason" (no top-level error); the
    stream then ends. comments: ": OPENROUTER PROCESSING" lines and blank
    keep-alives. line_ending: "\\r\\n" for CRLF servers.
    """

    def chunk(delta: dict, finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return sse({"id": response_id, "object": "chat.completion.chunk", "created": 1700000000, "model": model,
                    "choices": [choice], **extra})

    chunks = [": OPENROUTER PROCESSING\n\n", "\n"] if comments else []
    chunks.append(chunk({"role": "assistant", "content": ""}))
    chunks += _reasoning_and_text_chunks(chunk, text, reasoning, reasoning_style, signature, comments)
    for number, call in enumerate(tool_calls or []):
        chunks += [chunk({"tool_calls": [fragment]}) for fragment in _tool_fragments(number, call)]
    if error_mid_stream is not None:
        chunks.append(_error_chunk(error_mid_stream, error_shape, response_id, model))
    else:
        chunks.append(chunk({}, finish_reason or ("tool_calls" if tool_calls else "stop")))
        usage_data = _usage(usage, cost, len(words(text)), len(words(reasoning)))
        if usage_data is not None:
            choices = [{"index": 0, "delta": {}, "finish_reason": None}] if usage_shape == "one-choice" else []
            chunks.append(sse({"id": response_id, "object": "chat.completion.chunk", "model": model,
                               "choices": choices, "usage": usage_data}))
    if done:
        chunks.append(sse("[DONE]"))
    return [c.replace("\n", line_ending) for c in chunks]


def _reasoning_and_text_chunks(
    chunk: Callable[[dict], str], text: str, reasoning: str, style: str, signature: str, comments: bool
) -> list[str]:
    if style in ("think-tags", "think-close-only"):
        opened = "<think>" if style == "think-tags" else ""
        content = f"{opened}{reasoning}</think>\n\n{text}" if reasoning else text
        return [chunk({"content": content[i : i + 3]}) for i in range(0, len(content), 3)]
    chunks = [chunk(_reasoning_delta(piece, style)) for piece in words(reasoning)]
    if signature and style == "openrouter":
        detail = {"type": "reasoning.text", "text": "", "signature": signature, "index": 0, "format": "unknown"}
        chunks.append(chunk({"reasoning": "", "reasoning_details": [detail]}))
    if comments:
        chunks.append(": OPENROUTER PROCESSING\n\n")
    return chunks + [chunk({"content": piece}) for piece in words(text)]


def _reasoning_delta(piece: str, style: str) -> dict:
    if style == "deepseek":
        return {"content": None, "reasoning_content": piece}
    detail = {"type": "reasoning.text", "text": piece, "index": 0, "format": "unknown"}
    return {"content": "", "reasoning": piece, "reasoning_details": [detail]}


def _tool_fragments(number: int, call: dict) -> list[dict]:
    arguments = call.get("arguments", "")
    half = len(arguments) // 2
    first = {"index": number, "id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": ""}}
    rest = [{"index": number, "function": {"arguments": part}} for part in (arguments[:half], arguments[half:]) if part]
    return [first, *rest]


def _error_chunk(error: dict, shape: str, response_id: str, model: str) -> str:
    failed_choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
    if shape == "finish-reason":
        return sse({"id": response_id, "model": model, "choices": [{**failed_choice, "error": error}]})
    choices = [] if shape == "top-level-no-choices" else [failed_choice]
    return sse({"id": response_id, "model": model, "error": error, "choices": choices})


def _usage(usage: dict | bool, cost: float | None, text_tokens: int, reasoning_tokens: int) -> dict | None:
    if usage is False:
        return None
    if usage is True:
        completion = text_tokens + reasoning_tokens
        usage = {
            "prompt_tokens": 12,
            "completion_tokens": completion,
            "total_tokens": 12 + completion,
            "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
        }
    return {**usage, "cost": cost} if cost is not None else dict(usage)


def openai_completion(
    text: str,
    *,
    reasoning: str = "",
    reasoning_style: str = "openrouter",
    tool_calls: list[dict] | None = None,
    usage: dict | bool = True,
    cost: float | None = None,
    model: str = "fake/model",
    response_id: str = "gen-fake",
) -> dict:
    """A non-streamed Chat Completions answer."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if reasoning and reasoning_style == "deepseek":
        message["reasoning_content"] = reasoning
    elif reasoning:
        message["reasoning"] = reasoning
        message["reasoning_details"] = [{"type": "reasoning.text", "text": reasoning, "index": 0, "format": "unknown"}]
    if tool_calls:
        message["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in tool_calls
        ]
    answer: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
    }
    usage_data = _usage(usage, cost, len(words(text)), len(words(reasoning)))
    if usage_data is not None:
        answer["usage"] = usage_data
    return answer


def anthropic_stream(
    text: str,
    *,
    thinking: str = "",
    signature: str = "sig-fake",
    redacted: str = "",
    tool_use: dict | None = None,
    error: dict | None = None,
    input_tokens: int = 12,
    cache_read_tokens: int = 0,
    output_tokens: int | None = None,
    stop_reason: str = "",
    ping: bool = True,
    model: str = "claude-fake",
    message_id: str = "msg_fake",
    line_ending: str = "\n",
) -> list[str]:
    """SSE chunks of an Anthropic Messages stream.

    thinking: a thinking block (with `signature`) before the text; redacted:
    the data of a redacted_thinking block before that; tool_use: {"id",
    "name", "input"} after the text. error: {"type": "overloaded_error",
    "message": ...} sent as `event: error` after the text, ending the stream.
    """
    usage = {
        "input_tokens": input_tokens,
        "output_tokens": 1,
        "cache_read_input_tokens": cache_read_tokens,
        "cache_creation_input_tokens": 0,
    }
    message = {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
               "stop_reason": None, "stop_sequence": None, "usage": usage}
    chunks = [_anthropic_event("message_start", message=message)]
    if ping:
        chunks.append(_anthropic_event("ping"))
    for index, (block, deltas) in enumerate(_anthropic_blocks(text, thinking, signature, redacted, tool_use, error)):
        chunks.append(_anthropic_event("content_block_start", index=index, content_block=block))
        chunks += [_anthropic_event("content_block_delta", index=index, delta=delta) for delta in deltas]
        chunks.append(_anthropic_event("content_block_stop", index=index))
    if error is not None:
        chunks.append(_anthropic_event("error", error=error))
    else:
        reason = stop_reason or ("tool_use" if tool_use else "end_turn")
        produced = output_tokens if output_tokens is not None else len(words(text)) + len(words(thinking))
        delta = {"stop_reason": reason, "stop_sequence": None}
        chunks.append(_anthropic_event("message_delta", delta=delta, usage={"output_tokens": produced}))
        chunks.append(_anthropic_event("message_stop"))
    return [c.replace("\n", line_ending) for c in chunks]


def _anthropic_blocks(
    text: str, thinking: str, signature: str, redacted: str, tool_use: dict | None, error: dict | None
) -> list[tuple[dict, list[dict]]]:
    """Each content block at its start, and the deltas that fill it."""
    blocks: list[tuple[dict, list[dict]]] = []
    if redacted:
        blocks.append(({"type": "redacted_thinking", "data": redacted}, []))
    if thinking:
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in words(thinking)]
        deltas.append({"type": "signature_delta", "signature": signature})
        blocks.append(({"type": "thinking", "thinking": ""}, deltas))
    if text:
        blocks.append(({"type": "text", "text": ""}, [{"type": "text_delta", "text": piece} for piece in words(text)]))
    if tool_use and not error:
        arguments = json.dumps(tool_use.get("input", {}))
        half = len(arguments) // 2
        deltas = [{"type": "input_json_delta", "partial_json": part} for part in (arguments[:half], arguments[half:])]
        blocks.append(({"type": "tool_use", "id": tool_use["id"], "name": tool_use["name"], "input": {}}, deltas))
    return blocks


def _anthropic_event(name: str, **fields: Any) -> str:
    return sse_event(name, {"type": name, **fields})


def anthropic_message(
    text: str,
    *,
    thinking: str = "",
    signature: str = "sig-fake",
    tool_use: dict | None = None,
    input_tokens: int = 12,
    output_tokens: int | None = None,
    model: str = "claude-fake",
    message_id: str = "msg_fake",
) -> dict:
    """A non-streamed Anthropic Messages answer."""
    content: list[dict] = []
    if thinking:
        content.append({"type": "thinking", "thinking": thinking, "signature": signature})
    if text:
        content.append({"type": "text", "text": text})
    if tool_use:
        tool_input = tool_use.get("input", {})
        content.append({"type": "tool_use", "id": tool_use["id"], "name": tool_use["name"], "input": tool_input})
    produced = output_tokens if output_tokens is not None else len(words(text)) + len(words(thinking))
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if tool_use else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": produced},
    }


# Models ---------------------------------------------------------------------


def model_entry(
    model_id: str,
    name: str = "",
    *,
    context_length: int = 128000,
    prompt_price: str = "0.000001",
    completion_price: str = "0.000002",
    input_modalities: tuple[str, ...] = ("text",),
    reasoning: bool = False,
) -> dict:
    """One model as OpenRouter's /models lists it (prices in USD per token, as strings)."""
    parameters = ["max_tokens", "temperature", "top_p", "tools", "stop"]
    if reasoning:
        parameters += ["reasoning", "include_reasoning"]
    return {
        "id": model_id,
        "name": name or model_id,
        "created": 1700000000,
        "context_length": context_length,
        "pricing": {"prompt": prompt_price, "completion": completion_price},
        "architecture": {"input_modalities": list(input_modalities), "output_modalities": ["text"]},
        "supported_parameters": parameters,
    }


def default_models() -> list[dict]:
    return [
        model_entry("openai/gpt-4o-mini", "OpenAI: GPT-4o-mini", prompt_price="0.00000015",
                    completion_price="0.0000006", input_modalities=("text", "image")),
        model_entry("anthropic/claude-sonnet-4.5", "Anthropic: Claude Sonnet 4.5", context_length=1000000,
                    prompt_price="0.000003", completion_price="0.000015", input_modalities=("text", "image"),
                    reasoning=True),
        model_entry("deepseek/deepseek-r1", "DeepSeek: R1", context_length=163840, prompt_price="0.0000004",
                    completion_price="0.000002", reasoning=True),
        model_entry("meta-llama/llama-3.3-70b-instruct:free", "Meta: Llama 3.3 70B Instruct (free)",
                    context_length=65536, prompt_price="0", completion_price="0"),
    ]
