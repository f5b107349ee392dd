"""Files attached to a question: images the model sees, text files it reads (chatapp.attachments).

Uploaded as they are attached, through the real views; sent over the chat's
socket (or the form without JavaScript) to the fake upstream, whose recorded
request bodies show exactly what the model was given.
"""

import base64
import json
import re
import struct
import uuid
import zlib
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from chatapp.attachments import MAX_PER_MESSAGE
from chatapp.uploads import MAX_TEXT_BYTES, MAX_UPLOAD_BYTES
from chatapp.models import Attachment, Conversation, Message
from chatapp.upstream import TOKENS_PER_IMAGE, fit_to_context
from tests.chat_client import generations_finished, open_chat
from tests.documents import pdf, picture
from tests.fake_upstream import model_entry

MODEL = "fake/model@openrouter"


def png(width: int = 2, height: int = 2) -> bytes:
    """A real PNG (grey pixels), as a browser can draw it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = png()
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


def upload(name: str, data: bytes, content_type: str = "application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def _attach(client, chat_id, *files):
    return client.post(f"/c/{chat_id}/attachments/", {"file": list(files)})


# Attaching ---------------------------------------------------------------------


@pytest.mark.django_db
def test_an_image_attached_to_a_new_chat_is_kept_shown_and_served_to_its_owner(alice_client, alice):
    chat_id = uuid.uuid4()
    response = _attach(alice_client, chat_id, upload("cat.png", PNG, "image/png"))
    assert response.status_code == 200
    attachment = Attachment.objects.get()
    url = f"/c/{chat_id}/attachments/{attachment.id}/"
    chip = response.content.decode()
    assert f'name="attachment" value="{attachment.id}"' in chip and f'src="{url}"' in chip and "cat.png" in chip
    assert (attachment.name, attachment.media_type, attachment.size) == ("cat.png", "image/png", len(PNG))
    assert Conversation.objects.get(id=chat_id).owner == alice  # created as its settings would create it

    served = alice_client.get(url)
    assert served.status_code == 200 and served.content == PNG
    assert served["Content-Type"] == "image/png"
    assert served["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served["Content-Security-Policy"]


@pytest.mark.django_db
def test_files_are_judged_by_their_bytes_not_their_name_or_type(alice_client):
    chat_id = uuid.uuid4()
    assert _attach(alice_client, chat_id, upload("photo.html", PNG, "text/html")).status_code == 200
    assert Attachment.objects.get(name="photo.html").media_type == "image/png"

    # An SVG is text: it is read by the model, and never served as an image a browser would run.
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
    assert _attach(alice_client, chat_id, upload("x.svg", svg, "image/svg+xml")).status_code == 200
    served = alice_client.get(f"/c/{chat_id}/attachments/{Attachment.objects.get(name='x.svg').id}/")
    assert served["Content-Type"] == "text/plain; charset=utf-8"
    assert served["Content-Disposition"].startswith("attachment;") and served.content == svg

    refused = _attach(alice_client, chat_id, upload("archive.zip", b"PK\x03\x04\x14\x00\xff\xfe\x00\x00"))
    assert refused.status_code == 400
    assert refused.content.decode() == (
        "archive.zip cannot be attached: only images (PNG, JPEG, GIF, WebP), PDFs and text files can."
    )
    too_big = _attach(alice_client, chat_id, upload("huge.png", PNG + b"\0" * MAX_UPLOAD_BYTES))
    assert too_big.status_code == 400 and "huge.png is too large" in too_big.content.decode()
    long_text = _attach(alice_client, chat_id, upload("log.txt", b"x" * (MAX_TEXT_BYTES + 1)))
    assert long_text.status_code == 400 and "text files: at most 512 KB" in long_text.content.decode()
    many = [upload(f"{n}.txt", b"hi") for n in range(MAX_PER_MESSAGE + 1)]
    assert _attach(alice_client, chat_id, *many).content.decode() == "At most 10 files can go with one message."
    assert _attach(alice_client, chat_id).status_code == 400  # nothing attached
    assert Attachment.objects.count() == 2  # a refused upload keeps nothing


@pytest.mark.django_db
def test_a_pdf_whose_fonts_give_nul_characters_is_kept_without_them(alice_client):
    """PostgreSQL refuses a NUL in text: a PDF's odd font mapping must not make the upload fail."""
    response = _attach(alice_client, uuid.uuid4(), upload("odd.pdf", pdf("Total:\x00 99")))
    assert response.status_code == 200
    assert Attachment.objects.get().text == '<page number="1">\nTotal: 99\n</page>'


@pytest.mark.django_db
def test_another_users_chat_and_files_are_not_found(client, alice, bob):
    client.force_login(alice)
    chat_id = uuid.uuid4()
    _attach(client, chat_id, upload("cat.png", PNG))
    url = f"/c/{chat_id}/attachments/{Attachment.objects.get().id}/"
    client.force_login(bob)
    assert client.get(url).status_code == 404
    assert _attach(client, chat_id, upload("dog.png", PNG)).status_code == 404
    assert Attachment.objects.count() == 1

    client.force_login(alice)
    Conversation.objects.filter(id=chat_id).update(deleted_at=timezone.now())
    assert client.get(url).status_code == 404  # a deleted chat's files go with it
    client.logout()
    assert client.get(url).status_code == 302  # to sign in


@pytest.mark.django_db
def test_files_attached_and_not_sent_yet_stay_in_the_composer_until_taken_off(client, alice, bob):
    client.force_login(alice)
    chat_id = uuid.uuid4()
    _attach(client, chat_id, upload("cat.png", PNG), upload("notes.md", b"# Notes"))
    cat, notes = Attachment.objects.order_by("name")
    composer = re.compile(r'<ul id="composer-files"[^>]*>(.*?)</ul>', re.S)

    def drawn() -> str:
        return composer.search(client.get(f"/c/{chat_id}/").content.decode())[1]

    # The page drawn again (a reload, another device) shows them as they were attached, ready to send.
    assert re.findall(r'name="attachment" value="([^"]+)"', drawn()) == [str(cat.id), str(notes.id)]
    assert "Remove notes.md" in drawn()

    client.force_login(bob)
    assert client.delete(f"/c/{chat_id}/attachments/{notes.id}/").status_code == 404
    client.force_login(alice)
    assert client.delete(f"/c/{chat_id}/attachments/{notes.id}/").status_code == 204
    assert "notes.md" not in drawn() and "cat.png" in drawn()
    assert client.get(f"/c/{chat_id}/attachments/{notes.id}/").status_code == 404

    # Once sent, a file is the question's: it leaves the composer and cannot be taken off.
    question, _answer = Conversation.objects.get(id=chat_id).add_exchange("Look", None, MODEL, [cat.described])
    Attachment.objects.filter(pk=cat.pk).update(message=question)
    assert "cat.png" not in drawn()
    assert client.delete(f"/c/{chat_id}/attachments/{cat.id}/").status_code == 404
    assert Attachment.objects.filter(pk=cat.pk).exists()


@pytest.mark.django_db
def test_files_attached_and_never_sent_are_dropped_after_a_day(alice_client, alice):
    chat = Conversation.objects.create(owner=alice, model=MODEL)
    _attach(alice_client, chat.id, upload("kept.png", PNG), upload("dropped.png", PNG))
    kept = Attachment.objects.get(name="kept.png")
    question, _answer = chat.add_exchange("Look", None, MODEL, [kept.described])
    Attachment.objects.filter(pk=kept.pk).update(message=question)
    Attachment.objects.update(created_at=timezone.now() - timedelta(days=2))
    alice_client.get("/c/list/")  # the list is where a user's housekeeping runs
    assert list(Attachment.objects.values_list("name", flat=True)) == ["kept.png"]


def test_the_context_window_counts_files():
    """An image costs about what the providers count for one; a text file its length; a PDF its text's."""
    image = {"id": "x", "name": "a.png", "type": "image/png", "size": 9}
    question = Message(role="user", content="", attachments=[image])
    long_file = {"id": "y", "name": "a.txt", "type": "text/plain", "size": 35000}
    text = Message(role="user", content="", attachments=[long_file])
    answer = Message(role="assistant", content="ok")
    # 10,000 tokens of text, then an image, then the question: the text goes, the image stays.
    cut = fit_to_context([text, answer, question], "", context_length=TOKENS_PER_IMAGE + 3000, max_tokens=1000)
    assert cut == 2
    # A PDF of 9 MB with little text in it costs little.
    document = {"id": "z", "name": "a.pdf", "type": "application/pdf", "size": 9_000_000, "read": 350}
    small = Message(role="user", content="", attachments=[document])
    assert fit_to_context([small, answer, question], "", TOKENS_PER_IMAGE + 3000, 1000) == 0


# Sending -------------------------------------------------------------------------


over_the_socket = pytest.mark.django_db(transaction=True)


async def _upload_as(user, async_client, chat_id, *files) -> list[str]:
    await async_client.aforce_login(user)
    response = await async_client.post(f"/c/{chat_id}/attachments/", {"file": list(files)})
    assert response.status_code == 200, response.content
    ids = [a async for a in Attachment.objects.filter(conversation_id=chat_id).order_by("created_at")
           .values_list("id", flat=True)]
    return [str(i) for i in ids]


async def _answered(socket) -> Message:
    await socket.until(lambda s: any(m.role == "assistant" for m in s.shown.values()))
    await socket.until_status(socket.last_assistant_id(), "done", "error")
    return await Message.objects.aget(pk=socket.last_assistant_id())


async def _picture_sent(user, async_client):
    """A new chat of `user`'s with a picture sent in it, asking "What is this?": its id, the picture's, the
    socket and the answer."""
    chat_id = uuid.uuid4()
    [image_id] = await _upload_as(user, async_client, chat_id, upload("cat.png", PNG))
    socket, _connected = await open_chat(user, chat_id)
    await socket.send(action="send", message="What is this?", model=MODEL, attachment=image_id)
    return chat_id, image_id, socket, await _answered(socket)


@over_the_socket
async def test_an_image_goes_to_the_model_with_the_question_and_again_in_later_turns(alice, openrouter, async_client):
    chat_id, image_id, socket, answer = await _picture_sent(alice, async_client)
    assert answer.status == "done"
    assert openrouter.chat_requests[0].json["messages"][-1] == {
        "role": "user",
        "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": PNG_URL}}],
    }
    question = socket.shown[answer.parent_id]
    assert f'<img src="/c/{chat_id}/attachments/{image_id}/" alt="cat.png"' in question.html
    assert (await Attachment.objects.aget(id=image_id)).message_id == answer.parent_id

    await socket.send(action="send", message="And its colour?", model=MODEL)
    await socket.until(lambda s: sum(m.role == "assistant" for m in s.shown.values()) == 2)
    await _answered(socket)
    sent = openrouter.chat_requests[1].json["messages"]
    assert sent[0]["content"][1] == {"type": "image_url", "image_url": {"url": PNG_URL}}
    assert sent[-1] == {"role": "user", "content": "And its colour?"}
    await socket.close()

    page = (await async_client.get(f"/c/{chat_id}/")).content.decode()
    assert f'<img src="/c/{chat_id}/attachments/{image_id}/" alt="cat.png" loading="lazy">' in page


@over_the_socket
async def test_text_files_alone_are_read_by_the_model_as_the_question(alice, openrouter, async_client):
    chat_id = uuid.uuid4()
    ids = await _upload_as(
        alice, async_client, chat_id, upload("notes.md", "# Notes\nÆble".encode()), upload('a"b.py', b"print(1)\n")
    )
    socket, _connected = await open_chat(alice, chat_id)
    await socket.send(action="send", message="", model=MODEL, attachment=ids)
    await _answered(socket)
    assert openrouter.chat_requests[0].json["messages"][-1]["content"] == (
        '<file name="notes.md">\n# Notes\nÆble\n</file>\n\n<file name="a&quot;b.py">\nprint(1)\n\n</file>'
    )
    await socket.close()


@over_the_socket
async def test_a_pdf_is_read_by_any_model_as_its_text_and_downloaded_as_it_was(alice, bob, openrouter, async_client):
    openrouter.models = [model_entry("fake/model", "Fake", input_modalities=("text",))]  # sees no pictures
    chat_id, document = uuid.uuid4(), pdf("Invoice 42", "Total: 99 EUR")
    [pdf_id] = await _upload_as(alice, async_client, chat_id, upload("invoice.pdf", document, "application/pdf"))
    socket, _connected = await open_chat(alice, chat_id)
    await socket.send(action="send", message="What is the total?", model=MODEL, attachment=pdf_id)
    answer = await _answered(socket)
    assert answer.status == "done"
    assert openrouter.chat_requests[0].json["messages"][-1]["content"] == (
        '<file name="invoice.pdf">\n<page number="1">\nInvoice 42\n</page>\n<page number="2">\nTotal: 99 EUR\n'
        "</page>\n</file>\n\nWhat is the total?"
    )
    assert f'href="/c/{chat_id}/attachments/{pdf_id}/"' in socket.shown[answer.parent_id].html
    await socket.close()

    served = await async_client.get(f"/c/{chat_id}/attachments/{pdf_id}/")
    assert served.content == document and served["Content-Type"] == "application/pdf"
    assert served["Content-Disposition"] == 'attachment; filename="invoice.pdf"'  # not opened in the browser's viewer

    # Exported as the PDF it was; imported elsewhere, it is read again.
    exported = (await async_client.get(f"/c/{chat_id}/export.json")).json()
    await async_client.aforce_login(bob)
    imported = await async_client.post("/c/import/", {"file": upload("chat.json", json.dumps(exported).encode())})
    assert imported.status_code == 302
    copy = await Attachment.objects.aget(conversation__owner=bob)
    assert bytes(copy.data) == document and "Total: 99 EUR" in copy.text


@over_the_socket
async def test_anthropic_is_sent_images_as_base64_blocks_before_the_text(alice, upstream, settings, async_client):
    settings.ANTHROPIC_API_KEY = "sk-ant-server"
    settings.ANTHROPIC_URL = upstream.url
    chat_id = uuid.uuid4()
    ids = await _upload_as(alice, async_client, chat_id, upload("a.png", PNG), upload("b.txt", b"two"))
    socket, _connected = await open_chat(alice, chat_id)
    await socket.send(action="send", message="Compare", model="claude-test@anthropic", attachment=ids)
    assert (await _answered(socket)).status == "done"
    assert upstream.chat_requests[0].json["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_URL[22:]}},
                {"type": "text", "text": '<file name="b.txt">\ntwo\n</file>\n\nCompare'},
            ],
        }
    ]
    await socket.close()


@over_the_socket
async def test_a_model_that_cannot_see_images_is_not_asked_and_the_reader_is_told(alice, openrouter, async_client):
    openrouter.models = [model_entry("fake/model", "Fake", input_modalities=("text",))]
    _chat_id, _image_id, socket, answer = await _picture_sent(alice, async_client)
    assert answer.status == "error" and answer.error_code == "no_image_input"
    assert "This model does not take images. Pick one that does, and retry." in socket.shown[answer.id].html
    assert openrouter.chat_requests == []
    await socket.close()


@over_the_socket
async def test_an_edit_keeps_the_questions_files(alice, openrouter, async_client):
    _chat_id, _image_id, socket, first = await _picture_sent(alice, async_client)
    await socket.send(action="edit", message_id=first.parent_id, message="", model=MODEL)  # the picture alone
    await socket.until(lambda s: socket.last_assistant_id() != first.id)
    await _answered(socket)
    assert openrouter.chat_requests[1].json["messages"] == [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}]}
    ]
    await socket.close()


@over_the_socket
async def test_files_of_another_chat_or_user_are_refused(alice, bob, openrouter, async_client):
    alices = uuid.uuid4()
    [image_id] = await _upload_as(alice, async_client, alices, upload("cat.png", PNG))
    for user, chat_id in ((bob, uuid.uuid4()), (alice, uuid.uuid4())):
        socket, _connected = await open_chat(user, chat_id)
        await socket.send(action="send", message="Look", model=MODEL, attachment=image_id)
        notice = await socket.receive()
        assert "An attached file is no longer there. Attach it again." in notice
        await socket.close()
    assert not await Message.objects.aexists()
    assert openrouter.chat_requests == []


@over_the_socket
async def test_without_javascript_the_form_posts_its_files_with_the_message(alice, openrouter, async_client):
    chat_id = uuid.uuid4()
    await async_client.aforce_login(alice)
    response = await async_client.post(
        f"/c/{chat_id}/send/", {"message": "What is this?", "model": MODEL, "file": upload("cat.png", PNG)}
    )
    assert response.status_code == 302 and response["Location"] == f"/c/{chat_id}/"
    await generations_finished()
    question = await Message.objects.aget(conversation_id=chat_id, role="user")
    assert [d["name"] for d in question.attachments] == ["cat.png"]
    assert openrouter.chat_requests[0].json["messages"][-1]["content"][1]["image_url"]["url"] == PNG_URL

    refused = await async_client.post(
        f"/c/{chat_id}/send/", {"message": "And this?", "model": MODEL, "file": upload("a.zip", b"PK\x03\x04\xff\xfe")}
    )
    assert refused.status_code == 302
    page = (await async_client.get(refused["Location"])).content.decode()
    assert "a.zip cannot be attached" in page
    assert await Message.objects.filter(conversation_id=chat_id).acount() == 2

    # Files attached with JavaScript before (the page draws them, each with its id) go with the form too.
    notes_id = (await _upload_as(alice, async_client, chat_id, upload("notes.md", b"# Notes")))[-1]  # the newest
    drawn = (await async_client.get(f"/c/{chat_id}/")).content.decode()
    assert f'name="attachment" value="{notes_id}"' in drawn
    await async_client.post(
        f"/c/{chat_id}/send/", {"message": "", "model": MODEL, "attachment": notes_id, "file": upload("b.txt", b"B")}
    )
    await generations_finished()
    assert openrouter.chat_requests[-1].json["messages"][-1]["content"] == (
        '<file name="notes.md">\n# Notes\n</file>\n\n<file name="b.txt">\nB\n</file>'
    )


@over_the_socket
async def test_a_chat_begun_with_files_alone_is_titled_by_their_names(alice, openrouter, async_client):
    chat_id = uuid.uuid4()
    ids = await _upload_as(alice, async_client, chat_id, upload("invoice.png", PNG), upload("terms.txt", b"pay"))
    socket, _connected = await open_chat(alice, chat_id)
    await socket.send(action="send", message="", model=MODEL, attachment=ids)
    await _answered(socket)
    await generations_finished()
    assert (await Conversation.objects.aget(id=chat_id)).title == "invoice.png, terms.txt"
    await socket.close()


# Export and import ------------------------------------------------------------------


def _chat_with_files(client, owner) -> Conversation:
    chat = Conversation.objects.create(owner=owner, title="Pictures", model=MODEL)
    _attach(client, chat.id, upload("cat.png", PNG), upload("notes.md", b"# Notes"))
    described = [a.described for a in Attachment.objects.filter(conversation=chat).order_by("name")]
    question, answer = chat.add_exchange("What are these?", None, MODEL, described)
    Attachment.objects.filter(conversation=chat).update(message=question)
    Message.objects.filter(pk=answer.pk).update(content="A cat and notes.", status="done")
    return chat


@pytest.mark.django_db
def test_exports_carry_the_files_and_an_import_restores_them_to_the_importer(client, alice, bob):
    client.force_login(alice)
    chat = _chat_with_files(client, alice)
    document = client.get(f"/c/{chat.id}/export.json").json()
    assert document["messages"][0]["attachments"] == [
        {"name": "cat.png", "type": "image/png", "data": PNG_URL[22:]},
        {"name": "notes.md", "type": "text/plain", "data": base64.b64encode(b"# Notes").decode()},
    ]
    assert document["messages"][1]["attachments"] == []
    assert "*Attached: cat.png, notes.md*\n\nWhat are these?" in client.get(f"/c/{chat.id}/export.md").content.decode()

    client.force_login(bob)  # another account, as on another server
    response = client.post("/c/import/", {"file": upload("chat.json", json.dumps(document).encode())})
    assert response.status_code == 302
    imported = Conversation.objects.get(owner=bob)
    question = imported.messages.get(role="user")
    assert [(d["name"], d["type"], d["size"]) for d in question.attachments] == [
        ("cat.png", "image/png", len(PNG)), ("notes.md", "text/plain", 7)
    ]
    served = client.get(f"/c/{imported.id}/attachments/{question.attachments[0]['id']}/")
    assert served.status_code == 200 and served.content == PNG
    assert Attachment.objects.get(id=question.attachments[0]["id"]).message == question  # kept: it was sent
    assert client.get(f"/c/{imported.id}/export.json").json()["messages"] == document["messages"]  # round trip


@pytest.mark.django_db
def test_the_backup_carries_the_files_too(alice_client, alice):
    chat = _chat_with_files(alice_client, alice)
    backup = json.loads(b"".join(async_to_sync(_received)(alice_client.get("/c/export.json"))))
    assert backup["conversations"][0]["messages"] == alice_client.get(f"/c/{chat.id}/export.json").json()["messages"]


@pytest.mark.django_db
def test_a_backup_of_chats_with_photos_imports_whole_with_every_picture_as_it_was(client, alice, bob):
    # Three photos of 3 MB (noise compresses hardly at all): a backup of 12 MB
    # in base64, more than twice the 5 MB that imports were once limited to.
    client.force_login(alice)
    photos = {f"photo-{n}.png": picture(1000 + n, 1000, "PNG", noise=True) for n in range(3)}
    for name, data in photos.items():
        chat = Conversation.objects.create(owner=alice, title=name, model=MODEL)
        _attach(client, chat.id, upload(name, data))
        files = [Attachment.objects.get(conversation=chat).described]
        question, _ = chat.add_exchange("What is this?", None, MODEL, files)
        Attachment.objects.filter(conversation=chat).update(message=question)

    response = client.get("/c/export.json")
    backup = b"".join(async_to_sync(_received)(response))
    assert len(backup) > 2 * 5 * 1024 * 1024

    client.force_login(bob)
    response = client.post("/c/import/", {"file": upload("switchboard-conversations.json", backup)})
    assert response.status_code == 302
    for chat in Conversation.objects.filter(owner=bob):
        [described] = chat.messages.get(role="user").attachments
        served = client.get(f"/c/{chat.id}/attachments/{described['id']}/")
        assert (described["name"], served.content) == (chat.title, photos[chat.title])


async def _received(response) -> list[bytes]:
    return [chunk async for chunk in response.streaming_content]


@pytest.mark.django_db
def test_a_file_in_an_import_is_checked_as_an_upload_is(alice_client):
    document = {
        "format": "switchboard.conversation", "version": 1, "conversation": {"title": "Bad"},
        "messages": [{"id": 1, "role": "user", "content": "Hi", "attachments": [
            {"name": "tool.exe", "type": "image/png", "data": base64.b64encode(b"MZ\x90\x00\xff\xfe").decode()}
        ]}],
    }  # fmt: skip
    response = alice_client.post("/c/import/", {"file": upload("bad.json", json.dumps(document).encode())})
    assert response.status_code == 400
    assert "tool.exe cannot be attached: only images (PNG, JPEG, GIF, WebP), PDFs and text files can." in (
        response.content.decode()
    )
    document["messages"][0]["attachments"] = [{"name": "x.png", "data": "not base64!"}]
    response = alice_client.post("/c/import/", {"file": upload("bad.json", json.dumps(document).encode())})
    assert "each file needs its name and its data in base64." in response.content.decode()
    assert not Conversation.objects.exists() and not Attachment.objects.exists()
