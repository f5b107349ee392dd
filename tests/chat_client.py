"""A test client for the chat WebSocket that keeps what a browser would show.

It connects through the project's real ASGI application (origin check,
session authentication, routing) and applies the out-of-band swaps of each
frame the way htmx does, to a per-message model of the page: the reasoning
and content text of every message, and its status.
"""

import asyncio
import html
import json
import re
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser

from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore

from chatapp.asgi import application

ORIGIN = b"http://127.0.0.1"
_PART_SWAP = re.compile(r'<div hx-swap-oob="(beforeend|innerHTML):#m-(\d+)-(content|reasoning)">(.*?)</div>', re.S)
_ARTICLE = re.compile(r'<article id="m-(\d+)"[^>]*data-role="(\w+)" data-status="(\w+)"[^>]*>(.*?)</article>', re.S)
_TAG = re.compile(r"<[^>]+>")
_WHOLE_BRANCH = re.compile(r'<div id="messages"[^>]*hx-swap-oob="true"')
_BRANCH_TAIL = re.compile(r'<div hx-swap-oob="beforeend:#messages" data-branch-after="(\d+)">')
_CUT_MARK = re.compile(r'<p class="context-cut"[^>]*>[^<]*</p>\s*<article id="m-(\d+)"')
_CUTS = re.compile(r'<div id="context-cuts"[^>]*data-cuts="([\d ]*)"')


def visible_text(fragment: str) -> str:
    return html.unescape(_TAG.sub("", fragment))


class _PartReader(HTMLParser):
    """The text inside each element marked data-part, nested markup included."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: dict[str, str] = {}
        self._open: list[str | None] = []

    def handle_starttag(self, tag, attrs):
        if tag in VOID_TAGS:
            return
        self._open.append(dict(attrs).get("data-part"))

    def handle_endtag(self, tag):
        if tag not in VOID_TAGS and self._open:
            self._open.pop()

    def handle_data(self, data):
        for part in self._open:
            if part:
                self.parts[part] = self.parts.get(part, "") + data


VOID_TAGS = {"br", "hr", "img", "input", "meta", "link", "wbr"}


def parts_of(fragment: str) -> dict[str, str]:
    reader = _PartReader()
    reader.feed(fragment)
    return reader.parts


@dataclass
class ShownMessage:
    role: str = ""
    status: str = ""
    content: str = ""
    reasoning: str = ""
    html: str = ""


@dataclass
class ShownPage:
    """The messages as the browser shows them, built from the frames received."""

    shown: dict[int, ShownMessage] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    order: list[int] = field(default_factory=list)  # the message ids in #messages, top to bottom, as chat.js keeps them
    out_of_date: bool = False  # a branch came after a message this page does not show: chat.js reloads
    cuts: list[int] = field(default_factory=list)  # the messages marked "Earlier messages were left out here"

    def last_assistant_id(self) -> int:
        return max(k for k, m in self.shown.items() if m.role == "assistant")

    def load(self, page: str) -> None:
        """Start from the chat page as served over HTTP."""
        self.order = [int(found[0]) for found in _ARTICLE.findall(page)]
        self.cuts = [int(found) for found in _CUT_MARK.findall(page)]

    def apply(self, frame: str) -> None:
        articles = [int(found[0]) for found in _ARTICLE.findall(frame)]
        marked = [int(found) for found in _CUT_MARK.findall(frame)]
        if _WHOLE_BRANCH.search(frame):
            self.order, self.cuts = articles, marked
        elif tail := _BRANCH_TAIL.search(frame):
            after = int(tail[1])
            if after in self.order:
                self.order = self.order[: self.order.index(after) + 1] + articles
                self.cuts = [cut for cut in self.cuts if cut in self.order] + marked
            else:
                self.out_of_date = True
        if cuts := _CUTS.search(frame):  # chat.js moves every mark to the messages listed
            self.cuts = [int(cut) for cut in cuts[1].split() if int(cut) in self.order]
        for message_id, role, status, body in _ARTICLE.findall(frame):
            message = self.shown.setdefault(int(message_id), ShownMessage())
            message.role, message.status, message.html = role, status, body
            parts = parts_of(body)
            message.content = parts.get("content", "") if status == "streaming" else parts.get("content", "").strip()
            message.reasoning = parts.get("reasoning", "")
        for swap, message_id, part, text in _PART_SWAP.findall(frame):
            message = self.shown.setdefault(int(message_id), ShownMessage())
            before = getattr(message, part) if swap == "beforeend" else ""
            setattr(message, part, before + html.unescape(text))
        if 'id="chat-notice"' in frame:
            self.notices.append(visible_text(frame).strip())


@dataclass
class ChatSocket(ShownPage):
    communicator: WebsocketCommunicator | None = None
    frames: list[tuple[float, str]] = field(default_factory=list)

    async def send(self, **action) -> None:
        await self.communicator.send_to(text_data=json.dumps(action))

    async def receive(self, timeout: float = 5.0) -> str:
        frame = await self.communicator.receive_from(timeout=timeout)
        self.frames.append((time.monotonic(), frame))
        self.apply(frame)
        return frame

    async def until(self, predicate, timeout: float = 10.0) -> None:
        """Receive frames until `predicate(self)` holds."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; last frames: {[f for _t, f in self.frames[-3:]]}")
            await self.receive(timeout=remaining)

    async def until_status(self, message_id: int, *statuses: str, timeout: float = 10.0) -> ShownMessage:
        await self.until(lambda s: s.shown.get(message_id, ShownMessage()).status in statuses, timeout)
        return self.shown[message_id]

    async def close(self) -> None:
        await self.communicator.disconnect()


async def generations_finished(timeout: float = 10.0) -> None:
    """Wait for the generations started in this event loop, titling included.

    A generation outlives the frame that says its answer is done: it titles
    the chat next, and titling a long conversation reads its whole branch
    first. A test that ends meanwhile flushes the database under it.
    """
    from chatapp import generation

    loop = asyncio.get_running_loop()
    tasks = [g.task for g in list(generation._running.values()) if g.task is not None and g.task.get_loop() is loop]
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)


def session_cookie(user) -> bytes:
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}".encode()


async def open_chat(
    user, conversation_id, origin: bytes = ORIGIN, query: str = "", cookies: bytes = b""
) -> tuple[ChatSocket, bool]:
    """A socket on the chat, as its page opens it; `query` as the page's address for it has it (`?end=0`).

    `cookies`: more of them than the session's, as `name=value; ...`.
    """
    from asgiref.sync import sync_to_async

    cookie = await sync_to_async(session_cookie)(user) if user is not None else b""
    cookie = b"; ".join(part for part in (cookie, cookies) if part)
    communicator = WebsocketCommunicator(
        application,
        f"/ws/chat/{conversation_id}/{query}",
        headers=[(b"cookie", cookie), (b"origin", origin), (b"host", b"127.0.0.1")],
    )
    connected, _code = await communicator.connect(timeout=15)  # a wait, not a speed check (conftest.BROWSER_WAIT_MS)
    return ChatSocket(communicator=communicator), connected


async def settle(seconds: float = 0.05) -> None:
    await asyncio.sleep(seconds)
