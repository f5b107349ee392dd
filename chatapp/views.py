import functools
import uuid
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import F
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh, reswap

from chatapp import attachments, exchanges
from chatapp.forms import ConversationSettingsForm, PresetChoiceForm, RenameForm
from chatapp.generation import Generation, interrupt_orphans, request_stop
from chatapp.models import BranchWindow, Conversation, Message, Preset, Prompt
from chatapp.picker import default_model_ref, picker_context
from chatapp.variables import Reader, page_values
from providers.credentials import reachable_providers
from providers.model_table import ModelTable

CONVERSATIONS_PER_PAGE = 30
UNDO_WINDOW = timedelta(hours=1)  # how long a deleted conversation can be restored
UNUSED_CHAT_DAYS = 1  # a chat given settings but no message is dropped after this long untouched
PURGE_EVERY = timedelta(minutes=10)  # per user: the list is asked for on every search keystroke and page


def _get_conversation_for_user(request: HttpRequest, conversation_id) -> Conversation:
    """The one ownership check: another user's conversation is a 404."""
    return get_object_or_404(Conversation.objects.of(request.user), id=conversation_id)


def finished_answer_or_404(chat: Conversation, message_id) -> Message:
    """An answer of `chat` that is not being written, by its id from a form (Branch in new chat, Edit); else a 404."""
    finished = chat.messages.exclude(status=Message.Status.STREAMING)
    return get_object_or_404(finished, id=exchanges.message_id(message_id), role=Message.Role.ASSISTANT)


def _conversation_page(request: HttpRequest, query: str = "", page: int = 1):
    # An archived chat leaves the list, but a search finds it.
    conversations = Conversation.objects.of(request.user).written_in()
    if not query.strip():
        conversations = conversations.filter(archived_at=None)
    conversations = conversations.search(query).order_by("-pinned", F("written_at").desc(nulls_last=True))
    return Paginator(conversations, CONVERSATIONS_PER_PAGE).get_page(page)


def _render_chat(request: HttpRequest, conversation: Conversation | None) -> HttpResponse:
    table = ModelTable.current()
    providers = reachable_providers(request.user)
    window, branch, draft_files = BranchWindow([], 0), [], []
    if conversation is not None:
        draft_files = attachments.unsent(conversation)  # a reload keeps them, as the browser keeps the text
        interrupt_orphans(conversation)
        # A long branch shows its end; the rest loads as the reader scrolls up (or all at once without
        # JavaScript). `?keep=<message id>` shows the messages from a screenful above that one instead (a
        # search result, a version flipped without JavaScript), and those after them load as the reader
        # scrolls down.
        if "all" in request.GET:
            pick = BranchWindow.whole
        elif keep := exchanges.message_id(request.GET.get("keep")):
            pick = functools.partial(BranchWindow.around, message_id=keep)
        else:
            pick = BranchWindow.latest
        window, branch = conversation.window_with_versions(pick)
    selected = (conversation.model if conversation else "") or default_model_ref(request.user, providers, table)
    query = _search_query(request.GET)  # a search result opened: the list still shows the others
    prompts = list(Prompt.objects.filter(owner=request.user).values("command", "text"))
    context = {
        "conversation": conversation,
        # A new chat gets its id now; the row is created with the first message.
        "conversation_id": conversation.id if conversation else uuid.uuid4(),
        "window": window,
        "draft_files": draft_files,
        "conversations": _conversation_page(request, query),
        "query": query,
        "providers_configured": bool(providers),
        **picker_context(providers, selected, table),
        # Without JavaScript the page refreshes itself while an answer streams.
        "streaming": any(m.status == Message.Status.STREAMING for m in branch),
        # A chat with no message yet may start from one (read only then: the page of a long chat pays nothing).
        "presets": Preset.objects.filter(owner=request.user),
        "prompts": prompts,
        # The variables prompts.js fills in that the page cannot know (none are needed without a prompt).
        "prompt_values": prompts and page_values(Reader.of(request.user, request.LANGUAGE_CODE, request.COOKIES)),
    }
    return render(request, "chatapp/chat.html", context)


def home(request: HttpRequest) -> HttpResponse:
    latest = Conversation.objects.of(request.user).filter(archived_at=None).order_by("-updated_at").first()
    if latest is not None:
        return redirect(latest)
    return _render_chat(request, None)


def new_chat(request: HttpRequest) -> HttpResponse:
    return _render_chat(request, None)


def conversation(request: HttpRequest, conversation_id) -> HttpResponse:
    return _render_chat(request, _get_conversation_for_user(request, conversation_id))


# The chat's forms without JavaScript ---------------------------------------------
#
# With JavaScript the same forms go over the page's WebSocket (chatapp.consumers).
# Without it they post here; the answer is started, the page shown again, and it
# refreshes itself while the answer is written. A generation runs on in this
# process's event loop after the redirect.


async def _ahas(request: HttpRequest, conversation_id) -> bool:
    """Whether the conversation is there and the user's (async: the forms below are async views)."""
    return await Conversation.objects.of(await request.auser()).filter(id=conversation_id).aexists()


async def _refused(request: HttpRequest, conversation_id, reason: str) -> HttpResponse:
    """Back to the conversation, or to a new chat if there is none yet, with why the form was refused."""
    await sync_to_async(messages.error)(request, reason)
    if await _ahas(request, conversation_id):
        return redirect("chat:conversation", conversation_id)
    return redirect("chat:new")


async def _start_from_form(request: HttpRequest, conversation_id, start, *args) -> HttpResponse:
    user = await request.auser()
    try:
        await exchanges.acount_request(user)
        conversation, answer = await sync_to_async(start)(user, conversation_id, *args)
    except exchanges.Refused as refused:
        return await _refused(request, conversation_id, refused.reason)
    Generation(answer, conversation, reader=Reader.of(user, request.LANGUAGE_CODE, request.COOKIES)).start()
    return redirect(conversation)


@require_POST
async def send(request: HttpRequest, conversation_id) -> HttpResponse:
    """The composer: a new question and its answer."""
    text = request.POST.get("message", "").strip()
    uploads = request.FILES.getlist("file")  # with JavaScript, files are uploaded as they are attached
    try:
        files = attachments.ids_from(request.POST.getlist("attachment"))  # attached before: the page drew them
    except exchanges.Refused as refused:
        return await _refused(request, conversation_id, refused.reason)
    # As the socket refuses it: an over-long one is never cut.
    if problem := exchanges.question_problem(text, with_files=bool(uploads or files)):
        return await _refused(request, conversation_id, problem)
    if uploads:
        try:
            saved = await sync_to_async(attachments.save_uploads)(await request.auser(), conversation_id, uploads)
        except exchanges.Refused as refused:
            return await _refused(request, conversation_id, refused.reason)
        files += [attachment.id for attachment in saved]
    return await _start_from_form(
        request, conversation_id, exchanges.start_exchange, text, request.POST.get("model", ""), files
    )


@require_POST
async def regenerate(request: HttpRequest, conversation_id) -> HttpResponse:
    """Regenerate (or retry) an answer: a new version beside it."""
    answer_id = exchanges.message_id(request.POST.get("message_id"))
    return await _start_from_form(request, conversation_id, exchanges.start_regeneration, answer_id)


@require_POST
async def continue_answer(request: HttpRequest, conversation_id) -> HttpResponse:
    """More of an answer cut short, written on in place."""
    answer_id = exchanges.message_id(request.POST.get("message_id"))
    return await _start_from_form(request, conversation_id, exchanges.start_continuation, answer_id)


@require_POST
async def edit(request: HttpRequest, conversation_id) -> HttpResponse:
    """An edited question, sent again as a new branch."""
    text = request.POST.get("message", "").strip()
    if problem := exchanges.question_problem(text, with_files=True):  # whether it has any: start_edit
        return await _refused(request, conversation_id, problem)
    return await _start_from_form(
        request, conversation_id, exchanges.start_edit, exchanges.message_id(request.POST.get("message_id")), text
    )


@require_POST
async def stop(request: HttpRequest, conversation_id) -> HttpResponse:
    """Stop the answer being written, in whichever process writes it."""
    if await _ahas(request, conversation_id):
        await request_stop(conversation_id)
    return redirect("chat:conversation", conversation_id)


@require_GET
def conversation_list(request: HttpRequest) -> HttpResponse:
    """The sidebar list: a page of it, filtered by the search box."""
    _purge(request.user)
    return _render_list(request, _search_query(request.GET), request.GET.get("page"))


def _search_query(params) -> str:
    """The sidebar's search, from a request's GET or POST (a pin sends it along)."""
    return params.get("q", "")[:200]


def _purge(user) -> None:
    """Drop the user's chats deleted past undoing, those given settings or files but never a message, and files
    attached but never sent.

    At most once per PURGE_EVERY: three DELETE queries are housekeeping, not
    something every keystroke in the search box should pay for.
    """
    if not cache.add(f"chats-purged:{user.pk}", True, PURGE_EVERY.total_seconds()):
        return
    now = timezone.now()
    mine = Conversation.objects.filter(owner=user)
    mine.filter(deleted_at__lt=now - UNDO_WINDOW).delete()
    mine.filter(current_leaf=None, messages=None, updated_at__lt=now - timedelta(days=UNUSED_CHAT_DAYS)).delete()
    attachments.purge_unsent(user)


def _render_list(request: HttpRequest, query: str = "", page: str | None = None) -> HttpResponse:
    context = {"conversations": _conversation_page(request, query, page or 1), "query": query}
    if request.htmx:
        template = "chatapp/_conversation_items.html" if page else "chatapp/_conversation_list.html"
        return render(request, template, context)
    return render(request, "chatapp/conversation_list.html", context)


@require_POST
def rename(request: HttpRequest, conversation_id) -> HttpResponse:
    chat = _get_conversation_for_user(request, conversation_id)
    form = RenameForm(request.POST, instance=chat)
    if form.is_valid():
        form.save()
    if request.htmx:
        html = render_to_string("chatapp/_conversation_list_item.html", {"item": chat, "oob": False}, request)
        if _is_open(request, chat):  # its page's heading (and tab) follow
            html += render_to_string("chatapp/_chat_title.html", {"conversation": chat}, request)
        return HttpResponse(html)
    return redirect(chat)


@require_POST
def delete(request: HttpRequest, conversation_id) -> HttpResponse:
    chat = _get_conversation_for_user(request, conversation_id)
    chat.deleted_at = timezone.now()
    chat.save(update_fields=["deleted_at"])
    if request.htmx:
        # Deleted from its own page: the composer gives way to a notice, so nothing is sent into it.
        context = {"item": chat, "is_open": _is_open(request, chat)}
        return render(request, "chatapp/_conversation_deleted.html", context)
    return redirect("chat:home")


@require_POST
def restore(request: HttpRequest, conversation_id) -> HttpResponse:
    chat = get_object_or_404(Conversation, id=conversation_id, owner=request.user, deleted_at__isnull=False)
    chat.deleted_at = None
    chat.save(update_fields=["deleted_at"])
    return back_in_list(request, chat)


def back_in_list(request: HttpRequest, chat: Conversation) -> HttpResponse:
    """A chat restored or unarchived: its own page drawn again whole (composer, no notice), or its place in the
    list; without htmx, its page."""
    if request.htmx and _is_open(request, chat):
        return HttpResponseClientRefresh()
    if request.htmx:
        return render(request, "chatapp/_conversation_list_item.html", {"item": chat, "oob": False})
    return redirect(chat)


def _is_open(request: HttpRequest, chat: Conversation) -> bool:
    """Whether the htmx request comes from the conversation's own page."""
    current = request.htmx.current_url_abs_path or ""
    return current.split("?")[0] == chat.get_absolute_url()


@require_POST
def pin(request: HttpRequest, conversation_id) -> HttpResponse:
    chat = _get_conversation_for_user(request, conversation_id)
    chat.pinned = not chat.pinned
    chat.save(update_fields=["pinned"])
    if request.htmx:  # the list as it was filtered, this chat moved
        return _render_list(request, _search_query(request.POST))
    return redirect(chat)


@require_POST
def show_version(request: HttpRequest, conversation_id, message_id: int) -> HttpResponse:
    """Flip to another version of a message: the branch on screen follows it."""
    chat = _get_conversation_for_user(request, conversation_id)
    message = get_object_or_404(Message, id=message_id, conversation=chat)
    if not chat.messages.filter(status=Message.Status.STREAMING).exists():
        chat.show_version(message)
    return _shown_at(request, chat, message.id)


def _shown_at(request: HttpRequest, chat: Conversation, message_id: int) -> HttpResponse:
    """The branch on screen around message `message_id`, a version just put there: in place of the page's
    messages, the window opening a screenful above it, where the reader is; without htmx, the page at it."""
    if request.htmx:
        window, _branch = chat.window_with_versions(functools.partial(BranchWindow.around, message_id=message_id))
        return render(request, "chatapp/_messages.html", {"conversation": chat, "window": window})
    return redirect(chat.url_at(message_id))


@require_http_methods(["GET", "POST"])
def edit_answer(request: HttpRequest, conversation_id) -> HttpResponse:
    """An answer rewritten by its reader (GET: the form, into the answer's Edit, or as a page without JavaScript;
    POST: the new version, shown in place of the model's, which stays a version)."""
    chat = _get_conversation_for_user(request, conversation_id)
    if request.method == "GET":
        answer = finished_answer_or_404(chat, request.GET.get("message_id"))
        if request.htmx:
            return render(request, "chatapp/_answer_edit.html", {"conversation": chat, "message": answer})
        context = {"conversation": chat, "message": answer, "back_url": chat.url_at(answer.id)}
        return render(request, "chatapp/edit_answer.html", context)
    answer_id, text = exchanges.message_id(request.POST.get("message_id")), request.POST.get("message", "").strip()
    try:
        chat, answer = exchanges.rewrite_answer(request.user, chat.id, answer_id, text)
    except exchanges.Refused as refused:
        if request.htmx:  # the page stays as it is, and says why
            return reswap(render(request, "chatapp/_notice.html", {"text": refused.reason}), "none")
        messages.error(request, refused.reason)
        return redirect(chat)
    return _shown_at(request, chat, answer.id)


@require_GET
def message_text(request: HttpRequest, conversation_id) -> HttpResponse:
    """`?message_id=`: that message's text as written, an answer's Markdown, for Copy (code.js). The page has it
    rendered only, and its text (innerText) loses the code fences, links and TeX."""
    chat = _get_conversation_for_user(request, conversation_id)
    message = get_object_or_404(chat.messages.only("content"), id=exchanges.message_id(request.GET.get("message_id")))
    return plain_text(message.content)


def plain_text(text: str) -> HttpResponse:
    return HttpResponse(text, content_type="text/plain; charset=utf-8", headers={"Cache-Control": "private, no-cache"})


@require_GET
def earlier_messages(request: HttpRequest, conversation_id) -> HttpResponse:
    """The messages before `?before=<id>` on the branch on screen, for a page that shows those after it."""
    chat, window = _window_beside(request, conversation_id, BranchWindow.before, "before")
    if window is None:
        return _redrawn(request, chat)
    return render(request, "chatapp/_window.html", {"conversation": chat, "window": window})


@require_GET
def later_messages(request: HttpRequest, conversation_id) -> HttpResponse:
    """The messages after `?after=<id>` on the branch on screen, for a page that opened above its end (?keep=)."""
    chat, window = _window_beside(request, conversation_id, BranchWindow.after, "after")
    if window is None:
        return _redrawn(request, chat)
    if not request.htmx:  # without JavaScript: the page that opens at the first of them
        return redirect(chat.url_at(window.first_id) if window.messages else chat)
    return render(request, "chatapp/_window.html", {"conversation": chat, "window": window})


def _window_beside(request: HttpRequest, conversation_id, pick, parameter: str):
    """The owner's conversation, and the window beside the message `?<parameter>=<id>`.

    `pick` is BranchWindow.before or .after; the window is None if that
    message is no longer on the branch on screen.
    """
    chat = _get_conversation_for_user(request, conversation_id)
    message_id = exchanges.message_id(request.GET.get(parameter))
    window, _branch = chat.window_with_versions(functools.partial(pick, message_id=message_id))
    return chat, window


def _redrawn(request: HttpRequest, chat: Conversation) -> HttpResponse:
    """The branch on screen changed since the page was drawn: draw it again."""
    return HttpResponseClientRefresh() if request.htmx else redirect(chat)


def conversation_settings(request: HttpRequest, conversation_id) -> HttpResponse:
    """A chat's settings; a new chat's too, before its first message (saving them creates the chat).

    POST `preset=<id>` applies one of the user's presets instead of the form: the chat takes its settings whole.
    """
    providers = reachable_providers(request.user)
    table = ModelTable.current()
    chat = _chat_or_new(request, conversation_id, providers, table)
    created = chat._state.adding
    applied = _apply_preset(request, chat)
    data = request.POST if request.method == "POST" and applied is None else None
    form = ConversationSettingsForm(data, instance=chat, providers=providers, table=table)
    context = {
        "conversation": chat,
        "form": form,
        "presets": Preset.objects.filter(owner=request.user),
        "saved": request.method == "POST",
        "applied": applied,
        "is_new": created,
    }
    if applied is not None or (data is not None and form.is_valid()):
        if applied is None:
            form.save()
            context["saved_as"] = form.cleaned_data.get("save_as")
        if not request.htmx:
            if applied is not None:
                messages.success(request, gettext("Preset “%(name)s” applied.") % {"name": applied.name})
            return redirect(chat)
        context["picker"] = picker_context(providers, chat.model, table)  # the composer's picker follows
        response = render(request, "chatapp/_conversation_settings.html", context)
        if created:  # a reload keeps them: the address becomes the chat's
            response["HX-Replace-Url"] = chat.get_absolute_url()
        return response
    template = "chatapp/_conversation_settings.html" if request.htmx else "chatapp/conversation_settings.html"
    return render(request, template, context)


def _apply_preset(request: HttpRequest, chat: Conversation) -> Preset | None:
    """For POST `preset=<id>`: that preset of the user's, its settings given to the chat (saved); else None."""
    if request.method != "POST" or "preset" not in request.POST:
        return None
    choice = PresetChoiceForm(request.POST, user=request.user)
    if not choice.is_valid():  # not one of the user's presets: as for anyone else's chat
        raise Http404
    preset = choice.cleaned_data["preset"]
    chat.copy_settings_from(preset)
    chat.save()
    return preset


def _chat_or_new(request: HttpRequest, conversation_id, providers, table) -> Conversation:
    """The user's chat, or, for an id no chat has yet, an unsaved new one; anyone else's is a 404."""
    if Conversation.objects.filter(id=conversation_id).exists():
        return _get_conversation_for_user(request, conversation_id)
    model = default_model_ref(request.user, providers, table)
    return Conversation(id=conversation_id, **exchanges.new_chat_fields(request.user, model))

