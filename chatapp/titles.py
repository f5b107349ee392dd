"""Conversation titles, made once after the first answer (SPEC sections 3 and 7).

With TITLE_MODEL set, that model is asked for a short title, under the same
allow-list and credential rules as the chat. Without it, or when anything goes
wrong, the title is the first words of the first message: a title is never
worth an error on the page.
"""

import asyncio
import logging
import re
import time

from django.conf import settings

from chatapp.models import Conversation, Message
from providers.completion import ChatMessage, CompletionError, CompletionRequest, complete
from providers.credentials import CredentialError, UserCredentials
from providers.database import database_sync_to_async
from providers.model_table import ModelTable
from providers.registry import get_provider
from providers.usage import UsageRecord, record_in_background

logger = logging.getLogger(__name__)

FALLBACK_WORDS = 8
FALLBACK_CHARS = 60
TITLE_CHARS = 80
TITLE_TIMEOUT = 30.0  # seconds; the fallback is better than a title that never comes
EXCERPT_CHARS = 2000  # of each message shown to the title model

# Not translated: it speaks to the model, and asks it to follow the
# conversation's own language.
TITLE_INSTRUCTIONS = (
    "You write titles for chat conversations. Reply with a short title of at most 6 words "
    "that says what the conversation is about, in the language of the conversation. "
    "Reply with the title only: no quotes, no Markdown, no final punctuation, no explanation."
)

_MARKUP = re.compile(r"[*_`#>~]+")
_LABEL = re.compile(r"^(?:title|titel|标题)\s*[:：]\s*", re.IGNORECASE)
_QUOTES = "\"'“”‘’„«»「」『』《》`"
_TRAILING = " \t.,;:!?。，；：！？-–—"


def _shorten(text: str, max_words: int | None, max_chars: int) -> str:
    """`text` on one line, cut at a word boundary with "…" when it is too long."""
    words = text.split()
    if not words:
        return ""
    kept = words[:max_words] if max_words else words
    cut = len(kept) < len(words)
    result = " ".join(kept)
    if len(result) > max_chars or (cut and len(result) + 1 > max_chars):
        cut = True
        limit = max_chars - 1  # room for the ellipsis
        space = result.rfind(" ", 0, limit + 1)
        # No space to cut at (one long word, or Chinese text): cut the word.
        result = result[:space] if space > 0 else result[:limit]
    if cut:
        result = result.rstrip(_TRAILING) + "…"
    return result


def fallback_title(text: str) -> str:
    """The first words of a message: at most 8 words and 60 characters."""
    return _shorten(text, FALLBACK_WORDS, FALLBACK_CHARS)


def clean_title(text: str) -> str:
    """A model's answer as a title: its first line, without quotes, Markdown or a label."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = _LABEL.sub("", _MARKUP.sub("", line).strip())
    line = line.strip().strip(_QUOTES).strip().rstrip(_TRAILING).strip(_QUOTES).strip()
    return _shorten(line, None, TITLE_CHARS)


async def atitle_conversation(conversation_id, ask_model: bool = True) -> str | None:
    """Title an untitled conversation from its first exchange; the title saved, or None.

    `ask_model=False` (the first answer failed or was stopped) goes straight to
    the first words: no "New chat" left behind, and no title model paid for
    an exchange that did not work.
    """
    conversation, branch = await _untitled(conversation_id)
    if conversation is None:
        return None
    question = next((m for m in branch if m.role == Message.Role.USER and _said(m)), None)
    if question is None:
        return None
    answer = next((m for m in branch if m.role == Message.Role.ASSISTANT and m.content.strip()), None)
    title = ""
    if ask_model and settings.TITLE_MODEL.strip():
        title = await _aask_title_model(conversation, question, answer)
    title = title or fallback_title(_said(question))
    if not title:
        return None
    # Only if still untitled: the user may have renamed it in the meantime.
    saved = await Conversation.objects.filter(pk=conversation.pk, title="").aupdate(title=title)
    return title if saved else None


@database_sync_to_async
def _untitled(conversation_id) -> tuple[Conversation | None, list[Message]]:
    """The conversation, with its owner, and its branch: if it has no title yet."""
    conversation = Conversation.objects.select_related("owner").filter(pk=conversation_id, title="").first()
    return (conversation, conversation.branch()) if conversation is not None else (None, [])


def _said(question: Message) -> str:
    """What a question says, for its title: its text, or the names of the files it is alone."""
    return question.content.strip() or question.file_names


async def _aask_title_model(conversation: Conversation, question: Message, answer: Message | None) -> str:
    """The title model's title, or "" when it is not allowed, not reachable or fails."""
    owner = conversation.owner
    table = await ModelTable.acurrent()
    credentials = await database_sync_to_async(UserCredentials)(owner)
    resolved = table.resolve(settings.TITLE_MODEL.strip(), credentials.reachable())
    if resolved is None:
        logger.warning("TITLE_MODEL %r is not allowed or not available; using the first words", settings.TITLE_MODEL)
        return ""
    provider, model = get_provider(resolved[0]), resolved[1]
    try:
        endpoint = credentials.endpoint(provider)
    except CredentialError:
        return ""
    excerpt = f"User: {_said(question)[:EXCERPT_CHARS]}"
    if answer is not None:
        excerpt += f"\n\nAssistant: {answer.content[:EXCERPT_CHARS]}"
    request = CompletionRequest(
        provider=provider,
        model=model,
        system=TITLE_INSTRUCTIONS,
        messages=[ChatMessage(role="user", content=f"Conversation:\n\n{excerpt}\n\nTitle:")],
    )
    started = time.monotonic()
    usage, status, error, text = None, 200, "", ""
    try:
        result = await asyncio.wait_for(complete(request, endpoint), TITLE_TIMEOUT)
        usage, text = result.usage, result.text
    except CompletionError as exc:
        status, error = exc.error.status or 502, exc.error.message
    except TimeoutError:
        status, error = 504, "The title model did not answer in time."
    except Exception:
        # A title must never break the end of a generation.
        logger.exception("title for conversation %s failed", conversation.pk)
        status, error = 502, "The title could not be read."
    record_in_background(
        usage=usage,
        user_id=conversation.owner_id,
        provider=provider.slug,
        model=model,
        source=UsageRecord.Source.TITLE,
        duration=time.monotonic() - started,
        status_code=status,
        error=error,
    )
    return clean_title(text)
