import uuid

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from chatapp.generation import interrupt_orphans
from chatapp.models import Conversation
from chatapp.picker import default_model_ref, picker_groups
from providers.model_table import ModelTable
from providers.credentials import reachable_providers


def _get_conversation_for_user(request: HttpRequest, conversation_id) -> Conversation:
    """The one ownership check: another user's conversation is a 404."""
    return get_object_or_404(Conversation, id=conversation_id, owner=request.user)


def _render_chat(request: HttpRequest, conversation: Conversation | None) -> HttpResponse:
    table = ModelTable.current()
    providers = reachable_providers(request.user)
    branch = []
    if conversation is not None:
        interrupt_orphans(conversation)
        branch = conversation.branch()
    selected = (conversation.model if conversation else "") or default_model_ref(request.user, providers, table)
    context = {
        "conversation": conversation,
        # A new chat gets its id now; the row is created with the first message.
        "conversation_id": conversation.id if conversation else uuid.uuid4(),
        "branch": branch,
        "conversations": Conversation.objects.filter(owner=request.user).order_by("-pinned", "-updated_at")[:50],
        "providers_configured": bool(providers),
        "model_groups": picker_groups(providers, table),
        "selected_model": selected,
    }
    return render(request, "chatapp/chat.html", context)


def home(request: HttpRequest) -> HttpResponse:
    latest = Conversation.objects.filter(owner=request.user).order_by("-updated_at").first()
    if latest is not None:
        return redirect(latest)
    return _render_chat(request, None)


def new_chat(request: HttpRequest) -> HttpResponse:
    return _render_chat(request, None)


def conversation(request: HttpRequest, conversation_id) -> HttpResponse:
    return _render_chat(request, _get_conversation_for_user(request, conversation_id))
