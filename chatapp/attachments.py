"""Files attached to a question: images the model sees, PDFs and text files it reads.

A file is uploaded as it is attached (the composer shows it at once), kept
in the database with its conversation, and named by the question it is sent
with; every later turn of that branch sends it again, as the text is. What
can be attached, and what the model is given of it: chatapp.uploads.
"""

import uuid
from collections.abc import Iterable
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import UploadedFile
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.functional import lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_POST

from chatapp import exchanges, uploads
from chatapp.models import Attachment, Conversation
from providers.completion import FilePart

MAX_PER_MESSAGE = 10
UNSENT_DAYS = 1  # a file attached and never sent is dropped after this long (chatapp.views._purge)

# Lazy: the socket refuses in the language its page is drawn in, known only when it draws the notice.
TOO_MANY = lazy(lambda: gettext("At most %(count)d files can go with one message.") % {"count": MAX_PER_MESSAGE}, str)()
GONE = _("An attached file is no longer there. Attach it again.")


def read_upload(upload: UploadedFile) -> "uploads.Checked":
    """An uploaded file as it is kept; exchanges.Refused, saying why, if it cannot be attached."""
    if upload.size is None or upload.size > uploads.MAX_UPLOAD_BYTES:  # not even read
        raise uploads.too_large(uploads.last_part(upload.name))
    return uploads.checked(upload.name, upload.read())


def save_uploads(user, conversation_id: uuid.UUID, files: list[UploadedFile]) -> list[Attachment]:
    """Keep `files` in the user's conversation, creating it (as its settings do) if the id is still unused.

    exchanges.Refused if one cannot be attached (nothing is kept then);
    Http404 if the conversation is someone else's or deleted.
    """
    if len(files) > MAX_PER_MESSAGE:
        raise exchanges.Refused(TOO_MANY)
    kept = [read_upload(file) for file in files]
    conversation = _conversation_for_upload(user, conversation_id)
    return Attachment.objects.bulk_create(Attachment.kept(conversation, file) for file in kept)


def _conversation_for_upload(user, conversation_id: uuid.UUID) -> Conversation:
    conversation = Conversation.objects.filter(id=conversation_id).first()
    if conversation is None:  # made as another request may make it too
        conversation, _created = Conversation.objects.get_or_create(
            id=conversation_id, defaults=exchanges.new_chat_fields(user)
        )
    if conversation.owner_id != user.id or conversation.deleted_at is not None:
        raise Http404  # as for any page of another user's conversation
    return conversation


def ids_from(value) -> list[uuid.UUID]:
    """The attachment ids a form or socket frame names (one, or a list); Refused for junk or too many."""
    values = value if isinstance(value, list) else [] if value in (None, "") else [value]
    if len(values) > MAX_PER_MESSAGE:
        raise exchanges.Refused(TOO_MANY)
    try:
        ids = [uuid.UUID(str(v)) for v in values]
    except ValueError:
        raise exchanges.Refused(GONE) from None
    return list(dict.fromkeys(ids))


def described_for_question(conversation: Conversation, ids: list[uuid.UUID]) -> list[dict]:
    """What the question keeps of its files (Attachment.described), in the order attached; Refused if one is gone."""
    if not ids:
        return []
    if len(ids) > MAX_PER_MESSAGE:  # those attached before and those posted with the form, together
        raise exchanges.Refused(TOO_MANY)
    found = {a.id: a for a in conversation.attachments.filter(id__in=ids).defer("data")}
    if len(found) != len(ids):
        raise exchanges.Refused(GONE)
    return [found[i].described for i in ids]


def mark_sent(question) -> None:
    """The files are the question's now: no longer dropped as never sent."""
    if question.file_ids:
        Attachment.objects.filter(id__in=question.file_ids, message=None).update(message=question)


def purge_unsent(user) -> None:
    """Drop the user's files attached more than UNSENT_DAYS ago and never sent."""
    Attachment.objects.filter(
        conversation__owner=user, message=None, created_at__lt=timezone.now() - timedelta(days=UNSENT_DAYS)
    ).delete()


def parts(described: Iterable[dict]) -> list[FilePart]:
    """The files of a question as the provider request carries them, their bytes still to read (`aread`)."""
    return [FilePart(name=d["name"], media_type=d["type"], key=d["id"]) for d in described]


async def aread(parts: list[FilePart]) -> None:
    """Read what the model gets of `parts`, in a query for PDFs (their text) and one for other files (their bytes).

    A file gone since (its chat deleted meanwhile) stays empty.
    """
    pdfs = {part.key for part in parts if part.key and part.media_type == uploads.PDF}
    others = {part.key for part in parts if part.key} - pdfs
    read = {}
    if pdfs:
        rows = Attachment.objects.filter(id__in=pdfs).values_list("id", "text")
        read |= {str(key): text.encode() async for key, text in rows}
    if others:
        rows = Attachment.objects.filter(id__in=others).values_list("id", "data")
        read |= {str(key): bytes(data) async for key, data in rows}
    for part in parts:
        if part.key:
            part.data = read.get(part.key, b"")


# Views --------------------------------------------------------------------------


@require_POST
async def upload(request: HttpRequest, conversation_id) -> HttpResponse:
    """`POST /c/<id>/attachments/`: files attached in the composer, shown there with a way to take them off.

    An upload counts against RATE_LIMIT as an answer does: it stores files.
    On a refusal the reason is the body, as text, for the page to show.
    """
    user = await request.auser()
    files = request.FILES.getlist("file")
    try:
        if not files:
            raise exchanges.Refused(_("No file was attached."))
        await exchanges.acount_request(user)
        attachments = await sync_to_async(save_uploads)(user, conversation_id, files)
    except exchanges.Refused as refused:
        return HttpResponse(str(refused.reason), status=400, content_type="text/plain; charset=utf-8")
    return await sync_to_async(render)(request, "chatapp/_attachment_chips.html", {"attachments": attachments})


def unsent(conversation: Conversation):
    """The files attached in the conversation's composer and not sent yet, as they were attached: its draft's."""
    return conversation.attachments.filter(message=None).defer("data", "text").order_by("created_at")


@require_http_methods(["GET", "HEAD", "DELETE"])
def attachment(request: HttpRequest, conversation_id, attachment_id) -> HttpResponse:
    """`/c/<id>/attachments/<attachment id>/`, to its conversation's owner only: GET the file; DELETE it
    (taken off the composer), while it has not been sent."""
    files = Attachment.objects.filter(
        id=attachment_id,
        conversation_id=conversation_id,
        conversation__owner=request.user,
        conversation__deleted_at__isnull=True,
    )
    if request.method == "DELETE":
        removed, _by_model = files.filter(message=None).delete()
        if not removed:
            raise Http404
        return HttpResponse(status=204)
    return served(files)


def served(files: QuerySet[Attachment]) -> HttpResponse:
    """The one file `files` finds, as nothing a browser would run; a 404 if none."""
    attachment = files.only("name", "media_type", "data").first()
    if attachment is None:
        raise Http404
    text = attachment.media_type == uploads.TEXT
    response = HttpResponse(
        bytes(attachment.data), content_type=f"{uploads.TEXT}; charset=utf-8" if text else attachment.media_type
    )
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=not attachment.is_image, filename=attachment.name
    )
    # Nothing in it runs, even opened on its own in a tab; it never changes (its id is new for new bytes).
    # A PDF is downloaded, too: a browser's viewer runs scripts and cannot open in the sandbox.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response
