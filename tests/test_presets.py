"""Presets (chatapp.library): named chat settings a user starts chats from, or applies to one."""

import re
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.models import Preferences
from chatapp.models import Conversation, Preset
from tests.chat_client import open_chat
from tests.fake_upstream import Stream, openai_text_stream
from tests.test_attachments import upload

SONNET = "anthropic/claude-sonnet-4.5@openrouter"  # in the fake upstream's catalogue, and it reasons
MINI = "openai/gpt-4o-mini@openrouter"
PIRATE = {
    "name": "Pirate",
    "model": SONNET,
    "system_prompt": "Talk like a pirate.",
    "temperature": "0.2",
    "top_p": "",
    "max_tokens": "300",
    "reasoning_effort": "low",
    "provider_order": "anthropic",
    "allow_fallbacks": "on",
}


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _pirate(owner, **fields) -> Preset:
    values = {"model": SONNET, "system_prompt": "Talk like a pirate.", "temperature": 0.2, "max_tokens": 300}
    return Preset.objects.create(owner=owner, name="Pirate", **{**values, **fields})


async def _asked(openrouter, user, chat_id) -> dict:
    """What the model is asked with when `user` says Hello in the chat over its socket (the chat made if new)."""
    openrouter.enqueue(Stream(openai_text_stream("Arr.")))
    socket, connected = await open_chat(user, chat_id)
    assert connected
    await socket.send(action="send", message="Hello", model=SONNET)
    await socket.until(lambda s: any(m.role == "assistant" for m in s.shown.values()))
    await socket.until_status(socket.last_assistant_id(), "done")
    await socket.close()
    return openrouter.chat_requests[-1].json


@pytest.mark.django_db(transaction=True)
async def test_a_chat_started_from_a_preset_asks_the_model_with_its_settings(alice, openrouter, async_client):
    await async_client.aforce_login(alice)
    saved = await async_client.post("/settings/presets/", PIRATE, follow=True)
    page = saved.content.decode()
    assert "Preset “Pirate” saved." in page and "Talk like a pirate." in page
    assert "<td>Anthropic: Claude Sonnet 4.5</td>" in page  # the model as the picker names it
    start = re.search(r'<form method="post" action="(/c/[0-9a-f-]{36}/settings/)">', page).group(1)
    preset_id = re.search(r'name="preset" value="(\d+)"', page).group(1)

    opened = await async_client.post(start, {"preset": preset_id}, follow=True)
    chat_page = opened.content.decode()
    chat = await Conversation.objects.aget(owner=alice)
    assert opened.redirect_chain == [(chat.get_absolute_url(), 302)]
    assert "Preset “Pirate” applied." in chat_page
    assert "System prompt: <q>Talk like a pirate.</q>" in chat_page  # what the new chat will ask with
    assert f'<option value="{SONNET}" selected' in chat_page  # the composer's picker

    sent = await _asked(openrouter, alice, chat.id)
    assert sent["model"] == "anthropic/claude-sonnet-4.5"
    assert sent["messages"][0] == {"role": "system", "content": "Talk like a pirate."}
    assert (sent["temperature"], sent["max_tokens"], sent["reasoning"]) == (0.2, 300, {"effort": "low"})
    assert sent["provider"] == {"order": ["anthropic"], "allow_fallbacks": True}
    assert "top_p" not in sent


@pytest.mark.django_db
def test_a_preset_applied_in_a_chats_panel_replaces_its_settings_and_the_pickers_model(alice, openrouter):
    client = _signed_in(alice)
    preset = _pirate(alice, provider_order=["anthropic", "openai"])
    chat = Conversation.objects.create(owner=alice, model=MINI, system_prompt="Be terse.", temperature=1.5, top_p=0.5)
    panel = client.get(f"/c/{chat.id}/settings/", headers={"HX-Request": "true"}).content.decode()
    assert f'<option value="{preset.pk}">Pirate</option>' in panel
    assert '<input type="text" name="provider_order" maxlength="500"' in panel  # an empty order, an empty box

    response = client.post(f"/c/{chat.id}/settings/", {"preset": preset.pk}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert "Preset “Pirate” applied." in html and ">\nTalk like a pirate.</textarea>" in html
    assert 'name="provider_order" value="anthropic, openai"' in html
    picker = html.split('<select id="model-select" name="model" hx-swap-oob="true">')[1].split("</select>")[0]
    assert f'<option value="{SONNET}" selected' in picker
    chat.refresh_from_db()
    assert (chat.model, chat.system_prompt, chat.temperature, chat.top_p) == (SONNET, "Talk like a pirate.", 0.2, None)

    preset.system_prompt = "Talk like a parrot."  # a chat took a copy
    preset.save()
    chat.refresh_from_db()
    assert chat.system_prompt == "Talk like a pirate."


@pytest.mark.django_db
def test_a_new_chats_page_offers_the_presets_until_its_first_message(alice, openrouter):
    client = _signed_in(alice)
    preset = _pirate(alice)
    new_page = client.get("/c/new/").content.decode()
    chat_id = re.search(r'data-conversation-id="([0-9a-f-]{36})"', new_page).group(1)
    assert "Or start from a preset:" in new_page
    assert f'action="/c/{chat_id}/settings/"' in new_page and f'name="preset" value="{preset.pk}"' in new_page

    assert client.post(f"/c/{chat_id}/settings/", {"preset": preset.pk}).status_code == 302
    chat = Conversation.objects.get(pk=chat_id)  # the new chat's own id: its drafts and files stay with it
    assert chat.system_prompt == "Talk like a pirate." and chat.model == SONNET

    chat.add_exchange("Hello", None, SONNET)
    assert "Or start from a preset:" not in client.get(f"/c/{chat_id}/").content.decode()


@pytest.mark.django_db(transaction=True)
async def test_new_chats_start_from_the_preset_chosen_for_them(alice, openrouter, async_client):
    await async_client.aforce_login(alice)
    plain = await Preset.objects.acreate(owner=alice, name="Plain", model=MINI, for_new_chats=True)
    page = (await async_client.post("/settings/presets/", {**PIRATE, "for_new_chats": "on"}, follow=True)).content
    # One preset at a time: the one chosen last.
    assert [p.name async for p in Preset.objects.filter(owner=alice, for_new_chats=True)] == ["Pirate"]
    assert re.findall(r'>(\w+)</a> <span class="badge">New chats</span>', page.decode()) == ["Pirate"]
    await plain.arefresh_from_db()
    assert not plain.for_new_chats

    new_page = (await async_client.get("/c/new/")).content.decode()
    assert "Starts from your preset “Pirate”. System prompt: <q>Talk like a pirate.</q>" in new_page
    assert f'<option value="{SONNET}" selected' in new_page  # its model, in the composer's picker
    chat_id = uuid.UUID(re.search(r'data-conversation-id="([0-9a-f-]{36})"', new_page).group(1))

    sent = await _asked(openrouter, alice, chat_id)
    assert sent["messages"][0] == {"role": "system", "content": "Talk like a pirate."}
    assert (sent["temperature"], sent["max_tokens"], sent["reasoning"]) == (0.2, 300, {"effort": "low"})
    chat = await Conversation.objects.aget(pk=chat_id)
    assert (chat.system_prompt, chat.model) == ("Talk like a pirate.", SONNET)  # a copy, kept with the chat

    # A chat made otherwise takes them too: by its settings panel, or by its first file.
    panel = (await async_client.get(f"/c/{uuid.uuid4()}/settings/", headers={"HX-Request": "true"})).content
    assert "Talk like a pirate.</textarea>" in panel.decode()
    other_id = uuid.uuid4()
    await async_client.post(f"/c/{other_id}/attachments/", {"file": upload("notes.txt", b"Plans")})
    assert (await Conversation.objects.aget(pk=other_id)).system_prompt == "Talk like a pirate."


@pytest.mark.django_db
def test_a_preset_for_new_chats_whose_model_is_gone_gives_them_the_rest(alice, openrouter, settings):
    client = _signed_in(alice)
    _pirate(alice, for_new_chats=True)
    settings.CUSTOM_MODELS = f"-all,+{MINI.split('@')[0]}"  # Sonnet is no longer offered
    new_page = client.get("/c/new/").content.decode()
    assert "Starts from your preset “Pirate”." in new_page
    assert f'<option value="{MINI}" selected' in new_page  # the one offered, not a model the server refuses
    chat_id = re.search(r'data-conversation-id="([0-9a-f-]{36})"', new_page).group(1)
    client.post(f"/c/{chat_id}/attachments/", {"file": upload("notes.txt", b"Plans")})
    chat = Conversation.objects.get(pk=chat_id)
    assert (chat.system_prompt, chat.model) == ("Talk like a pirate.", MINI)
    # Another user's new chats are their own.
    assert "Starts from your preset" not in _signed_in(get_user_model().objects.create_user("carol")).get("/c/new/").content.decode()


@pytest.mark.django_db
def test_a_presets_reasoning_effort_is_kept_whatever_model_its_form_was_drawn_with(alice, openrouter):
    Preferences.objects.create(user=alice, default_model=MINI)  # a new preset's form opens on a model that
    client = _signed_in(alice)  # cannot reason, and offers no effort
    assert 'name="reasoning_effort"' not in client.get("/settings/presets/").content.decode()
    client.post("/settings/presets/", PIRATE)  # Sonnet, which can
    assert Preset.objects.get(owner=alice).reasoning_effort == "low"


@pytest.mark.django_db
def test_a_chats_settings_saved_as_a_preset_replace_one_of_that_name(alice, openrouter):
    client = _signed_in(alice)
    chat = Conversation.objects.create(owner=alice, model=MINI)
    _pirate(alice, system_prompt="Old words.")
    data = {"model": SONNET, "system_prompt": "Talk like a pirate, matey.", "temperature": "0.9", "provider_order": "",
            "allow_fallbacks": "", "save_as": "Pirate"}
    assert client.post(f"/c/{chat.id}/settings/", data).status_code == 302
    preset = Preset.objects.get(owner=alice)  # one: the same name is replaced
    assert (preset.model, preset.system_prompt, preset.temperature) == (SONNET, "Talk like a pirate, matey.", 0.9)
    assert preset.allow_fallbacks is False and preset.max_tokens is None

    client.post(f"/c/{chat.id}/settings/", {**data, "save_as": "Sailor"})
    assert list(Preset.objects.filter(owner=alice).values_list("name", flat=True)) == ["Pirate", "Sailor"]


@pytest.mark.django_db
def test_a_preset_offers_only_the_models_the_server_allows_and_names_are_one_each(alice, openrouter, settings):
    client = _signed_in(alice)
    _pirate(alice)
    settings.CUSTOM_MODELS = f"-all,+{MINI.split('@')[0]}"  # Sonnet is no longer offered
    refused = client.post("/settings/presets/", {**PIRATE, "name": "Corsair"}).content.decode()
    assert "Select a valid choice." in refused
    duplicate = client.post("/settings/presets/", {**PIRATE, "model": MINI, "reasoning_effort": ""}).content.decode()
    assert "You already have a preset named “Pirate”." in duplicate
    assert Preset.objects.count() == 1

    client.post("/settings/presets/", {**PIRATE, "name": "Corsair", "model": MINI, "reasoning_effort": ""})
    assert list(Preset.objects.values_list("name", "model")) == [("Corsair", MINI), ("Pirate", SONNET)]
    listed = client.get("/settings/presets/").content.decode()
    assert f"{SONNET}: no longer available" in listed  # the preset kept: its page says what became of its model
    assert f"{MINI}: no longer available" not in listed and "GPT-4o-mini" in listed


@pytest.mark.django_db
def test_a_preset_is_edited_and_deleted_by_its_owner_and_by_no_one_else(alice, bob, openrouter):
    owner, other = _signed_in(alice), _signed_in(bob)
    preset = _pirate(alice)
    chat = Conversation.objects.create(owner=bob)
    assert "Pirate" not in other.get("/settings/presets/").content.decode()
    assert other.get(f"/settings/presets/{preset.pk}/").status_code == 404
    assert other.post(f"/settings/presets/{preset.pk}/", {**PIRATE, "name": "Mine"}).status_code == 404
    assert other.post(f"/settings/presets/{preset.pk}/delete/").status_code == 404
    assert other.post(f"/c/{chat.id}/settings/", {"preset": preset.pk}).status_code == 404  # not bob's to apply
    assert other.post(f"/c/{uuid.uuid4()}/settings/", {"preset": "x"}).status_code == 404
    chat.refresh_from_db()
    assert chat.system_prompt == "" and Preset.objects.get().name == "Pirate"

    edited = owner.post(f"/settings/presets/{preset.pk}/", {**PIRATE, "name": "Privateer", "temperature": "1"})
    assert edited.status_code == 302
    preset.refresh_from_db()
    assert (preset.name, preset.temperature) == ("Privateer", 1.0)
    assert owner.post(f"/settings/presets/{preset.pk}/delete/").status_code == 302
    assert not Preset.objects.exists()
