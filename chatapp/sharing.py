"""Read-only links to a conversation (`/s/<token>/`) for the others signed in to this server, or, where
SHARED_LINKS_PUBLIC is on, for anyone who has the link.

A link shows the branch as it stood when it was shared, up to Share.leaf:
what the owner writes afterwards stays theirs until they share again, and
other branches are never shown. The files of the messages it shows are served
under the link, and no others. A reader may continue it as a chat of their
own: a copy of what they see, made as an export and import would make it;
a reader not signed in is asked to sign in first.
"""

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from chatapp import attachments, exchanges, transfer
from chatapp.models import Attachment, Message, Share
from chatapp.views import _get_conversation_for_user, plain_text


@require_http_methods(["GET", "POST"])
def share(request: HttpRequest, conversation_id) -> HttpResponse:
    """`/c/<id>/share/`, the owner's: the link, made or moved on to the latest message (POST), or taken down
    (POST action=unshare). HTMX gets the panel of the chat's header; a plain request, a page."""
    conversation = _get_conversation_for_user(request, conversation_id)
    if request.method == "POST":
        if request.POST.get("action") == "unshare":
            Share.objects.filter(conversation=conversation).delete()
        elif conversation.current_leaf_id is not None:
            leaf = {"leaf_id": conversation.current_leaf_id}
            Share.objects.update_or_create(conversation=conversation, defaults=leaf)
        if not request.htmx:
            return redirect("chat:share", conversation.id)
    shared = Share.objects.filter(conversation=conversation).first()
    context = {
        "conversation": conversation,
        "shared": shared,
        "link": request.build_absolute_uri(shared.get_absolute_url()) if shared else "",
        "behind": shared is not None and shared.leaf_id != conversation.current_leaf_id,
        "public": settings.SHARED_LINKS_PUBLIC,
    }
    return render(request, "chatapp/_share_panel.html" if request.htmx else "chatapp/share.html", context)


def _shared(token: str) -> Share:
    """The link's share, unless taken down or its chat deleted: else a 404, as for a link never made."""
    found = Share.objects.select_related("conversation__owner", "leaf")
    return get_object_or_404(found, token=token, conversation__deleted_at__isnull=True)


def _may_read(request: HttpRequest) -> bool:
    """Whether the reader may read links: anyone signed in, and anyone at all where SHARED_LINKS_PUBLIC is on."""
    return request.user.is_authenticated or settings.SHARED_LINKS_PUBLIC


@login_not_required
@require_http_methods(["GET", "POST"])
def shared(request: HttpRequest, token: str) -> HttpResponse:
    """`/s/<token>/`: the shared branch, read only; POST continues it as a chat of the reader's own."""
    if not _may_read(request) or (request.method == "POST" and not request.user.is_authenticated):
        return redirect_to_login(request.path)  # before the token is looked at: no telling which are live
    link = _shared(token)
    path = link.conversation.path_to(link.leaf_id)
    if request.method == "POST":
        chosen = {"title": link.conversation.title, "model": link.conversation.model}  # not the system prompt
        return redirect(transfer.copy_of(link.conversation, path, request.user, chosen))
    for message in path:
        message.shared_files = message.files_linked(lambda file_id: reverse("shared_file", args=[token, file_id]))
    context = {  # "messages" are the flashes
        "share": link, "conversation": link.conversation, "shown": path, "text_url": reverse("shared_text", args=[token])
    }
    return render(request, "chatapp/shared.html", context)


@login_not_required
@require_GET
def shared_file(request: HttpRequest, token: str, attachment_id) -> HttpResponse:
    """A file of a message the link shows; any other file, of the chat or not, is a 404."""
    if not _may_read(request):
        return redirect_to_login(request.path)
    link = _shared(token)
    if str(attachment_id) not in {file_id for message in _shown(link, "attachments") for file_id in message.file_ids}:
        raise Http404
    return attachments.served(Attachment.objects.filter(id=attachment_id, conversation_id=link.conversation_id))


@login_not_required
@require_GET
def shared_text(request: HttpRequest, token: str) -> HttpResponse:
    """`?message_id=`: the text of a message the link shows, as written (views.message_text); others are a 404."""
    if not _may_read(request):
        return redirect_to_login(request.path)
    link = _shared(token)
    wanted = exchanges.message_id(request.GET.get("message_id"))
    if wanted not in {message.id for message in _shown(link)}:
        raise Http404
    return plain_text(Message.objects.only("content").get(id=wanted).content)


def _shown(link: Share, *fields: str) -> list[Message]:
    """The messages the link shows (with `fields` besides those of the tree), root first."""
    tree = Message.objects.filter(conversation_id=link.conversation_id).only("id", "parent_id", *fields)
    return link.conversation.path_to(link.leaf_id, list(tree))


@require_http_methods(["GET", "POST"])
def shared_links(request: HttpRequest) -> HttpResponse:
    """`/settings/shared/`: every link the user has made, newest first; POST `token` takes one down."""
    links = Share.objects.filter(conversation__owner=request.user, conversation__deleted_at__isnull=True)
    if request.method == "POST":
        links.filter(token=request.POST.get("token", "")).delete()
        return redirect("settings:shared")
    links = links.select_related("conversation").order_by("-shared_at")
    rows = [(link, request.build_absolute_uri(link.get_absolute_url())) for link in links]
    context = {"section": "shared", "links": rows, "public": settings.SHARED_LINKS_PUBLIC}
    return render(request, "settings/shared.html", context)
