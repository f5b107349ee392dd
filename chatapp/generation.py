"""Generations: an answer being written, independent of any socket.

A generation is an asyncio task in the process that started it. It streams
from the provider core and publishes coalesced deltas (at most ~20 frames a
second) to the conversation's channel-layer group, where every socket of that
conversation, in any process, picks them up. It listens on a control group
for `stop` and `sync` requests, so a socket served by another process can stop
it or ask for the text so far. Partial text is saved at least once a second;
a heartbeat in the cache tells other processes it is alive.

Every delta carries the offset at which it starts, so a socket that joins
mid-stream (reload, second tab, another process) can splice the snapshot and
the live deltas without losing or doubling a character. An answer continued
(Continue, under one cut short) starts with its text so far: the new text
follows it at its offsets, and its tokens, cost and time add to its own.
"""

import asyncio
import contextvars
import logging
import time
from dataclasses import dataclass, field

from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from chatapp.models import ERROR_EXPLANATIONS, Conversation, Message
from providers import events, shared_cache
from providers.database import database_sync_to_async

logger = logging.getLogger(__name__)

# Seconds between a stream's frames: about 18 a second as they leave, so that at most 20 a
# second reach the browser even when one is held up on the way and the next catches it up
# (a first frame sent in a burst of new chats, then the rest on time: make bench's c.).
FRAME_INTERVAL = 0.055
SAVE_INTERVAL = 1.0  # seconds: the most text a crash can lose
HEARTBEAT_INTERVAL = 2.0
HEARTBEAT_TTL = 10

# Generations running in this process, by message id; a strong reference keeps
# their tasks alive after the socket that started them has gone.
_running: dict[int, "Generation"] = {}


def stream_group(conversation_id) -> str:
    """Where sockets listen for frames of a conversation."""
    return f"chat.{conversation_id.hex}"


def control_group(conversation_id) -> str:
    """Where generations listen for stop and sync requests."""
    return f"chatctl.{conversation_id.hex}"


async def request_stop(conversation_id) -> None:
    """Stop the conversation's answer being written, in whichever process writes it."""
    stop = {"type": "generation.stop", "message_id": None}
    await get_channel_layer().group_send(control_group(conversation_id), stop)


def heartbeat_key(message_id: int) -> str:
    return f"generation:alive:{message_id}"


class GrowingText:
    """Text built by appending deltas.

    `text += delta` on an attribute copies the whole text at every delta,
    which grows with the square of the answer's length. Here the deltas are
    kept as they come and joined when the text is read: on a frame, at most
    twenty times a second, not on every token.
    """

    __slots__ = ("_parts", "_length")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0

    def append(self, text: str) -> None:
        self._parts.append(text)
        self._length += len(text)

    def __len__(self) -> int:
        return self._length

    def __str__(self) -> str:
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""


@dataclass
class Progress:
    """What has been generated so far, and how much of it has been published."""

    content_text: GrowingText = field(default_factory=GrowingText)
    reasoning_text: GrowingText = field(default_factory=GrowingText)
    published_content: int = 0
    published_reasoning: int = 0
    reasoning_details: list[dict] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    reasoning_seconds: float | None = None
    rewound: bool = False  # the text published was reasoning: the next frame sends both parts again
    # An answer continued: its text before, which the new text follows, and which the page shows already.
    prefix: str = ""

    @classmethod
    def of(cls, message: Message) -> "Progress":
        """Where `message` starts: empty for a new answer, its text and reasoning so far for one continued."""
        progress = cls(
            prefix=message.content,
            reasoning_seconds=message.reasoning_duration,
            reasoning_details=list(message.reasoning_details),
        )
        progress.content_text.append(message.content)
        progress.reasoning_text.append(message.reasoning)
        progress.published_content, progress.published_reasoning = len(message.content), len(message.reasoning)
        return progress

    def content_was_reasoning(self, text: str) -> None:
        """What this stream wrote as the answer was reasoning (`text`, a lone `</think>` came): the prefix stays."""
        self.content_text = GrowingText()
        self.content_text.append(self.prefix)
        self.reasoning_text.append(text)
        self.rewound = True

    @property
    def content(self) -> str:
        return str(self.content_text)

    @property
    def reasoning(self) -> str:
        return str(self.reasoning_text)

    @property
    def pending(self) -> bool:
        return (
            self.rewound
            or len(self.content_text) > self.published_content
            or len(self.reasoning_text) > self.published_reasoning
        )


class Generation:
    def __init__(
        self, message: Message, conversation: Conversation, branch: list[Message] | None = None, reader=None
    ):
        """`branch`: the path to `message`, if the caller has just read it (spares reading it again); `reader`
        (chatapp.variables.Reader): who asked, for the variables of the system prompt."""
        self.message = message
        self.conversation = conversation
        self._branch = branch
        self._reader = reader
        self.progress = Progress.of(message)
        self.layer = get_channel_layer()
        self.task: asyncio.Task | None = None
        self._stream_task: asyncio.Task | None = None
        self._flush_handle: asyncio.TimerHandle | None = None
        self._flush_lock = asyncio.Lock()
        self._last_flush = 0.0
        self._last_save = time.monotonic()
        self._control_channel = ""
        self._usage: events.Usage | None = None
        self._finish: events.Finish | None = None
        self._error: events.StreamError | None = None
        self._model_name = ""
        # Continued after a question asking for the rest (not a prefill): the first text may need a space before it.
        self._joint = False

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> asyncio.Task:
        cache.set(heartbeat_key(self.message.id), 1, HEARTBEAT_TTL)
        _running[self.message.id] = self
        # A fresh context: the request or socket that started the generation
        # ends long before it, and with it the thread-sensitive executor its
        # context holds; database calls made from an inherited context would
        # wait on that dead executor forever.
        self.task = asyncio.get_running_loop().create_task(
            self.run(), name=f"generation-{self.message.id}", context=contextvars.Context()
        )
        return self.task

    async def run(self) -> None:
        helpers: list[asyncio.Task] = []
        try:
            try:
                # The default prefix matters with channels-redis: every specific
                # channel of a process must share one Redis list, or one receive()
                # holds the layer's receive lock on its own list and starves the
                # sockets of this process until a control message comes.
                self._control_channel = await self.layer.new_channel()
                await self.layer.group_add(control_group(self.conversation.id), self._control_channel)
                helpers = [asyncio.create_task(self._listen()), asyncio.create_task(self._beat())]
                self._stream_task = asyncio.create_task(self._stream())
                try:
                    await self._stream_task
                    status = Message.Status.ERROR if self._error else Message.Status.DONE
                except asyncio.CancelledError:
                    if not self._stream_task.cancelled():
                        raise
                    status = Message.Status.STOPPED
                await self._save(status)
            except Exception:
                logger.exception("generation %s failed", self.message.id)
                self._error = events.StreamError("", code="internal")
                status = Message.Status.ERROR
                await self._save(status)
            finally:
                # Saved: nothing is left to stop or to sync. The listener goes
                # before pages learn it is done, so that a loop which ends while
                # the chat is titled (a test's, a server's) leaves none behind
                # on the channel layer.
                for helper in helpers:
                    helper.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
                if self._control_channel:
                    await self.layer.group_discard(control_group(self.conversation.id), self._control_channel)
                await shared_cache.adelete(heartbeat_key(self.message.id))
            await self.layer.group_send(
                stream_group(self.conversation.id), {"type": "generation.done", "message_id": self.message.id}
            )
            await self._title(ask_model=status == Message.Status.DONE)
        finally:
            _running.pop(self.message.id, None)

    def stop(self) -> None:
        if self._stream_task is not None and not self._stream_task.done():
            self._stream_task.cancel()

    # -- streaming ---------------------------------------------------------

    async def _stream(self) -> None:
        from chatapp.upstream import prepare_request

        prepared = await prepare_request(self.conversation, self.message, self._branch, self._reader)
        self._branch = None  # not kept for the length of the answer
        if isinstance(prepared, events.StreamError):
            self._error = prepared
            return
        request, endpoint = prepared
        self.message.provider = request.provider.slug
        self._model_name = request.model
        self._joint = bool(self.progress.prefix) and request.messages[-1].role != "assistant"
        from providers.completion import stream_completion

        async for event in stream_completion(request, endpoint):
            self._apply(event)

    def _apply(self, event: events.StreamEvent) -> None:
        progress = self.progress
        match event:
            case events.TextDelta(text=text):
                if self._joint and text:
                    text, self._joint = joined(progress.prefix, text), False
                if progress.first_token_at is None:
                    progress.first_token_at = time.monotonic()
                if progress.reasoning_text and progress.reasoning_seconds is None:
                    progress.reasoning_seconds = time.monotonic() - progress.started
                progress.content_text.append(text)
                self._schedule_flush()
            case events.TextWasReasoning(text=text):
                progress.content_was_reasoning(text)
                self._schedule_flush()
            case events.ReasoningDelta(text=text):
                if progress.first_token_at is None:
                    progress.first_token_at = time.monotonic()
                progress.reasoning_text.append(text)
                self._schedule_flush()
            case events.Usage():
                self._usage = event
            case events.Finish():
                self._finish = event
                progress.reasoning_details += event.reasoning_details  # a continued answer keeps its earlier ones
            case events.StreamError():
                self._error = event

    def _schedule_flush(self) -> None:
        """Publish now if the last frame is old enough, else once it is."""
        if self._flush_handle is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_flush + FRAME_INTERVAL - time.monotonic())
        self._flush_handle = loop.call_later(delay, lambda: asyncio.ensure_future(self._flush()))

    async def _flush(self) -> None:
        async with self._flush_lock:
            self._flush_handle = None
            progress = self.progress
            if not progress.pending:
                return
            self._last_flush = time.monotonic()
            content, reasoning = progress.content, progress.reasoning
            if progress.rewound:
                progress.published_content = progress.published_reasoning = 0
            frame = {
                "type": "generation.delta",
                "message_id": self.message.id,
                "rewound": progress.rewound,
                "content_offset": progress.published_content,
                "content": content[progress.published_content :],
                "reasoning_offset": progress.published_reasoning,
                "reasoning": reasoning[progress.published_reasoning :],
                "reasoning_seconds": progress.reasoning_seconds,
            }
            progress.published_content = len(content)
            progress.published_reasoning = len(reasoning)
            progress.rewound = False
            await self.layer.group_send(stream_group(self.conversation.id), frame)
            if time.monotonic() - self._last_save >= SAVE_INTERVAL:
                self._last_save = time.monotonic()
                await Message.objects.filter(pk=self.message.id).aupdate(
                    content=content, reasoning=reasoning, updated_at=timezone.now()
                )

    # -- control -----------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            request = await self.layer.receive(self._control_channel)
            if request.get("message_id") not in (None, self.message.id):
                continue
            if request["type"] == "generation.stop":
                self.stop()
            elif request["type"] == "generation.sync":
                await self.layer.send(request["reply_channel"], self.snapshot())

    def snapshot(self) -> dict:
        progress = self.progress
        return {
            "type": "generation.snapshot",
            "message_id": self.message.id,
            "content": progress.content,
            "reasoning": progress.reasoning,
            "reasoning_seconds": progress.reasoning_seconds,
        }

    async def _beat(self) -> None:
        while True:
            await shared_cache.aset(heartbeat_key(self.message.id), 1, HEARTBEAT_TTL)
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    # -- the end -----------------------------------------------------------

    async def _save(self, status: str) -> None:
        """The answer as it ends (`status`), saved and accounted for."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        await self._flush()
        message = self.message
        progress = self.progress
        now = time.monotonic()
        message.content = progress.content
        message.reasoning = progress.reasoning
        message.reasoning_details = progress.reasoning_details
        message.reasoning_duration = progress.reasoning_seconds
        message.status = status
        message.error = self._error.message if self._error else ""
        message.error_code = error_code(self._error) if self._error else ""
        # A continued answer adds this request's time, tokens and cost to its own, and keeps its first token's time.
        message.duration = (message.duration or 0.0) + now - progress.started
        if progress.first_token_at is not None and message.time_to_first_token is None:
            message.time_to_first_token = progress.first_token_at - progress.started
        if self._finish is not None:
            message.finish_reason = self._finish.reason
        if self._usage is not None:
            for name in ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens", "cost"):
                setattr(message, name, _sum(getattr(message, name), getattr(self._usage, name)))
        from chatapp.rendering import render_markdown

        message.content_html = render_markdown(message.content)
        await _save_final(message)
        self._account(status)

    async def _title(self, ask_model: bool) -> None:
        """Title the conversation after its first answer, and tell its pages."""
        from chatapp.titles import atitle_conversation

        if self.conversation.title:
            return  # it had one when the answer started (read then, in chatapp.exchanges)
        title = await atitle_conversation(self.conversation.id, ask_model)
        if title:
            await self.layer.group_send(stream_group(self.conversation.id), {"type": "conversation.title"})

    def _account(self, status: str) -> None:
        if not self.message.provider:
            return  # refused before any request went upstream
        from providers.usage import UsageRecord, record_in_background

        record_in_background(
            usage=self._usage,
            user_id=self.conversation.owner_id,
            provider=self.message.provider,
            model=self._model_name or self.message.model_name,
            source=UsageRecord.Source.CHAT,
            time_to_first_token=self.message.time_to_first_token,
            duration=self.message.duration or 0.0,
            status_code=_status_code(status, self._error),
            error=self._error.message if self._error else "",
        )


def _sum(before, now):
    """A count or cost so far plus this request's; None while neither is known."""
    return now if before is None else before if now is None else before + now


def joined(prefix: str, text: str) -> str:
    """`text` to follow `prefix`, a space between them where a model answering anew would leave words run together.

    A model asked to go on from where it stopped starts its answer without
    one, while a length limit or a stop almost always falls between words.
    """
    if prefix and (prefix[-1].isalnum() or prefix[-1] in ".,;:!?") and text[0].isalnum():
        return " " + text
    return text


def _status_code(status: str, error: events.StreamError | None) -> int:
    if status == Message.Status.STOPPED:
        return 499
    if error is not None:
        return error.status or 502
    return 200


def error_code(error: events.StreamError) -> str:
    """Our category of an error, which the page explains in the reader's language."""
    if error.code in ERROR_CODES:
        return error.code
    return {401: "auth", 403: "auth", 402: "payment", 429: "rate_limited", 408: "timeout", 504: "timeout"}.get(
        error.status or 0, "upstream"
    )


# The categories the page explains, kept as the error names them; "upstream" is the one a status may narrow.
ERROR_CODES = ERROR_EXPLANATIONS.keys() - {"upstream"}


async def aresume_or_interrupt(message: Message) -> bool:
    """True if a generation for `message` is alive somewhere; else mark it interrupted."""
    if await shared_cache.aget(heartbeat_key(message.id)):
        return True
    await Message.objects.filter(pk=message.id, status=Message.Status.STREAMING).aupdate(
        status=Message.Status.INTERRUPTED, error_code="interrupted"
    )
    return False


@database_sync_to_async
def _save_final(message: Message) -> None:
    """The answer as it ended, and its conversation's place in the list (by `written_at`), in one transaction."""
    with transaction.atomic():
        message.save()
        now = timezone.now()
        Conversation.objects.filter(pk=message.conversation_id).update(written_at=now, updated_at=now)


def interrupt_orphans(conversation: Conversation | None = None) -> int:
    """Mark messages left streaming by a dead process as interrupted."""
    streaming = Message.objects.filter(status=Message.Status.STREAMING)
    if conversation is not None:
        streaming = streaming.filter(conversation=conversation)
    orphans = [pk for pk in streaming.values_list("pk", flat=True) if not cache.get(heartbeat_key(pk))]
    if not orphans:
        return 0
    return Message.objects.filter(pk__in=orphans, status=Message.Status.STREAMING).update(
        status=Message.Status.INTERRUPTED, error_code="interrupted"
    )


def interrupt_orphans_at_start() -> None:
    """At a server's start: mark the answers a stopped server left streaming as interrupted.

    Answers another live process is still writing keep their heartbeat and
    are left alone. Pages still check when they show a streaming answer: a
    process that died moments before this start may have left a heartbeat
    that had not expired yet.
    """
    from django.db import DatabaseError, connections

    try:
        count = interrupt_orphans()
    except DatabaseError as exc:  # not migrated yet, or the database is down: pages will catch up
        logger.warning("could not look for answers left streaming: %s", exc)
        return
    finally:
        connections.close_all()  # this thread serves no requests: keep no connection open
    if count:
        logger.info("marked %d answer(s) left streaming by a stopped server as interrupted", count)
