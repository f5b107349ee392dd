"""`/settings/chats/`: all of one's chats at once: back them up, archive them, bring them back, delete them.

Deleting all is deleting each: the chats are kept for an hour (views.UNDO_WINDOW), in which this page offers
them back, and then purged.
"""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from chatapp.models import Conversation
from chatapp.views import UNDO_WINDOW


def _restorable(user):
    return Conversation.objects.filter(owner=user, deleted_at__gte=timezone.now() - UNDO_WINDOW)


@require_GET
def chats(request: HttpRequest) -> HttpResponse:
    mine = Conversation.objects.of(request.user).written_in()
    context = {
        "section": "chats",
        "listed": mine.filter(archived_at=None).count(),
        "archived": mine.exclude(archived_at=None).count(),
        "restorable": _restorable(request.user).count(),
    }
    return render(request, "settings/chats.html", context)


@require_POST
def archive_all(request: HttpRequest) -> HttpResponse:
    mine = Conversation.objects.of(request.user).written_in()
    count = mine.filter(archived_at=None).update(archived_at=timezone.now())
    return _told(request, ngettext("%(count)d chat archived.", "%(count)d chats archived.", count), count)


@require_POST
def unarchive_all(request: HttpRequest) -> HttpResponse:
    count = Conversation.objects.of(request.user).written_in().exclude(archived_at=None).update(archived_at=None)
    told = ngettext("%(count)d chat is back in your list.", "%(count)d chats are back in your list.", count)
    return _told(request, told, count, "chat:archived" if request.POST.get("next") == "archived" else "settings:chats")


@require_POST
def delete_all(request: HttpRequest) -> HttpResponse:
    if not request.POST.get("confirm"):
        messages.error(request, _("Tick the box to confirm that every chat is to be deleted."))
        return redirect("settings:chats")
    count = Conversation.objects.of(request.user).written_in().update(deleted_at=timezone.now())
    return _told(request, ngettext("%(count)d chat deleted.", "%(count)d chats deleted.", count), count)


@require_POST
def restore_all(request: HttpRequest) -> HttpResponse:
    count = _restorable(request.user).update(deleted_at=None)
    return _told(request, ngettext("%(count)d chat restored.", "%(count)d chats restored.", count), count)


def _told(request: HttpRequest, text: str, count: int, to: str = "settings:chats") -> HttpResponse:
    """Back to the page `to`, saying what was done to how many chats."""
    messages.success(request, text % {"count": count})
    return redirect(to)
