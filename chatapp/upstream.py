"""From a conversation to a provider request: the chat's side of the provider core.

The allow-list and credential rules are the provider core's; this module only
gathers the branch on screen, fits it to the model's context window, and adds
the conversation's settings.
"""

from chatapp import attachments
from chatapp.models import Conversation, Message
from chatapp.variables import Reader, filled_in
from providers import events
from providers.completion import ChatMessage, CompletionRequest, is_image
from providers.credentials import CredentialError, Endpoint, UserCredentials
from providers.database import database_sync_to_async
from providers.model_table import ModelTable
from providers.registry import Provider, get_provider

CHARS_PER_TOKEN = 3.5  # a cautious estimate: we cannot run every provider's tokenizer
TOKENS_PER_MESSAGE = 4
TOKENS_PER_IMAGE = 1600  # about what Anthropic and OpenAI count for a large image
ANSWER_RESERVE = 4096  # room left for the answer when max_tokens is not set
# After an answer cut short, where the API does not take it as the start of the answer to write (a prefill).
CONTINUE_INSTRUCTION = (
    "Your answer above was cut off. Continue it from exactly where it stops, without repeating any of it and "
    "without a preamble."
)


def estimated_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE


def message_tokens(message: Message) -> int:
    """A message's estimated size in the model's window, its files included (of a PDF, its text: "read")."""
    files = sum(
        TOKENS_PER_IMAGE if is_image(d["type"]) else int(d.get("read", d["size"]) / CHARS_PER_TOKEN)
        for d in message.attachments
    )
    return estimated_tokens(message.content) + files


def fit_to_context(path: list[Message], system: str, context_length: int | None, max_tokens: int | None) -> int:
    """How many of the oldest messages to leave out so the rest fits the window.

    The system prompt and the last message (the question) are always kept.
    """
    if not context_length or not path:
        return 0
    budget = context_length - (max_tokens or min(ANSWER_RESERVE, context_length // 4)) - estimated_tokens(system)
    total = sum(message_tokens(m) for m in path)
    cut = 0
    while total > budget and cut < len(path) - 1:
        total -= message_tokens(path[cut])
        cut += 1
    # Never start on an answer: the provider expects a question first.
    while cut < len(path) - 1 and path[cut].role == Message.Role.ASSISTANT:
        cut += 1
    return cut


def history_for(
    conversation: Conversation,
    answer: Message,
    context_length: int | None = None,
    branch: list[Message] | None = None,
) -> tuple[list[ChatMessage], int | None]:
    """The branch up to (not including) `answer` as the provider will see it, and where it was cut to fit.

    An answer continued (its text so far, Progress.of) comes last, as its
    model's own. The cut is the id of the oldest message kept, or None when
    all fit. The conversation's messages are read unless `branch`, the path
    to `answer` already read, is given. Files are named, their bytes still to
    read (attachments.aread).
    """
    leaf_id = answer.id if answer.content else answer.parent_id
    path = [m for m in conversation.path_to(leaf_id, branch) if m.content or m.role == Message.Role.USER]
    cut = fit_to_context(path, conversation.system_prompt, context_length, conversation.max_tokens)
    history = [
        ChatMessage(
            role=m.role,
            content=m.content,
            reasoning=m.reasoning,
            reasoning_details=m.reasoning_details,
            files=attachments.parts(m.attachments),
        )
        for m in path[cut:]
    ]
    return history, path[cut].id if cut else None


def continuation(history: list[ChatMessage], provider: Provider, thinking: bool) -> list[ChatMessage]:
    """`history` ending in an answer cut short, asking for the rest of it.

    OpenRouter and Anthropic take a last assistant message as the start of
    the answer to write (a prefill), so the model goes on mid-sentence
    (Anthropic not with thinking on). Other APIs would answer it anew: there
    a question after it asks for the rest.
    """
    *before, partial = history
    if provider.prefills and not (thinking and provider.protocol == "anthropic-messages"):
        return [*before, ChatMessage(role="assistant", content=partial.content)]  # its thinking is not sent back
    return [*history, ChatMessage(role="user", content=CONTINUE_INSTRUCTION)]


def routing_for(conversation: Conversation) -> dict | None:
    """OpenRouter's provider routing: an order to try, and whether others may serve if those fail.

    No fallbacks means something without an order too: only the provider
    OpenRouter picks first for the model.
    """
    if conversation.provider_order:
        return {"order": list(conversation.provider_order), "allow_fallbacks": conversation.allow_fallbacks}
    return None if conversation.allow_fallbacks else {"allow_fallbacks": False}


async def prepare_request(
    conversation: Conversation, answer: Message, branch: list[Message] | None = None, reader: Reader | None = None
) -> tuple[CompletionRequest, Endpoint] | events.StreamError:
    """The request to send for `answer`, or the error that prevents it; its system prompt's variables filled in for
    `reader`.

    `branch` is the path to `answer` if the caller has just read it (the
    chat socket shows it before the answer starts): then the history costs
    no query. Each query here is a trip through the one thread that serves
    the process's database calls, where a hundred chats starting at once
    wait for each other.
    """
    table = await ModelTable.acurrent()
    credentials = await _credentials_of_owner(conversation)
    resolved = table.resolve(answer.model, credentials.reachable())
    if resolved is None:
        return events.StreamError(answer.model, code="model_not_allowed", status=403)
    provider, model = get_provider(resolved[0]), resolved[1]
    try:
        endpoint = credentials.endpoint(provider)
    except CredentialError:
        # The page explains it in the reader's language (Message.error_explanation).
        return events.StreamError(provider.name, code="no_key")
    entry = table.find(provider.slug, model)
    context_length = entry.context_length if entry else None
    if not branch or branch[-1].id != answer.id:  # none, or another branch came on screen meanwhile
        history, cut_at = await database_sync_to_async(history_for)(conversation, answer, context_length)
    else:
        history, cut_at = history_for(conversation, answer, context_length, branch)
    if answer.content:
        history = continuation(history, provider, thinking=bool(conversation.reasoning_effort))
    files = [part for message in history for part in message.files]
    if entry is not None and entry.text_only and any(part.is_image for part in files):
        return events.StreamError(answer.model, code="no_image_input", status=400)
    await attachments.aread(files)
    if cut_at is not None:  # recorded on the answer: the page marks where the model's memory began
        answer.context_start_id = cut_at
        await Message.objects.filter(pk=answer.pk).aupdate(context_start_id=cut_at)
    request = CompletionRequest(
        provider=provider,
        model=model,
        messages=history,
        system=filled_in(conversation.system_prompt, reader),
        temperature=conversation.temperature,
        top_p=conversation.top_p,
        max_tokens=conversation.max_tokens,
        reasoning_effort=conversation.reasoning_effort,
        provider_routing=routing_for(conversation) if provider.slug == "openrouter" else None,
    )
    return request, endpoint


@database_sync_to_async
def _credentials_of_owner(conversation: Conversation) -> UserCredentials:
    return UserCredentials(conversation.owner)  # the owner is usually known already (chatapp.exchanges)
