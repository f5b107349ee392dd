"""The benchmarks' fake upstream: a lean OpenAI-compatible server in its own process.

    python -m bench.upstream      # prints "port 43117", serves until stdin closes

Its own process, so it never shares a GIL with the load generator or the app.
It serves `POST .../chat/completions` (streamed or whole), `GET .../models`
(one model, `fake/model`) and OpenRouter's `GET .../generation?id=`.

The last user message says what to send: "tokens=100 delay=0.02" streams 100
tokens, sleeping 20 ms before each (no delay: a yield to the other streams
between tokens). Every token is its own chunk, one write each, and reads
`t0001@1712345678.123456 `: its number and the `time.time()` it was sent at,
so a client on the same machine can tell how long the token took to reach it.
"""

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parent.parent
MODEL = "fake/model"
TOKEN = re.compile(rb"t(\d{4})@(\d+\.\d+) ")
_TOKENS = re.compile(r"tokens=(\d+)")
_DELAY = re.compile(r"delay=([0-9.]+)")
DEFAULT_TOKENS = 20
BACKLOG = 2048  # a burst of 100+ connections must not wait in a SYN retry

_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
_TOKEN_PREFIX = (
    b'data: {"id":"gen-bench","object":"chat.completion.chunk","created":1700000000,"model":"fake/model",'
    b'"choices":[{"index":0,"delta":{"content":"'
)
_TOKEN_SUFFIX = b'"},"finish_reason":null}]}\n\n'


def _event(payload: dict | str) -> bytes:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _chunk_of(payload: dict) -> dict:
    return {"id": "gen-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": MODEL, **payload}


_ROLE = _chunk(_event(_chunk_of({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                              "finish_reason": None}]})))  # fmt: skip
_FINISH = _chunk(_event(_chunk_of({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})))
_DONE = _chunk(_event("[DONE]")) + b"0\r\n\r\n"


def token(number: int) -> bytes:
    return b"t%04d@%.6f " % (number, time.time())


def model_entry(model_id: str = MODEL, name: str = "Fake: Bench model", number: int = 0) -> dict:
    """A model as OpenRouter's /models lists one; `fake/model` by default."""
    return {
        "id": model_id,
        "name": name,
        "created": 1700000000,
        "context_length": (128000, 200000, 1048576, 32768)[number % 4],
        "pricing": {"prompt": f"0.00000{number % 9 + 1}", "completion": f"0.00000{number * 7 % 8 + 2}"},
        "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
        "supported_parameters": ["max_tokens", "temperature", "stream"],
    }


# As many models as OpenRouter lists (about 350): every chat page's picker
# offers them all, and a page with one model would hide what that costs.
CATALOGUE = [model_entry()] + [
    model_entry(f"vendor{n % 40}/model-{n}", f"Vendor {n % 40}: Model {n}", n) for n in range(1, 350)
]


def wanted(payload: dict) -> tuple[int, float]:
    """How many tokens to send and the delay before each, from the last user message."""
    text = ""
    for message in payload.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            text = str(content or "")
    tokens = _TOKENS.search(text)
    delay = _DELAY.search(text)
    return (int(tokens[1]) if tokens else DEFAULT_TOKENS), (float(delay[1]) if delay else 0.0)


# The server -----------------------------------------------------------------


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[bytes, bytes], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    request_line, _, header_block = head[:-4].partition(b"\r\n")
    method, target, _version = request_line.decode("latin-1").split(" ", 2)
    headers = {}
    for line in header_block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append((await reader.readexactly(size + 2))[:-2])
        await reader.readuntil(b"\r\n")
        body = b"".join(parts)
    else:
        body = b""
    return method, target, headers, body


def _whole(status: int, payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    reason = {200: b"OK", 404: b"Not Found", 400: b"Bad Request"}.get(status, b"Error")
    return b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        status, reason, len(body), body)  # fmt: skip


async def _stream(payload: dict, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Stream one answer; False when the client went away before its end."""
    count, delay = wanted(payload)
    writer.write(_STREAM_HEAD + _ROLE)
    for number in range(1, count + 1):
        await asyncio.sleep(delay)
        if reader.at_eof() or writer.is_closing():
            return False
        writer.write(_chunk(_TOKEN_PREFIX + token(number) + _TOKEN_SUFFIX))
        await writer.drain()
    usage = {"prompt_tokens": 12, "completion_tokens": count, "total_tokens": 12 + count, "cost": 0.0001}
    writer.write(_FINISH + _chunk(_event(_chunk_of({"choices": [], "usage": usage}))) + _DONE)
    await writer.drain()
    return True


def _completion(payload: dict) -> dict:
    count, _delay = wanted(payload)
    text = "".join(token(n).decode() for n in range(1, count + 1))
    return _chunk_of({
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": count, "total_tokens": 12 + count, "cost": 0.0001},
    })  # fmt: skip


async def _answer(request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    method, target, _headers, body = request
    path, _, query = target.partition("?")
    if path.endswith("/chat/completions") and method == "POST":
        try:
            payload = json.loads(body)
        except ValueError:
            writer.write(_whole(400, {"error": {"message": "bad JSON", "type": "invalid_request_error"}}))
            return True
        if payload.get("stream") is True:
            return await _stream(payload, reader, writer)
        writer.write(_whole(200, _completion(payload)))
    elif path.endswith("/models"):
        writer.write(_whole(200, {"object": "list", "data": CATALOGUE}))
    elif path.endswith("/generation"):
        generation_id = dict(p.partition("=")[::2] for p in query.split("&")).get("id", "")
        writer.write(_whole(200, {"data": {"id": generation_id, "total_cost": 0.0001}}))
    else:
        writer.write(_whole(404, {"error": {"message": f"no route {path}", "type": "not_found"}}))
    return True


_connections: dict[asyncio.Task, asyncio.StreamWriter] = {}


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    task = asyncio.current_task()
    assert task is not None
    _connections[task] = writer
    try:
        while (request := await _read_request(reader)) is not None:
            keep_alive = await _answer(request, reader, writer)
            await writer.drain()
            if not keep_alive or request[2].get(b"connection", b"").lower() == b"close":
                break
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        pass
    finally:
        _connections.pop(task, None)
        writer.close()


async def serve(port: int = 0) -> None:
    """Serve on 127.0.0.1 until stdin closes (the parent ended or let go)."""
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(_serve, "127.0.0.1", port, backlog=BACKLOG, limit=1 << 20)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    stdin_closed = asyncio.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stdin_closed.set)),
                     daemon=True).start()  # fmt: skip
    await stdin_closed.wait()
    # Not `async with server`: its exit waits for every connection to end, and
    # a client's kept-alive connections would keep this process alive. Aborted,
    # each connection's task ends on its own (cancelling them upsets asyncio's
    # stream callbacks on Python 3.12).
    server.close()
    for writer in _connections.values():
        writer.transport.abort()
    if _connections:
        await asyncio.wait(list(_connections), timeout=2)


# The handle the bench holds ---------------------------------------------------


class UpstreamProcess:
    """`python -m bench.upstream` as a child process, on a free loopback port."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "UpstreamProcess":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.upstream"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("port "):
            self.stop()
            raise RuntimeError(f"the bench upstream did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


if __name__ == "__main__":
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
