"""Export and import of conversations (issue: Conversations and usage)."""

import base64
import gc
import json
import sys
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatapp.models import Conversation, Message, Preset, Prompt
from chatapp.transfer import FORMAT
from tests.test_attachments import PNG

pytestmark = pytest.mark.django_db

MODEL = "fake/model@openrouter"
DETAILS = [{"type": "reasoning.text", "text": "Think about Paris.", "index": 0, "format": "unknown"}]


def _answer(message: Message, content: str, **fields) -> Message:
    message.content = content
    message.status = fields.pop("status", Message.Status.DONE)
    for name, value in fields.items():
        setattr(message, name, value)
    message.save()
    return message


@pytest.fixture
def tree(alice) -> Conversation:
    """Two versions of the first answer, a follow-up on the second, and an edited first question."""
    conversation = Conversation.objects.create(
        owner=alice, title="Capitals of Europe", model=MODEL, system_prompt="Be brief.", temperature=0.3,
        max_tokens=512, reasoning_effort="high", provider_order=["deepinfra", "together"], allow_fallbacks=False,
    )  # fmt: skip
    question, first = conversation.add_exchange("What is the capital of France?", None, MODEL)
    _answer(
        first, "Paris.", reasoning="Think about Paris.", reasoning_details=DETAILS, provider="openrouter",
        prompt_tokens=12, completion_tokens=30, reasoning_tokens=20, cached_tokens=0, cost=Decimal("0.00042"),
        time_to_first_token=0.4, duration=1.25, reasoning_duration=0.8, finish_reason="stop",
    )  # fmt: skip
    second = _answer(conversation.regenerate(first, MODEL), "It is Paris, on the Seine.", provider="openrouter")
    _, follow_up = conversation.add_exchange("And of Italy?", second.id, MODEL)
    _answer(follow_up, "Rome.", status=Message.Status.STOPPED)
    _, edited = conversation.edit(question, "What is the capital of Spain?", MODEL)
    _answer(edited, "Madrid.", status=Message.Status.ERROR, error_code="rate_limited", error="Slow down")
    # Back to the follow-up, as if the user had switched versions.
    conversation.current_leaf = follow_up
    conversation.save()
    return conversation


def _upload(client, data: bytes | str, name: str = "export.json"):
    if isinstance(data, str):
        data = data.encode()
    return client.post(reverse("conversation_import"), {"file": SimpleUploadedFile(name, data)})


def _document(client, conversation) -> dict:
    response = client.get(reverse("conversation_export_json", args=[conversation.id]))
    assert response.status_code == 200
    return json.loads(response.content)


async def _received(response) -> bytes:
    return b"".join([chunk async for chunk in response.streaming_content])


def _comparable(document: dict) -> dict:
    document = dict(document)
    del document["exported_at"]
    document["conversation"] = {k: v for k, v in document["conversation"].items() if k != "created_at"}
    return document


# Export ---------------------------------------------------------------------------


def test_json_export_holds_every_version_and_branch(alice_client, tree):
    response = alice_client.get(reverse("conversation_export_json", args=[tree.id]))
    assert response["Content-Disposition"] == 'attachment; filename="capitals-of-europe.json"'
    document = json.loads(response.content)
    assert (document["format"], document["version"]) == (FORMAT, 1)
    assert document["conversation"]["system_prompt"] == "Be brief."
    assert document["conversation"]["provider_order"] == ["deepinfra", "together"]
    messages = document["messages"]
    assert [m["content"] for m in messages] == [
        "What is the capital of France?", "Paris.", "It is Paris, on the Seine.", "And of Italy?", "Rome.",
        "What is the capital of Spain?", "Madrid.",
    ]  # fmt: skip
    assert [m["parent"] for m in messages] == [None, 1, 1, 3, 4, None, 6]
    assert document["current_leaf"] == 5
    first = messages[1]
    assert first["reasoning"] == "Think about Paris." and first["reasoning_details"] == DETAILS
    assert (first["cost"], first["prompt_tokens"], first["reasoning_tokens"]) == ("0.00042000", 12, 20)


def test_markdown_export_is_the_branch_on_screen(alice_client, tree):
    response = alice_client.get(reverse("conversation_export", args=[tree.id]))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="capitals-of-europe.md"'
    text = response.content.decode()
    assert text.startswith("# Capitals of Europe\n")
    assert "`fake/model@openrouter`" in text and "Be brief." in text
    assert "## User\n\nWhat is the capital of France?" in text
    assert "## Assistant\n\nIt is Paris, on the Seine." in text
    assert "Rome." in text and "*fake/model@openrouter · Stopped*" in text
    # Other versions and branches are not on screen.
    assert "Paris.\n" not in text and "Spain" not in text


def test_markdown_export_quotes_the_reasoning(alice_client, tree):
    tree.current_leaf = tree.messages.get(content="Paris.")
    tree.save()
    text = alice_client.get(reverse("conversation_export", args=[tree.id])).content.decode()
    assert "> **Reasoning**\n>\n> Think about Paris.\n\nParis." in text
    assert "12 → 30 tokens · $0.00042" in text


def test_a_unicode_title_gives_a_safe_filename(alice_client, alice):
    conversation = Conversation.objects.create(owner=alice, title='秋天 "poems"/../\r\nx')
    response = alice_client.get(reverse("conversation_export", args=[conversation.id]))
    assert response["Content-Disposition"] == "attachment; filename*=utf-8''%E7%A7%8B%E5%A4%A9-poems-x.md"


@pytest.mark.parametrize("name", ["conversation_export", "conversation_export_json"])
def test_another_users_conversation_cannot_be_exported(bob_client, tree, name):
    assert bob_client.get(reverse(name, args=[tree.id])).status_code == 404


# Import: our own format -------------------------------------------------------------


def test_export_then_import_gives_back_the_same_tree(alice_client, alice, tree):
    exported = _document(alice_client, tree)
    response = _upload(alice_client, json.dumps(exported))

    imported = Conversation.objects.exclude(pk=tree.pk).get()
    assert response.status_code == 302 and response["Location"] == imported.get_absolute_url()
    assert imported.owner == alice
    assert _comparable(_document(alice_client, imported)) == _comparable(exported)
    # The same branch on screen, and both versions of the first answer.
    assert [m.content for m in imported.branch()] == [m.content for m in tree.branch()]
    first_question = imported.branch()[0]
    assert sorted(first_question.children.values_list("content", flat=True)) == ["It is Paris, on the Seine.", "Paris."]
    assert imported.messages.get(content="Paris.").created_at == tree.messages.get(content="Paris.").created_at


def test_an_import_keeps_each_chats_place_in_the_list_and_a_branch_of_it_goes_to_the_top(alice_client, tree):
    exported = _document(alice_client, tree)
    for message in exported["messages"]:
        message["created_at"] = "2024-03-01T09:00:00+00:00"
    exported["messages"][-1]["created_at"] = "2024-03-02T10:30:00+00:00"  # the newest, though not on screen
    exported["conversation"]["title"] = "Restored"
    _upload(alice_client, json.dumps(exported))
    restored = Conversation.objects.get(title="Restored")
    page = alice_client.get("/c/list/", HTTP_HX_REQUEST="true").content.decode()
    # Below the chat written in today, and dated for the reader's groups (here, March 2024) as it was.
    assert page.index("Capitals of Europe") < page.index("Restored")
    assert f'id="conversation-{restored.id}" class="conversation-item" data-updated="2024-03-02T10:30:00+00:00"' in page

    alice_client.post(f"/c/{restored.id}/branch/", {"message_id": restored.current_leaf_id})
    page = alice_client.get("/c/list/", HTTP_HX_REQUEST="true").content.decode()
    assert page.index("Branch · Restored") < page.index("Capitals of Europe") < page.index(">Restored<")


def test_an_import_belongs_to_the_importer_and_leaves_the_original_alone(alice_client, client, bob, tree):
    exported = _document(alice_client, tree)
    client.force_login(bob)
    response = _upload(client, json.dumps(exported))
    assert response.status_code == 302
    assert Conversation.objects.filter(owner=bob).count() == 1
    assert tree.messages.count() == 7 and Conversation.objects.filter(owner=tree.owner).count() == 1


def test_every_conversation_exports_as_one_backup_that_imports_whole(alice_client, alice, bob, tree):
    second = Conversation.objects.create(owner=alice, title="Second thoughts", model=MODEL)
    _answer(second.add_exchange("Hello?", None, MODEL)[1], "Hello.")
    Conversation.objects.create(owner=alice, title="Settings only")  # no message yet: nothing to keep
    gone = Conversation.objects.create(owner=alice, title="Deleted", deleted_at=timezone.now())
    gone.add_exchange("Gone?", None, MODEL)
    Conversation.objects.create(owner=bob, title="Bob's").add_exchange("Mine", None, MODEL)
    page = alice_client.get(reverse("conversation_import")).content.decode()
    assert f'href="{reverse("conversations_export_json")}"' in page

    response = alice_client.get(reverse("conversations_export_json"))
    assert response["Content-Disposition"] == 'attachment; filename="switchboard-conversations.json"'
    backup = json.loads(async_to_sync(_received)(response))  # sent as it is read, one conversation at a time
    assert (backup["format"], backup["version"]) == ("switchboard.conversations", 1)
    titles = [entry["conversation"]["title"] for entry in backup["conversations"]]
    assert titles == ["Capitals of Europe", "Second thoughts"]  # not the empty one, the deleted one or bob's
    own_files = [_comparable(_document(alice_client, chat)) for chat in (tree, second)]
    assert [_comparable({"exported_at": "", **entry}) for entry in backup["conversations"]] == [
        {k: v for k, v in document.items() if k not in ("format", "version")} for document in own_files
    ]

    alice_client.force_login(bob)  # another account, as on another server
    response = _upload(alice_client, json.dumps(backup))
    assert response.status_code == 302
    imported = Conversation.objects.filter(owner=bob).exclude(title="Bob's").order_by("title")
    assert [chat.title for chat in imported] == ["Capitals of Europe", "Second thoughts"]
    assert [_comparable(_document(alice_client, chat)) for chat in imported] == own_files


def test_a_backup_carries_the_presets_and_prompts_and_keeps_those_one_has_already(alice_client, alice, bob, tree):
    Preset.objects.create(owner=alice, name="Pirate", model=MODEL, system_prompt="Arr.", temperature=0.2,
                          provider_order=["anthropic"], allow_fallbacks=False, for_new_chats=True)  # fmt: skip
    Preset.objects.create(owner=alice, name="Plain")
    Prompt.objects.create(owner=alice, command="tldr", text="Alice's summary:\n")
    Prompt.objects.create(owner=alice, command="翻译", text="Translate:")
    Prompt.objects.create(owner=bob, command="tldr", text="Bob's own summary:")
    backup = json.loads(async_to_sync(_received)(alice_client.get(reverse("conversations_export_json"))))
    assert backup["presets"][1] == {
        "name": "Plain", "model": "", "system_prompt": "", "temperature": None, "top_p": None, "max_tokens": None,
        "reasoning_effort": "", "provider_order": [], "allow_fallbacks": True, "for_new_chats": False,
    }  # fmt: skip
    assert backup["presets"][0]["for_new_chats"] is True
    alices = [{"command": "tldr", "text": "Alice's summary:\n"}, {"command": "翻译", "text": "Translate:"}]
    assert backup["prompts"] == alices

    alice_client.force_login(bob)
    response = _upload(alice_client, json.dumps(backup), "switchboard-conversations.json")
    page = alice_client.get(response.url).content.decode()
    assert "Imported 1 conversation." in page and "Added 2 presets." in page and "Added 1 prompt." in page
    pirate = Preset.objects.get(owner=bob, name="Pirate")
    assert (pirate.model, pirate.system_prompt, pirate.temperature) == (MODEL, "Arr.", 0.2)
    assert (pirate.provider_order, pirate.allow_fallbacks, pirate.for_new_chats) == (["anthropic"], False, True)
    assert dict(Prompt.objects.filter(owner=bob).values_list("command", "text")) == {
        "tldr": "Bob's own summary:", "翻译": "Translate:"}  # his own kept

    backup["conversations"] = []  # the library alone: it is where the import leads
    response = _upload(alice_client, json.dumps(backup | {"prompts": [*alices, {"command": "new", "text": "x"}]}))
    assert response.url == reverse("settings:prompts")
    page = alice_client.get(response.url).content.decode()
    assert "Added 1 prompt." in page and "preset" not in page.split('class="flash"')[1].split("</ul>")[0]

    # New chats go on starting from the preset they did: another file's choice joins as a preset, no more.
    captain = {**backup["presets"][0], "name": "Captain"}
    _upload(alice_client, json.dumps({**backup, "presets": [captain, captain | {"name": "Mate"}]}))
    assert dict(Preset.objects.filter(owner=bob).values_list("name", "for_new_chats")) == {
        "Pirate": True, "Plain": False, "Captain": False, "Mate": False}
    Preset.objects.filter(owner=bob).delete()  # with none: the file's first
    _upload(alice_client, json.dumps({**backup, "presets": [captain, captain | {"name": "Mate"}]}))
    assert dict(Preset.objects.filter(owner=bob).values_list("name", "for_new_chats")) == {
        "Captain": True, "Mate": False}


def test_the_import_page_has_a_file_field(alice_client):
    response = alice_client.get(reverse("conversation_import"))
    assert response.status_code == 200
    assert b'type="file"' in response.content and b'enctype="multipart/form-data"' in response.content


def test_system_messages_become_the_system_prompt(alice_client):
    document = {
        "format": FORMAT, "version": 1, "conversation": {"title": "Sys", "system_prompt": "Be kind."},
        "messages": [
            {"id": "a", "parent": None, "role": "system", "content": "Answer in French."},
            {"id": "b", "parent": "a", "role": "user", "content": "Hi"},
            {"id": "c", "parent": "b", "role": "assistant", "content": "Salut", "status": "streaming"},
        ],
        "current_leaf": "c",
    }  # fmt: skip
    assert _upload(alice_client, json.dumps(document)).status_code == 302
    conversation = Conversation.objects.get()
    assert conversation.system_prompt == "Be kind.\n\nAnswer in French."
    assert [(m.role, m.content, m.status) for m in conversation.branch()] == [
        ("user", "Hi", "done"), ("assistant", "Salut", "interrupted"),
    ]  # fmt: skip


# Import: NextChat ------------------------------------------------------------------

NEXTCHAT_SESSION = {
    "id": "Xb1",
    "topic": "Travel tips",
    "memoryPrompt": "",
    "messages": [
        {"id": "m1", "date": "2024/5/1 10:00:00", "role": "system", "content": "You are a travel agent."},
        {"id": "m2", "date": "2024/5/1 10:00:01", "role": "user", "content": "Where to go in May?"},
        {"id": "m3", "date": "2024/5/1 10:00:05", "role": "assistant", "content": "Lisbon.", "model": "gpt-4o-mini"},
        {
            "id": "m4", "date": "", "role": "user",
            "content": [
                {"type": "text", "text": "And this place?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}},
                {"type": "image_url", "image_url": {"url": "/api/cache/1714550404.png"}},  # in NextChat's cache
            ],
        },
        {"id": "m5", "date": "", "role": "assistant", "content": "Too busy.", "isError": True},
    ],
    "stat": {"tokenCount": 0, "wordCount": 0, "charCount": 0},
    "lastUpdate": 1714550405000,
    "lastSummarizeIndex": 0,
    "mask": {"name": "Travel", "context": [], "modelConfig": {"model": "gpt-4o-mini", "providerName": "OpenAI",
             "temperature": 0.5, "top_p": 1, "max_tokens": 4000}},
}  # fmt: skip


def test_a_nextchat_session_imports(alice_client, alice):
    response = _upload(alice_client, json.dumps(NEXTCHAT_SESSION))
    conversation = Conversation.objects.get()
    assert response.status_code == 302 and response["Location"] == conversation.get_absolute_url()
    assert (conversation.owner, conversation.title, conversation.model) == (alice, "Travel tips", "gpt-4o-mini@openai")
    assert (conversation.temperature, conversation.max_tokens) == (0.5, 4000)
    assert conversation.system_prompt == "You are a travel agent."
    assert [(m.role, m.content, m.status) for m in conversation.branch()] == [
        ("user", "Where to go in May?", "done"), ("assistant", "Lisbon.", "done"),
        ("user", "And this place?", "done"), ("assistant", "Too busy.", "error"),
    ]  # fmt: skip
    assert conversation.branch()[1].model == "gpt-4o-mini"
    # The picture kept in the question goes with it, as if attached here; the one NextChat cached cannot.
    [picture] = conversation.branch()[2].attachments
    assert (picture["name"], picture["type"]) == ("image-1.png", "image/png")
    assert alice_client.get(f"/c/{conversation.id}/attachments/{picture['id']}/").content == PNG


def test_a_nextchat_picture_that_is_not_one_is_refused(alice_client):
    session = json.loads(json.dumps(NEXTCHAT_SESSION))
    picture = session["messages"][3]["content"][1]["image_url"]
    for data, reason in (
        (b"MZ\x90\x00\xff\xfe", "image-1 cannot be attached: only images (PNG, JPEG, GIF, WebP), PDFs and text"),
        (b"Hello", "image-1 cannot be read as a picture."),
    ):
        picture["url"] = "data:image/png;base64," + base64.b64encode(data).decode()
        response = _upload(alice_client, json.dumps(session))
        assert response.status_code == 400 and reason in response.content.decode()
    assert not Conversation.objects.exists()


def test_a_nextchat_backup_imports_every_session_with_messages(alice_client):
    empty = {"id": "e", "topic": "New Conversation", "messages": [], "mask": {}}
    other = {"id": "o", "topic": "Recipes", "messages": [{"role": "user", "content": "Soup?"}], "mask": {}}
    backup = {
        "chat-next-web-store": {"sessions": [NEXTCHAT_SESSION, empty, other], "currentSessionIndex": 0},
        "access-control": {"accessCode": ""},
        "app-config": {"theme": "auto"},
    }
    response = _upload(alice_client, json.dumps(backup))
    assert response.status_code == 302
    assert sorted(Conversation.objects.values_list("title", flat=True)) == ["Recipes", "Travel tips"]
    assert response["Location"] == Conversation.objects.get(title="Travel tips").get_absolute_url()
    assert Conversation.objects.get(title="Recipes").branch()[0].content == "Soup?"


def test_a_long_conversation_imports_and_is_freed_cleanly(alice_client, monkeypatch):
    # 3,000 messages in one line: rows holding their parents made a chain whose
    # freeing overflowed the stack in Django's ModelState.__del__ ("Exception ignored").
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    messages = [{"role": "user" if n % 2 == 0 else "assistant", "content": f"m{n}"} for n in range(3000)]
    session = {"id": "long", "topic": "Long", "messages": messages, "mask": {}}
    assert _upload(alice_client, json.dumps(session)).status_code == 302
    gc.collect()
    assert unraisable == []
    assert [m.content for m in Conversation.objects.get().branch()][-2:] == ["m2998", "m2999"]


# Import: bad files -----------------------------------------------------------------

VALID = {"format": FORMAT, "version": 1, "conversation": {}, "messages": [{"id": 1, "role": "user", "content": "Hi"}]}


def _with(**changes) -> str:
    return json.dumps(VALID | changes)


def _message(**changes) -> str:
    return _with(messages=[VALID["messages"][0] | changes])


def _backup(**changes) -> str:
    return json.dumps({"format": "switchboard.conversations", "version": 1, "conversations": [VALID]} | changes)


@pytest.mark.parametrize(
    "data, shown",
    [
        (b"\xff\xfe\x00junk", "not UTF-8"),
        ("not json at all", "not valid JSON"),
        ("[" * 200_000, "nested too deeply"),
        ('{"a":' * 100 + "1" + "}" * 100, "nested too deeply"),
        ("[]", "neither a Switchboard nor a NextChat"),
        ('{"hello": "world"}', "neither a Switchboard nor a NextChat"),
        (_with(version=2), "newer version"),
        (_with(version=True), "neither a Switchboard nor a NextChat"),
        (_with(messages={"1": "x"}), "no list of messages"),
        (_with(conversation={"temperature": 1e308 * 10}), "not valid JSON"),  # json.dumps writes Infinity
        (_with(conversation={"temperature": 10**400}), "out of range"),
        ('{"format": "switchboard.conversation", "version": 1, "n": ' + "9" * 5000 + "}", "not valid JSON"),
        (_with(conversation={"title": "x" * 201}), "longer than 200"),
        (_with(conversation={"title": 5}), "expected text"),
        (_message(role="tool"), "must be one of"),
        (_message(prompt_tokens=-1), "out of range"),
        (_message(prompt_tokens=2**40), "out of range"),
        (_message(cost="1e400"), "out of range"),
        (_message(cost="NaN"), "out of range"),
        (_message(cost="lots"), "amount in USD"),
        (_message(created_at="2024-13-45T10:00:00"), "date and time"),
        (_message(created_at="0001-01-01T00:00:00+05:00"), "out of range"),
        (_message(reasoning_details={"a": 1}), "expected a list"),
        (_message(parent=7), "no message has that id"),
        (_message(parent=1), "loop"),
        (_with(messages=[{"id": 1, "parent": 2, "role": "user"}, {"id": 2, "parent": 1, "role": "user"}]), "loop"),
        (_with(messages=[{"id": 1, "role": "user"}, {"id": 1, "role": "user"}]), "Two messages have the id 1"),
        (_with(current_leaf=9), "no message has that id"),
        (json.dumps({"chat-next-web-store": {"sessions": "x"}}), "no list of sessions"),
        (json.dumps(NEXTCHAT_SESSION | {"messages": [{"role": "robot", "content": "x"}]}), "must be one of"),
        (json.dumps(NEXTCHAT_SESSION | {"messages": [{"role": "user", "content": 5}]}), "text or a list of parts"),
        (json.dumps(NEXTCHAT_SESSION | {"messages": []}), "no conversation with messages"),
        (_backup(conversations={}), "no list of conversations"),
        (_backup(conversations=[5]), "no list of conversations"),
        (_backup(conversations=[]), "no conversation with messages"),
        (_backup(version=3), "newer version"),
        (_backup(conversations=[VALID] * 1001), "more than 1000 conversations"),
        (_backup(conversations=[VALID | {"messages": VALID["messages"] * 10_001}] * 2), "more than 20000 messages"),
        (_backup(conversations=[VALID, json.loads(_message(parent=7))]), "no message has that id"),
        (_backup(presets={"name": "x"}), "“presets” must be a list of at most 1000"),
        (_backup(prompts=[{"command": "x", "text": "y"}] * 1001), "“prompts” must be a list of at most 1000"),
        (_backup(presets=[{"name": " "}]), "Preset 1, “name”: expected text"),
        (_backup(presets=[{"name": "x", "temperature": 3}]), "Preset 1, “temperature”: out of range"),
        (_backup(prompts=[{"command": "two words", "text": "y"}]), "Prompt 1, “command”: expected letters"),
        (_backup(prompts=[{"command": "x", "text": ""}]), "Prompt 1, “text”: expected text"),
        (_backup(prompts=[7]), "Prompt 1 must be a JSON object"),
        (_backup(conversations=[], presets=[], prompts=[]), "no conversation with messages"),
    ],
)
def test_a_bad_file_is_explained_on_the_import_page(alice_client, data, shown):
    response = _upload(alice_client, data)
    assert response.status_code == 400
    assert shown in response.content.decode()
    assert not Conversation.objects.exists()


def test_a_file_over_the_import_limit_is_refused_with_the_limit_named(alice_client, settings):
    assert "at most 100.0\xa0MB." in alice_client.get(reverse("conversation_import")).content.decode()  # the default
    settings.IMPORT_MAX_BYTES = 2048
    assert "at most 2.0\xa0KB." in alice_client.get(reverse("conversation_import")).content.decode()
    response = _upload(alice_client, b" " * 2049)
    assert response.status_code == 400 and "The file is larger than 2.0\xa0KB." in response.content.decode()


def test_text_a_database_cannot_store_is_cleaned(alice_client):
    response = _upload(alice_client, _message(content="a\u0000b \ud800c", reasoning_details=[{"k\u0000": "\udfff"}]))
    assert response.status_code == 302
    message = Message.objects.get()
    assert message.content == "ab \ufffdc" and message.reasoning_details == [{"k": "\ufffd"}]


# Import never fails with a 500 -------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
MESSAGE_KEYS = ["id", "parent", "role", "content", "reasoning", "reasoning_details", "status", "error_code", "model",
                "provider", "prompt_tokens", "cost", "duration", "created_at"]  # fmt: skip
SETTING_KEYS = ["title", "model", "temperature", "top_p", "max_tokens", "reasoning_effort", "provider_order", "pinned",
                "archived_at"]  # fmt: skip
fuzz = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _survives(client, data: bytes | str) -> None:
    response = _upload(client, data)
    assert response.status_code in (302, 400), response.status_code


@fuzz
@given(data=st.binary(max_size=300))
def test_random_bytes_never_give_a_500(alice_client, data):
    _survives(alice_client, data)


@fuzz
@given(value=json_values)
def test_random_json_never_gives_a_500(alice_client, value):
    _survives(alice_client, json.dumps(value))


@fuzz
@given(
    where=st.sampled_from(["message", "setting", "top"]),
    index=st.integers(0, 6),
    key=st.sampled_from(MESSAGE_KEYS + SETTING_KEYS + ["current_leaf", "version", "messages", "conversation"]),
    value=json_values,
    delete=st.booleans(),
)
def test_mutated_exports_never_give_a_500(alice_client, tree, where, index, key, value, delete):
    document = json.loads(json.dumps(_document(alice_client, tree)))
    target = {"message": document["messages"][index], "setting": document["conversation"], "top": document}[where]
    if delete:
        target.pop(key, None)
    else:
        target[key] = value
    _survives(alice_client, json.dumps(document))


@fuzz
@given(
    messages=st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant", "system", "tool"]) | json_values},
            optional={"content": st.text(max_size=20) | st.lists(json_values, max_size=3) | json_values,
                      "isError": json_values, "streaming": json_values, "model": json_values},
        ) | json_values,
        max_size=4,
    ),
    mask=json_values | st.fixed_dictionaries({"modelConfig": json_values, "context": json_values}),
    backup=st.booleans(),
)  # fmt: skip
def test_random_nextchat_files_never_give_a_500(alice_client, messages, mask, backup):
    session = {"id": "s", "topic": "t", "messages": messages, "mask": mask}
    document = {"chat-next-web-store": {"sessions": [session]}} if backup else session
    _survives(alice_client, json.dumps(document))
