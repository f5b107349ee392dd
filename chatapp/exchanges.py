"""Starting an answer: a new question, a regeneration, an edit, or more of one cut short; and rewriting one.

Each runs in one transaction with the conversation row locked, so two tabs
cannot start two answers in one conversation at once, nor rewrite one as it
is written.
"""

import uuid
from collections.abc import Sequence
from contextlib import contextmanager

from django.db import transaction
from django.utils.translation import gettext_lazy as _

from chatapp import attachments
from chatapp.models import Conversation, Message, Preset
from providers import ratelimit

MAX_MODEL_REF = 200
MAX_MESSAGE_CHARS = 100_000


class Refused(Exception):
    """Why an answer was not started, for the reader."""

    def __init__(self, reason) -> None:
        super().__init__(str(reason))
        self.reason = reason


Started = tuple[Conversation, Message]


def message_id(value) -> int | None:
    """A message id from a form or a socket frame; None for anything else, or for a number no database row can have."""
    text = "" if value is None else str(value)
    return int(text) if text.isdecimal() and len(text) < 19 else None


def question_problem(text: str, with_files: bool = False):
    """Why `text` (stripped) cannot be sent as a question, translated; None if it can.

    A question may be files alone (`with_files`): "What is in this picture?" is optional.
    """
    if not text and not with_files:
        return _("The message is empty.")
    if len(text) > MAX_MESSAGE_CHARS:
        return _("The message is too long.")
    return None


async def acount_request(user) -> None:
    """One answer against the user's RATE_LIMIT, as a proxied request counts; Refused when over it."""
    retry_after = await ratelimit.ahit(user.pk)
    if retry_after is not None:
        raise Refused(ratelimit.refusal(retry_after))


@contextmanager
def _locked(user, conversation_id: uuid.UUID, create_with_model: str | None = None):
    with transaction.atomic():
        created = False
        conversation = Conversation.objects.select_for_update().filter(id=conversation_id).first()
        if conversation is None and create_with_model is not None:  # made as another request may make it too
            conversation, created = Conversation.objects.select_for_update().get_or_create(
                id=conversation_id, defaults=new_chat_fields(user, create_with_model)
            )
        if conversation is None or conversation.owner_id != user.id or conversation.deleted_at is not None:
            raise Refused(_("This conversation was not found."))
        conversation.owner = user  # known now: the generation needs the owner and need not fetch them
        # A conversation created just now has no messages, let alone one being written.
        if not created and conversation.messages.filter(status=Message.Status.STREAMING).exists():
            raise Refused(_("An answer is still being written. Stop it or wait for it to finish."))
        yield conversation


def _check_model_ref(model: str) -> None:
    """A model the picker sent: any name the allow-list then judges (chatapp.upstream), but not an endless one."""
    if len(model) > MAX_MODEL_REF:
        raise Refused(_("This model is not available on this server."))


def start_exchange(
    user, conversation_id: uuid.UUID, text: str, model: str, files: Sequence[uuid.UUID] = ()
) -> Started:
    """A new question, with the files attached to it (chatapp.attachments: uploaded already), and its answer."""
    _check_model_ref(model)
    with _locked(user, conversation_id, create_with_model=model) as conversation:
        model = model or conversation.model or default_model_ref(user)
        described = attachments.described_for_question(conversation, list(files))
        question, answer = conversation.add_exchange(text, conversation.current_leaf_id, model, described)
        attachments.mark_sent(question)
        return conversation, answer


def start_regeneration(user, conversation_id: uuid.UUID, message_id: int | None, model: str = "") -> Started:
    """A new version of an answer, by `model` (the picker's) if given, else by the chat's model."""
    _check_model_ref(model)
    with _locked(user, conversation_id) as conversation:
        answer = conversation.messages.filter(
            pk=message_id or conversation.current_leaf_id, role=Message.Role.ASSISTANT
        ).first()
        if answer is None or answer.parent is None:
            raise Refused(_("There is no answer to regenerate."))
        return conversation, conversation.regenerate(answer, model or conversation.model or answer.model)


def start_continuation(user, conversation_id: uuid.UUID, message_id: int | None) -> Started:
    """More of an answer cut short (Message.cut_short), the last of its branch, written on in place by its model."""
    with _locked(user, conversation_id) as conversation:
        answer = conversation.messages.filter(pk=message_id, role=Message.Role.ASSISTANT).first()
        if answer is None or not answer.cut_short or conversation.messages.filter(parent=answer).exists():
            raise Refused(_("There is no answer to continue."))
        return conversation, conversation.resume(answer)


def start_edit(user, conversation_id: uuid.UUID, message_id: int | None, text: str, model: str = "") -> Started:
    """An edited question and its answer, by `model` (the picker's) if given, else by the chat's model."""
    _check_model_ref(model)
    with _locked(user, conversation_id) as conversation:
        question = conversation.messages.filter(pk=message_id, role=Message.Role.USER).first()
        if question is None:
            raise Refused(_("That message was not found."))
        if problem := question_problem(text, with_files=bool(question.attachments)):  # the edit keeps its files
            raise Refused(problem)
        _question, answer = conversation.edit(question, text, model or conversation.model)
        return conversation, answer


def rewrite_answer(user, conversation_id: uuid.UUID, message_id: int | None, text: str) -> Started:
    """An answer as its reader words it (Conversation.edit_answer), now on screen; the same answer if `text` is
    its text already. Nothing is asked of a model."""
    if problem := question_problem(text):
        raise Refused(problem)
    with _locked(user, conversation_id) as conversation:
        answer = conversation.messages.filter(pk=message_id, role=Message.Role.ASSISTANT).first()
        if answer is None:
            raise Refused(_("That message was not found."))
        return conversation, answer if text == answer.content else conversation.edit_answer(answer, text)


def default_model_ref(user) -> str:
    """The model a new chat of the user's starts with."""
    from chatapp import picker
    from providers.credentials import reachable_providers

    return picker.default_model_ref(user, reachable_providers(user))


def new_chat_fields(user, model: str = "") -> dict:
    """The fields a new chat of the user's is made with: the settings of the preset they start new chats from, if
    any; `model` (the picker's) if given, else the model new chats start with (that preset's, if still offered)."""
    preset = Preset.objects.for_new_chats(user).first()
    return {**(preset.chat_settings() if preset else {}), "owner": user, "model": model or default_model_ref(user)}
