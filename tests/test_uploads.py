"""What an attached file is, and what a model is given of it (chatapp.uploads): real PDFs and real pictures."""

import io
import struct
import zlib

import pytest
from PIL import ExifTags, Image, ImageCms
from pypdf import PdfReader, PdfWriter

from chatapp import uploads
from chatapp.exchanges import Refused
from tests.documents import pdf, picture, size_of


def refusal(name: str, data: bytes) -> str:
    with pytest.raises(Refused) as refused:
        uploads.checked(name, data)
    return str(refused.value.reason)


def encrypted(data: bytes, user_password: str, owner_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password, owner_password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# PDFs ----------------------------------------------------------------------------


def test_a_pdf_is_kept_as_it_is_and_read_as_its_text_page_by_page():
    document = pdf("Invoice 42\nDue (soon)", "", "Total: 99 EUR")
    kept = uploads.checked("C:\\Users\\bo\\in\x00voice\n.pdf", document)
    assert (kept.name, kept.media_type, kept.data) == ("invoice.pdf", "application/pdf", document)
    # Numbered as the reader's viewer numbers them, so the model can cite them; the blank page says nothing.
    assert kept.text == '<page number="1">\nInvoice 42\nDue (soon)\n</page>\n<page number="3">\nTotal: 99 EUR\n</page>'


def test_a_pdf_locked_only_against_editing_is_read_and_one_that_needs_a_password_is_refused():
    document = pdf("Quarterly figures")
    assert "Quarterly figures" in uploads.checked("q.pdf", encrypted(document, "", "owner")).text
    assert refusal("q.pdf", encrypted(document, "secret", "owner")) == "q.pdf is protected by a password."


def test_pdfs_without_text_or_that_cannot_be_read_are_refused_saying_why(monkeypatch):
    assert refusal("scan.pdf", pdf("", "")) == (
        "scan.pdf has no text to read (a scan?). Attach its pages as pictures instead."
    )
    assert refusal("broken.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 10) == "broken.pdf cannot be read as a PDF."
    assert refusal("cut.pdf", pdf("Hello")[:60]) == "cut.pdf cannot be read as a PDF."
    monkeypatch.setattr(uploads, "MAX_TEXT_BYTES", 30)  # counted page by page: the first page fits, the second not
    assert refusal("book.pdf", pdf("Chapter one", "Chapter two is longer")) == (
        "book.pdf has too much text to attach (at most 512 KB of text)."
    )


# Pictures --------------------------------------------------------------------------


def test_a_picture_models_take_as_it_is_is_kept_byte_for_byte():
    photo = picture(2048, 1024, quality=95)
    assert uploads.checked("wide.jpg", photo).data == photo


def test_a_phones_photo_is_scaled_down_to_what_models_look_at_and_stood_upright():
    exif = Image.Exif()
    exif[0x0112] = 6  # taken with the phone held upright: stored on its side, "turn 90° to show"
    photo = picture(4000, 3000, noise=True, quality=70, exif=exif.tobytes())
    assert uploads.MAX_IMAGE_BYTES < len(photo) <= uploads.MAX_UPLOAD_BYTES
    kept = uploads.checked("IMG_0001.JPG", photo)
    assert kept.media_type == "image/jpeg" and Image.open(io.BytesIO(kept.data)).format == "JPEG"
    assert size_of(kept.data) == (1536, 2048) and len(kept.data) <= uploads.MAX_IMAGE_BYTES


def located(format: str, where: str) -> bytes:
    """A picture, on its side (EXIF orientation 6), from a named camera, that says where it was taken: in its
    EXIF, its XMP, or both."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation], exif[ExifTags.Base.Make] = 6, "Phone"
    if "exif" in where:
        exif.get_ifd(ExifTags.IFD.GPSInfo).update({ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: 55.7})
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    xmp += b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="55,42N"/></rdf:RDF></x:xmpmeta>'
    return picture(300, 200, format, exif=exif.tobytes(), **({"xmp": xmp} if "xmp" in where else {}))


@pytest.mark.parametrize(
    "format, where", [("JPEG", "exif"), ("JPEG", "xmp"), ("PNG", "exif"), ("WEBP", "exif"), ("WEBP", "exif xmp")]
)
def test_a_picture_that_says_where_it_was_taken_is_kept_without_saying_it(format, where):
    photo = located(format, where)
    assert ("GPS" in str(Image.open(io.BytesIO(photo)).info)) == ("xmp" in where)  # the place is there to find
    kept = Image.open(io.BytesIO(uploads.checked("photo", photo).data))
    assert kept.format == format and kept.size == (200, 300)  # stood upright, as a scaled photo is
    assert not kept.getexif() and "xmp" not in kept.info  # no place, no camera


def test_a_picture_that_does_not_say_where_it_was_taken_is_kept_as_it_is():
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Phone"
    photo = picture(300, 200, exif=exif.tobytes())
    assert uploads.checked("photo.jpg", photo).data == photo


def test_a_scaled_photo_keeps_its_colour_profile():
    wide_gamut = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # any profile not sRGB's
    kept = uploads.checked("IMG_0002.JPG", picture(4000, 3000, icc_profile=wide_gamut))
    assert size_of(kept.data) == (2048, 1536)
    assert Image.open(io.BytesIO(kept.data)).info["icc_profile"] == wide_gamut


def test_a_phones_photo_with_a_second_picture_in_it_is_scaled_as_a_jpeg():
    first, second = Image.new("RGB", (3000, 2000), "red"), Image.new("RGB", (300, 200), "blue")
    out = io.BytesIO()
    first.save(out, format="MPO", save_all=True, append_images=[second])  # as some phones save photos
    kept = uploads.checked("photo.jpg", out.getvalue())
    assert kept.media_type == "image/jpeg" and Image.open(io.BytesIO(kept.data)).format == "JPEG"
    assert size_of(kept.data) == (2048, 1365)


def test_a_picture_over_5_mb_is_made_smaller_until_it_fits_in_its_own_format():
    screenshot = picture(1500, 1500, "PNG", noise=True)  # noise: PNG cannot make it smaller
    assert len(screenshot) > uploads.MAX_IMAGE_BYTES
    kept = uploads.checked("screen.png", screenshot)
    assert kept.media_type == "image/png" and len(kept.data) <= uploads.MAX_IMAGE_BYTES
    assert size_of(kept.data) == (1024, 1024)


def test_pictures_that_cannot_be_read_or_would_take_gigabytes_to_draw_are_refused():
    assert refusal("cut.jpg", picture(3000, 2000)[:5000]) == "cut.jpg cannot be read as a picture."
    assert refusal("fake.gif", b"GIF89a" + b"\xff" * 100) == "fake.gif cannot be read as a picture."

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # Twenty thousand pixels square claimed in a few bytes: refused before a pixel is drawn.
    header = struct.pack(">IIBBBBB", 20_000, 20_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
    assert refusal("bomb.png", bomb) == "bomb.png cannot be read as a picture."


def test_anything_over_10_mb_or_of_another_kind_is_refused():
    too_big = b"x" * (uploads.MAX_UPLOAD_BYTES + 1)
    assert refusal("big.txt", too_big) == "big.txt is too large to attach (at most 10 MB)."
    assert refusal("a.zip", b"PK\x03\x04\x14\x00\xff\xfe\x00") == (
        "a.zip cannot be attached: only images (PNG, JPEG, GIF, WebP), PDFs and text files can."
    )
