import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

from django.conf import settings
from django.db import connection, models
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from providers.completion import is_image


# What went wrong, in the reader's language; the upstream's own message is
# shown beside it as it came.
ERROR_EXPLANATIONS = {
    "no_key": _("No API key is configured for this provider. Add one in Settings, or ask an administrator."),
    "model_not_allowed": _("This model is not available on this server."),
    "auth": _("The provider refused the API key (401/403). Check the key in Settings."),
    "payment": _("The provider says the account has run out of credit (402)."),
    "rate_limited": _("The provider is rate limiting requests (429). Wait a moment and retry."),
    "timeout": _("The provider took too long to answer."),
    "unreachable": _("The provider could not be reached."),
    "upstream": _("The provider returned an error."),
    "interrupted": _("The server stopped before this answer was complete."),
    "internal": _("Something went wrong while writing this answer."),
    "no_image_input": _("This model does not take images. Pick one that does, and retry."),
}


class ConversationQuerySet(models.QuerySet):
    def of(self, user) -> "ConversationQuerySet":
        """The user's conversations, the deleted ones aside."""
        return self.filter(owner=user, deleted_at__isnull=True)

    def written_in(self) -> "ConversationQuerySet":
        """Those with a message: a chat joins the list, a backup and the counts with its first (one given settings
        before that waits, and is purged if none comes)."""
        return self.exclude(current_leaf=None)

    def search(self, text: str) -> "ConversationQuerySet":
        """Titles and message text containing `text`, each with `match_id`: its newest message that matched, if any.

        On PostgreSQL full-text search (the "simple" configuration, so any
        language matches word by word) joins the substring match, which
        also covers scripts without spaces such as Chinese.
        """
        text = text.strip()
        if not text:
            return self
        matching = Message.objects.filter(conversation=models.OuterRef("pk"))
        hit = models.Q(content__icontains=text)
        if connection.vendor == "postgresql":
            from django.contrib.postgres.search import SearchQuery, SearchVector

            matching = matching.annotate(document=SearchVector("content", config="simple"))
            hit |= models.Q(document=SearchQuery(text, config="simple"))
        matching = matching.filter(hit)
        return self.filter(models.Q(title__icontains=text) | models.Exists(matching)).annotate(
            match_id=models.Subquery(matching.order_by("-id").values("id")[:1])
        )


class ChatSettings(models.Model):
    """What a chat asks its model with: a conversation's own, or a preset's to start chats from."""

    model = models.CharField(_("model"), max_length=200, blank=True, help_text=_("name@provider"))
    system_prompt = models.TextField(_("system prompt"), blank=True)
    temperature = models.FloatField(_("temperature"), null=True, blank=True)
    top_p = models.FloatField(_("top p"), null=True, blank=True)
    max_tokens = models.PositiveIntegerField(_("max tokens"), null=True, blank=True)
    reasoning_effort = models.CharField(_("reasoning effort"), max_length=10, blank=True)
    provider_order = models.JSONField(_("provider order"), default=list, blank=True)
    allow_fallbacks = models.BooleanField(_("allow fallbacks"), default=True)

    SETTINGS = (
        "model",
        "system_prompt",
        "temperature",
        "top_p",
        "max_tokens",
        "reasoning_effort",
        "provider_order",
        "allow_fallbacks",
    )

    class Meta:
        abstract = True

    def chat_settings(self) -> dict:
        """The settings, by name: to copy to another chat or preset, or to export."""
        return {name: getattr(self, name) for name in self.SETTINGS}

    def copy_settings_from(self, other: "ChatSettings") -> None:
        """Take `other`'s settings as they are (not saved)."""
        for name, value in other.chat_settings().items():
            setattr(self, name, value)


class Conversation(ChatSettings):
    """A chat owned by one user, with its per-chat settings.

    Messages form a tree (each points at its parent) so regenerations and
    edits become versions and branches; `current_leaf` is the branch on screen.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations", verbose_name=_("owner")
    )
    title = models.CharField(_("title"), max_length=200, blank=True)
    pinned = models.BooleanField(_("pinned"), default=False)
    # Archived conversations leave the sidebar (a search still finds them) until unarchived or written in again.
    archived_at = models.DateTimeField(_("archived"), null=True, blank=True)
    # Deleted conversations linger briefly so "Undo" can bring them back.
    deleted_at = models.DateTimeField(_("deleted"), null=True, blank=True)
    current_leaf = models.ForeignKey(
        "Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("current message")
    )
    # When it was last written in (a question, an answer ending, an answer rewritten): the list's order and
    # groups. Not `updated_at`, which a rename, new settings or a version flipped change too.
    written_at = models.DateTimeField(_("last written in"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = ConversationQuerySet.as_manager()
    unarchived = False  # set when a new answer takes it out of the archive: its page lists it again

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-pinned", "-written_at"], name="conversation_listing")]

    def __str__(self) -> str:
        return self.title or str(_("New chat"))

    def get_absolute_url(self) -> str:
        return reverse("chat:conversation", args=[self.id])

    def url_at(self, message_id: int) -> str:
        """The page opened at message `message_id` (BranchWindow.around), scrolled to it."""
        return f"{self.get_absolute_url()}?keep={message_id}#m-{message_id}"

    @cached_property
    def form_urls(self) -> dict[str, str]:
        """Where each message's forms post: reversed once per page, not once per message of a long one."""
        names = ("regenerate", "edit", "edit_answer", "branch", "continue", "message_text")
        return {name: reverse(f"chat:{name}", args=[self.id]) for name in names}

    def branch(self, messages: list["Message"] | None = None) -> list["Message"]:
        """The messages on screen: the path from the root to `current_leaf`."""
        return self.path_to(self.current_leaf_id, messages)

    def path_to(self, leaf_id: int | None, messages: list["Message"] | None = None) -> list["Message"]:
        """The path from the root to `leaf_id`: one query for the tree, then a walk up."""
        if messages is None:
            messages = list(self.messages.all())
        by_id = {m.id: m for m in messages}
        path = []
        node = by_id.get(leaf_id)
        while node is not None:
            path.append(node)
            node = by_id.get(node.parent_id)
        path.reverse()
        return path

    def branch_with_versions(self) -> list["Message"]:
        """The branch on screen, each message knowing its versions (‹ 2/3 ›) and whether a cut mark goes above it."""
        messages = list(self.messages.all())
        branch = self.path_to(self.current_leaf_id, messages)
        _mark_versions(branch, messages, branch)
        return branch

    def window_with_versions(
        self, pick: Callable[[list["Outline"]], "BranchWindow | None"]
    ) -> tuple["BranchWindow | None", list["Outline"]]:
        """A window of the branch on screen, and the branch as outlines.

        `pick` (BranchWindow.latest, say) chooses the window from the
        branch's outline; only its messages are read whole (with their texts,
        most of a long conversation's bytes), knowing their versions.
        """
        outline = [Outline(*row) for row in self.messages.values_list(*Outline._fields)]
        branch = self.path_to(self.current_leaf_id, outline)
        window = pick(branch)
        if not window or not window.messages:
            return window, branch
        ids = [m.id for m in window.messages]
        # A range, not a list of ids (SQLite caps a query's parameters): the
        # window's messages, and the few of other branches between them.
        by_id = {m.id: m for m in self.messages.filter(id__range=(min(ids), max(ids)))}
        messages = [by_id[i] for i in ids]
        _mark_versions(messages, outline, branch)
        return replace(window, messages=messages), branch

    def show_version(self, message: "Message") -> None:
        """Put `message` on screen, with the latest answers that follow it (found from ids: no texts read)."""
        children: dict[int, list[int]] = {}
        for message_id, parent_id in self.messages.values_list("id", "parent_id"):
            children.setdefault(parent_id, []).append(message_id)
        leaf_id = message.id
        while children.get(leaf_id):
            leaf_id = children[leaf_id][-1]
        self.current_leaf_id = leaf_id
        self.save(update_fields=["current_leaf", "updated_at"])

    def add_exchange(
        self, text: str, parent_id: int | None, model: str, attachments: list[dict] | None = None
    ) -> tuple["Message", "Message"]:
        """Save a user message (under `parent_id`, with `attachments` described) and the assistant message that will
        answer it."""
        question = self.messages.create(
            parent_id=parent_id, role=Message.Role.USER, content=text, attachments=attachments or []
        )
        answer = self._start_answer(question, model)
        return question, answer

    def regenerate(self, answer: "Message", model: str) -> "Message":
        """A new answer to the same question; the old one stays as a version."""
        return self._start_answer(answer.parent, model)

    def edit(self, question: "Message", text: str, model: str) -> tuple["Message", "Message"]:
        """An edited question starts a new branch beside the original, with the original's attachments."""
        return self.add_exchange(text, question.parent_id, model, question.attachments)

    def resume(self, answer: "Message") -> "Message":
        """`answer`, cut short, written on: the model goes on from its text, in place (chatapp.generation)."""
        answer.status = Message.Status.STREAMING
        answer.error_code = answer.error = answer.finish_reason = ""
        # White space at its end shows as nothing, and the model's next words bring their own (Anthropic refuses a
        # prefill that ends in it: chatapp.upstream.continuation).
        answer.content = answer.content.rstrip()
        answer.save(update_fields=["status", "error_code", "error", "finish_reason", "content", "updated_at"])
        self._writing(answer)  # by the model that wrote it: the chat's model stays as the picker has it
        return answer

    def edit_answer(self, answer: "Message", text: str) -> "Message":
        """The reader's wording of `answer`: a new version beside it, final at once; the model's stays a version.

        It names the model whose answer it rewrote, but carries none of its
        reasoning or figures: those were the model's, and its cost counts once.
        """
        from chatapp.rendering import render_markdown

        edited = self.messages.create(
            parent=answer.parent,
            role=Message.Role.ASSISTANT,
            content=text,
            content_html=render_markdown(text),
            model=answer.model,
            provider=answer.provider,
            edited=True,
        )
        self._writing(edited)
        return edited

    def _start_answer(self, question: "Message", model: str) -> "Message":
        answer = self.messages.create(
            parent=question, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING, model=model
        )
        self._writing(answer, model)
        return answer

    def _writing(self, answer: "Message", model: str | None = None) -> None:
        """`answer` is being written: it is the leaf on screen, `model` the chat's, and the chat back in the list."""
        self.current_leaf = answer
        self.model = self.model if model is None else model
        self.unarchived = self.archived_at is not None  # written in again: back in the list
        self.archived_at = None
        self.written_at = timezone.now()
        self.save(update_fields=["current_leaf", "model", "archived_at", "written_at", "updated_at"])


class Outline(NamedTuple):
    """A message without its texts: enough to find the branch on screen, versions and cuts."""

    id: int
    parent_id: int | None
    role: str
    status: str
    context_start_id: int | None


def _mark_versions(targets: list, messages: list, branch: list) -> None:
    """Tell each of `targets`, messages of `branch`, its versions and whether the model's memory began at it.

    Versions are siblings among `messages` (all of the conversation's):
    answers regenerated for one question, or questions edited from one
    point of the conversation.
    """
    siblings: dict[tuple[int | None, str], list] = {}
    for message in messages:
        siblings.setdefault((message.parent_id, message.role), []).append(message)
    cuts = {m.context_start_id for m in branch if m.context_start_id}
    for message in targets:
        message.cut_before = message.id in cuts
        versions = siblings[(message.parent_id, message.role)]
        index = [v.id for v in versions].index(message.id)
        message.version_number, message.version_count = index + 1, len(versions)
        message.previous_version = versions[index - 1] if index else None
        message.next_version = versions[index + 1] if index + 1 < len(versions) else None


def position(branch: list, message_id: int | None) -> int | None:
    """Where message `message_id` is on `branch` (messages or outlines); None if it is not there."""
    return next((i for i, m in enumerate(branch) if m.id == message_id), None)


PAGE_MESSAGES = 100  # a conversation page carries the latest of its branch; earlier ones load as the reader scrolls
KEPT_ABOVE = 20  # messages: a screenful or more above one the page must keep in place (a version flipped)


def _window_end(length: int, start: int) -> int:
    """Where a window from `start` down a branch of `length` ends: PAGE_MESSAGES on, or the end if fewer
    than a screenful would be left after it. A page that reaches the end shows new answers as they come."""
    return length if length - start - PAGE_MESSAGES < KEPT_ABOVE else start + PAGE_MESSAGES


@dataclass(frozen=True)
class BranchWindow:
    """The part of a branch a page carries: consecutive messages, and how many of the branch come before and after."""

    messages: list["Message"]
    earlier: int
    later: int = 0

    @classmethod
    def latest(cls, branch: list["Message"]) -> "BranchWindow":
        """The end of `branch`: its last PAGE_MESSAGES."""
        start = max(0, len(branch) - PAGE_MESSAGES)
        return cls(branch[start:], start)

    @classmethod
    def around(cls, branch: list["Message"], message_id: int | None) -> "BranchWindow":
        """PAGE_MESSAGES (or to the end) from a screenful above message `message_id`; the latest if it is not there.

        A page opened at a message (a search result, a version flipped) keeps
        it where the reader sees it, the messages after it one window at a
        time.
        """
        kept = position(branch, message_id)
        if kept is None:
            return cls.latest(branch)
        start = min(max(0, kept - KEPT_ABOVE), max(0, len(branch) - PAGE_MESSAGES))
        end = _window_end(len(branch), start)
        return cls(branch[start:end], start, len(branch) - end)

    @classmethod
    def before(cls, branch: list["Message"], message_id: int | None) -> "BranchWindow | None":
        """The PAGE_MESSAGES before message `message_id`; None if it is not on `branch` (the branch changed)."""
        end = position(branch, message_id)
        if end is None:
            return None
        start = max(0, end - PAGE_MESSAGES)
        return cls(branch[start:end], start)

    @classmethod
    def after(cls, branch: list["Message"], message_id: int | None) -> "BranchWindow | None":
        """The PAGE_MESSAGES after message `message_id` (all, if few more are left); None if it is not on `branch`."""
        kept = position(branch, message_id)
        if kept is None:
            return None
        end = _window_end(len(branch), kept + 1)
        return cls(branch[kept + 1 : end], 0, len(branch) - end)  # its page shows those before it

    @classmethod
    def whole(cls, branch: list["Message"]) -> "BranchWindow":
        return cls(branch, 0)

    @property
    def first_id(self) -> int | None:
        return self.messages[0].id if self.messages else None

    @property
    def last_id(self) -> int | None:
        return self.messages[-1].id if self.messages else None


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", _("User")
        ASSISTANT = "assistant", _("Assistant")

    class Status(models.TextChoices):
        STREAMING = "streaming", _("Streaming")
        DONE = "done", _("Done")
        STOPPED = "stopped", _("Stopped")
        ERROR = "error", _("Error")
        INTERRUPTED = "interrupted", _("Interrupted")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", verbose_name=_("conversation")
    )
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="children", verbose_name=_("parent")
    )
    role = models.CharField(_("role"), max_length=10, choices=Role.choices)
    content = models.TextField(_("content"), blank=True)
    # The sanitised Markdown rendering, made once when the answer is complete
    # so a long conversation renders without re-parsing every message.
    content_html = models.TextField(_("rendered content"), blank=True, editable=False)
    reasoning = models.TextField(_("reasoning"), blank=True)
    # What the provider needs back in later turns: OpenRouter reasoning_details
    # or Anthropic thinking blocks with their signatures.
    reasoning_details = models.JSONField(_("reasoning details"), default=list, blank=True)
    # A question's files, described (Attachment.described): the page draws them without reading the files.
    attachments = models.JSONField(_("attachments"), default=list, blank=True)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.DONE)
    # error_code is our category, explained on the page in the reader's
    # language; error is the upstream's own words, shown as they came.
    error_code = models.CharField(_("error code"), max_length=30, blank=True)
    error = models.TextField(_("error"), blank=True)
    model = models.CharField(_("model"), max_length=200, blank=True)
    provider = models.CharField(_("provider"), max_length=30, blank=True)
    finish_reason = models.CharField(_("finish reason"), max_length=30, blank=True)
    prompt_tokens = models.PositiveIntegerField(_("prompt tokens"), null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(_("completion tokens"), null=True, blank=True)
    reasoning_tokens = models.PositiveIntegerField(_("reasoning tokens"), null=True, blank=True)
    cached_tokens = models.PositiveIntegerField(_("cached tokens"), null=True, blank=True)
    cost = models.DecimalField(_("cost (USD)"), max_digits=14, decimal_places=8, null=True, blank=True)
    time_to_first_token = models.FloatField(_("time to first token (s)"), null=True, blank=True)
    duration = models.FloatField(_("duration (s)"), null=True, blank=True)
    reasoning_duration = models.FloatField(_("reasoning time (s)"), null=True, blank=True)
    # When older turns had to be left out to fit the model's context window:
    # the first message that was sent with this answer.
    context_start_id = models.BigIntegerField(_("first message sent"), null=True, blank=True)
    # An answer its reader rewrote (Conversation.edit_answer): a version beside the model's.
    edited = models.BooleanField(_("edited"), default=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="message_in_conversation"),
            models.Index(fields=["status"], name="message_status"),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"

    def token_counts(self) -> str:
        """"12 → 30 tokens" (prompt → completion), in the active language; "" before the upstream counted them."""
        if self.completion_tokens is None:
            return ""
        return gettext("%(prompt)s → %(completion)s tokens") % {
            "prompt": self.prompt_tokens or 0,
            "completion": self.completion_tokens,
        }

    @property
    def model_name(self) -> str:
        """The model without the provider it was routed to (`name@provider`)."""
        return self.model.rpartition("@")[0] or self.model

    @property
    def is_thinking(self) -> bool:
        return self.status == self.Status.STREAMING and not self.content

    @property
    def error_explanation(self) -> str:
        return ERROR_EXPLANATIONS.get(self.error_code, ERROR_EXPLANATIONS["upstream"])

    @property
    def is_final(self) -> bool:
        return self.status != self.Status.STREAMING

    @property
    def cut_short(self) -> bool:
        """An answer the model had not finished, with text to go on from (chatapp.exchanges.start_continuation):
        cut at its length limit, stopped, interrupted, or ended by an error on the way."""
        return (
            self.role == self.Role.ASSISTANT
            and bool(self.content)
            and (self.finish_reason == "length" or self.status not in (self.Status.DONE, self.Status.STREAMING))
        )

    def render(self) -> str:
        """Sanitised Markdown of the content, cached on the row once final."""
        if self.content_html and self.is_final:
            return self.content_html
        from chatapp.rendering import render_markdown

        return render_markdown(self.content)

    @property
    def file_ids(self) -> list[str]:
        """The ids of the question's files (Attachment.id, as text)."""
        return [described["id"] for described in self.attachments]

    @property
    def file_names(self) -> str:
        """The names of the question's files, as a list in a sentence."""
        return ", ".join(described["name"] for described in self.attachments)

    @property
    def attachment_links(self) -> list[dict]:
        """The question's files as its page links them: name, address, and whether it is an image."""
        return self.files_linked(lambda file_id: reverse("chat:attachment", args=[self.conversation_id, file_id]))

    def files_linked(self, url_of: Callable[[str], str]) -> list[dict]:
        """The question's files, each with the address `url_of` its id gives."""
        return [
            {**described, "url": url_of(described["id"]), "is_image": is_image(described["type"])}
            for described in self.attachments
        ]

    @property
    def tokens_per_second(self) -> float | None:
        generating = (self.duration or 0) - (self.time_to_first_token or 0)
        if not self.completion_tokens or generating <= 0:
            return None
        return self.completion_tokens / generating


class Attachment(models.Model):
    """A file sent with a question: an image the model sees, or a PDF or text file it reads.

    Uploaded as it is attached, before the question is sent; `message` is the
    question it was first sent with (an edit's copy shares it). The bytes live
    in the database, so every server process serves them.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="attachments", verbose_name=_("conversation")
    )
    message = models.ForeignKey(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("message")
    )
    name = models.CharField(_("name"), max_length=255)
    media_type = models.CharField(_("media type"), max_length=100)
    size = models.PositiveIntegerField(_("size (bytes)"))
    data = models.BinaryField(_("data"))
    # What the model reads of a document, when that is not `data` itself: a PDF's text.
    text = models.TextField(_("text"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")

    def __str__(self) -> str:
        return self.name

    @property
    def is_image(self) -> bool:
        return is_image(self.media_type)

    @property
    def url(self) -> str:
        return reverse("chat:attachment", args=[self.conversation_id, self.id])

    @classmethod
    def kept(cls, conversation: Conversation, file, message: Message | None = None) -> "Attachment":
        """A new row (not saved) for a file chatapp.uploads.checked let through."""
        return cls(
            conversation=conversation,
            message=message,
            name=file.name,
            media_type=file.media_type,
            size=len(file.data),
            data=file.data,
            text=file.text,
        )

    @property
    def described(self) -> dict:
        """What a message keeps of it (Message.attachments); "read", the size of a document's text, if it has one."""
        described = {"id": str(self.id), "name": self.name, "type": self.media_type, "size": self.size}
        if self.text:
            described["read"] = len(self.text.encode())
        return described


def _share_token() -> str:
    return secrets.token_urlsafe(16)  # 128 bits: a link is found only by being given it


class Share(models.Model):
    """A read-only link to a conversation, as it stood when shared: the branch up to `leaf`.

    Anyone signed in to this server who has the link sees it; the owner moves
    it on to the latest message by sharing again, or takes it down.
    """

    token = models.CharField(_("token"), max_length=32, primary_key=True, default=_share_token, editable=False)
    conversation = models.OneToOneField(
        Conversation, on_delete=models.CASCADE, related_name="share", verbose_name=_("conversation")
    )
    leaf = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+", verbose_name=_("last message"))
    shared_at = models.DateTimeField(_("shared"), auto_now=True)  # moved on when shared again

    class Meta:
        verbose_name = _("shared link")
        verbose_name_plural = _("shared links")

    def __str__(self) -> str:
        return str(self.conversation)

    def get_absolute_url(self) -> str:
        return reverse("shared", args=[self.token])


class PresetQuerySet(models.QuerySet):
    def for_new_chats(self, owner) -> "PresetQuerySet":
        """The preset `owner` starts new chats from: one at most (a constraint)."""
        return self.filter(owner=owner, for_new_chats=True)


class Preset(ChatSettings):
    """A user's named settings (model, system prompt, parameters) to start a chat from, or apply to one."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="presets", verbose_name=_("owner")
    )
    name = models.CharField(_("name"), max_length=100)
    # LibreChat's default preset: a new chat starts with its settings (chatapp.exchanges.new_chat_fields).
    for_new_chats = models.BooleanField(
        _("new chats start from it"),
        default=False,
        help_text=_("Each new chat takes this preset's settings, unless another preset is applied to it."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = PresetQuerySet.as_manager()

    class Meta:
        verbose_name = _("preset")
        verbose_name_plural = _("presets")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="preset_name_per_owner"),
            models.UniqueConstraint(
                fields=["owner"], condition=models.Q(for_new_chats=True), name="one_preset_for_new_chats_per_owner"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Prompt(models.Model):
    """A user's saved prompt: typing `/command` in the composer puts its text there."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="prompts", verbose_name=_("owner")
    )
    command = models.SlugField(
        _("command"),
        max_length=50,
        allow_unicode=True,
        help_text=_("Letters, digits, - and _; typed after a / in the message box."),
    )
    text = models.TextField(_("text"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("prompt")
        verbose_name_plural = _("prompts")
        ordering = ["command"]
        constraints = [models.UniqueConstraint(fields=["owner", "command"], name="prompt_command_per_owner")]

    def __str__(self) -> str:
        return f"/{self.command}"
