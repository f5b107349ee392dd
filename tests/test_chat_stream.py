"""The chat over its WebSocket, against the fake upstream (issue: The chat)."""

import asyncio
import json
import re
import uuid
import warnings

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.middleware.csrf import CSRF_ALLOWED_CHARS, CSRF_SECRET_LENGTH
from django.test import AsyncClient
from django.utils.crypto import get_random_string
from hypothesis import given
from hypothesis import strategies as st

from chatapp import exchanges, generation
from chatapp.generation import GrowingText
from chatapp.models import Conversation, Message
from providers.usage import UsageRecord, wait_for_background_writes
from tests.chat_client import generations_finished, open_chat
from tests.conftest import OPENROUTER_SERVER_KEY
from tests.fake_upstream import Hang, Status, Stream, model_entry, openai_text_stream

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "fake/model@openrouter"




async def _messages(conversation_id) -> list[Message]:
    return await sync_to_async(list)(Message.objects.filter(conversation_id=conversation_id).order_by("id"))


async def test_a_streamed_answer_is_shown_and_saved(alice, openrouter):
    text = "The quick brown fox jumps over the lazy dog, twice."
    openrouter.enqueue(Stream(openai_text_stream(text, cost=0.0021), delay=0.005))
    chat_id = uuid.uuid4()
    socket, connected = await open_chat(alice, chat_id)
    assert connected
    await socket.send(action="send", message="Tell me about foxes", model=MODEL)
    await socket.until(lambda s: any(m.role == "assistant" for m in s.shown.values()))
    answer_id = socket.last_assistant_id()
    shown = await socket.until_status(answer_id, "done")
    assert shown.content == text
    assert "fake/model" in shown.html and "$0.0021" in shown.html

    saved = await Message.objects.aget(pk=answer_id)
    assert saved.content == text and saved.status == "done"
    assert saved.cost is not None and float(saved.cost) == pytest.approx(0.0021)
    conversation = await Conversation.objects.aget(pk=chat_id)
    assert conversation.owner_id == alice.id
    sent = openrouter.chat_requests[0].json
    assert sent["model"] == "fake/model" and sent["stream"] is True
    assert sent["messages"][-1] == {"role": "user", "content": "Tell me about foxes"}
    assert openrouter.chat_requests[0].headers["authorization"] == f"Bearer {OPENROUTER_SERVER_KEY}"
    await wait_for_background_writes()
    record = await UsageRecord.objects.aget(user=alice)
    assert record.source == "chat" and record.status_code == 200 and record.provider == "openrouter"
    await socket.close()


async def test_reasoning_streams_then_folds(alice, openrouter):
    openrouter.enqueue(
        Stream(openai_text_stream("Forty-two.", reasoning="Let me think about life.", signature="sig"), delay=0.01)
    )
    socket, _ = await open_chat(alice, uuid.uuid4())
    await socket.send(action="send", message="Meaning of life?", model=MODEL)
    await socket.until(lambda s: any(m.reasoning for m in s.shown.values()))
    answer_id = socket.last_assistant_id()
    assert socket.shown[answer_id].status == "streaming"
    shown = await socket.until_status(answer_id, "done")
    assert shown.reasoning == "Let me think about life."
    assert shown.content == "Forty-two."
    assert "Thought for" in shown.html
    saved = await Message.objects.aget(pk=answer_id)
    assert saved.reasoning == "Let me think about life."
    assert saved.reasoning_details, "reasoning_details are kept for the next turn"
    await socket.close()


async def test_text_before_a_lone_closing_think_tag_moves_into_the_reasoning_on_every_tab(alice, openrouter):
    # A model whose chat template opened <think> in the prompt: its content
    # starts with the reasoning and only the closing tag shows.
    reasoning = "The capital of France is the city on the Seine."
    answer = " ".join(f"Paris{i}." for i in range(30))
    chunks = openai_text_stream(answer, reasoning=reasoning, reasoning_style="think-close-only")
    openrouter.enqueue(Stream(chunks, delay=0.01))
    chat_id = uuid.uuid4()
    first, _ = await open_chat(alice, chat_id)
    await first.send(action="send", message="Capital of France?", model=MODEL)
    # Until the tag comes, nothing says it is reasoning: it streams as the answer.
    await first.until(lambda s: any(m.content.startswith("The capital") for m in s.shown.values()))
    answer_id = first.last_assistant_id()
    await first.until(lambda s: s.shown[answer_id].reasoning == reasoning)
    assert first.shown[answer_id].status == "streaming"
    assert answer.startswith(first.shown[answer_id].content)

    second, _ = await open_chat(alice, chat_id)  # a tab opened after the tag
    for socket in (first, second):
        shown = await socket.until_status(answer_id, "done")
        assert (shown.reasoning, shown.content) == (reasoning, answer)
        assert "Thought for" in shown.html
        await socket.close()
    saved = await Message.objects.aget(pk=answer_id)
    assert (saved.reasoning, saved.content) == (reasoning, answer)


async def test_stop_closes_the_upstream_within_a_second_and_keeps_partial_text(alice, openrouter):
    openrouter.enqueue(Hang(openai_text_stream("partial answer", usage=False, done=False)))
    socket, _ = await open_chat(alice, uuid.uuid4())
    await socket.send(action="send", message="Go on forever", model=MODEL)
    await socket.until(lambda s: any(m.content == "partial answer" for m in s.shown.values()))
    answer_id = socket.last_assistant_id()
    await socket.send(action="stop")
    assert await openrouter.until_disconnected(1.0), "the upstream connection stays open after stop"
    shown = await socket.until_status(answer_id, "stopped")
    assert shown.content == "partial answer"
    assert (await Message.objects.aget(pk=answer_id)).content == "partial answer"
    await socket.close()


async def test_closing_the_socket_does_not_stop_the_answer(alice, openrouter):
    text = " ".join(f"word{i}" for i in range(40))
    openrouter.enqueue(Stream(openai_text_stream(text), delay=0.01))
    chat_id = uuid.uuid4()
    socket, _ = await open_chat(alice, chat_id)
    await socket.send(action="send", message="Long answer please", model=MODEL)
    await socket.until(lambda s: any(m.content for m in s.shown.values() if m.role == "assistant"))
    await socket.close()
    for _ in range(100):
        answers = [m for m in await _messages(chat_id) if m.role == "assistant"]
        if answers and answers[0].status == "done":
            break
        await asyncio.sleep(0.05)
    assert answers[0].status == "done" and answers[0].content == text


async def test_reconnecting_mid_stream_shows_every_character_exactly_once(alice, openrouter):
    text = " ".join(f"[{i:03d}]" for i in range(120))
    chunks = openai_text_stream(text, reasoning="thinking " * 10)
    openrouter.enqueue(Stream(chunks, delay=0.01))
    chat_id = uuid.uuid4()
    first, _ = await open_chat(alice, chat_id)
    await first.send(action="send", message="Count", model=MODEL)
    await first.until(lambda s: any(len(m.content) > 50 for m in s.shown.values()))
    answer_id = first.last_assistant_id()
    await first.close()

    second, _ = await open_chat(alice, chat_id)
    shown = await second.until_status(answer_id, "done")
    assert shown.content == text
    streamed = [m for m in second.shown.values() if m.role == "" or m.status == "streaming"]
    assert not streamed
    await second.close()


async def test_a_second_tab_joins_mid_stream_with_no_lost_or_doubled_character(alice, openrouter):
    text = " ".join(f"<{i}>" for i in range(150))
    openrouter.enqueue(Stream(openai_text_stream(text), delay=0.01))
    chat_id = uuid.uuid4()
    first, _ = await open_chat(alice, chat_id)
    await first.send(action="send", message="Count", model=MODEL)
    await first.until(lambda s: any(len(m.content) > 30 for m in s.shown.values() if m.role == "assistant"))
    answer_id = first.last_assistant_id()
    second, _ = await open_chat(alice, chat_id)
    # Before the final swap, the live text of the second tab must already be exact.
    await second.until(lambda s: len(s.shown.get(answer_id).content if answer_id in s.shown else "") >= len(text) - 10
                       or (answer_id in s.shown and s.shown[answer_id].status == "done"))
    live = second.shown[answer_id].content
    assert text.startswith(live), "the live text of a joining tab is a prefix of the answer"
    done = await second.until_status(answer_id, "done")
    assert done.content == text
    await first.close()
    await second.close()


async def test_a_page_opened_above_the_end_is_sent_the_answer_being_written_once_it_comes_down(
    alice, openrouter, async_client
):
    text = " ".join(f"<{i}>" for i in range(150))
    openrouter.enqueue(Stream(openai_text_stream("Hello."), delay=0.001), Stream(openai_text_stream(text), delay=0.01))
    chat_id = uuid.uuid4()
    first, _ = await open_chat(alice, chat_id)
    await first.send(action="send", message="Hello", model=MODEL)
    await first.until(lambda tab: any(m.role == "assistant" for m in tab.shown.values()))
    await first.until_status(first.last_assistant_id(), "done")
    # A second tab opened above the end (a search result): its socket says so.
    reader, _ = await open_chat(alice, chat_id, query="?end=0")
    await first.send(action="send", message="Count", model=MODEL)
    await first.until(lambda tab: len(tab.shown[tab.last_assistant_id()].content) > 30)
    answer_id = first.last_assistant_id()
    assert await reader.communicator.receive_nothing(timeout=0.3)  # nothing of an answer it does not show

    # Come down to the end, the page drew the answer as far as it was saved; the socket brings the rest.
    await async_client.aforce_login(alice)
    reader.load((await async_client.get(f"/c/{chat_id}/")).content.decode())
    await reader.send(action="follow", end=True)
    assert (await reader.until_status(answer_id, "done")).content == text
    assert not reader.out_of_date and len(reader.order) == 4

    # Gone up again (a version flipped far up): the next answer is not sent to it.
    openrouter.enqueue(Stream(openai_text_stream(text), delay=0.01))
    await reader.send(action="follow", end=False)
    await first.send(action="send", message="Again", model=MODEL)
    await first.until(lambda tab: tab.last_assistant_id() != answer_id)
    await first.until_status(first.last_assistant_id(), "done")
    await _drain(reader)
    assert first.last_assistant_id() not in reader.shown
    await first.close()
    await reader.close()


async def _drain(socket) -> list[str]:
    """The frames waiting on `socket`, received."""
    frames = []
    while not await socket.communicator.receive_nothing(timeout=0.1):
        frames.append(await socket.receive())
    return frames


async def test_an_answer_that_ends_before_another_tab_saw_it_start_comes_with_its_question(
    alice, openrouter, settings, async_client
):
    # A failure before any token: the generation sends no delta, only "done".
    # A tab that never saw the question or the answer start must get both.
    settings.UPSTREAM_MAX_TRIES = 1
    openrouter.enqueue(Stream(openai_text_stream("First answer.")), Status(500, {"error": {"message": "Upstream down"}}))
    chat_id = uuid.uuid4()
    first, _ = await open_chat(alice, chat_id)
    await first.send(action="send", message="Hello", model=MODEL)
    await first.until(lambda tab: any(m.role == "assistant" for m in tab.shown.values()))
    await first.until_status(first.last_assistant_id(), "done")
    await async_client.aforce_login(alice)
    second, _ = await open_chat(alice, chat_id)
    second.load((await async_client.get(f"/c/{chat_id}/")).content.decode())

    await first.send(action="send", message="And again?", model=MODEL)
    await first.until(lambda tab: sum(m.role == "assistant" for m in tab.shown.values()) == 2)
    answer_id = first.last_assistant_id()
    failed = await first.until_status(answer_id, "error")

    shown = await second.until_status(answer_id, "error")
    assert "Upstream down" in shown.html and failed.html == shown.html
    assert len(second.order) == 4 and not second.out_of_date
    assert "And again?" in second.shown[second.order[2]].content
    await first.close()
    await second.close()


async def test_frames_are_coalesced_to_about_twenty_per_second(alice, openrouter):
    # 200 tokens, 2 ms apart: 400 ms of stream would be 200 frames uncoalesced.
    openrouter.enqueue(Stream(openai_text_stream(" ".join(["tok"] * 200)), delay=0.002))
    socket, _ = await open_chat(alice, uuid.uuid4())
    await socket.send(action="send", message="Fast please", model=MODEL)
    await socket.until(lambda s: any(m.role == "assistant" for m in s.shown.values()))
    answer_id = socket.last_assistant_id()
    await socket.until_status(answer_id, "done")
    deltas = [frame for _t, frame in socket.frames if "beforeend:#m-" in frame]
    # The stream's own length, measured by the server, not when this test read the frames.
    duration = (await Message.objects.aget(pk=answer_id)).duration
    assert len(deltas) >= 2
    assert len(deltas) <= 20 * duration + 2, f"{len(deltas)} frames in {duration:.2f} s"
    await socket.close()


@pytest.mark.parametrize(
    ("behaviour", "code", "shown_words"),
    [
        (Status(401, {"error": {"message": "Invalid API key provided", "code": 401}}), "auth", "Invalid API key"),
        (Status(402, {"error": {"message": "Insufficient credits", "code": 402}}), "payment", "Insufficient credits"),
        (Status(429, {"error": {"message": "Slow down", "code": 429}}, {"Retry-After": "0"}), "rate_limited", "Slow down"),
        (Status(500, {"error": {"message": "Internal upstream failure"}}), "upstream", "Internal upstream failure"),
    ],
)
async def test_upstream_errors_show_on_the_message_with_a_retry_button(alice, openrouter, settings, behaviour, code, shown_words):
    settings.UPSTREAM_MAX_TRIES = 1
    openrouter.enqueue(behaviour)
    socket, _ = await open_chat(alice, uuid.uuid4())
    await socket.send(action="send", message="Hello", model=MODEL)
    await socket.until(lambda s: any(m.role == "assistant" for m in s.shown.values()))
    shown = await socket.until_status(socket.last_assistant_id(), "error")
    assert shown_words in shown.html
    assert 'role="alert"' in shown.html and ">Retry</button>" in shown.html
    saved = await Message.objects.aget(pk=socket.last_assistant_id())
    assert saved.error_code == code
    await socket.close()


async def test_a_chat_whose_first_answer_failed_is_titled_by_its_first_words(alice, openrouter, settings):
    settings.UPSTREAM_MAX_TRIES = 1
    openrouter.enqueue(Status(500, {"error": {"message": "Internal upstream failure"}}))
    chat_id = uuid.uuid4()
    socket, _ = await open_chat(alice, chat_id)
    await socket.send(action="send", message="Plan a trip to Lisbon", model=MODEL)
    await socket.until(lambda s: any(m.role == "assistant" for m in s.shown.values()))
    await socket.until_status(socket.last_assistant_id(), "error")
    for _ in range(100):  # titled just after the answer ends
        if title := (await Conversation.objects.aget(pk=chat_id)).title:
            break
        await asyncio.sleep(0.02)
    assert title == "Plan a trip to Lisbon"  # not "New chat" in the sidebar
    await socket.close()


async def test_an_answer_said_done_no_longer_listens_for_stop_or_sync(alice, openrouter, settings):
    # After its done frame a generation titles the chat, here with a title
    # model that never answers. By then it must have left the channel layer:
    # a loop that ends mid-title (a test's, a server's) would otherwise leave
    # its listener behind, and under Redis the next receive on that layer fails.
    settings.TITLE_MODEL = "fake/titler@OpenRouter"
    openrouter.enqueue(Stream(openai_text_stream("Done.")))
    openrouter.enqueue(Hang(send_head=False))
    chat_id = uuid.uuid4()
    socket, _ = await open_chat(alice, chat_id)
    await socket.send(action="send", message="Hello", model=MODEL)
    await socket.until(lambda s: any(m.role == "assistant" for m in s.shown.values()))
    answer_id = socket.last_assistant_id()
    await socket.until_status(answer_id, "done")
    titling = generation._running[answer_id].task
    while len(openrouter.chat_requests) < 2:  # the title model has been asked
        await asyncio.sleep(0.01)

    layer = get_channel_layer()
    reply = await layer.new_channel()
    await layer.group_send(
        generation.control_group(chat_id), {"type": "generation.sync", "message_id": answer_id, "reply_channel": reply}
    )
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await layer.receive(reply)
    assert not titling.done()
    titling.cancel()
    await asyncio.wait([titling])
    await socket.close()


async def test_a_mid_stream_error_keeps_the_partial_text(alice, openrouter):
    openrouter.enqueue(Stream(openai_text_stream(
        "Half an answer", error_mid_stream={"code": 502, "message": "Provider disconnected"}, usage=False)))
    socket, _ = await open_chat(alice, uuid.uuid4())
    await socket.send(action="send", message="Hello", model=MODEL)
    await socket.until(lambda s: any(m.role == "assistant" for m in s.shown.values()))
    shown = await socket.until_status(socket.last_assistant_id(), "error")
    assert shown.content == "Half an answer"
    assert "Provider disconnected" in shown.html
    await socket.close()


async def test_a_timeout_is_reported(alice, openrouter, settings):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    settings.UPSTREAM_MAX_TRIES = 1
    openrouter.enqueue(Hang(send_head=False))
    socket, _ = await open_chat(alice, uuid.uuid4())
    await socket.send(action="send", message="Hello", model=MODEL)
    await socket.until(lambda s: any(m.role == "assistant" for m in s.shown.values()))
    shown = await socket.until_status(socket.last_assistant_id(), "error")
    assert "took too long" in shown.html
    await socket.close()


@pytest.mark.parametrize("offset", [480, 495, 499])
async def test_a_key_echoed_at_the_cut_of_an_error_text_is_not_shown_in_part(alice, openrouter, offset):
    """The upstream's text is cut to 500 characters: after the key is taken out, never before."""
    body = "x" * offset + f" key {OPENROUTER_SERVER_KEY} refused"
    openrouter.enqueue(Status(400, body.encode(), headers={"Content-Type": "text/plain"}))
    socket, _ = await open_chat(alice, uuid.uuid4())
    await socket.send(action="send", message="hi", model=MODEL)
    await socket.until(lambda s: any(m.status == "error" for m in s.shown.values()), timeout=30)
    shown = next(m for m in socket.shown.values() if m.status == "error")
    assert OPENROUTER_SERVER_KEY[:8] not in shown.html
    saved = await Message.objects.aget(pk=socket.last_assistant_id())
    assert OPENROUTER_SERVER_KEY[:8] not in saved.error and len(saved.error) <= 500
    await socket.close()


async def test_openrouter_gets_the_app_title_and_address_even_when_not_ascii(alice, openrouter, settings):
    settings.OPENROUTER_APP_TITLE = "切换台 Café"
    settings.OPENROUTER_APP_URL = "https://chat.例子.dk/æ"
    openrouter.enqueue(Stream(openai_text_stream("Hej.")))
    socket, _ = await open_chat(alice, uuid.uuid4())
    await socket.send(action="send", message="hi", model=MODEL)
    shown = await socket.until_status(await _answer_id(socket), "done", "error")
    assert (shown.status, shown.content) == ("done", "Hej.")
    headers = openrouter.chat_requests[0].headers  # as the wire had them, read as Latin-1
    assert headers["x-title"].encode("latin-1").decode() == headers["x-openrouter-title"].encode("latin-1").decode() \
        == "切换台 Café"
    assert headers["http-referer"] == "https://chat.%E4%BE%8B%E5%AD%90.dk/%C3%A6"
    await socket.close()


async def _answer_id(socket) -> int:
    await socket.until(lambda s: any(m.role == "assistant" for m in s.shown.values()))
    return socket.last_assistant_id()


async def test_no_key_is_a_clear_error(alice, settings, upstream):
    settings.OPENROUTER_API_KEY = ""
    settings.OPENAI_API_KEY = ""
    socket, _ = await open_chat(alice, uuid.uuid4())
    await socket.send(action="send", message="Hello", model=MODEL)
    await socket.until(lambda s: any(m.role == "assistant" for m in s.shown.values()))
    shown = await socket.until_status(socket.last_assistant_id(), "error")
    assert "No API key is configured for this provider" in shown.html
    assert upstream.chat_requests == []
    await socket.close()


async def test_a_model_outside_the_allow_list_is_refused(alice, openrouter, settings):
    settings.CUSTOM_MODELS = "-all,+fake/allowed@OpenRouter"
    socket, _ = await open_chat(alice, uuid.uuid4())
    await socket.send(action="send", message="Hello", model="fake/forbidden@openrouter")
    await socket.until(lambda s: any(m.role == "assistant" for m in s.shown.values()))
    shown = await socket.until_status(socket.last_assistant_id(), "error")
    assert "This model is not available on this server." in shown.html
    assert openrouter.chat_requests == []
    await socket.close()


async def test_retry_after_an_error_answers(alice, openrouter, settings):
    settings.UPSTREAM_MAX_TRIES = 1
    openrouter.enqueue(Status(503, {"error": {"message": "Busy"}}), Stream(openai_text_stream("Now it works.")))
    socket, _ = await open_chat(alice, uuid.uuid4())
    await socket.send(action="send", message="Hello", model=MODEL)
    await socket.until(lambda s: any(m.role == "assistant" for m in s.shown.values()))
    failed = socket.last_assistant_id()
    await socket.until_status(failed, "error")
    await socket.send(action="retry", message_id=str(failed))
    await socket.until(lambda s: s.last_assistant_id() != failed)
    shown = await socket.until_status(socket.last_assistant_id(), "done")
    assert shown.content == "Now it works."
    await socket.close()


async def test_regenerate_retry_and_edit_take_the_model_the_picker_shows(alice, openrouter, settings):
    settings.UPSTREAM_MAX_TRIES = 1
    openrouter.enqueue(Status(503, {"error": {"message": "Busy"}}),
                       *(Stream(openai_text_stream(f"Answer {n}.")) for n in range(4)))  # fmt: skip
    chat_id = uuid.uuid4()
    socket, _ = await open_chat(alice, chat_id)
    await socket.send(action="send", message="Hello", model=MODEL)
    failed = await _answer_id(socket)
    await socket.until_status(failed, "error")

    async def answered(**action) -> Message:
        before = socket.last_assistant_id()
        await socket.send(**action)
        await socket.until(lambda s: s.last_assistant_id() != before)
        await socket.until_status(socket.last_assistant_id(), "done")
        return await Message.objects.aget(pk=socket.last_assistant_id())

    # Another model picked after an error: the retry goes to it.
    retried = await answered(action="retry", message_id=failed, model="fake/other@openrouter")
    assert retried.model == "fake/other@openrouter" and openrouter.chat_requests[-1].json["model"] == "fake/other"
    regenerated = await answered(action="regenerate", message_id=retried.id, model="fake/third@openrouter")
    assert openrouter.chat_requests[-1].json["model"] == "fake/third" and regenerated.parent_id == retried.parent_id
    question = await Message.objects.aget(pk=retried.parent_id)
    await answered(action="edit", message_id=question.id, message="Hello again", model=MODEL)
    assert openrouter.chat_requests[-1].json["model"] == "fake/model"
    # Without one (a page from before, a form posted without JavaScript): the chat's, the last one used.
    chat = await Conversation.objects.aget(pk=chat_id)
    assert chat.model == MODEL
    await answered(action="regenerate", message_id=socket.last_assistant_id())
    assert openrouter.chat_requests[-1].json["model"] == "fake/model"
    await socket.close()


async def test_another_user_is_refused(alice, bob):
    chat = await Conversation.objects.acreate(owner=alice, title="Private")
    _socket, connected = await open_chat(bob, chat.id)
    assert not connected


async def test_a_socket_opened_on_an_unused_id_sees_nothing_of_another_users_chat_there(alice, bob, openrouter):
    """Ids are the client's: a socket waiting on one must not see (or stop) the chat another user starts in it."""
    chat_id = uuid.uuid4()
    spy, connected = await open_chat(bob, chat_id)
    assert connected
    openrouter.enqueue(Stream(openai_text_stream("alice's secret answer " * 20), delay=0.01))
    owner, _ = await open_chat(alice, chat_id)
    await owner.send(action="send", message="my private question", model=MODEL)
    await owner.until(lambda s: any("secret" in m.content for m in s.shown.values()))
    await spy.send(action="stop")
    outputs = []
    while not outputs or outputs[-1]["type"] != "websocket.close":
        outputs.append(await spy.communicator.receive_output(timeout=2))
    assert [o["type"] for o in outputs] == ["websocket.close"]  # closed, having shown nothing
    answer = await owner.until_status(owner.last_assistant_id(), "done", "stopped")
    assert answer.status == "done"
    await owner.close()


async def test_anonymous_and_foreign_origins_are_refused(alice):
    _socket, connected = await open_chat(None, uuid.uuid4())
    assert not connected
    _socket, connected = await open_chat(alice, uuid.uuid4(), origin=b"http://evil.example")
    assert not connected


@pytest.mark.parametrize(
    "junk", [" ", "not json", "[]", "42", json.dumps({"action": "explode"}), json.dumps({"action": "edit"}),
             json.dumps({"action": "regenerate", "message_id": "abc"}), "x" * 300_000]
)
async def test_junk_frames_get_an_error_frame_and_the_socket_lives(alice, openrouter, junk):
    socket, _ = await open_chat(alice, uuid.uuid4())
    await socket.communicator.send_to(text_data=junk)
    frame = await socket.receive()
    assert 'id="chat-notice"' in frame
    await socket.send(action="send", message="Still there?", model=MODEL)
    await socket.until(lambda s: any(m.status == "done" for m in s.shown.values()))
    await socket.close()


async def test_the_forms_a_frame_carries_have_the_pages_csrf_token(alice, openrouter, settings):
    settings.DEBUG = True  # where Django warns of a form drawn without its token
    secret = get_random_string(CSRF_SECRET_LENGTH, CSRF_ALLOWED_CHARS)  # the page's CSRF cookie
    openrouter.enqueue(Stream(openai_text_stream("First.")), Stream(openai_text_stream("Second.")))
    chat_id = uuid.uuid4()
    socket, _ = await open_chat(alice, chat_id, cookies=f"{settings.CSRF_COOKIE_NAME}={secret}".encode())
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        await socket.send(action="send", message="Hello", model=MODEL)
        await socket.until(lambda s: any(m.role == "assistant" for m in s.shown.values()))
        answer_id = socket.last_assistant_id()
        await socket.until_status(answer_id, "done")
    assert not [w for w in warned if "csrf_token" in str(w.message)]
    settings.DEBUG = False
    form = re.search(r'<form method="post" action="([^"]+)" ws-send[^>]*>.*?</form>', socket.shown[answer_id].html,
                     re.S)  # fmt: skip
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form[0])[1]

    # Posted as a browser without JavaScript would post it, with that cookie: Django's CSRF check lets it in.
    browser = AsyncClient(enforce_csrf_checks=True)
    await browser.aforce_login(alice)
    browser.cookies[settings.CSRF_COOKIE_NAME] = secret
    response = await browser.post(form[1], {"csrfmiddlewaretoken": token, "message_id": answer_id})
    assert response.status_code == 302 and response.url == f"/c/{chat_id}/"
    forged_token = token[:-1] + ("y" if token.endswith("x") else "x")  # one character changed, never the same
    forged = await browser.post(form[1], {"csrfmiddlewaretoken": forged_token, "message_id": answer_id})
    assert forged.status_code == 403
    await generations_finished()
    assert await Message.objects.filter(conversation_id=chat_id, role="assistant").acount() == 2
    await socket.close()


async def test_streamed_saved_and_reloaded_text_are_identical(alice, openrouter, client):
    text = "Line one\n\nLine *two* with `code` & <tags> and ünïcödé ✓"
    openrouter.enqueue(Stream(openai_text_stream(text), delay=0.005))
    chat_id = uuid.uuid4()
    socket, _ = await open_chat(alice, chat_id)
    await socket.send(action="send", message="Show me", model=MODEL)
    await socket.until(lambda s: any(m.role == "assistant" for m in s.shown.values()))
    answer_id = socket.last_assistant_id()
    streamed = ""
    while socket.shown[answer_id].status == "streaming":
        streamed = socket.shown[answer_id].content
        await socket.receive()
    saved = await Message.objects.aget(pk=answer_id)
    assert saved.content == text
    assert streamed == "" or text.startswith(streamed)
    await sync_to_async(client.force_login)(alice)
    page = await sync_to_async(client.get)(f"/c/{chat_id}/")
    from tests.chat_client import parts_of

    article = page.content.decode().split(f'id="m-{answer_id}"')[1].split("</article>")[0]
    assert parts_of("<article" + article)["content"].strip() == socket.shown[answer_id].content
    await socket.close()



async def test_the_composer_works_without_javascript(alice, openrouter, async_client):
    openrouter.enqueue(Stream(openai_text_stream("Answered without a socket."), delay=0.01))
    await async_client.aforce_login(alice)
    chat_id = uuid.uuid4()
    response = await async_client.post(f"/c/{chat_id}/send/", {"message": "No JS here", "model": MODEL})
    assert response.status_code == 302 and response.url == f"/c/{chat_id}/"
    page = (await async_client.get(response.url)).content.decode()
    assert "No JS here" in page
    for _ in range(100):
        answers = [m for m in await _messages(chat_id) if m.role == "assistant"]
        if answers[0].status == "done":
            break
        await asyncio.sleep(0.05)
    assert answers[0].content == "Answered without a socket.", (answers[0].status, answers[0].error_code, answers[0].error)
    assert "Answered without a socket." in (await async_client.get(response.url)).content.decode()


async def test_answers_count_against_the_rate_limit_over_the_socket_and_the_form(alice, openrouter, async_client, two_a_minute):
    """RATE_LIMIT is per user, not per route: chat answers spend the server's key as proxied requests do."""
    openrouter.enqueue(*(Stream(openai_text_stream("ok")) for _ in range(3)))
    for _ in range(2):
        socket, _ = await open_chat(alice, uuid.uuid4())
        await socket.send(action="send", message="hi", model=MODEL)
        await socket.until(lambda s: any(m.role == "assistant" and m.status == "done" for m in s.shown.values()))
        await socket.close()
    socket, _ = await open_chat(alice, uuid.uuid4())
    await socket.send(action="send", message="one too many", model=MODEL)
    await socket.until(lambda s: s.notices)
    assert "Too many requests. Try again in" in socket.notices[-1]
    await socket.close()
    await async_client.aforce_login(alice)
    response = await async_client.post(f"/c/{uuid.uuid4()}/send/", {"message": "and by form", "model": MODEL}, follow=True)
    assert "Too many requests. Try again in" in response.content.decode()
    assert len(openrouter.chat_requests) == 2


@pytest.mark.parametrize("existing", [False, True])
async def test_an_over_long_message_without_javascript_is_refused_not_cut(alice, openrouter, async_client, existing):
    # As the socket refuses it: cutting it would send the model a question the user never wrote.
    chat_id = (await Conversation.objects.acreate(owner=alice, model=MODEL)).id if existing else uuid.uuid4()
    await async_client.aforce_login(alice)
    too_long = "x" * (exchanges.MAX_MESSAGE_CHARS + 1)
    response = await async_client.post(f"/c/{chat_id}/send/", {"message": too_long, "model": MODEL})
    assert response.status_code == 302
    assert response.url == (f"/c/{chat_id}/" if existing else "/c/new/")
    assert "The message is too long." in (await async_client.get(response.url)).content.decode()
    assert not await Message.objects.filter(conversation_id=chat_id).aexists()
    assert openrouter.chat_requests == []


async def test_a_new_chat_takes_settings_before_its_first_message(alice, bob, openrouter, async_client, settings):
    settings.CUSTOM_MODELS = "+fake/model@OpenRouter"  # offered in the settings' model list
    openrouter.enqueue(Stream(openai_text_stream("Arr.")))
    chat_id = uuid.uuid4()
    await async_client.aforce_login(alice)
    form = await async_client.get(f"/c/{chat_id}/settings/", headers={"HX-Request": "true"})
    assert form.status_code == 200 and "System prompt" in form.content.decode()
    saved = await async_client.post(f"/c/{chat_id}/settings/", {"model": MODEL, "system_prompt": "Talk like a pirate."},
                                    headers={"HX-Request": "true"})  # fmt: skip
    assert saved.status_code == 200 and saved["HX-Replace-Url"] == f"/c/{chat_id}/"  # a reload keeps them
    assert "Talk like a pirate." not in (await async_client.get("/c/list/")).content.decode()  # not listed yet

    socket, connected = await open_chat(alice, chat_id)
    assert connected
    await socket.send(action="send", message="Hello", model=MODEL)
    await socket.until(lambda s: any(m.role == "assistant" for m in s.shown.values()))
    await socket.until_status(socket.last_assistant_id(), "done")
    await socket.close()
    sent = openrouter.chat_requests[-1].json["messages"]
    assert sent[0] == {"role": "system", "content": "Talk like a pirate."} and sent[-1]["content"] == "Hello"
    assert f'id="conversation-{chat_id}"' in (await async_client.get("/c/list/")).content.decode()  # listed now

    await async_client.aforce_login(bob)  # the id is Alice's now, with or without messages
    assert (await async_client.get(f"/c/{chat_id}/settings/")).status_code == 404
    assert (await async_client.post(f"/c/{chat_id}/settings/", {"model": MODEL})).status_code == 404


async def _long_conversation(owner) -> Conversation:
    """Three exchanges of ~4,000 tokens each."""
    chat = await Conversation.objects.acreate(owner=owner, model=MODEL)

    def fill() -> None:
        parent_id = None
        for n in range(3):
            question, answer = chat.add_exchange(f"question {n} " + "x" * 14000, parent_id, MODEL)
            Message.objects.filter(pk=answer.pk).update(content=f"answer {n}", status=Message.Status.DONE)
            parent_id = answer.id

    await sync_to_async(fill)()
    return chat


@pytest.mark.parametrize("way", ["socket", "form"])
async def test_a_long_history_is_cut_to_the_models_window_and_the_cut_recorded(alice, openrouter, async_client, way):
    openrouter.models = [model_entry("fake/model", "Fake", context_length=14000)]  # two of the three exchanges fit
    openrouter.enqueue(Stream(openai_text_stream("Short answer."), delay=0.005))
    chat = await _long_conversation(alice)
    if way == "socket":  # the socket shows the branch first and hands it to the generation
        socket, connected = await open_chat(alice, chat.id)
        assert connected
        await socket.send(action="send", message="And now?", model=MODEL)
        await socket.until(lambda s: sum(m.role == "assistant" for m in s.shown.values()) == 1)  # the new one only
        await socket.until_status(socket.last_assistant_id(), "done")
        await socket.close()
    else:  # the form without JavaScript: the generation reads the branch itself
        await async_client.aforce_login(alice)
        await async_client.post(f"/c/{chat.id}/send/", {"message": "And now?", "model": MODEL})
        for _ in range(100):
            if (await _messages(chat.id))[-1].status == "done":
                break
            await asyncio.sleep(0.05)

    sent = [m["content"][:10] for m in openrouter.chat_requests[-1].json["messages"]]
    assert sent == ["question 1", "answer 1", "question 2", "answer 2", "And now?"]
    messages = await _messages(chat.id)
    assert messages[-1].context_start_id == next(m.id for m in messages if m.content.startswith("question 1"))


async def test_the_marks_of_a_cut_history_follow_the_branch_in_every_tab(alice, openrouter, async_client):
    """A new answer's mark comes when it is done; an edit that makes the history fit takes it away."""
    openrouter.models = [model_entry("fake/model", "Fake", context_length=14000)]  # two of the three exchanges fit
    openrouter.enqueue(Stream(openai_text_stream("Short answer."), delay=0.005), Stream(openai_text_stream("Fits.")))
    chat = await _long_conversation(alice)
    await async_client.aforce_login(alice)
    page = (await async_client.get(f"/c/{chat.id}/")).content.decode()
    tabs = [(await open_chat(alice, chat.id))[0] for _ in range(2)]
    for tab in tabs:
        tab.load(page)
    assert tabs[0].cuts == [] and len(tabs[0].order) == 6

    await tabs[0].send(action="send", message="And now?", model=MODEL)
    await tabs[0].until(lambda tab: any(m.role == "assistant" for m in tab.shown.values()))
    for tab in tabs:  # the other tab follows through the generation's snapshot
        await tab.until_status(tabs[0].last_assistant_id(), "done")
    question_1, question_2 = [m.id for m in await _messages(chat.id) if m.content.startswith(("question 1", "question 2"))]
    assert [tab.cuts for tab in tabs] == [[question_1]] * 2

    await tabs[0].send(action="edit", message_id=question_2, message="A short question 2")
    await tabs[0].until(lambda tab: sum(m.role == "assistant" for m in tab.shown.values()) == 2)
    for tab in tabs:
        await tab.until_status(tabs[0].last_assistant_id(), "done")
        assert tab.cuts == [] and len(tab.order) == 6 and not tab.out_of_date
        await tab.close()
    assert (await _messages(chat.id))[-1].context_start_id is None
    reloaded = (await async_client.get(f"/c/{chat.id}/")).content.decode()
    assert "left out here" not in reloaded and "A short question 2" in reloaded

async def test_sending_into_another_users_conversation_is_refused(alice, bob, openrouter, async_client):
    chat = await Conversation.objects.acreate(owner=alice, title="Alice's")
    await async_client.aforce_login(bob)
    response = await async_client.post(f"/c/{chat.id}/send/", {"message": "Hijack", "model": MODEL})
    assert response.status_code == 302
    assert not await Message.objects.filter(conversation=chat).aexists()
    assert openrouter.chat_requests == []


async def test_another_users_forms_cannot_regenerate_edit_or_stop(alice, bob, openrouter, async_client):
    openrouter.enqueue(Hang(openai_text_stream("Alice's answer, still coming", usage=False, done=False)))
    chat_id = uuid.uuid4()
    socket, connected = await open_chat(alice, chat_id)
    await socket.send(action="send", message="Mine", model=MODEL)
    await socket.until(lambda s: any(m.role == "assistant" for m in s.shown.values()))
    answer_id = socket.last_assistant_id()
    question = await Message.objects.aget(conversation_id=chat_id, role="user")

    await async_client.aforce_login(bob)
    for path, data in [
        ("stop", {}),
        ("regenerate", {"message_id": answer_id}),
        ("edit", {"message_id": question.id, "message": "Hijacked"}),
    ]:
        response = await async_client.post(f"/c/{chat_id}/{path}/", data)
        assert response.status_code == 302 and response.url in ("/c/new/", f"/c/{chat_id}/")
    await asyncio.sleep(0.3)
    assert (await Message.objects.aget(pk=answer_id)).status == "streaming"  # not stopped
    assert await Message.objects.filter(conversation_id=chat_id).acount() == 2  # nothing new
    assert len(openrouter.chat_requests) == 1
    await socket.send(action="stop")
    await socket.until_status(answer_id, "stopped")
    await socket.close()


@given(st.lists(st.tuples(st.text(), st.booleans())))
def test_a_growing_answer_reads_as_its_deltas_joined(steps):
    # Read between deltas (a frame) or not: the text is always every delta so far, in order.
    text, expected = GrowingText(), ""
    for delta, read in steps:
        text.append(delta)
        expected += delta
        assert len(text) == len(expected)
        if read:
            assert str(text) == expected
    assert str(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("12", 12), (12, 12), (None, None), ("", None), ("abc", None), ("-1", None), ("1.5", None), ("9" * 19, None)],
)
def test_a_message_id_from_a_form_or_frame_is_a_row_id_or_none(value, expected):
    # The socket and the forms parse ids alike; a number no row can have never reaches the database.
    from chatapp.exchanges import message_id

    assert message_id(value) == expected
