"""Accounting for the proxy API: usage read on the side of a pass-through answer.

The relay hands every chunk to a reader as it goes by. Reading must cost next
to nothing (under a microsecond a chunk), so a reader never parses a content
delta: it keeps only the unfinished last line, looks for the few events that
matter with substring searches over each chunk's complete lines, and parses
only those lines (plus the first one, for the response id).

One UsageRecord per forwarded request, written by a background task after
the answer ended. When the answer carried no cost, the task first asks
OpenRouter's generation endpoint, else prices it from the catalogue.
"""

import asyncio
import contextvars
import dataclasses
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from providers import completion
from providers.adapters import decimal_or_none
from providers.adapters.openai_chat import usage_from
from providers.api_errors import Dialect, error_message
from providers.catalogue import acost_from_prices
from providers.credentials import Endpoint
from providers.events import Usage
from providers.registry import Provider
from providers.usage import CLIENT_CLOSED, UsageRecord, record_in_background, wait_for_background_writes

logger = logging.getLogger(__name__)

# A line longer than this (no newline in sight) is not an event worth reading.
MAX_LINE = 1024 * 1024
# Where usage, the end of the answer or an error may be: a plain substring
# search per chunk (a regex with alternatives costs ten times more) decides
# whether its lines are worth a closer look. OpenAI-style servers send the
# usage in a last chunk, then `data: [DONE]`; Anthropic's message_start and
# message_delta carry usage, message_stop ends. An error in the middle of a
# stream (a top-level `error`, Anthropic's error event) goes on the record.
# A quote inside content is escaped (\"), so content rarely matches, and a
# false match costs one JSON parse at most.
_MARKERS = {"openai": (b'"usage"', b"[DONE]", b'"error"'), "anthropic": (b'"message_', b'"error"')}
# `"usage": null` rides on every chunk of some servers: only an object counts.
_WORTH_PARSING = re.compile(rb'"usage"\s*:\s*\{|"message_|"error"')

_pending: set[asyncio.Task] = set()


@dataclass
class Call:
    """One proxied request, as accounting sees it."""

    user_id: int
    provider: Provider
    model: str
    endpoint: Endpoint
    dialect: Dialect
    started: float  # time.monotonic()
    first_byte: float | None = None

    def fields(self, status: int, error: str = "") -> dict[str, Any]:
        now = time.monotonic()
        return {
            "user_id": self.user_id,
            "provider": self.provider.slug,
            "model": self.model[:200],
            "source": UsageRecord.Source.API,
            "time_to_first_token": None if self.first_byte is None else self.first_byte - self.started,
            "duration": now - self.started,
            "status_code": status,
            "error": self._without_key(error),
        }

    def _without_key(self, text: str) -> str:
        key = self.endpoint.api_key
        return text.replace(key, "[key]") if key and text else text


class UsageReader:
    """Reads usage, the response id and the end of the answer from SSE bytes, fed as they arrive."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.response_id = ""
        self.done = False  # the upstream said the answer is complete: a client may hang up now
        self.error = ""  # an error the upstream reported inside the stream
        self._raw_usage: dict[str, Any] = {}
        self._openai_usage: Usage | None = None
        self._tail = b""
        self._want_id = True
        self._markers = _MARKERS[dialect]

    @property
    def usage(self) -> Usage | None:
        if self.dialect == "anthropic":
            return anthropic_usage(self._raw_usage) if self._raw_usage else None
        return self._openai_usage

    def feed(self, chunk: bytes) -> None:
        if self._tail:
            chunk, self._tail = self._tail + chunk, b""
        cut = chunk.rfind(b"\n")
        if cut + 1 < len(chunk):  # keep the unfinished last line for the next chunk
            tail = chunk[cut + 1 :]
            self._tail = tail if len(tail) <= MAX_LINE else b""
        if cut >= 0 and (self._want_id or self._marked(chunk, cut)):
            self._read(chunk[:cut])

    def _marked(self, chunk: bytes, end: int) -> bool:
        for marker in self._markers:
            if chunk.find(marker, 0, end) >= 0:
                return True
        return False

    def close(self) -> None:
        """The end of the body: a last line without its newline still counts."""
        if self._tail:
            tail, self._tail = self._tail, b""
            self._read(tail)

    def _read(self, lines: bytes) -> None:
        for line in lines.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                self.done = True
                continue
            if not (self._want_id or _WORTH_PARSING.search(data)):
                continue
            self._want_id = False  # the first event names the answer, or nothing does
            try:
                event = json.loads(data)
            except ValueError:
                continue
            if isinstance(event, dict):
                self._take(event)

    def _take(self, event: dict[str, Any]) -> None:
        if self.dialect == "anthropic":
            kind = event.get("type")
            if kind == "message_start" and isinstance(event.get("message"), dict):
                message = event["message"]
                self._take_id(message.get("id"))
                self._take_anthropic_usage(message.get("usage"))
            elif kind == "message_delta":
                self._take_anthropic_usage(event.get("usage"))
            elif kind == "message_stop":
                self.done = True
            elif kind == "error":
                self.error = error_message(event) or "error event"
            return
        if event.get("error"):
            self.error = error_message(event) or "error in the stream"
        elif failed := _failed_choice(event):  # OpenRouter: finish_reason "error", with or without a top-level one
            self.error = error_message(failed) or "finish_reason error"
        self._take_id(event.get("id"))
        if isinstance(event.get("usage"), dict):
            self._openai_usage = usage_from(event["usage"])

    def _take_id(self, value: Any) -> None:
        if not self.response_id and isinstance(value, str):
            self.response_id = value

    def _take_anthropic_usage(self, usage: Any) -> None:
        # message_delta counts are cumulative: later values replace earlier ones.
        if isinstance(usage, dict):
            self._raw_usage.update({k: v for k, v in usage.items() if _is_number(v)})


def _failed_choice(event: dict[str, Any]) -> dict | None:
    choices = event.get("choices")
    if not isinstance(choices, list):
        return None
    return next((c for c in choices if isinstance(c, dict) and c.get("finish_reason") == "error"), None)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def anthropic_usage(raw: dict[str, Any]) -> Usage:
    """An Anthropic usage object as a Usage (the same sums as the Messages adapter)."""

    def count(name: str) -> int:
        value = raw.get(name)
        return int(value) if _is_number(value) and value > 0 else 0

    cache_read = count("cache_read_input_tokens")
    # input_tokens leaves out cached and cache-written tokens; the prompt is all three.
    prompt = count("input_tokens") + cache_read + count("cache_creation_input_tokens")
    # OpenRouter's Anthropic-compatible endpoint adds its cost in USD.
    cost = decimal_or_none(raw.get("cost"))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=count("output_tokens"),
        cached_tokens=cache_read,
        cost=cost,
        cost_source="provider" if cost is not None else "",
    )


def usage_of_answer(dialect: Dialect, payload: Any) -> tuple[Usage | None, str]:
    """Usage and response id of a whole (non-streamed) JSON answer."""
    if not isinstance(payload, dict):
        return None, ""
    response_id = payload.get("id") if isinstance(payload.get("id"), str) else ""
    raw = payload.get("usage")
    if not isinstance(raw, dict):
        return None, response_id
    if dialect == "anthropic":
        return anthropic_usage(raw), response_id
    return usage_from(raw), response_id


def account(call: Call, *, status: int, usage: Usage | None = None, response_id: str = "", error: str = "") -> None:
    """Write the record of `call` in the background; look the cost up first when it is missing."""
    fields = call.fields(status, error)
    answered = status < 400 or status == CLIENT_CLOSED  # a client that left still pays for what was made
    findable = usage is not None or bool(response_id and call.provider.generation_path)
    wants_cost = answered and findable and (usage is None or usage.cost is None)
    # A fresh context: the request's one would queue the database write on the
    # request's single sync thread, ahead of its remaining middleware.
    task = asyncio.get_running_loop().create_task(
        _account(call, usage, response_id if wants_cost else "", wants_cost, fields), context=contextvars.Context()
    )
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def _account(
    call: Call, usage: Usage | None, response_id: str, wants_cost: bool, fields: dict[str, Any]
) -> None:
    if wants_cost:
        try:
            if response_id:
                found = await completion.usage_from_generation(call.provider, call.endpoint, response_id, usage)
                usage = found or usage
            if usage is not None and usage.cost is None:
                cost = await acost_from_prices(call.provider.slug, call.model, usage)
                if cost is not None:
                    usage = dataclasses.replace(usage, cost=cost, cost_source="catalogue")
        except Exception as exc:  # the cost stays unknown; the record is still written
            logger.warning("cost look-up for %s failed: %s", call.provider.slug, type(exc).__name__)
    await record_in_background(usage=usage, **fields)


async def wait_for_accounting() -> None:
    """Wait until every record of finished requests is written (tests, and a graceful shutdown)."""
    loop = asyncio.get_running_loop()
    while pending := [task for task in _pending if task.get_loop() is loop and not task.done()]:
        await asyncio.gather(*pending, return_exceptions=True)
    await wait_for_background_writes()
