"""From a conversation to a provider request: the chat's side of the provider core.

The allow-list and credential rules are the provider core's; this module only
gathers the branch on screen, fits it to the model's context window, and adds
the conversation's settings.
"""

from asgiref.sync import sync_to_async

from chatapp.models import Conversation, Message
from providers import events
from providers.completion import ChatMessage, CompletionRequest
from providers.credentials import CredentialError, Endpoint, aresolve_endpoint, reachable_providers
from providers.model_table import ModelTable
from providers.registry import get_provider

CHARS_PER_TOKEN = 3.5  # a cautious estimate: we cannot run every provider's tokenizer
TOKENS_PER_MESSAGE = 4
ANSWER_RESERVE = 4096  # room left for the answer when max_tokens is not set


def estimated_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE


def fit_to_context(path: list[Message], system: str, context_length: int | None, max_tokens: int | None) -> int:
    """How many of the oldest messages to leave out so the rest fits the window.

    The system prompt and the last message (the question) are always kept.
    """
    if not context_length or not path:
        return 0
    budget = context_length - (max_tokens or min(ANSWER_RESERVE, context_length // 4)) - estimated_tokens(system)
    total = sum(estimated_tokens(m.content) for m in path)
    cut = 0
    while total > budget and cut < len(path) - 1:
        total -= estimated_tokens(path[cut].content)
        cut += 1
    # Never start on an answer: the provider expects a question first.
    while cut < len(path) - 1 and path[cut].role == Message.Role.ASSISTANT:
        cut += 1
    return cut


def history_for(conversation: Conversation, answer: Message, context_length: int | None = None) -> list[ChatMessage]:
    """The branch up to (not including) `answer`, as the provider will see it.

    Records on `answer` where the history was cut, if it was.
    """
    path = [m for m in conversation.path_to(answer.parent_id) if m.content or m.role == Message.Role.USER]
    cut = fit_to_context(path, conversation.system_prompt, context_length, conversation.max_tokens)
    if cut:
        answer.context_start_id = path[cut].id
        Message.objects.filter(pk=answer.pk).update(context_start_id=path[cut].id)
    return [
        ChatMessage(role=m.role, content=m.content, reasoning=m.reasoning, reasoning_details=m.reasoning_details)
        for m in path[cut:]
    ]


def routing_for(conversation: Conversation) -> dict | None:
    if not conversation.provider_order:
        return None
    return {"order": list(conversation.provider_order), "allow_fallbacks": conversation.allow_fallbacks}


async def prepare_request(
    conversation: Conversation, answer: Message
) -> tuple[CompletionRequest, Endpoint] | events.StreamError:
    """The request to send for `answer`, or the error that prevents it."""
    table = await ModelTable.acurrent()
    owner = await sync_to_async(lambda: conversation.owner)()
    reachable = await sync_to_async(reachable_providers)(owner)
    resolved = table.resolve(answer.model, reachable)
    if resolved is None:
        return events.StreamError(answer.model, code="model_not_allowed", status=403)
    provider, model = get_provider(resolved[0]), resolved[1]
    try:
        endpoint = await aresolve_endpoint(owner, provider)
    except CredentialError:
        # The page explains it in the reader's language (Message.error_explanation).
        return events.StreamError(provider.name, code="no_key")
    entry = table.find(provider.slug, model)
    history = await sync_to_async(history_for)(conversation, answer, entry.context_length if entry else None)
    request = CompletionRequest(
        provider=provider,
        model=model,
        messages=history,
        system=conversation.system_prompt,
        temperature=conversation.temperature,
        top_p=conversation.top_p,
        max_tokens=conversation.max_tokens,
        reasoning_effort=conversation.reasoning_effort,
        provider_routing=routing_for(conversation) if provider.slug == "openrouter" else None,
    )
    return request, endpoint
