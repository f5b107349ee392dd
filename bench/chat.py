"""The chat over WebSocket under load: many conversations at once, and idle sockets.

A conversation here is a browser tab reduced to what the bench needs: it
opens `/ws/chat/<uuid>/` with the signed-in session cookie, sends one
message, and reads frames until the answer's final render arrives. The
upstream stamps each token with its send time (bench/upstream.py), so every
token's delay is the time it was received minus that stamp, on one clock.
"""

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass, field

import websockets

from bench.load import percentile
from bench.upstream import TOKEN

_APPEND = re.compile(r'<div hx-swap-oob="beforeend:#m-(\d+)-content">(.*?)</div>', re.DOTALL)
_ARTICLE = re.compile(r'<article id="m-(\d+)"([^>]*)>')
_STATUS = re.compile(r'data-status="(\w+)"')
_TOKEN = re.compile(TOKEN.pattern.decode())
_FINAL_STATUSES = ("done", "error", "stopped", "interrupted")
# In the final render the last token has lost its trailing space to the Markdown.
_RENDERED_TOKEN = re.compile(r"t(\d{4})@\d+\.\d+")
CONNECT_BATCH = 50  # sockets opened at once: a burst larger than Daphne's listen backlog would wait in SYN retries


@dataclass
class Browser:
    """How a browser tab reaches the chat: the server, its session cookie and its origin."""

    port: int
    cookies: dict[str, str]

    def url(self, conversation_id: uuid.UUID) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat/{conversation_id}/"

    async def connect(self, conversation_id: uuid.UUID):
        headers = {
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "Origin": f"http://127.0.0.1:{self.port}",
        }
        return await websockets.connect(
            self.url(conversation_id), additional_headers=headers, open_timeout=60, max_size=None, ping_interval=None
        )


@dataclass
class ConversationResult:
    expected: int
    streamed: set[int] = field(default_factory=set)  # token numbers seen in the live deltas
    final: set[int] = field(default_factory=set)  # token numbers in the final render
    delays: list[float] = field(default_factory=list)  # seconds, upstream send -> client receipt
    frames: list[float] = field(default_factory=list)  # receipt times of frames carrying answer text
    status: str = ""
    seconds: float = 0.0  # from sending the message to the final render
    first_token: float | None = None  # seconds from sending the message to the first token of the answer
    error: str = ""

    @property
    def frames_per_second(self) -> float | None:
        if len(self.frames) < 2 or self.frames[-1] <= self.frames[0]:
            return None
        return (len(self.frames) - 1) / (self.frames[-1] - self.frames[0])


async def _converse(socket, tokens: int, delay: float, model: str) -> ConversationResult:
    result = ConversationResult(expected=tokens)
    answer_id = None
    text = ""  # the answer's streamed text not yet parsed into tokens
    started = time.perf_counter()
    await socket.send(json.dumps({"action": "send", "message": f"tokens={tokens} delay={delay}", "model": model}))
    try:
        async with asyncio.timeout(tokens * delay + 60):
            while True:
                frame = await socket.recv()
                received = time.time()
                articles = {m[1]: m[2] for m in _ARTICLE.finditer(frame)}
                if answer_id is None:
                    answer_id = next((i for i, attributes in articles.items() if 'data-role="assistant"' in attributes
                                      and 'data-status="streaming"' in attributes), None)  # fmt: skip
                if answer_id is None:
                    if 'id="chat-notice"' in frame:
                        result.error = re.sub(r"<[^>]+>", " ", frame).strip()[:200]
                        return result
                    continue
                status = _STATUS.search(articles.get(answer_id, ""))
                if status and status[1] in _FINAL_STATUSES:
                    result.status = status[1]
                    result.final = {int(m[1]) for m in _RENDERED_TOKEN.finditer(frame)}
                    break
                pieces = [m[2] for m in _APPEND.finditer(frame) if m[1] == answer_id]
                if not pieces:
                    continue
                result.frames.append(received)
                text += "".join(pieces)
                end = 0
                for match in _TOKEN.finditer(text):
                    if result.first_token is None:
                        result.first_token = time.perf_counter() - started
                    result.streamed.add(int(match[1]))
                    result.delays.append(received - float(match[2]))
                    end = match.end()
                text = text[end:]
    except TimeoutError:
        result.error = "timed out before the final render"
    except websockets.ConnectionClosed as exc:
        result.error = f"socket closed: {exc}"
    result.seconds = time.perf_counter() - started
    return result


async def open_sockets(browser: Browser, count: int) -> list:
    sockets = []
    for start in range(0, count, CONNECT_BATCH):
        batch = min(CONNECT_BATCH, count - start)
        sockets += await asyncio.gather(*(browser.connect(uuid.uuid4()) for _ in range(batch)))
    return sockets


async def close_sockets(sockets: list) -> None:
    await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)


async def conversations(browser: Browser, count: int, tokens: int, delay: float, model: str) -> list[ConversationResult]:
    """`count` conversations, all sockets open first, then every message sent at once."""
    sockets = await open_sockets(browser, count)
    try:
        return list(await asyncio.gather(*(_converse(s, tokens, delay, model) for s in sockets)))
    finally:
        await close_sockets(sockets)


def chat_figures(results: list[ConversationResult], tokens: int) -> dict:
    delays = [d * 1000 for r in results for d in r.delays]
    rates = [rate for r in results if (rate := r.frames_per_second) is not None]
    first = [r.first_token * 1000 for r in results if r.first_token is not None]
    expected = tokens * len(results)
    final = sum(len(r.final) for r in results)
    return {
        "conversations": len(results),
        "tokens_expected": expected,
        "tokens_streamed": sum(len(r.streamed) for r in results),
        "tokens_final": final,
        "tokens_delivered_fraction": final / expected if expected else 0.0,
        "done": sum(r.status == "done" for r in results),
        "errors": sorted({r.error or f"status {r.status}" for r in results if r.error or r.status != "done"})[:5],
        "delay_p50_ms": percentile(delays, 50),
        "delay_p99_ms": percentile(delays, 99),
        "delay_max_ms": max(delays) if delays else None,
        "frames_per_second_p50": percentile(rates, 50),
        "frames_per_second_max": max(rates) if rates else None,
        "total_p50_ms": percentile([r.seconds * 1000 for r in results if not r.error], 50),
        # Everyone sends at once: the first token waits for every conversation's start (no target; for the reader).
        "ttft_p50_ms": percentile(first, 50),
        "ttft_p99_ms": percentile(first, 99),
    }


# Memory per idle socket -------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def memory_per_socket(browser: Browser, pid: int, count: int, settle: float = 1.0) -> dict:
    """Daphne's RSS before and after `count` idle chat sockets, per socket."""
    await asyncio.sleep(settle)
    before = rss_bytes(pid)
    sockets = await open_sockets(browser, count)
    try:
        await asyncio.sleep(settle)
        after = rss_bytes(pid)
    finally:
        await close_sockets(sockets)
    return {
        "sockets": count,
        "rss_before_mb": before / 2**20,
        "rss_after_mb": after / 2**20,
        "per_socket_kb": (after - before) / count / 1024,
    }
