"""Continue: an answer cut short (its length limit, Stop, a dead server) written on in place by its model.

The fake upstream records what each continuation asked: OpenRouter and
Anthropic take the text so far as the start of their answer (a prefill);
other APIs are asked for the rest by a question after it.
"""

import uuid

import pytest
from django.test import AsyncClient

from chatapp.generation import joined
from chatapp.models import Conversation, Message
from chatapp.upstream import CONTINUE_INSTRUCTION
from tests.chat_client import generations_finished, open_chat
from tests.test_chat_stream import _answer_id
from tests.fake_upstream import Stream, anthropic_stream, openai_text_stream

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "fake/model@openrouter"


async def _cut_answer(user, model=MODEL):
    """A chat with one question and its answer (as the fake upstream has it), its socket and ids."""
    chat_id = uuid.uuid4()
    socket, connected = await open_chat(user, chat_id)
    assert connected
    await socket.send(action="send", message="Tell me about foxes", model=model)
    answer_id = await _answer_id(socket)
    await socket.until_status(answer_id, "done", "error")
    return socket, chat_id, answer_id


async def _continued(socket, answer_id, status="done"):
    """Continue `answer_id` and wait for it to end again; what the page shows of it."""
    await socket.send(action="continue", message_id=answer_id)
    await socket.until_status(answer_id, "streaming")
    return await socket.until_status(answer_id, status)


async def test_an_answer_cut_at_its_length_limit_goes_on_in_place(alice, openrouter):
    usage = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
    openrouter.enqueue(
        Stream(openai_text_stream("The quick brown", finish_reason="length", usage=usage, cost=0.001)),
        Stream(openai_text_stream(" fox jumps over the dog.", usage={**usage, "completion_tokens": 5}, cost=0.002),
               delay=0.005),
    )  # fmt: skip
    socket, chat_id, answer_id = await _cut_answer(alice)
    cut = socket.shown[answer_id]
    assert "Cut off at the length limit" in cut.html and ">Continue</button>" in cut.html

    shown = await _continued(socket, answer_id)
    assert shown.content == "The quick brown fox jumps over the dog."
    assert "Cut off at the length limit" not in shown.html and ">Continue</button>" not in shown.html
    assert socket.order.count(answer_id) == 1  # in its place, not below it
    # The model was given its own words to go on from: the last message, as the assistant's (a prefill).
    sent = openrouter.chat_requests[-1].json["messages"]
    assert sent[-2:] == [
        {"role": "user", "content": "Tell me about foxes"},
        {"role": "assistant", "content": "The quick brown"},
    ]
    saved = await Message.objects.aget(pk=answer_id)
    assert saved.content == "The quick brown fox jumps over the dog." and saved.finish_reason == "stop"
    assert (saved.prompt_tokens, saved.completion_tokens, float(saved.cost)) == (20, 8, pytest.approx(0.003))
    assert "<p>The quick brown fox jumps over the dog.</p>" in saved.content_html
    assert await Message.objects.filter(conversation_id=chat_id).acount() == 2  # no new version
    await socket.close()
    await generations_finished()


async def test_a_second_tab_sees_the_continuation_once(alice, openrouter):
    openrouter.enqueue(
        Stream(openai_text_stream("One two", finish_reason="length")),
        Stream(openai_text_stream(" three four five six seven."), delay=0.02),
    )
    socket, chat_id, answer_id = await _cut_answer(alice)
    other, _ = await open_chat(alice, chat_id)
    await socket.send(action="continue", message_id=answer_id)
    await socket.until_status(answer_id, "streaming")
    await socket.receive()  # some of the new text on its way
    reader, _ = await open_chat(alice, chat_id)  # a tab opened mid-continuation
    for tab in (socket, other, reader):
        assert (await tab.until_status(answer_id, "done")).content == "One two three four five six seven."
        await tab.close()
    await generations_finished()


@pytest.mark.parametrize("provider", ["deepseek", "openai"])
async def test_apis_without_a_prefill_are_asked_for_the_rest(alice, upstream, settings, provider):
    setattr(settings, f"{provider.upper()}_API_KEY", "sk-server")
    setattr(settings, f"{provider.upper()}_URL", upstream.url)
    upstream.enqueue(
        Stream(openai_text_stream("Foxes are quick", finish_reason="length")),
        Stream(openai_text_stream("and clever.")),  # as a new answer starts: no space before its first word
    )
    socket, _chat_id, answer_id = await _cut_answer(alice, model=f"fast-model@{provider}")
    shown = await _continued(socket, answer_id)
    assert shown.content == "Foxes are quick and clever."
    sent = upstream.chat_requests[-1].json["messages"]
    assert sent[-2:] == [
        {"role": "assistant", "content": "Foxes are quick"},
        {"role": "user", "content": CONTINUE_INSTRUCTION},
    ]
    await socket.close()
    await generations_finished()


@pytest.mark.parametrize(
    "prefix, text, whole",
    [
        ("Foxes are quick", "and clever.", "Foxes are quick and clever."),
        ("The end.", "Next, the", "The end. Next, the"),
        ("Foxes are quick", ", clever", "Foxes are quick, clever"),
        ("A list:", "\n- one", "A list:\n- one"),
        ("Call f(", "x)", "Call f(x)"),
        ("# Title", "\n\nText", "# Title\n\nText"),
    ],
)
def test_the_rest_asked_for_joins_the_text_as_a_reader_would_write_it(prefix, text, whole):
    assert prefix + joined(prefix, text) == whole


async def test_anthropic_prefills_without_trailing_space_unless_thinking(alice, upstream, settings):
    settings.ANTHROPIC_API_KEY = "sk-ant-server"
    settings.ANTHROPIC_URL = upstream.url
    upstream.enqueue(
        Stream(anthropic_stream("First part\n\n", stop_reason="max_tokens")),
        Stream(anthropic_stream("\n\nSecond part")),
        Stream(anthropic_stream("Third part", stop_reason="max_tokens")),
        Stream(anthropic_stream("Fourth.")),
    )
    socket, chat_id, answer_id = await _cut_answer(alice, model="claude-test@anthropic")
    assert "<p>Second part</p>" in (await _continued(socket, answer_id)).html
    saved = await Message.objects.aget(pk=answer_id)
    assert saved.content == "First part\n\nSecond part"  # the model's own line break, not the first answer's too
    assert upstream.chat_requests[-1].json["messages"][-1] == {"role": "assistant", "content": "First part"}
    await Conversation.objects.filter(pk=chat_id).aupdate(reasoning_effort="low")
    await socket.send(action="send", message="More", model="claude-test@anthropic")
    await socket.until(lambda s: s.last_assistant_id() != answer_id)
    second = socket.last_assistant_id()
    await socket.until_status(second, "done")
    # With thinking on Anthropic takes no prefill: a question asks for the rest.
    await _continued(socket, second)
    sent = upstream.chat_requests[-1].json
    assert "thinking" in sent and sent["messages"][-1] == {"role": "user", "content": CONTINUE_INSTRUCTION}
    assert sent["messages"][-2] == {"role": "assistant", "content": "Third part"}
    await socket.close()
    await generations_finished()


async def _refusals(socket, count):
    """Wait for the page's `count`th notice that there is nothing to continue."""
    await socket.until(lambda s: sum("There is no answer to continue." in notice for notice in s.notices) == count)


async def test_only_an_answer_cut_short_and_last_on_screen_continues(alice, bob, openrouter):
    openrouter.enqueue(
        Stream(openai_text_stream("Complete answer.")),
        Stream(openai_text_stream("Cut", finish_reason="length")),
    )
    socket, chat_id, finished = await _cut_answer(alice)
    assert ">Continue</button>" not in socket.shown[finished].html
    await socket.send(action="continue", message_id=finished)
    await _refusals(socket, 1)

    await socket.send(action="send", message="Again", model=MODEL)
    await socket.until(lambda s: s.last_assistant_id() != finished)
    cut = socket.last_assistant_id()
    await socket.until_status(cut, "done")
    stranger, connected = await open_chat(bob, chat_id)
    assert not connected  # another user's chat has no socket for them, nor a form:
    browser = AsyncClient()
    await browser.aforce_login(bob)
    refused = await browser.post(f"/c/{chat_id}/continue/", {"message_id": cut})
    assert refused.status_code == 302 and refused.url == "/c/new/"
    # An answer with a question after it is not the last on screen.
    await Message.objects.filter(pk=finished).aupdate(finish_reason="length")
    await socket.send(action="continue", message_id=finished)
    await _refusals(socket, 2)
    assert len(openrouter.chat_requests) == 2
    await socket.close()


async def test_an_answer_ended_by_an_error_on_the_way_offers_retry_and_continue(alice, openrouter):
    error = {"code": 502, "message": "Provider disconnected"}
    openrouter.enqueue(Stream(openai_text_stream("Half of it", error_mid_stream=error)),
                       Stream(openai_text_stream(" and the other half.")))  # fmt: skip
    socket, _chat_id, answer_id = await _cut_answer(alice)
    failed = await socket.until_status(answer_id, "error")
    assert "Provider disconnected" in failed.html
    assert ">Retry</button>" in failed.html and ">Continue</button>" in failed.html
    shown = await _continued(socket, answer_id)
    assert shown.content == "Half of it and the other half." and "Provider disconnected" not in shown.html
    await socket.close()
    await generations_finished()


async def test_a_stopped_answer_continues_without_javascript(alice, openrouter):
    openrouter.enqueue(Stream(openai_text_stream("Partial")), Stream(openai_text_stream(" and the rest.")))
    socket, chat_id, answer_id = await _cut_answer(alice)
    await socket.close()
    await Message.objects.filter(pk=answer_id).aupdate(status="stopped", finish_reason="")
    browser = AsyncClient()
    await browser.aforce_login(alice)
    page = (await browser.get(f"/c/{chat_id}/")).content.decode()
    assert f'action="/c/{chat_id}/continue/"' in page and "Stopped" in page
    response = await browser.post(f"/c/{chat_id}/continue/", {"message_id": answer_id})
    assert response.status_code == 302 and response.url == f"/c/{chat_id}/"
    await generations_finished()
    saved = await Message.objects.aget(pk=answer_id)
    assert (saved.status, saved.content) == ("done", "Partial and the rest.")
    page = (await browser.get(f"/c/{chat_id}/")).content.decode()
    assert "Partial and the rest." in page and f'action="/c/{chat_id}/continue/"' not in page
