"""What an attached file is, and what a model is given of it.

A file is recognised by its bytes, not by the name or type the browser gave:

- PNG, JPEG, GIF and WebP pictures, the four every vision API reads. One
  larger than models look at (over MAX_IMAGE_SIDE pixels on a side, or over
  MAX_IMAGE_BYTES) is scaled down as it is attached: what is kept is what the
  model sees, a phone's photo included. No picture is kept with the place it
  was taken.
- PDF documents: the model reads their text, taken out as they are attached,
  so any model reads them, not only those that see pictures. A scan with no
  text is refused, saying so.
- UTF-8 text files, read whole.

Anything else is refused with a reason that names the file (exchanges.Refused).
"""

import io
import logging
import unicodedata
import warnings
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _
from PIL import ExifTags, Image, ImageOps
from pypdf import PdfReader

from chatapp import exchanges

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # any one file as uploaded: a phone's photo, most PDFs
MAX_IMAGE_BYTES = 5 * 1024 * 1024  # a picture as kept and sent: Anthropic's limit; OpenAI's and Gemini's are higher
MAX_IMAGE_SIDE = 2048  # what OpenAI looks at, at most; Anthropic scales beyond 1568 itself
MAX_TEXT_BYTES = 512 * 1024  # a text file's, or a PDF's text: some 150,000 tokens, more than most context windows

TEXT = "text/plain"
PDF = "application/pdf"
_IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
# Pillow's names for what each is read as, the first what it is saved as. A phone's JPEG may be an MPO: a JPEG
# with a second picture after the first (a depth map, a preview), which is all any model reads of it.
_PILLOW_FORMATS = {"image/png": ("PNG",), "image/jpeg": ("JPEG", "MPO"), "image/gif": ("GIF",), "image/webp": ("WEBP",)}
_SMALLER_SIDES = (MAX_IMAGE_SIDE, 1568, 1024)  # tried in turn until the picture fits MAX_IMAGE_BYTES

# A malformed PDF is refused, not logged: pypdf warns of every repair it makes.
logging.getLogger("pypdf").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Checked:
    """A file that can be attached, as it is kept."""

    name: str  # the last part of the name it was uploaded with
    media_type: str
    data: bytes  # a picture scaled down, if it had to be; every other file as uploaded
    text: str = ""  # what the model reads of a document (a PDF's text); "" when that is `data` itself


def media_type_of(data: bytes) -> str | None:
    """The picture type `data` starts with, PDF, TEXT for UTF-8 text, or None for anything else."""
    for signature, media_type in _IMAGE_SIGNATURES:
        if data.startswith(signature):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return PDF
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return TEXT if "\x00" not in text else None


def checked(name: str | None, data: bytes) -> Checked:
    """The file as it is kept, if it can be attached; else exchanges.Refused, saying why."""
    name = last_part(name)
    if len(data) > MAX_UPLOAD_BYTES:
        raise too_large(name)
    media_type = media_type_of(data)
    if media_type is None:
        raise exchanges.Refused(
            _("%(name)s cannot be attached: only images (PNG, JPEG, GIF, WebP), PDFs and text files can.")
            % {"name": name}
        )
    if media_type == TEXT:
        if len(data) > MAX_TEXT_BYTES:
            raise exchanges.Refused(
                _("%(name)s is too large to attach (text files: at most 512 KB).") % {"name": name}
            )
        return Checked(name, TEXT, data)
    if media_type == PDF:
        return Checked(name, PDF, data, text=_pdf_text(name, data))
    return Checked(name, media_type, _fitted(name, media_type, data))


def too_large(name: str) -> "exchanges.Refused":
    return exchanges.Refused(_("%(name)s is too large to attach (at most 10 MB).") % {"name": name})


def not_a_picture(name: str) -> "exchanges.Refused":
    return exchanges.Refused(_("%(name)s cannot be read as a picture.") % {"name": name})


def last_part(name: str | None) -> str:
    """A file name without the folders a browser or an export may give it, or control characters (a NUL, which
    PostgreSQL cannot keep; a new line), at most 255 characters."""
    name = "".join(character for character in name or "" if unicodedata.category(character) != "Cc")
    return name.replace("\\", "/").rpartition("/")[2][:255] or "file"


def _pdf_text(name: str, data: bytes) -> str:
    """The text of each page with text, each in a `<page number="n">` block, for the model to cite."""
    unreadable = exchanges.Refused(_("%(name)s cannot be read as a PDF.") % {"name": name})
    pages, size = [], 0
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise exchanges.Refused(_("%(name)s is protected by a password.") % {"name": name})
        for number, page in enumerate(reader.pages, start=1):
            text = _storable((page.extract_text() or "").strip())
            size += len(text.encode())
            if size > MAX_TEXT_BYTES:
                raise exchanges.Refused(
                    _("%(name)s has too much text to attach (at most 512 KB of text).") % {"name": name}
                )
            if text:
                pages.append(f'<page number="{number}">\n{text}\n</page>')
    except exchanges.Refused:
        raise
    except Exception:  # a parser of untrusted bytes fails in many ways: each is a file that cannot be read
        raise unreadable from None
    if not pages:
        raise exchanges.Refused(
            _("%(name)s has no text to read (a scan?). Attach its pages as pictures instead.") % {"name": name}
        )
    return "\n".join(pages)


def _storable(text: str) -> str:
    """`text` as any database keeps it and any API takes it: without NUL characters or lone surrogates, which a
    PDF's fonts can map characters to."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _fitted(name: str, media_type: str, data: bytes) -> bytes:
    """The picture as sent: `data` itself if models take it as it is, else scaled down to fit."""
    unreadable = not_a_picture(name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # over 89 megapixels: refused
            image = Image.open(io.BytesIO(data))
            formats = _PILLOW_FORMATS[media_type]
            if image.format not in formats:
                raise unreadable
            if max(image.size) <= MAX_IMAGE_SIDE and len(data) <= MAX_IMAGE_BYTES and not _locates(image):
                return data
            if image.format != "MPO" and getattr(image, "n_frames", 1) > 1:  # an animation: its frames would be lost
                fitted = data if len(data) <= MAX_IMAGE_BYTES else None
            else:
                fitted = _scaled(image, formats[0])
    except exchanges.Refused:
        raise
    except Exception:  # as for a PDF; over 89 megapixels included
        raise unreadable from None
    if fitted is None:
        raise exchanges.Refused(_("%(name)s is too large to attach (at most 5 MB).") % {"name": name})
    return fitted


def _locates(image: Image.Image) -> bool:
    """Whether the picture records where it was taken: a phone's GPS position, in its EXIF or its XMP.

    Such a picture is saved again, as a scaled one is, without it: neither the
    provider nor whoever the chat's export goes to learns where the user was.
    (An animation keeps its metadata: it is never saved again, lest its frames be lost.)
    """
    xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp") or b""  # bytes; a PNG's, text
    return bool(image.getexif().get_ifd(ExifTags.IFD.GPSInfo)) or "GPS" in (xmp if isinstance(xmp, str) else str(xmp))


def _scaled(image: Image.Image, format: str) -> bytes | None:
    """The picture in `format`, at the largest of _SMALLER_SIDES that fits MAX_IMAGE_BYTES; None if none does.

    Only its colour profile goes with it: no EXIF (a camera's serial number, where it was) and no XMP.
    """
    image.draft(None, (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))  # a JPEG is decoded at a fraction of its size: quicker
    colours = {"icc_profile": profile} if (profile := image.info.get("icc_profile")) else {}  # a phone's Display P3
    image = ImageOps.exif_transpose(image)  # the way up a phone recorded, as the saved copy loses it
    if image.mode in ("1", "P"):
        image = image.convert("RGBA" if format != "JPEG" else "RGB")
    for side in _SMALLER_SIDES:
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, format=format, **colours, **({"quality": 90} if format in ("JPEG", "WEBP") else {}))
        if out.tell() <= MAX_IMAGE_BYTES:
            return out.getvalue()
    return None
