from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from chatapp.models import Conversation
from providers.registry import configured_providers


def _get_conversation_for_user(request: HttpRequest, conversation_id) -> Conversation:
    """The one ownership check: another user's conversation is a 404."""
    return get_object_or_404(Conversation, id=conversation_id, owner=request.user)


def _chat_context(request: HttpRequest, conversation: Conversation | None) -> dict:
    return {
        "conversation": conversation,
        "conversations": Conversation.objects.filter(owner=request.user).order_by("-pinned", "-updated_at")[:50],
        "providers_configured": bool(configured_providers()),
    }


def home(request: HttpRequest) -> HttpResponse:
    latest = Conversation.objects.filter(owner=request.user).order_by("-updated_at").first()
    if latest is not None:
        return redirect(latest)
    return render(request, "chatapp/chat.html", _chat_context(request, None))


def new_chat(request: HttpRequest) -> HttpResponse:
    return render(request, "chatapp/chat.html", _chat_context(request, None))


def conversation(request: HttpRequest, conversation_id) -> HttpResponse:
    chat = _get_conversation_for_user(request, conversation_id)
    return render(request, "chatapp/chat.html", _chat_context(request, chat))
