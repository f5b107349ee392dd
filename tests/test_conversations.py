"""Finding, tidying and tuning conversations (issue: Conversations and usage)."""

import uuid
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chatapp.models import PAGE_MESSAGES, Conversation, Message
from chatapp.upstream import fit_to_context
from tests.chat_client import generations_finished, open_chat
from tests.fake_upstream import Stream, openai_text_stream

MODEL = "fake/model@openrouter"


def _chat(owner, title="", answer="The answer mentions a zeppelin somewhere in the middle of it.") -> Conversation:
    chat = Conversation.objects.create(owner=owner, title=title, model=MODEL)
    question = Message.objects.create(conversation=chat, role="user", content="Tell me something")
    reply = Message.objects.create(conversation=chat, parent=question, role="assistant", content=answer)
    chat.current_leaf, chat.written_at = reply, timezone.now()
    chat.save()
    return chat


# -- search ---------------------------------------------------------------------


@pytest.mark.django_db
def test_search_finds_a_word_from_the_middle_of_an_answer(alice_client, alice):
    found = _chat(alice, "Airships")
    _chat(alice, "Boats", answer="Nothing about flying here.")
    html = alice_client.get("/c/list/", {"q": "zeppelin"}).content.decode()
    assert found.get_absolute_url() in html and "Boats" not in html
    assert connection.vendor in ("sqlite", "postgresql")


@pytest.mark.django_db
def test_search_matches_titles_and_chinese_text(alice_client, alice):
    _chat(alice, "Quarterly report")
    _chat(alice, "中文", answer="这是一个关于飞艇的回答。")
    assert "Quarterly report" in alice_client.get("/c/list/", {"q": "quarterly"}).content.decode()
    assert "中文" in alice_client.get("/c/list/", {"q": "飞艇"}).content.decode()


@pytest.mark.django_db
def test_search_never_shows_another_users_conversations(alice, bob_client):
    _chat(alice, "Alice's zeppelin")
    html = bob_client.get("/c/list/", {"q": "zeppelin"}).content.decode()
    assert "Alice" not in html and "No conversation matches." in html


@pytest.mark.django_db
def test_the_list_is_paginated_newest_first_with_pinned_on_top(alice_client, alice):
    chats = [_chat(alice, f"Chat {i:02d}") for i in range(35)]
    Conversation.objects.filter(pk=chats[0].pk).update(pinned=True)
    first = alice_client.get("/c/list/", HTTP_HX_REQUEST="true").content.decode()
    assert first.index("Chat 00") < first.index("Chat 34") < first.index("Chat 33")
    assert "page=2" in first
    second = alice_client.get("/c/list/", {"page": 2}, HTTP_HX_REQUEST="true").content.decode()
    assert "Chat 01" in second and "Chat 34" not in second


@pytest.mark.django_db
def test_the_list_keeps_a_chats_place_until_it_is_written_in(alice_client, alice, settings):
    settings.OPENROUTER_API_KEY = "sk-or-test"
    settings.OPENROUTER_URL = "http://127.0.0.1:9"  # no catalogue: built-ins and CUSTOM_MODELS only
    settings.CUSTOM_MODELS = "+fake/model@openrouter=Fake"
    older = _chat(alice, "Older")
    _chat(alice, "Newer")
    first = older.current_leaf
    second = older.regenerate(first, MODEL)
    Message.objects.filter(pk=second.pk).update(status="done", content="Another answer.")
    Conversation.objects.filter(pk=older.pk).update(written_at=timezone.now() - timedelta(days=3))

    def listed() -> list[str]:
        page = alice_client.get("/c/list/", HTTP_HX_REQUEST="true").content.decode()
        return sorted(("Older, renamed", "Newer"), key=page.index)

    alice_client.post(f"/c/{older.id}/rename/", {"title": "Older, renamed"})
    alice_client.post(f"/c/{older.id}/versions/{first.id}/")  # back to the first answer
    alice_client.post(f"/c/{older.id}/settings/", {"model": MODEL, "system_prompt": "Be brief."})
    assert listed() == ["Newer", "Older, renamed"]  # none of those is writing in it
    older.refresh_from_db()
    assert older.system_prompt == "Be brief." and older.current_leaf_id == first.id

    older.edit_answer(older.current_leaf, "A rewritten answer.")
    assert listed() == ["Older, renamed", "Newer"]


# -- rename, pin, delete and undo -------------------------------------------------------------


@pytest.mark.django_db
def test_rename_pin_delete_and_undo(alice_client, alice):
    chat = _chat(alice, "Old title")
    alice_client.post(f"/c/{chat.id}/rename/", {"title": "New title"})
    alice_client.post(f"/c/{chat.id}/pin/")
    chat.refresh_from_db()
    assert chat.title == "New title" and chat.pinned

    response = alice_client.post(f"/c/{chat.id}/delete/", HTTP_HX_REQUEST="true")
    assert "was deleted" in response.content.decode() and "Undo" in response.content.decode()
    assert alice_client.get(chat.get_absolute_url()).status_code == 404
    assert "New title" not in alice_client.get("/c/list/").content.decode()

    alice_client.post(f"/c/{chat.id}/restore/")
    assert alice_client.get(chat.get_absolute_url()).status_code == 200


@pytest.mark.django_db
def test_pinning_from_a_search_keeps_the_search(alice_client, alice):
    found, _other = _chat(alice, "Zeppelins"), _chat(alice, "Gardening", answer="Roses.")
    html = alice_client.post(f"/c/{found.id}/pin/", {"q": "zeppelin"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'value="zeppelin"' in html and "Zeppelins" in html and "Gardening" not in html


@pytest.mark.django_db
def test_deleting_the_open_conversation_closes_its_composer_until_undone(alice_client, alice):
    chat, other = _chat(alice, "Open"), _chat(alice, "Elsewhere")
    on_its_page = {"HX-Request": "true", "HX-Current-URL": f"http://testserver{chat.get_absolute_url()}"}
    elsewhere = {"HX-Request": "true", "HX-Current-URL": f"http://testserver{other.get_absolute_url()}"}

    html = alice_client.post(f"/c/{chat.id}/delete/", headers=on_its_page).content.decode()
    assert '<div id="composer"' in html and "This conversation was deleted." in html and "Undo" in html
    undone = alice_client.post(f"/c/{chat.id}/restore/", headers=on_its_page)
    assert undone["HX-Refresh"] == "true"  # the page comes back whole, composer included

    html = alice_client.post(f"/c/{chat.id}/delete/", headers=elsewhere).content.decode()
    assert '<div id="composer"' not in html and "was deleted" in html  # another page's composer is left alone
    undone = alice_client.post(f"/c/{chat.id}/restore/", headers=elsewhere)
    assert "HX-Refresh" not in undone and f'id="conversation-{chat.id}"' in undone.content.decode()


@pytest.mark.django_db
def test_a_chat_given_settings_but_never_a_message_is_dropped_after_a_day(alice_client, alice):
    stale, fresh = (Conversation.objects.create(owner=alice, system_prompt="Unused") for _ in range(2))
    used = _chat(alice, "Old but used")
    two_days_ago = timezone.now() - timedelta(days=2)
    Conversation.objects.filter(pk__in=[stale.pk, used.pk]).update(updated_at=two_days_ago)
    alice_client.get("/c/list/")
    assert set(Conversation.objects.values_list("pk", flat=True)) == {fresh.pk, used.pk}


@pytest.mark.django_db
def test_chats_deleted_past_undoing_are_dropped_by_the_list_at_most_every_ten_minutes(alice_client, alice):
    old, recent, later = (_chat(alice, title) for title in ("Deleted long ago", "Just deleted", "Deleted later"))
    now = timezone.now()
    Conversation.objects.filter(pk=old.pk).update(deleted_at=now - timedelta(hours=2))
    Conversation.objects.filter(pk=recent.pk).update(deleted_at=now - timedelta(minutes=5))
    alice_client.get("/c/list/")
    assert set(Conversation.objects.values_list("title", flat=True)) == {"Just deleted", "Deleted later"}

    Conversation.objects.filter(pk=later.pk).update(deleted_at=now - timedelta(hours=2))
    with CaptureQueriesContext(connection) as searching:
        alice_client.get("/c/list/", {"q": "deleted"})
    assert not [q for q in searching.captured_queries if q["sql"].startswith("DELETE")]
    assert Conversation.objects.filter(pk=later.pk).exists()  # until the next purge


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["rename", "pin", "delete", "restore", "settings"])
def test_another_users_conversation_cannot_be_touched(alice, bob_client, action):
    chat = _chat(alice, "Alice's")
    response = bob_client.post(f"/c/{chat.id}/{action}/", {"title": "Mine now"})
    assert response.status_code == 404
    chat.refresh_from_db()
    assert chat.title == "Alice's" and not chat.pinned and chat.deleted_at is None


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["export.md", "export.json"])
def test_another_users_conversation_cannot_be_exported(alice, bob_client, path):
    chat = _chat(alice, "Alice's")
    assert bob_client.get(f"/c/{chat.id}/{path}").status_code == 404


# -- per-chat settings -------------------------------------------------------------------


@pytest.mark.django_db
def test_chat_settings_are_saved_and_validated(alice_client, alice, settings):
    settings.OPENROUTER_API_KEY = "sk-or-test"
    settings.OPENROUTER_URL = "http://127.0.0.1:9"  # no catalogue: built-ins only
    chat = _chat(alice, "Tuned")
    chat.model = "openrouter/auto@openrouter"
    chat.save()
    response = alice_client.post(
        f"/c/{chat.id}/settings/",
        {"model": "openrouter/auto@openrouter", "system_prompt": "Be brief.", "temperature": "0.3", "top_p": "0.9",
         "max_tokens": "500", "reasoning_effort": "high", "provider_order": "anthropic, openai", "allow_fallbacks": ""},
    )
    assert response.status_code == 302
    chat.refresh_from_db()
    assert (chat.system_prompt, chat.temperature, chat.top_p, chat.max_tokens) == ("Be brief.", 0.3, 0.9, 500)
    assert chat.provider_order == ["anthropic", "openai"] and chat.allow_fallbacks is False
    bad = alice_client.post(f"/c/{chat.id}/settings/", {"model": "openrouter/auto@openrouter", "temperature": "7"})
    assert bad.status_code == 200 and "less than or equal to 2" in bad.content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("order", "fallbacks", "sent"), [
    ([], True, None),
    ([], False, {"allow_fallbacks": False}),
    (["anthropic"], True, {"order": ["anthropic"], "allow_fallbacks": True}),
    (["anthropic"], False, {"order": ["anthropic"], "allow_fallbacks": False}),
])  # fmt: skip
async def test_openrouter_gets_the_chats_provider_routing(alice, openrouter, order, fallbacks, sent):
    """Fallbacks off means something without an order too: only the provider OpenRouter picks first."""
    openrouter.enqueue(Stream(openai_text_stream("Routed.")))
    chat = await Conversation.objects.acreate(owner=alice, model=MODEL, provider_order=order, allow_fallbacks=fallbacks)
    socket, _ = await open_chat(alice, chat.id)
    await socket.send(action="send", message="Route me", model=MODEL)
    await _answered(socket)
    await socket.close()
    assert openrouter.chat_requests[0].json.get("provider") == sent


@pytest.mark.django_db
def test_a_model_changed_in_the_chats_settings_is_the_composers_too(alice_client, alice, settings):
    settings.OPENROUTER_API_KEY = "sk-or-test"
    settings.OPENROUTER_URL = "http://127.0.0.1:9"  # no catalogue: built-ins and CUSTOM_MODELS only
    settings.CUSTOM_MODELS = "+fake/model@openrouter=Fake"
    chat = _chat(alice, "Switching")  # on fake/model
    response = alice_client.post(f"/c/{chat.id}/settings/", {"model": "openrouter/auto@openrouter"},
                                 headers={"HX-Request": "true"})  # fmt: skip
    html = response.content.decode()
    assert response.status_code == 200 and "Saved." in html
    picker = html.split('<select id="model-select" name="model" hx-swap-oob="true">')[1].split("</select>")[0]
    assert '<option value="openrouter/auto@openrouter" selected' in picker
    assert '"fake/model@openrouter" selected' not in picker


@pytest.mark.django_db
def test_a_model_no_longer_offered_is_named_not_replaced_in_the_picker(alice_client, alice, settings):
    settings.OPENROUTER_API_KEY = "sk-or-test"
    settings.OPENROUTER_URL = "http://127.0.0.1:9"
    chat = _chat(alice, "Old model")  # fake/model: not offered here
    html = alice_client.get(f"/c/{chat.id}/").content.decode()
    picker = html.split('<select id="model-select" name="model">')[1].split("</select>")[0]
    assert '<option value="" selected disabled>fake/model@openrouter: no longer available, pick another</option>' in picker
    assert picker.count(" selected") == 1


# -- versions and branches ---------------------------------------------------------------




async def _answered(socket, previous: int | None = None) -> int:
    await socket.until(lambda s: any(m.role == "assistant" and k > (previous or 0) for k, m in s.shown.items()))
    answer = socket.last_assistant_id()
    await socket.until_status(answer, "done")
    return answer


@pytest.mark.django_db(transaction=True)
async def test_after_regenerate_and_edit_the_upstream_gets_exactly_the_branch_on_screen(alice, openrouter):
    openrouter.enqueue(
        Stream(openai_text_stream("First answer.")),
        Stream(openai_text_stream("Second answer.")),
        Stream(openai_text_stream("Regenerated answer.")),
        Stream(openai_text_stream("Answer to the edit.")),
    )
    chat_id = uuid.uuid4()
    socket, _ = await open_chat(alice, chat_id)
    await socket.send(action="send", message="Question one", model=MODEL)
    first = await _answered(socket)
    await socket.send(action="send", message="Question two", model=MODEL)
    second = await _answered(socket, first)
    await socket.send(action="regenerate", message_id=str(second))
    regenerated = await _answered(socket, second)
    assert "2/2" in socket.shown[regenerated].html
    assert socket.order == await _branch_ids(chat_id) and second not in socket.order

    question_two = (await Message.objects.aget(pk=second)).parent_id
    await socket.send(action="edit", message_id=str(question_two), message="Question two, edited")
    await _answered(socket, regenerated)
    assert socket.order == await _branch_ids(chat_id) and len(socket.order) == 4 and question_two not in socket.order
    assert not socket.out_of_date
    await socket.close()

    sent = [m["content"] for m in openrouter.chat_requests[-1].json["messages"] if m["role"] != "system"]
    assert sent == ["Question one", "First answer.", "Question two, edited"]
    regenerate_request = [m["content"] for m in openrouter.chat_requests[2].json["messages"]]
    assert regenerate_request == ["Question one", "First answer.", "Question two"]


async def _branch_ids(chat_id) -> list[int]:
    chat = await Conversation.objects.aget(id=chat_id)
    return [m.id for m in await sync_to_async(chat.branch)()]


@pytest.mark.django_db(transaction=True)
async def test_sending_in_a_long_conversation_sends_the_new_exchange_not_the_history(alice, openrouter, async_client):
    """A 1,000-message chat is megabytes of HTML, more than Daphne lets one socket frame carry (1 MiB)."""
    openrouter.enqueue(Stream(openai_text_stream("A new answer.")))
    chat = await Conversation.objects.acreate(owner=alice, model=MODEL)

    def fill() -> None:
        parent_id = None
        for n in range(500):
            _question, answer = chat.add_exchange(f"question {n} " + "x" * 1000, parent_id, MODEL)
            Message.objects.filter(pk=answer.pk).update(content=f"answer {n} " + "y" * 1000, status="done")
            parent_id = answer.id

    await sync_to_async(fill)()
    socket, _ = await open_chat(alice, chat.id)
    await async_client.aforce_login(alice)
    socket.load((await async_client.get(chat.get_absolute_url())).content.decode())
    assert len(socket.order) == PAGE_MESSAGES  # the page carries the latest messages
    await socket.send(action="send", message="One more", model=MODEL)
    answer = await _answered(socket)
    _sent_at, frame = next((t, f) for t, f in socket.frames if "One more" in f)
    assert len(frame.encode()) < 20_000 and "question 0 " not in frame
    assert socket.shown[answer].content == "A new answer."
    assert socket.order == (await _branch_ids(chat.id))[-PAGE_MESSAGES - 2 :]  # the page's messages, then the new two
    await socket.close()
    await generations_finished()  # titling reads the 1,002 messages: not cut off by the end of the test


@pytest.mark.django_db(transaction=True)
async def test_a_tab_showing_an_older_branch_gets_the_new_one_from_where_they_part(alice, openrouter, async_client):
    """Another tab regenerates: this one, joining the stream, swaps the old answer for the new."""
    openrouter.enqueue(Stream(openai_text_stream("Answer one.")), Stream(openai_text_stream("Answer two. " * 40), delay=0.01))
    chat_id = uuid.uuid4()
    first_tab, _ = await open_chat(alice, chat_id)
    await first_tab.send(action="send", message="A question", model=MODEL)
    old = await _answered(first_tab)
    second_tab, _ = await open_chat(alice, chat_id)
    await async_client.aforce_login(alice)
    second_tab.load((await async_client.get(f"/c/{chat_id}/")).content.decode())
    assert second_tab.order == first_tab.order
    await first_tab.send(action="regenerate", message_id=str(old))
    new = await _answered(first_tab, old)
    await second_tab.until_status(new, "done")
    assert second_tab.order == first_tab.order == await _branch_ids(chat_id) and old not in second_tab.order
    assert second_tab.shown[new].content == ("Answer two. " * 40).strip()
    await first_tab.close()
    await second_tab.close()


@pytest.mark.django_db
def test_flipping_versions_changes_the_branch_on_screen(alice_client, alice):
    chat = _chat(alice, "Versions", answer="Version A")
    first = chat.current_leaf
    chat.regenerate(first, MODEL)
    Message.objects.filter(pk=chat.current_leaf_id).update(content="Version B", status="done")
    html = alice_client.get(chat.get_absolute_url()).content.decode()
    assert "Version B" in html and "Version A" not in html and "2/2" in html

    response = alice_client.post(f"/c/{chat.id}/versions/{first.id}/", HTTP_HX_REQUEST="true")
    assert "Version A" in response.content.decode() and "1/2" in response.content.decode()
    assert "Version A" in alice_client.get(chat.get_absolute_url()).content.decode()


# -- context window ---------------------------------------------------------------------


def _messages(*lengths: int) -> list[Message]:
    roles = ["user", "assistant"]
    return [Message(id=i + 1, role=roles[i % 2], content="x" * n) for i, n in enumerate(lengths)]


def test_history_that_fits_is_sent_whole():
    assert fit_to_context(_messages(100, 100, 100), "", context_length=8000, max_tokens=1000) == 0


def test_the_oldest_turns_go_first_and_the_question_stays():
    path = _messages(14000, 14000, 14000, 14000, 100)  # about 4,000 tokens each
    cut = fit_to_context(path, "Be brief.", context_length=8000, max_tokens=1000)
    assert path[cut].role == "user"
    assert cut == 4  # only the last question fits
    assert fit_to_context(path, "", context_length=None, max_tokens=None) == 0


@pytest.mark.django_db
def test_a_cut_history_is_marked_on_the_page(alice_client, alice):
    chat = _chat(alice, "Long")
    Message.objects.filter(pk=chat.current_leaf_id).update(context_start_id=chat.current_leaf.parent_id)
    html = alice_client.get(chat.get_absolute_url()).content.decode()
    assert "Earlier messages were left out here" in html
