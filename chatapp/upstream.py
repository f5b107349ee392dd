"""From a conversation to a provider request: the chat's side of the provider core.

The allow-list and credential rules are the provider core's; this module only
gathers the branch on screen and the conversation's settings.
"""

from asgiref.sync import sync_to_async

from chatapp.models import Conversation, Message
from providers import events
from providers.completion import ChatMessage, CompletionRequest
from providers.credentials import CredentialError, Endpoint, aresolve_endpoint, reachable_providers
from providers.model_table import ModelTable
from providers.registry import get_provider


def history_for(conversation: Conversation, answer: Message) -> list[ChatMessage]:
    """The branch up to (not including) `answer`, as the provider will see it."""
    path = conversation.path_to(answer.parent_id)
    return [
        ChatMessage(role=m.role, content=m.content, reasoning=m.reasoning, reasoning_details=m.reasoning_details)
        for m in path
        if m.content or m.role == Message.Role.USER
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
    history = await sync_to_async(history_for)(conversation, answer)
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
