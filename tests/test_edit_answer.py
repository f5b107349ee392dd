"""Editing an answer: the reader's wording becomes a new version of it, the model's stays one, and later questions
are sent the reader's (Open WebUI's and LibreChat's Edit under an answer, without losing the original)."""

import json
import uuid
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async

from chatapp import exchanges
from chatapp.models import Conversation, Message, Share
from tests.chat_client import generations_finished, open_chat
from tests.fake_upstream import Stream, openai_text_stream
from tests.test_chat_stream import _answer_id
from tests.test_sharing import MODEL, _answer, _share, _signed_in
from tests.test_transfer import _upload

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def chat(alice) -> Conversation:
    chat = Conversation.objects.create(owner=alice, title="Trip", model=MODEL)
    _question, answer = chat.add_exchange("Where to?", None, MODEL)
    _answer(answer, "Rome, *surely*.", prompt_tokens=5, completion_tokens=4, cost=Decimal("0.002"), reasoning="Hm.")
    chat.refresh_from_db()
    return chat


def _edit(client, chat, message_id, text, **headers):
    return client.post(f"/c/{chat.id}/edit-answer/", {"message_id": message_id, "message": text}, **headers)


@pytest.mark.django_db
def test_an_edited_answer_is_a_new_version_shown_in_place_and_the_models_stays(chat, alice):
    client = _signed_in(alice)
    answer = chat.branch()[1]
    page = client.get(chat.get_absolute_url()).content.decode()
    assert f'href="/c/{chat.id}/edit-answer/?message_id={answer.id}" data-edit-form>' in page
    assert page.count("Rome, *surely*.") == 0  # the form and its raw text come when Edit is opened
    form = client.get(f"/c/{chat.id}/edit-answer/", {"message_id": answer.id}, **HTMX).content.decode()
    assert ">Rome, *surely*.</textarea>" in form and "<html" not in form

    html = _edit(client, chat, answer.id, "**Lisbon**, <script>alert(1)</script>", **HTMX).content.decode()
    assert html.startswith('<div id="messages"')
    # Rendered as the model's answers are: Markdown, and markup as text.
    assert "<strong>Lisbon</strong>, &lt;script&gt;alert(1)" in html and "<script>alert" not in html
    assert '<span class="version-number">2/2</span>' in html and ">Edited</span>" in html

    edited = Message.objects.get(conversation=chat, edited=True)
    chat.refresh_from_db()
    assert chat.current_leaf_id == edited.id and edited.parent_id == answer.parent_id
    assert (edited.model, edited.status, edited.reasoning) == (MODEL, "done", "")
    assert (edited.completion_tokens, edited.cost) == (None, None)  # the model's cost counts once, on its own
    answer.refresh_from_db()
    assert answer.content == "Rome, *surely*." and not answer.edited

    flipped = client.post(f"/c/{chat.id}/versions/{answer.id}/", **HTMX).content.decode()
    assert "Rome, <em>surely</em>." in flipped and '<span class="version-number">1/2</span>' in flipped


@pytest.mark.django_db
def test_without_javascript_the_edit_is_a_page_of_its_own(chat, alice):
    client = _signed_in(alice)
    answer = chat.branch()[1]
    page = client.get(f"/c/{chat.id}/edit-answer/", {"message_id": answer.id}).content.decode()
    assert "<html" in page and ">Rome, *surely*.</textarea>" in page
    assert f'href="/c/{chat.id}/?keep={answer.id}#m-{answer.id}"' in page  # Cancel: back where it was

    response = _edit(client, chat, answer.id, "Porto.")
    edited = Message.objects.get(conversation=chat, edited=True)
    assert response.status_code == 302 and response["Location"] == chat.url_at(edited.id)
    assert "<p>Porto.</p>" in client.get(response["Location"]).content.decode()

    refused = _edit(client, chat, edited.id, "   ", follow=True).content.decode()
    assert "The message is empty." in refused
    assert Message.objects.filter(conversation=chat).count() == 3


@pytest.mark.django_db
def test_what_is_refused(chat, alice, bob):
    answer = chat.branch()[1]
    stranger = _signed_in(bob)
    assert stranger.get(f"/c/{chat.id}/edit-answer/", {"message_id": answer.id}).status_code == 404
    assert _edit(stranger, chat, answer.id, "Mine now.").status_code == 404

    client = _signed_in(alice)
    for not_an_answer in (chat.branch()[0].id, "", "nope", 10**20):
        assert client.get(f"/c/{chat.id}/edit-answer/", {"message_id": not_an_answer}).status_code == 404
        response = _edit(client, chat, not_an_answer, "Text.", **HTMX)
        assert response["HX-Reswap"] == "none" and "That message was not found." in response.content.decode()
    unchanged = _edit(client, chat, answer.id, "Rome, *surely*.", **HTMX).content.decode()
    assert '<span class="version-number">' not in unchanged  # the same text is no new version

    chat.regenerate(answer, MODEL)  # an answer being written: nothing is rewritten meanwhile
    response = _edit(client, chat, answer.id, "Porto.", **HTMX)
    assert "An answer is still being written." in response.content.decode()
    assert client.get(f"/c/{chat.id}/edit-answer/", {"message_id": chat.current_leaf_id}).status_code == 404
    assert not Message.objects.filter(edited=True).exists()


@pytest.mark.django_db
def test_a_shared_link_says_the_answer_was_edited(chat, alice, bob):
    client = _signed_in(alice)
    _edit(client, chat, chat.branch()[1].id, "Porto.")
    _share(client, chat)
    page = _signed_in(bob).get(Share.objects.get(conversation=chat).get_absolute_url()).content.decode()
    assert "<p>Porto.</p>" in page and ">Edited</span>" in page and "Rome" not in page


@pytest.mark.django_db
def test_the_export_carries_the_mark_and_an_import_keeps_it(chat, alice):
    client = _signed_in(alice)
    _edit(client, chat, chat.branch()[1].id, "Porto.")
    markdown = client.get(f"/c/{chat.id}/export.md").content.decode()
    assert "Porto.\n\n*fake/model@openrouter · Edited*" in markdown
    document = json.loads(client.get(f"/c/{chat.id}/export.json").content)
    assert [m["edited"] for m in document["messages"]] == [False, False, True]

    _upload(client, json.dumps(document))
    copy = Conversation.objects.exclude(pk=chat.pk).get(owner=alice)
    assert [(m.content, m.edited) for m in copy.branch()] == [("Where to?", False), ("Porto.", True)]


@pytest.mark.django_db(transaction=True)
async def test_later_questions_send_the_readers_wording(alice, openrouter):
    openrouter.enqueue(
        Stream(openai_text_stream("Paris is the capital of Spain.")),
        Stream(openai_text_stream("Yes: about 3.3 million people.")),
    )
    chat_id = uuid.uuid4()
    socket, connected = await open_chat(alice, chat_id)
    assert connected
    await socket.send(action="send", message="Capital of Spain?", model=MODEL)
    answer_id = await _answer_id(socket)
    await socket.until_status(answer_id, "done")

    rewrite = database_sync_to_async(exchanges.rewrite_answer)
    await rewrite(alice, chat_id, answer_id, "Madrid is the capital of Spain.")
    await socket.send(action="send", message="How many live there?", model=MODEL)
    await socket.until(lambda s: s.last_assistant_id() != answer_id)
    await socket.until_status(socket.last_assistant_id(), "done")
    assert openrouter.chat_requests[-1].json["messages"] == [
        {"role": "user", "content": "Capital of Spain?"},
        {"role": "assistant", "content": "Madrid is the capital of Spain."},
        {"role": "user", "content": "How many live there?"},
    ]
    await socket.close()
    await generations_finished()
