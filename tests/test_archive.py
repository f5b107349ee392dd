"""Archiving a chat: out of the sidebar, found by a search and on its own page, back when unarchived or written in."""

import json

import pytest
from asgiref.sync import async_to_sync

from chatapp.models import Conversation
from tests.chat_client import open_chat
from tests.fake_upstream import Stream, openai_text_stream
from tests.test_conversations import MODEL, _answered, _chat
from tests.test_transfer import _received, _upload


def _sidebar(client, **params) -> str:
    return client.get("/c/list/", params, HTTP_HX_REQUEST="true").content.decode()


@pytest.mark.django_db
def test_an_archived_chat_leaves_the_list_but_a_search_and_the_archive_find_it(alice_client, alice):
    kept, done = _chat(alice, "Still going"), _chat(alice, "Zeppelin research")
    html = alice_client.post(f"/c/{done.id}/archive/", HTTP_HX_REQUEST="true").content.decode()
    assert "“Zeppelin research” was archived." in html and "Undo" in html

    assert "Still going" in _sidebar(alice_client) and "Zeppelin research" not in _sidebar(alice_client)
    found = _sidebar(alice_client, q="zeppelin")
    assert "Zeppelin research" in found and "Archived" in found and "Unarchive" in found
    archive = alice_client.get("/c/archived/").content.decode()
    assert "Zeppelin research" in archive and "Still going" not in archive
    assert alice_client.get(done.get_absolute_url()).status_code == 200  # kept whole, and it can still be read
    chat_page = alice_client.get(done.get_absolute_url()).content.decode()
    assert "This chat is archived. Writing in it brings it back to your list." in chat_page
    assert alice_client.get("/").url == kept.get_absolute_url()  # the home page opens the latest chat not archived


@pytest.mark.django_db
def test_undo_and_unarchive_put_it_back_in_the_list(alice_client, alice):
    chat = _chat(alice, "Airships")
    alice_client.post(f"/c/{chat.id}/archive/")
    html = alice_client.post(f"/c/{chat.id}/unarchive/", HTTP_HX_REQUEST="true").content.decode()
    assert f'id="conversation-{chat.id}"' in html and "Archived" not in html and ">Archive<" in html
    assert "Airships" in _sidebar(alice_client)
    assert "No archived chats." in alice_client.get("/c/archived/").content.decode()


@pytest.mark.django_db
def test_archiving_the_open_chat_says_so_on_its_page_until_unarchived(alice_client, alice):
    chat = _chat(alice, "Open")
    on_its_page = {"HX-Request": "true", "HX-Current-URL": f"http://testserver{chat.get_absolute_url()}"}
    html = alice_client.post(f"/c/{chat.id}/archive/", headers=on_its_page).content.decode()
    assert 'id="archived-notice"' in html and 'hx-swap-oob="true"' in html and "This chat is archived." in html
    assert alice_client.post(f"/c/{chat.id}/unarchive/", headers=on_its_page)["HX-Refresh"] == "true"
    page = alice_client.get(chat.get_absolute_url()).content.decode()
    assert "This chat is archived." not in page


@pytest.mark.django_db
def test_the_archive_is_newest_first_and_paginated(alice_client, alice):
    chats = [_chat(alice, f"Chat {i:02d}") for i in range(55)]
    for chat in chats:
        alice_client.post(f"/c/{chat.id}/archive/")
    first = alice_client.get("/c/archived/").content.decode()
    assert first.index("Chat 54") < first.index("Chat 53") and "Chat 04" not in first and "?page=2" in first
    second = alice_client.get("/c/archived/", {"page": 2}).content.decode()
    assert "Chat 04" in second and "Chat 00" in second and "Chat 54" not in second


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["archive", "unarchive"])
def test_another_users_chat_cannot_be_archived_or_unarchived(alice, bob_client, action):
    chat = _chat(alice, "Alice's")
    assert bob_client.post(f"/c/{chat.id}/{action}/").status_code == 404
    assert "Alice's" not in bob_client.get("/c/archived/").content.decode()


@pytest.mark.django_db
def test_a_backup_keeps_a_chat_archived(alice_client, alice, bob):
    _chat(alice, "Listed")
    archived = _chat(alice, "Put away")
    alice_client.post(f"/c/{archived.id}/archive/")
    backup = async_to_sync(_received)(alice_client.get("/c/export.json"))
    entries = {e["conversation"]["title"]: e["conversation"] for e in json.loads(backup)["conversations"]}
    assert entries["Listed"]["archived_at"] is None and entries["Put away"]["archived_at"]

    alice_client.force_login(bob)  # restored on another account
    assert _upload(alice_client, backup).status_code == 302
    assert "Put away" in alice_client.get("/c/archived/").content.decode()
    assert "Listed" in _sidebar(alice_client) and "Put away" not in _sidebar(alice_client)
    assert Conversation.objects.filter(owner=bob, archived_at__isnull=False).count() == 1


@pytest.mark.django_db(transaction=True)
async def test_writing_in_an_archived_chat_brings_it_back(alice, openrouter):
    openrouter.enqueue(Stream(openai_text_stream("Welcome back.")))
    chat = await Conversation.objects.acreate(owner=alice, model=MODEL, title="Dusty")
    socket, _ = await open_chat(alice, chat.id)
    await socket.send(action="send", message="First", model=MODEL)
    first = await _answered(socket)
    await Conversation.objects.filter(pk=chat.pk).aupdate(archived_at="2026-01-01T00:00:00Z")

    openrouter.enqueue(Stream(openai_text_stream("Still here.")))
    seen = len(socket.frames)
    await socket.send(action="send", message="Anyone there?", model=MODEL)
    await _answered(socket, first)
    frames = "".join(frame for _at, frame in socket.frames[seen:])
    assert 'hx-swap-oob="afterbegin:#conversation-list-items"' in frames  # its page lists it again
    assert 'id="archived-notice" class="archived-notice" role="status" hidden hx-swap-oob="true"' in frames
    assert (await Conversation.objects.aget(pk=chat.pk)).archived_at is None
    await socket.close()


@pytest.mark.django_db
@pytest.mark.parametrize(("action", "said"), [("archive", "was archived."), ("delete", "was deleted.")])
def test_the_place_a_chat_leaves_names_it_as_text(alice_client, alice, action, said):
    chat = _chat(alice, "<b>Tom & Jerry</b>")
    html = alice_client.post(f"/c/{chat.id}/{action}/", HTTP_HX_REQUEST="true").content.decode()
    assert f"“&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;” {said}" in html and "<b>" not in html
