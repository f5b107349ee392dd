"""Variables in a system prompt ({{CURRENT_DATE}} and the like), as the upstream receives them; and what a page
needs to fill them in a saved prompt (the rest: test_chat_browser)."""

import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import AsyncClient

from chatapp.models import Conversation, Message, Prompt
from tests.chat_client import generations_finished, open_chat
from tests.fake_upstream import Stream, openai_text_stream

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "fake/model@openrouter"
PROMPT = (
    "Today is {{CURRENT_DATE}}, a {{CURRENT_WEEKDAY}}; it is {{CURRENT_TIME}} ({{CURRENT_TIMEZONE}}). "
    "{{USER_NAME}} reads {{USER_LANGUAGE}}. {{NOT_A_VARIABLE}} and {{ CURRENT_DATE }} stay as written."
)
SENT = re.compile(
    r"Today is (\d{4}-\d\d-\d\d), a (\w+); it is (\d\d:\d\d:\d\d) \((.+)\)\. (.+) reads (.+)\. "
    r"\{\{NOT_A_VARIABLE\}\} and \{\{ CURRENT_DATE \}\} stay as written\."
)


def _when_sent(system: str, zone: str) -> tuple[datetime, str, str, str]:
    """The moment the system prompt says, in `zone`, with its weekday, reader and language."""
    date, weekday, time, named_zone, reader, language = SENT.fullmatch(system).groups()
    assert named_zone == zone
    moment = datetime.fromisoformat(f"{date}T{time}").replace(tzinfo=ZoneInfo(zone))
    return moment, weekday, reader, language


async def test_the_system_prompt_tells_the_date_and_time_in_the_readers_zone_at_each_message(alice, openrouter):
    alice.first_name, alice.last_name = "Alice", "Liddell"
    await alice.asave()
    openrouter.enqueue(Stream(openai_text_stream("Noted.")), Stream(openai_text_stream("Still noted.")))
    chat = await Conversation.objects.acreate(owner=alice, model=MODEL, system_prompt=PROMPT)
    socket, _ = await open_chat(alice, chat.id, cookies=b"tz=Asia/Tokyo; django_language=da")
    for question in ("What day is it?", "And now?"):
        before = datetime.now(ZoneInfo("Asia/Tokyo")).replace(microsecond=0)
        await socket.send(action="send", message=question, model=MODEL)
        await socket.until(lambda s, asked=question: any(m.content == asked for m in s.shown.values()))
        await socket.until_status(socket.last_assistant_id(), "done")
        system = openrouter.chat_requests[-1].json["messages"][0]
        assert system["role"] == "system"
        moment, weekday, reader, language = _when_sent(system["content"], "Asia/Tokyo")
        assert before <= moment <= datetime.now(ZoneInfo("Asia/Tokyo")) + timedelta(seconds=1)
        assert weekday == moment.strftime("%A") and reader == "Alice Liddell" and language == "Danish"
    await socket.close()
    await generations_finished()
    chat = await Conversation.objects.aget(pk=chat.pk)
    assert chat.system_prompt == PROMPT  # kept as written, for the next message's date


async def test_without_a_zone_from_the_browser_the_servers_is_used(alice, openrouter, settings):
    settings.TIME_ZONE = "America/Sao_Paulo"
    openrouter.enqueue(Stream(openai_text_stream("Noted.")))
    chat = await Conversation.objects.acreate(owner=alice, model=MODEL, system_prompt=PROMPT)
    browser = AsyncClient()  # a form without JavaScript: no time zone cookie, or a made-up one
    await browser.aforce_login(alice)
    browser.cookies["tz"] = "Mars/Olympus_Mons"
    await browser.post(f"/c/{chat.id}/send/", {"message": "What day is it?", "model": MODEL})
    await generations_finished()
    assert (await Message.objects.filter(conversation=chat).alast()).status == "done"
    _moment, _weekday, reader, language = _when_sent(
        openrouter.chat_requests[-1].json["messages"][0]["content"], "America/Sao_Paulo"
    )
    assert (reader, language) == ("alice", "English")


async def test_the_settings_panel_names_the_variables(alice, async_client):
    chat = await Conversation.objects.acreate(owner=alice, model=MODEL)
    await async_client.aforce_login(alice)
    panel = (await async_client.get(f"/c/{chat.id}/settings/")).content.decode()
    assert "{{CURRENT_DATE}}, {{CURRENT_TIME}}, {{CURRENT_WEEKDAY}}, {{USER_NAME}} and {{USER_LANGUAGE}}" in panel


def test_a_page_with_saved_prompts_carries_what_it_cannot_know_to_fill_them_in(alice, client):
    alice.first_name = "Alice"
    alice.save()
    client.force_login(alice)
    assert "composer-prompt-values" not in client.get("/c/new/").content.decode()  # no prompt, nothing to fill
    Prompt.objects.create(owner=alice, command="hi", text="Hello, I am {{USER_NAME}}.")
    client.cookies["django_language"] = "zh-hans"
    page = client.get("/c/new/").content.decode()
    values = json.loads(re.search(r'id="composer-prompt-values" type="application/json">(.*?)</script>', page)[1])
    assert values == {"USER_NAME": "Alice", "USER_LANGUAGE": "Simplified Chinese"}
