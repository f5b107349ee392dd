"""`/settings/chats/`: all of one's chats at once, archived, brought back, deleted and restored."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from chatapp.models import Conversation

pytestmark = pytest.mark.django_db

MODEL = "fake/model@openrouter"


def _chat(owner, title: str, archived: bool = False) -> Conversation:
    chat = Conversation.objects.create(owner=owner, title=title, model=MODEL)
    chat.add_exchange(f"About {title}?", None, MODEL)
    if archived:  # after it was written in, which takes it out of the archive
        chat.archived_at = timezone.now()
        chat.save(update_fields=["archived_at"])
    return chat


@pytest.fixture
def chats(alice, bob):
    """Alice's three chats, one archived, and Bob's one."""
    return {
        "alice": [_chat(alice, "Foxes"), _chat(alice, "Owls"), _chat(alice, "Bears", archived=True)],
        "bob": _chat(bob, "Bob's own"),
    }


def _flash(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def _listed(client) -> str:
    return client.get("/c/list/").content.decode()


def test_the_page_counts_the_chats_and_archives_them_all(alice_client, chats):
    page = alice_client.get("/settings/chats/")
    assert "In your list: 2. Archived: 1." in page.content.decode()
    response = alice_client.post("/settings/chats/archive/", follow=True)
    assert _flash(response) == ["2 chats archived."]
    assert "In your list: 0. Archived: 3." in response.content.decode()
    assert "Foxes" not in _listed(alice_client) and "Owls" not in _listed(alice_client)
    archived = alice_client.get("/c/archived/").content.decode()
    assert all(title in archived for title in ("Foxes", "Owls", "Bears"))
    assert Conversation.objects.get(pk=chats["bob"].pk).archived_at is None  # another user's are not touched


def test_unarchive_all_from_the_archived_page_brings_them_back(alice_client, chats):
    alice_client.post("/settings/chats/archive/")
    page = alice_client.get("/c/archived/").content.decode()
    assert 'action="/settings/chats/unarchive/"' in page
    response = alice_client.post("/settings/chats/unarchive/", {"next": "archived"}, follow=True)
    assert response.redirect_chain == [("/c/archived/", 302)]
    assert _flash(response) == ["3 chats are back in your list."]
    assert "No archived chats." in response.content.decode()
    assert all(title in _listed(alice_client) for title in ("Foxes", "Owls", "Bears"))


def test_delete_all_asks_for_a_tick_and_can_be_undone_for_an_hour(alice_client, chats, bob):
    refused = alice_client.post("/settings/chats/delete/", follow=True)
    assert _flash(refused) == ["Tick the box to confirm that every chat is to be deleted."]
    assert Conversation.objects.of(chats["alice"][0].owner).count() == 3

    unused = Conversation.objects.create(owner=chats["alice"][0].owner, model=MODEL)
    response = alice_client.post("/settings/chats/delete/", {"confirm": "1"}, follow=True)
    assert _flash(response) == ["3 chats deleted."]  # as the page counted them: a chat never written in is not one
    assert Conversation.objects.get(pk=unused.pk).deleted_at is None  # the purge takes it in its time
    page = response.content.decode()
    assert "In your list: 0. Archived: 0." in page and "Restore the 3 chats deleted in the last hour" in page
    assert "Foxes" not in _listed(alice_client)
    assert alice_client.get(chats["alice"][0].get_absolute_url()).status_code == 404
    bobs = Client()
    bobs.force_login(bob)
    assert bobs.get(chats["bob"].get_absolute_url()).status_code == 200  # not Bob's

    Conversation.objects.filter(pk=chats["alice"][2].pk).update(deleted_at=timezone.now() - timedelta(hours=2))
    response = alice_client.post("/settings/chats/restore/", follow=True)
    assert _flash(response) == ["2 chats restored."]  # the one deleted two hours ago is past undoing
    assert "In your list: 2. Archived: 0." in response.content.decode()
    assert "Restore the" not in response.content.decode()


def test_the_actions_are_posted_and_only_ever_the_users_own(client, chats, bob):
    client.force_login(bob)
    for action in ("archive", "unarchive", "delete", "restore"):
        assert client.get(f"/settings/chats/{action}/").status_code == 405
    client.post("/settings/chats/delete/", {"confirm": "1"})
    assert Conversation.objects.of(chats["alice"][0].owner).count() == 3
    client.logout()
    assert client.post("/settings/chats/archive/").status_code == 302
    assert Conversation.objects.exclude(archived_at=None).count() == 1
