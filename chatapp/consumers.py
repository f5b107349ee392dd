"""The chat's WebSocket: `/ws/chat/<conversation id>/`.

The socket only carries actions in and HTML fragments out; the generation it
starts lives on without it (chatapp.generation). Frames are out-of-band swaps
for the htmx ws extension.
"""

import asyncio
import json
import logging
import uuid

from autobahn.exception import Disconnected
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http import HttpRequest
from django.middleware import csrf
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.html import escape
from django.utils.translation import gettext_lazy as _

from chatapp import attachments, exchanges, generation
from chatapp.languages import language_for_scope
from chatapp.models import BranchWindow, Conversation, Message, position
from chatapp.variables import Reader
from providers.database import database_sync_to_async

logger = logging.getLogger(__name__)

MAX_FRAME_BYTES = 256 * 1024
SYNC_TIMEOUT = 3.0


class ChatConsumer(AsyncWebsocketConsumer):
    owned = True  # False while the conversation's id is unused (connect)
    # Whether the page shows the branch's end, where answers are written. A
    # page opened above it (?keep=, its socket's ?end=0) is sent none until
    # it comes down to it and says so ("follow").
    at_end = True

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=4401)
            return
        self.conversation_id: uuid.UUID = self.scope["url_route"]["kwargs"]["conversation_id"]
        owner_id, self.language, streaming = await _opening(self.conversation_id, self.scope, self.user)
        self.csrf_token = _csrf_token(self.scope)
        if not await self._claim(owner_id):
            return
        # Per message being streamed: how many characters this socket has
        # shown, or None while it waits for the generation's snapshot.
        self.shown: dict[int, tuple[int, int] | None] = {}
        self.waiting: dict[int, list[dict]] = {}
        self.at_end = b"end=0" not in self.scope.get("query_string", b"").split(b"&")
        await self.channel_layer.group_add(generation.stream_group(self.conversation_id), self.channel_name)
        await self.accept()
        if self.at_end:
            for message_id in streaming:
                await self._request_snapshot(message_id)

    async def dispatch(self, message: dict) -> None:
        # The page's own actions check the owner themselves (exchanges, _on_stop).
        if not self.owned and not message["type"].startswith("websocket.") and not await self._claimed():
            return
        # Not Channels' dispatch: it closes stale database connections, through
        # the database thread, before every message. Every database call here
        # goes through providers.database, which does that itself, and a delta
        # (~20 a second per stream) touches no database at all.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def _claimed(self) -> bool:
        return await self._claim(await database_sync_to_async(_owner_of)(self.conversation_id))

    async def _claim(self, owner_id: int | None) -> bool:
        """Whether the conversation is still unclaimed or this user's; another user's closes the socket.

        An id nobody has used yet: whoever sends into it first owns it, and
        until this user is seen to (`owned`), nothing of it reaches this socket.
        """
        self.owned = owner_id == self.user.id
        if owner_id is not None and not self.owned:
            await self.close(code=4404)  # the same answer as for a conversation that is not there
            return False
        return True

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "conversation_id"):
            await self.channel_layer.group_discard(generation.stream_group(self.conversation_id), self.channel_name)

    # -- actions from the page ----------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        action = _parse_action(text_data, bytes_data)
        if action is None:
            await self._send_notice(_("That request was not understood."))
            return
        handler = {
            "send": self._on_send,
            "stop": self._on_stop,
            "regenerate": self._on_regenerate,
            "retry": self._on_regenerate,
            "continue": self._on_continue,
            "edit": self._on_edit,
            "follow": self._on_follow,
        }.get(action.get("action", "send"))
        if handler is None:
            await self._send_notice(_("That request was not understood."))
            return
        await handler(action)

    async def _on_send(self, action: dict) -> None:
        text = str(action.get("message", "")).strip()
        try:
            files = attachments.ids_from(action.get("attachment"))  # uploaded as they were attached
        except exchanges.Refused as refused:
            await self._send_notice(refused.reason)
            return
        if not text and not files:
            return  # an empty composer sends nothing, and says nothing
        if problem := exchanges.question_problem(text, with_files=bool(files)):
            await self._send_notice(problem)
            return
        model = str(action.get("model", ""))
        await self._start(exchanges.start_exchange, text, model, files, new_question=True, new_chat=True)

    async def _on_regenerate(self, action: dict) -> None:
        answer_id = exchanges.message_id(action.get("message_id"))
        await self._start(exchanges.start_regeneration, answer_id, str(action.get("model", "")))

    async def _on_continue(self, action: dict) -> None:
        await self._start(exchanges.start_continuation, exchanges.message_id(action.get("message_id")))

    async def _on_edit(self, action: dict) -> None:
        text = str(action.get("message", "")).strip()
        if problem := exchanges.question_problem(text, with_files=True):  # whether it has any: start_edit
            await self._send_notice(problem)
            return
        question_id = exchanges.message_id(action.get("message_id"))
        await self._start(exchanges.start_edit, question_id, text, str(action.get("model", "")), new_question=True)

    async def _on_follow(self, action: dict) -> None:
        """The page came down to the branch's end (`end`), or left it: answers being written follow it or stop.

        Come down, it drew them from the database, as far as they were saved:
        their text so far comes again, and the rest live. Gone up, it is sent
        none of those it was shown (`shown` holds only answers being written).
        """
        self.at_end = action.get("end") is True
        if not self.at_end:
            self.shown.clear()
            self.waiting.clear()
        elif self.owned:
            for message_id in await database_sync_to_async(_streaming)(self.conversation_id):
                await self._request_snapshot(message_id)

    async def _on_stop(self, action: dict) -> None:
        if self.owned or await self._claimed():
            await generation.request_stop(self.conversation_id)

    async def _start(self, start, *args, new_question: bool = False, new_chat: bool = False) -> None:
        """Start an answer (exchanges.start_*), show it, and let the generation run.

        The page gets the branch from the first new message on (the question
        sent or edited, else the new answer), not the whole conversation: a
        long one is megabytes of HTML, past what one frame may carry.
        """
        try:
            await exchanges.acount_request(self.user)
            conversation, answer, branch = await _started(start, self.user, self.conversation_id, *args)
        except exchanges.Refused as refused:
            await self._send_notice(refused.reason)
            return
        self.owned = True  # the start found it this user's (exchanges._locked)
        self.shown[answer.id] = (len(answer.content), len(answer.reasoning))  # a continued answer's, drawn below
        first_new = answer.parent_id if new_question else answer.id
        await self._send_html(
            self._branch_html(conversation, branch, first_new, first_message=new_chat and len(branch) == 2)
            + self._render("chatapp/_notice.html", {"text": ""})  # taken: an earlier refusal's notice goes
        )
        reader = Reader.of(self.user, self.language, self.scope.get("cookies", {}))
        generation.Generation(answer, conversation, branch, reader).start()

    # -- frames from generations ----------------------------------------------

    async def generation_delta(self, frame: dict) -> None:
        message_id = frame["message_id"]
        if message_id not in self.shown:
            if not self.at_end:
                return
            # A generation this socket has not seen start (another tab or
            # process started it): ask for the text so far first.
            await self._request_snapshot(message_id)
        if self.shown.get(message_id) is None:
            self.waiting.setdefault(message_id, []).append(frame)
            return
        await self._show_delta(frame)

    async def generation_snapshot(self, frame: dict) -> None:
        """The text so far: show the whole branch with it, then the waiting deltas.

        The whole branch, because this page may not have the message at all
        (it was started from another tab after this page loaded).
        """
        message_id = frame["message_id"]
        if message_id not in self.shown or self.shown[message_id] is not None:
            return  # not asked for (any more: the page left the end), or come already
        self.shown[message_id] = (len(frame["content"]), len(frame["reasoning"]))
        conversation, branch = await _branch_on_screen(self.conversation_id, frame)
        if conversation is not None:
            await self._send_html(self._from_question_html(conversation, branch, message_id))
        for waiting in self.waiting.pop(message_id, []):
            await self._show_delta(waiting)

    async def generation_done(self, frame: dict) -> None:
        """The answer is final: replace it with its rendered form and versions.

        A socket that never showed the answer start gets the branch from the
        answer's question on instead: the page may have neither. That is an
        answer started elsewhere that ended before its snapshot came back
        here, or without a single delta (an upstream error before any token).
        """
        message_id = frame["message_id"]
        shown_here = self.shown.pop(message_id, None) is not None
        self.waiting.pop(message_id, None)
        if not shown_here and not self.at_end:
            return
        conversation, branch = await _branch_on_screen(self.conversation_id)
        if (index := position(branch, message_id)) is None:
            return
        message = branch[index]
        if not shown_here:
            await self._send_html(self._from_question_html(conversation, branch, message_id))
            return
        html = self._render("chatapp/_message.html", {"message": message, "oob": True})
        if message.context_start_id:  # its cut is known now; the frame that showed it start cleared the others
            html += self._cuts_html(branch)
        await self._send_html(html)

    async def conversation_title(self, frame: dict) -> None:
        conversation = await database_sync_to_async(Conversation.objects.filter(id=self.conversation_id).first)()
        if conversation is not None:
            await self._send_html(self._render("chatapp/_conversation_title.html", {"conversation": conversation}))

    async def _show_delta(self, frame: dict) -> None:
        """Send what this socket has not shown yet, from the frame's offsets.

        A rewound frame (the text shown was reasoning after all) carries both
        parts whole, from offset 0: they replace what the page shows.
        """
        message_id = frame["message_id"]
        rewound = frame.get("rewound", False)
        content_shown, reasoning_shown = (0, 0) if rewound else self.shown[message_id]
        content = _unseen(frame["content_offset"], frame["content"], content_shown)
        reasoning = _unseen(frame["reasoning_offset"], frame["reasoning"], reasoning_shown)
        if not content and not reasoning and not rewound:
            return
        self.shown[message_id] = (content_shown + len(content), reasoning_shown + len(reasoning))
        swap = "innerHTML" if rewound else "beforeend"
        parts = []
        if reasoning or rewound:
            parts.append(f'<div hx-swap-oob="{swap}:#m-{message_id}-reasoning">{escape(reasoning)}</div>')
        if content and frame.get("reasoning_seconds") is not None and content_shown == 0:
            parts.append(
                self._render(
                    "chatapp/_reasoning_summary.html",
                    {"message_id": message_id, "reasoning_seconds": frame["reasoning_seconds"], "oob": True},
                )
            )
        if content or rewound:
            parts.append(f'<div hx-swap-oob="{swap}:#m-{message_id}-content">{escape(content)}</div>')
        await self._send_html("".join(parts))

    async def _request_snapshot(self, message_id: int) -> None:
        self.shown[message_id] = None
        await self.channel_layer.group_send(
            generation.control_group(self.conversation_id),
            {"type": "generation.sync", "message_id": message_id, "reply_channel": self.channel_name},
        )
        asyncio.get_running_loop().call_later(
            SYNC_TIMEOUT, lambda: asyncio.ensure_future(self._snapshot_overdue(message_id))
        )

    async def _snapshot_overdue(self, message_id: int) -> None:
        """No generation answered: if none is alive anywhere, the message was orphaned."""
        if message_id not in self.shown or self.shown[message_id] is not None:
            return
        message = await database_sync_to_async(Message.objects.filter(pk=message_id).first)()
        if message is None or await generation.aresume_or_interrupt(message):
            return
        await self.generation_done({"message_id": message_id})

    # -- output -------------------------------------------------------------

    def _branch_html(self, conversation, branch: list[Message], first_id: int | None, first_message=False) -> str:
        """The page's messages made `branch`, by sending it from message `first_id` on.

        The frame names the message it follows (data-branch-after), and the
        page (chat.js) drops what it shows after that one first: the old
        answer of a regeneration, the old branch of an edit; a page that does
        not show that message reloads. With no message before it (a new chat,
        an edit of the first question), the whole branch as a page draws it:
        its latest window.
        """
        index = position(branch, first_id) or 0
        context = {"conversation": conversation, "first_message": first_message}
        if not index:
            context["window"] = BranchWindow.latest(branch)
            return self._render("chatapp/_messages_swap.html", context)
        context.update(anchor=branch[index - 1], tail=branch[index:])
        # The messages kept may carry marks of answers that are gone (a regeneration's, an edit's).
        return self._render("chatapp/_messages_swap.html", context) + self._cuts_html(branch)

    def _from_question_html(self, conversation, branch: list[Message], answer_id: int) -> str:
        """The branch from answer `answer_id`'s question on: for a page that may show neither yet."""
        index = position(branch, answer_id)
        return self._branch_html(conversation, branch, branch[index].parent_id if index is not None else None)

    def _cuts_html(self, branch: list[Message]) -> str:
        """The marks of where the model's memory began, for `branch` (from branch_with_versions) as a whole."""
        cuts = [m.id for m in branch if m.cut_before]
        return self._render("chatapp/_context_cuts.html", {"cuts": cuts})

    def _render(self, template: str, context: dict) -> str:
        with translation.override(self.language):
            return render_to_string(template, {"csrf_token": self.csrf_token, **context})

    async def _send_html(self, html: str) -> None:
        try:
            await self.send(text_data=html)
        except Disconnected:
            pass  # the browser left while a frame was on its way: the generation goes on regardless

    async def _send_notice(self, text: str) -> None:
        await self._send_html(self._render("chatapp/_notice.html", {"text": text}))


def _unseen(offset: int, text: str, shown: int) -> str:
    """The part of `text` (which starts at `offset`) past what was shown."""
    if offset + len(text) <= shown:
        return ""
    return text[max(0, shown - offset) :]


def _csrf_token(scope: dict) -> str:
    """The CSRF token for the forms a frame carries, from the cookie the socket came with, as a page's would be.

    They are sent over the socket, but a form is whole only with its token,
    and Django warns (under DEBUG) of one drawn without. Empty for a missing
    or malformed cookie: the page's own forms fail the same way.
    """
    secret = scope.get("cookies", {}).get(settings.CSRF_COOKIE_NAME, "")
    if len(secret) != csrf.CSRF_SECRET_LENGTH or not set(secret) <= set(csrf.CSRF_ALLOWED_CHARS):
        return ""
    request = HttpRequest()
    request.META["CSRF_COOKIE"] = secret
    return csrf.get_token(request)


def _parse_action(text_data: str | None, bytes_data: bytes | None) -> dict | None:
    raw = text_data if text_data is not None else (bytes_data or b"").decode("utf-8", "replace")
    if len(raw) > MAX_FRAME_BYTES:
        return None
    try:
        action = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(action, dict):
        return None
    return action


def _owner_of(conversation_id: uuid.UUID) -> int | None:
    return Conversation.objects.filter(id=conversation_id).values_list("owner_id", flat=True).first()


# Each of these is one trip through the process's one database thread, where
# a hundred chats starting at once wait for each other.


@database_sync_to_async
def _opening(conversation_id: uuid.UUID, scope: dict, user) -> tuple[int | None, str, list[int]]:
    """For a socket opening: the conversation's owner, the reader's language, and the answers being written."""
    return _owner_of(conversation_id), language_for_scope(scope, user), _streaming(conversation_id)


def _streaming(conversation_id: uuid.UUID) -> list[int]:
    """The conversation's answers being written."""
    streaming = Message.objects.filter(conversation_id=conversation_id, status=Message.Status.STREAMING)
    return list(streaming.values_list("id", flat=True))


@database_sync_to_async
def _started(start, *args) -> tuple[Conversation, Message, list[Message]]:
    """Start an answer (exchanges.start_*) and read the branch it is on."""
    conversation, answer = start(*args)
    return conversation, answer, conversation.branch_with_versions()


@database_sync_to_async
def _branch_on_screen(conversation_id: uuid.UUID, snapshot: dict | None = None) -> tuple[Conversation | None, list]:
    """The conversation and its branch with versions; with a generation's `snapshot`, its text so far in place."""
    conversation = Conversation.objects.filter(id=conversation_id).first()
    if conversation is None:
        return None, []
    branch = conversation.branch_with_versions()
    if snapshot is not None and (index := position(branch, snapshot["message_id"])) is not None:
        message = branch[index]
        message.content, message.reasoning = snapshot["content"], snapshot["reasoning"]
        message.reasoning_duration = snapshot["reasoning_seconds"]
    return conversation, branch

