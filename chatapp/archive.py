"""Archived conversations: out of the sidebar, kept whole, found by a search and on their own page.

Archiving is for chats one is done with but wants to keep: the sidebar
lists only the others, a search of it still finds them (marked), and
writing in one again brings it back.
"""

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from chatapp.models import Conversation
from chatapp.views import _get_conversation_for_user, _is_open, back_in_list

ARCHIVED_PER_PAGE = 50


@require_GET
def archived(request: HttpRequest) -> HttpResponse:
    chats = Conversation.objects.of(request.user).exclude(archived_at=None).order_by("-archived_at")
    page = Paginator(chats, ARCHIVED_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "chatapp/archived.html", {"conversations": page})


@require_POST
def archive(request: HttpRequest, conversation_id) -> HttpResponse:
    chat = _get_conversation_for_user(request, conversation_id)
    if chat.archived_at is None:
        chat.archived_at = timezone.now()
        chat.save(update_fields=["archived_at"])  # not updated_at: it was not written in
    if request.htmx:  # its place in the list says so, with an Undo
        context = {"item": chat, "is_open": _is_open(request, chat)}
        return render(request, "chatapp/_conversation_archived.html", context)
    return redirect("chat:archived")


@require_POST
def unarchive(request: HttpRequest, conversation_id) -> HttpResponse:
    chat = _get_conversation_for_user(request, conversation_id)
    chat.archived_at = None
    chat.save(update_fields=["archived_at"])
    return back_in_list(request, chat)
