"""Conversation titles after the first answer (issue: Conversations and usage)."""

import uuid

import pytest
from asgiref.sync import sync_to_async

from chatapp.models import Conversation, Message
from chatapp.titles import TITLE_INSTRUCTIONS, atitle_conversation, clean_title, fallback_title
from providers.usage import UsageRecord, wait_for_background_writes
from tests.fake_upstream import JSONResponse, Status, openai_completion

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "How do I make a sourdough starter from scratch at home without any commercial yeast?"
FIRST_WORDS = "How do I make a sourdough starter from…"  # eight words




def _conversation(owner, question: str = QUESTION, title: str = "") -> Conversation:
    conversation = Conversation.objects.create(owner=owner, title=title, model="fake/model@openrouter")
    _, answer = conversation.add_exchange(question, None, "fake/model@openrouter")
    answer.content = "Mix flour and water, then feed it daily for a week."
    answer.status = Message.Status.DONE
    answer.save()
    return conversation


async def _make(owner, **kwargs) -> Conversation:
    return await sync_to_async(_conversation)(owner, **kwargs)


@pytest.mark.parametrize(
    "text, title",
    [
        ("Hello there", "Hello there"),
        ("  What   is\n\nthe capital\tof France?  ", "What is the capital of France?"),
        ("one two three four five six seven eight nine ten", "one two three four five six seven eight…"),
        (QUESTION, FIRST_WORDS),
        ("Supercalifragilisticexpialidocious" * 3, ("Supercalifragilisticexpialidocious" * 3)[:59] + "…"),
        ("请帮我写一首关于秋天的诗，" * 10, ("请帮我写一首关于秋天的诗，" * 10)[:59] + "…"),
        ("   ", ""),
    ],
)
def test_fallback_title_is_the_first_words_cut_cleanly(text, title):
    assert fallback_title(text) == title
    assert len(fallback_title(text)) <= 60


@pytest.mark.parametrize(
    "answer, title",
    [
        ('"Sourdough Starter Basics"', "Sourdough Starter Basics"),
        ("**Sourdough Starter Basics**\n\nThis title sums it up.", "Sourdough Starter Basics"),
        ("# Title: Sourdough basics.", "Sourdough basics"),
        ("「秋天的诗」", "秋天的诗"),
        ("word " * 40, ("word " * 40)[:79].rstrip() + "…"),
    ],
)
def test_a_model_title_loses_quotes_markdown_and_newlines(answer, title):
    assert clean_title(answer) == title
    assert len(clean_title(answer)) <= 80


async def test_without_title_model_the_first_words_are_the_title(alice, settings, openrouter):
    settings.TITLE_MODEL = ""
    conversation = await _make(alice)
    title = await atitle_conversation(conversation.id)
    assert title == FIRST_WORDS
    assert (await Conversation.objects.aget(pk=conversation.pk)).title == title
    assert openrouter.chat_requests == []


async def test_after_a_failed_first_answer_the_first_words_are_the_title(alice, settings, openrouter):
    settings.TITLE_MODEL = "fake/titler@OpenRouter"  # not asked: the exchange did not work
    conversation = await _make(alice)
    assert await atitle_conversation(conversation.id, ask_model=False) == FIRST_WORDS
    assert openrouter.chat_requests == []


async def test_title_model_names_the_conversation_and_is_accounted(alice, settings, openrouter):
    settings.TITLE_MODEL = "fake/titler@OpenRouter"
    openrouter.enqueue(JSONResponse(openai_completion('"Sourdough Starter at Home"\n', model="fake/titler")))
    conversation = await _make(alice)

    title = await atitle_conversation(conversation.id)
    await wait_for_background_writes()

    assert title == "Sourdough Starter at Home"
    assert (await Conversation.objects.aget(pk=conversation.pk)).title == title
    [request] = openrouter.chat_requests
    assert request.json["model"] == "fake/titler"
    assert not request.json.get("stream")
    assert request.json["messages"][0] == {"role": "system", "content": TITLE_INSTRUCTIONS}
    assert QUESTION in request.json["messages"][1]["content"]
    record = await UsageRecord.objects.aget()
    assert (record.user_id, record.source, record.model, record.status_code) == (alice.pk, "title", "fake/titler", 200)


async def test_a_title_model_outside_the_allow_list_is_never_asked(alice, settings, openrouter):
    settings.CUSTOM_MODELS = "-all,+fake/model@OpenRouter"
    settings.TITLE_MODEL = "fake/titler@OpenRouter"
    conversation = await _make(alice)
    assert await atitle_conversation(conversation.id) == FIRST_WORDS
    assert openrouter.chat_requests == []


async def test_a_failing_title_model_falls_back_and_is_accounted(alice, settings, openrouter):
    settings.TITLE_MODEL = "fake/titler@OpenRouter"
    settings.UPSTREAM_MAX_TRIES = 1
    openrouter.enqueue(Status(500, {"error": {"message": "boom"}}))
    conversation = await _make(alice)

    assert await atitle_conversation(conversation.id) == FIRST_WORDS
    await wait_for_background_writes()
    record = await UsageRecord.objects.aget()
    assert (record.source, record.status_code) == ("title", 500)


async def test_a_title_model_without_a_key_falls_back(alice, settings, upstream):
    settings.OPENROUTER_API_KEY = ""
    settings.OPENAI_API_KEY = ""
    settings.TITLE_MODEL = "fake/titler@OpenRouter"
    conversation = await _make(alice)
    assert await atitle_conversation(conversation.id) == FIRST_WORDS
    assert upstream.chat_requests == []


async def test_an_existing_title_is_kept(alice, settings):
    settings.TITLE_MODEL = ""
    conversation = await _make(alice, title="My own name")
    assert await atitle_conversation(conversation.id) is None
    assert (await Conversation.objects.aget(pk=conversation.pk)).title == "My own name"


async def test_an_unknown_conversation_is_ignored():
    assert await atitle_conversation(uuid.uuid4()) is None
