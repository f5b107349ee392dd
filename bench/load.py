"""The load generator for streamed completions: raw asyncio HTTP/1.1, nothing in between.

A streaming client costs the load generator a few microseconds per chunk
here (httpx would cost several times that), so on a 2-core machine the
generator is not what limits the direct figures. Each stream opens its own
connection, as separate API clients would, and the same code reads from the
upstream directly and through a proxy: only the `Target` differs.
"""

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.upstream import MODEL, TOKEN

STREAM_TIMEOUT = 120.0  # seconds: one stream that never ends must not hang the bench


@dataclass(frozen=True)
class Target:
    """Where chat completions are posted: the upstream itself, Switchboard's proxy, or a peer."""

    name: str
    url: str  # the full chat completions URL
    headers: dict[str, str] = field(default_factory=dict)
    model: str = MODEL

    def request(self, tokens: int, delay: float) -> tuple[str, int, bytes]:
        parts = urlsplit(self.url)
        body = json.dumps(
            {"model": self.model, "stream": True,
             "messages": [{"role": "user", "content": f"tokens={tokens} delay={delay}"}]}
        ).encode()  # fmt: skip
        head = [
            f"POST {parts.path} HTTP/1.1",
            f"Host: {parts.netloc}",
            "Content-Type: application/json",
            "Accept: text/event-stream",
            f"Content-Length: {len(body)}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in self.headers.items()),
        ]
        return parts.hostname or "127.0.0.1", parts.port or 80, ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass
class StreamResult:
    status: int = 0
    tokens: int = 0
    first_token: float | None = None  # seconds from the request to the first token
    total: float = 0.0  # seconds from the request to the end of the body
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.error


class TokenCounter:
    """Counts the upstream's tokens in a byte stream cut anywhere."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.count = 0

    def feed(self, data: bytes) -> int:
        """Tokens completed by `data`."""
        self.buffer += data
        found = 0
        end = 0
        for match in TOKEN.finditer(self.buffer):
            found += 1
            end = match.end()
        if end:
            del self.buffer[:end]
        elif len(self.buffer) > 4096:
            del self.buffer[:-64]  # no token can be longer than this tail
        self.count += found
        return found


async def stream_once(target: Target, tokens: int, delay: float) -> StreamResult:
    """One streamed completion, timed from before the connection is opened."""
    host, port, request = target.request(tokens, delay)
    result = StreamResult()
    started = time.perf_counter()
    writer = None
    try:
        async with asyncio.timeout(STREAM_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            result.status = int(head.split(b" ", 2)[1])
            counter = TokenCounter()
            async for data in _body(reader, head.lower()):
                if counter.feed(data) and result.first_token is None:
                    result.first_token = time.perf_counter() - started
            result.tokens = counter.count
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, TimeoutError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.total = time.perf_counter() - started
        if writer is not None:
            writer.close()
    if result.status != 200 and not result.error:
        result.error = f"HTTP {result.status}"
    return result


async def _body(reader: asyncio.StreamReader, head: bytes):
    """The body's bytes as they arrive, chunked or not."""
    if b"transfer-encoding: chunked" in head:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return
            yield (await reader.readexactly(size + 2))[:-2]
    while data := await reader.read(1 << 16):
        yield data


# Scenarios -------------------------------------------------------------------


async def concurrent_streams(target: Target, streams: int, tokens: int, delay: float) -> list[StreamResult]:
    """`streams` completions at once, as many clients starting together."""
    return list(await asyncio.gather(*(stream_once(target, tokens, delay) for _ in range(streams))))


@dataclass
class Throughput:
    tokens: int
    seconds: float
    streams: int
    failed: int
    errors: list[str]

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


async def saturation(target: Target, streams: int, tokens: int, seconds: float) -> Throughput:
    """`streams` clients asking for undelayed streams back to back for `seconds`; every token counted."""
    started = time.perf_counter()
    deadline = started + seconds
    results: list[StreamResult] = []

    async def client() -> None:
        while time.perf_counter() < deadline:
            result = await stream_once(target, tokens, 0)
            results.append(result)
            if not result.ok:
                await asyncio.sleep(0.05)  # a refusing server must not turn this into a busy loop

    await asyncio.gather(*(client() for _ in range(streams)))
    failed = [r for r in results if not r.ok]
    return Throughput(
        tokens=sum(r.tokens for r in results),
        seconds=time.perf_counter() - started,
        streams=len(results),
        failed=len(failed),
        errors=sorted({r.error for r in failed})[:5],
    )


# Figures ---------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100), linearly interpolated; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def stream_figures(results: list[StreamResult], tokens: int) -> dict:
    """p50/p99 time to first token and total time (ms), with how many streams came through whole."""
    good = [r for r in results if r.ok]
    first = [r.first_token * 1000 for r in good if r.first_token is not None]
    total = [r.total * 1000 for r in good]
    return {
        "streams": len(results),
        "complete": sum(r.tokens == tokens for r in good),
        "failed": len(results) - len(good),
        "errors": sorted({r.error for r in results if r.error})[:5],
        "ttft_p50_ms": percentile(first, 50),
        "ttft_p99_ms": percentile(first, 99),
        "total_p50_ms": percentile(total, 50),
        "total_p99_ms": percentile(total, 99),
        "total_mean_ms": statistics.fmean(total) if total else None,
    }
