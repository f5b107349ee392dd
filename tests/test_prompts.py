"""Saved prompts (chatapp.library): kept on the settings page, carried by the chat page for "/command"."""

import json
import re

import pytest
from django.test import Client

from chatapp.models import Prompt

pytestmark = pytest.mark.django_db


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _carried(page: str) -> list[dict]:
    """The prompts a chat page hands to prompts.js."""
    found = re.search(r'<script id="composer-prompts" type="application/json">(.*?)</script>', page, re.S)
    return json.loads(found.group(1))


def test_prompts_are_saved_listed_and_carried_by_the_chat_page_of_their_owner_only(alice, bob):
    owner = _signed_in(alice)
    saved = owner.post("/settings/prompts/", {"command": "tldr", "text": "Sum this up in one line:"}, follow=True)
    page = saved.content.decode()
    assert "Prompt /tldr saved." in page and "<code>/tldr</code>" in page and "Sum this up in one line:" in page
    sneaky = "Quote </script><script>alert(1)</script> & keep it"
    owner.post("/settings/prompts/", {"command": "翻译", "text": sneaky})  # a command in any script

    chat_page = owner.get("/c/new/").content.decode()
    assert _carried(chat_page) == [{"command": "tldr", "text": "Sum this up in one line:"},
                                   {"command": "翻译", "text": sneaky}]  # fmt: skip
    assert "<script>alert(1)" not in chat_page  # JSON in the page, escaped
    assert "Type <kbd>/</kbd> in the message box for your saved prompts." in chat_page
    assert _carried(_signed_in(bob).get("/c/new/").content.decode()) == []
    assert "tldr" not in _signed_in(bob).get("/settings/prompts/").content.decode()


def test_a_command_is_one_word_and_one_of_a_kind_per_user(alice, bob):
    owner = _signed_in(alice)
    Prompt.objects.create(owner=alice, command="tldr", text="Short, please.")
    taken = owner.post("/settings/prompts/", {"command": "tldr", "text": "Again"}).content.decode()
    assert "You already have a prompt /tldr." in taken
    spaced = owner.post("/settings/prompts/", {"command": "two words", "text": "No"}).content.decode()
    assert "Enter a valid “slug”" in spaced
    for blank in ("", " \r\n "):
        refused = owner.post("/settings/prompts/", {"command": "empty", "text": blank})
        assert "This field is required." in refused.content.decode()
    assert list(Prompt.objects.values_list("command", flat=True)) == ["tldr"]

    _signed_in(bob).post("/settings/prompts/", {"command": "tldr", "text": "Bob's own"})  # another user's is theirs
    assert Prompt.objects.filter(command="tldr").count() == 2


def test_a_prompt_is_edited_and_deleted_by_its_owner_and_by_no_one_else(alice, bob):
    prompt = Prompt.objects.create(owner=alice, command="tldr", text="Short, please.")
    other = _signed_in(bob)
    assert other.get(f"/settings/prompts/{prompt.pk}/").status_code == 404
    assert other.post(f"/settings/prompts/{prompt.pk}/", {"command": "mine", "text": "Mine"}).status_code == 404
    assert other.post(f"/settings/prompts/{prompt.pk}/delete/").status_code == 404
    prompt.refresh_from_db()
    assert (prompt.command, prompt.text) == ("tldr", "Short, please.")

    owner = _signed_in(alice)
    assert "Short, please." in owner.get(f"/settings/prompts/{prompt.pk}/").content.decode()
    edited = owner.post(f"/settings/prompts/{prompt.pk}/", {"command": "tldr", "text": "Shorter:\r\n"})  # as sent
    assert edited.status_code == 302
    prompt.refresh_from_db()
    assert prompt.text == "Shorter:\n"  # its last line break kept, the browser's CR not
    owner.post(f"/settings/prompts/{prompt.pk}/delete/")
    assert not Prompt.objects.exists()
