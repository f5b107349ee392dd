"""Files attached to a question: images the model sees, text files it reads.

A file is uploaded as it is attached (the composer shows it at once), kept
in the database with its conversation, and named by the question it is sent
with; every later turn of that branch sends it again, as the text is. Only
what every model API takes is accepted, recognised by its bytes, not by the
name or type the browser gave: PNG, JPEG, GIF and WebP images, and UTF-8 text.
"""

import uuid
from collections.abc import Iterable
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import UploadedFile
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.functional import lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST

from chatapp import exchanges
from chatapp.models import Attachment, Conversation
from providers.completion import FilePart

MAX_IMAGE_BYTES = 5 * 1024 * 1024  # Anthropic's limit for one image; OpenAI's and Gemini's are higher
MAX_TEXT_BYTES = 512 * 1024  # some 150,000 tokens: more than most context windows
MAX_PER_MESSAGE = 10
MAX_NAME = 255
UNSENT_DAYS = 1  # a file attached and never sent is dropped after this long (chatapp.views._purge)

# Lazy: the socket refuses in the language its page is drawn in, known only when it draws the notice.
TOO_MANY = lazy(lambda: gettext("At most %(count)d files can go with one message.") % {"count": MAX_PER_MESSAGE}, str)()

_IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
TEXT = "text/plain"


def media_type_of(data: bytes) -> str | None:
    """The image type `data` starts with, TEXT for UTF-8 text, None for anything else."""
    for signature, media_type in _IMAGE_SIGNATURES:
        if data.startswith(signature):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return TEXT if "\x00" not in text else None


def read_upload(upload: UploadedFile) -> tuple[str, str, bytes]:
    """An uploaded file's name, media type and bytes; exchanges.Refused, saying why, if it cannot be attached."""
    if upload.size is None or upload.size > MAX_IMAGE_BYTES:  # not even read
        raise _too_large(_name(upload.name))
    return checked(upload.name, upload.read())


def checked(name: str | None, data: bytes) -> tuple[str, str, bytes]:
    """A file's name (its last part), media type and bytes, if it can be attached; else exchanges.Refused."""
    name = _name(name)
    if len(data) > MAX_IMAGE_BYTES:
        raise _too_large(name)
    media_type = media_type_of(data)
    if media_type is None:
        raise exchanges.Refused(
            _("%(name)s cannot be attached: only images (PNG, JPEG, GIF, WebP) and text files can.") % {"name": name}
        )
    if media_type == TEXT and len(data) > MAX_TEXT_BYTES:
        raise exchanges.Refused(_("%(name)s is too large to attach (text files: at most 512 KB).") % {"name": name})
    return name, media_type, data


def _too_large(name: str) -> "exchanges.Refused":
    return exchanges.Refused(_("%(name)s is too large to attach (at most 5 MB).") % {"name": name})


def _name(name: str | None) -> str:
    return (name or "").replace("\\", "/").rpartition("/")[2][:MAX_NAME] or "file"


def save_uploads(user, conversation_id: uuid.UUID, uploads: list[UploadedFile]) -> list[Attachment]:
    """Keep `uploads` in the user's conversation, creating it (as its settings do) if the id is still unused.

    exchanges.Refused if one cannot be attached (nothing is kept then);
    Http404 if the conversation is someone else's or deleted.
    """
    if len(uploads) > MAX_PER_MESSAGE:
        raise exchanges.Refused(TOO_MANY)
    files = [read_upload(upload) for upload in uploads]
    conversation = _conversation_for_upload(user, conversation_id)
    return Attachment.objects.bulk_create(
        Attachment(conversation=conversation, name=name, media_type=media_type, size=len(data), data=data)
        for name, media_type, data in files
    )


def _conversation_for_upload(user, conversation_id: uuid.UUID) -> Conversation:
    conversation, _created = Conversation.objects.get_or_create(
        id=conversation_id, defaults={"owner": user, "model": exchanges.default_model_ref(user)}
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
        raise exchanges.Refused(_("An attached file is no longer there. Attach it again.")) from None
    return list(dict.fromkeys(ids))


def described_for_question(conversation: Conversation, ids: list[uuid.UUID]) -> list[dict]:
    """What the question keeps of its files (Attachment.described), in the order attached; Refused if one is gone."""
    if not ids:
        return []
    found = {a.id: a for a in conversation.attachments.filter(id__in=ids).defer("data")}
    if len(found) != len(ids):
        raise exchanges.Refused(_("An attached file is no longer there. Attach it again."))
    return [found[i].described for i in ids]


def mark_sent(question) -> None:
    """The files are the question's now: no longer dropped as never sent."""
    ids = [described["id"] for described in question.attachments]
    if ids:
        Attachment.objects.filter(id__in=ids, message=None).update(message=question)


def purge_unsent(user) -> None:
    """Drop the user's files attached more than UNSENT_DAYS ago and never sent."""
    Attachment.objects.filter(
        conversation__owner=user, message=None, created_at__lt=timezone.now() - timedelta(days=UNSENT_DAYS)
    ).delete()


def parts(described: Iterable[dict]) -> list[FilePart]:
    """The files of a question as the provider request carries them, their bytes still to read (`aread`)."""
    return [FilePart(name=d["name"], media_type=d["type"], key=d["id"]) for d in described]


async def aread(parts: list[FilePart]) -> None:
    """Read the bytes of `parts` in one query. A file gone since (its chat deleted meanwhile) stays empty."""
    wanted = {part.key for part in parts if part.key}
    if not wanted:
        return
    rows = Attachment.objects.filter(id__in=wanted).values_list("id", "data")
    data = {str(key): bytes(blob) async for key, blob in rows}
    for part in parts:
        part.data = data.get(part.key, b"")


# Views --------------------------------------------------------------------------


@require_POST
async def upload(request: HttpRequest, conversation_id) -> HttpResponse:
    """`POST /c/<id>/attachments/`: files attached in the composer, shown there with a way to take them off.

    An upload counts against RATE_LIMIT as an answer does: it stores files.
    On a refusal the reason is the body, as text, for the page to show.
    """
    user = await request.auser()
    uploads = request.FILES.getlist("file")
    try:
        if not uploads:
            raise exchanges.Refused(_("No file was attached."))
        await exchanges.acount_request(user)
        attachments = await sync_to_async(save_uploads)(user, conversation_id, uploads)
    except exchanges.Refused as refused:
        return HttpResponse(str(refused.reason), status=400, content_type="text/plain; charset=utf-8")
    return await sync_to_async(render)(request, "chatapp/_attachment_chips.html", {"attachments": attachments})


@require_GET
def download(request: HttpRequest, conversation_id, attachment_id) -> HttpResponse:
    """`GET /c/<id>/attachments/<attachment id>/`: a file, to its conversation's owner only."""
    attachment = (
        Attachment.objects.filter(
            id=attachment_id,
            conversation_id=conversation_id,
            conversation__owner=request.user,
            conversation__deleted_at__isnull=True,
        )
        .only("name", "media_type", "data")
        .first()
    )
    if attachment is None:
        raise Http404
    text = attachment.media_type == TEXT
    response = HttpResponse(
        bytes(attachment.data), content_type=f"{TEXT}; charset=utf-8" if text else attachment.media_type
    )
    response["Content-Disposition"] = content_disposition_header(as_attachment=text, filename=attachment.name)
    # Nothing in it runs, even opened on its own in a tab; it never changes (its id is new for new bytes).
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response
