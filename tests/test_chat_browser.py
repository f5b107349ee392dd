"""The chat in a real browser: Debian's Chromium driven by Playwright, the app under Daphne.

Sign in, send, watch reasoning and text stream, stop, reload mid-stream and
see it continue, and model output such as `<img src=x onerror=alert(1)>`
shown as text with no script run.
"""

import base64
import json
import re
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from chatapp.models import KEPT_ABOVE
from tests.conftest import BROWSER_WAIT_MS, CI
from tests.fake_upstream import FakeUpstream, Hang, Stream, model_entry, openai_text_stream
from tests.live_server import PASSWORD, ROOT, AppServer, base_env, manage, prepared_database

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

if not CHROMIUM.exists():
    if CI:
        raise RuntimeError("Chromium is required under CI: apt-get install chromium")
    pytest.skip("Debian's Chromium is not installed", allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

expect.set_options(timeout=BROWSER_WAIT_MS)

THOUGHT = re.compile(r"Thought for (\d+ s|less than a second)")  # a reasoning block folded


@pytest.fixture(scope="module")
def upstream_server():
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_disconnect_flag(upstream_server):
    """The upstream lives for the module: an earlier test's stop must not count as this test's."""
    upstream_server.disconnected.clear()


@pytest.fixture(scope="module")
def app(tmp_path_factory, upstream_server):
    database = tmp_path_factory.mktemp("browser") / "db.sqlite3"
    env = base_env(
        DATABASE_URL=f"sqlite:///{database}",
        OPENROUTER_API_KEY="sk-or-browser",
        OPENROUTER_URL=upstream_server.url,
        CUSTOM_MODELS="-all,+fake/model@OpenRouter=Fake Model,+fake/small@OpenRouter=Small Model",
    )
    upstream_server.models.append(model_entry("fake/small", "Small", context_length=14000))
    prepared_database(env)
    server = AppServer(env).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, app) -> Page:
    page = _signed_in(browser, app)
    yield page
    page.context.close()


def _signed_in(browser, app, **options) -> Page:
    """Alice's new chat, in a browser context of its own (`options`: Playwright's, for the context)."""
    page = browser.new_context(viewport={"width": 1100, "height": 800}, **options).new_page()
    page.dialogs = []
    page.dismiss_dialogs = lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss())
    page.on("dialog", page.dismiss_dialogs)
    page.goto(f"{app.url}/accounts/signin/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{app.url}/c/new/")
    expect(page.get_by_role("textbox", name="Message")).to_be_visible()
    return page


def _last_answer(page: Page):
    return page.locator('[data-role="assistant"]').last


def _send(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")


def test_send_and_watch_reasoning_then_text_stream(page, upstream_server):
    words = " ".join(f"word{i}" for i in range(60))
    upstream_server.enqueue(
        Stream(openai_text_stream(words, reasoning="Considering the question carefully. " * 4), delay=0.03)
    )
    expect(page.get_by_label("Model", exact=True)).to_have_value("fake/model@openrouter")
    _send(page, "Please answer slowly")
    answer = _last_answer(page)
    expect(answer).to_have_attribute("data-status", "streaming")
    expect(answer.locator(".reasoning > summary")).to_have_text("Thinking...")
    expect(answer.locator('[data-part="reasoning"]')).to_contain_text("Considering")
    expect(answer.locator('[data-part="content"]')).to_contain_text("word10")
    expect(answer).to_have_attribute("data-status", "done")
    expect(answer.locator('[data-part="content"]')).to_have_text(words)
    expect(answer.locator(".reasoning > summary")).to_have_text(THOUGHT)
    assert page.get_by_role("textbox", name="Message").input_value() == ""
    assert re.search(r"/c/[0-9a-f-]{36}/$", page.url)


def test_a_message_being_written_is_kept_until_it_is_sent(page, app, upstream_server):
    box = page.get_by_role("textbox", name="Message")
    box.fill("A thought I had not finished")
    page.reload()
    expect(box).to_have_value("A thought I had not finished")  # a new chat's, kept for the next new chat
    upstream_server.enqueue(Stream(openai_text_stream("Noted.")))
    box.press("Enter")
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    expect(box).to_have_value("")
    chat_url = page.url
    page.reload()
    expect(box).to_have_value("")  # sent, it is gone

    box.fill("A second thought, for this chat")
    page.goto(f"{app.url}/c/new/")
    expect(box).to_have_value("")  # each chat has its own
    page.goto(chat_url)
    expect(box).to_have_value("A second thought, for this chat")
    short = box.bounding_box()["height"]
    box.fill("A long one\n" * 8)
    assert box.bounding_box()["height"] > short + 50  # the box grows with it

    page.get_by_role("button", name="Sign out").click()  # the next person at this browser finds nothing
    page.goto(f"{app.url}/accounts/signin/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(chat_url)
    expect(box).to_have_value("")


def test_keyboard_shortcuts_for_the_composer_and_a_new_chat(page, app):
    page.goto(f"{app.url}/c/{_long_conversation(app, 20)}/")
    box = page.get_by_role("textbox", name="Message")
    page.locator("#messages > article").last.click()  # reading, the composer left
    expect(box).not_to_be_focused()
    page.keyboard.press("Shift+Escape")
    expect(box).to_be_focused()
    page.keyboard.press("Control+Shift+O")
    expect(page).to_have_url(f"{app.url}/c/new/")


def test_stop_keeps_the_partial_answer(page, upstream_server):
    upstream_server.enqueue(Hang(openai_text_stream("An answer that never ends", usage=False, done=False)))
    _send(page, "Never stop")
    answer = _last_answer(page)
    expect(answer.locator('[data-part="content"]')).to_contain_text("never ends")
    page.get_by_role("button", name="Stop").click()
    expect(answer).to_have_attribute("data-status", "stopped")
    assert upstream_server.wait_for_disconnect(1.0)
    expect(answer.locator('[data-part="content"]')).to_have_text("An answer that never ends")
    expect(answer.locator(".meta")).to_contain_text("Stopped")  # not mistaken for a finished answer
    expect(answer.get_by_role("button", name="Copy")).to_be_visible()  # the part written is still worth copying
    expect(page.get_by_role("button", name="Regenerate")).to_be_visible()


def test_a_message_refused_while_an_answer_streams_stays_in_the_composer(page, upstream_server):
    upstream_server.enqueue(Stream(openai_text_stream(" ".join(f"s{i}" for i in range(40))), delay=0.03))
    upstream_server.enqueue(Stream(openai_text_stream("Second answer.")))
    _send(page, "First question")
    answer = _last_answer(page)
    expect(answer).to_have_attribute("data-status", "streaming")
    page.get_by_label("Attach files").set_input_files({"name": "notes.md", "mimeType": "text/markdown", "buffer": b"#"})
    chip = page.locator("#composer-files .attachment-chip")
    expect(chip).to_have_text(re.compile("notes.md"))
    _send(page, "Second question")
    notice = page.get_by_role("alert")
    expect(notice).to_have_text("An answer is still being written. Stop it or wait for it to finish.")
    box = page.get_by_role("textbox", name="Message")
    expect(box).to_have_value("Second question")  # not lost
    expect(chip).to_be_visible()  # nor its file
    expect(answer).to_have_attribute("data-status", "done")
    box.press("Enter")
    question = page.locator('[data-role="user"]').last
    expect(question).to_have_text(re.compile("Second question"))
    expect(question.locator(".file-link")).to_contain_text("notes.md")
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    expect(page.locator("#chat-notice")).to_be_empty()  # the refusal's notice went with the accepted message
    expect(box).to_have_value("")
    expect(chip).to_have_count(0)


COPIED_HTML = """async () => {
  const [item] = await navigator.clipboard.read();
  return await (await item.getType("text/html")).text();
}"""


def test_an_answer_is_copied_with_its_button_as_its_markdown(page, app, upstream_server):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app.url)
    markdown = "Copy me, **all** of me: [the docs](https://example.com/docs), $x^2$ and\n\n```python\nprint('hi')\n```"
    upstream_server.enqueue(Stream(openai_text_stream(markdown)))
    _send(page, "Something to copy")
    answer = _last_answer(page)
    expect(answer).to_have_attribute("data-status", "done")
    expect(answer.locator(".katex")).to_have_count(1)  # typeset, as the reader sees it
    answer.locator(".message-actions").get_by_role("button", name="Copy").click()
    expect(answer.get_by_role("button", name="Copied")).to_be_visible()
    # As written, not as drawn: the fences, the link's address and the TeX are kept.
    assert page.evaluate("navigator.clipboard.readText()") == markdown
    # For an editor that takes HTML, as it looks, without the page's buttons or KaTeX's second drawing of x².
    html = page.evaluate(COPIED_HTML)
    assert '<strong>all</strong>' in html and 'href="https://example.com/docs"' in html and "<math" in html
    assert ">Copy<" not in html and "katex-html" not in html
    answer.locator(".code-block").get_by_role("button", name="Copy").click()  # a code block's, its code alone
    expect(answer.locator(".code-block").get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()").strip() == "print('hi')"


def test_an_answer_branches_into_a_new_chat_that_goes_its_own_way(page, app, upstream_server):
    upstream_server.enqueue(
        Stream(openai_text_stream("Take the coast road.")),
        Stream(openai_text_stream("Then the mountains.")),
        Stream(openai_text_stream("Or the night train.")),
    )
    _send(page, "Which way?")
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    _send(page, "And after that?")
    expect(page.locator('[data-role="assistant"]')).to_have_count(2)
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    original = page.url

    page.locator('[data-role="assistant"]').first.get_by_role("button", name="Branch in new chat").click()
    expect(page).not_to_have_url(original)
    expect(page.locator("#chat-title")).to_have_text(re.compile("^Branch · "))
    expect(page.locator(".message")).to_have_count(2)  # up to the answer branched from
    expect(page.locator(".conversation-item[aria-current=page]")).to_have_text(re.compile("Branch · "))
    _send(page, "What else?")
    expect(_last_answer(page)).to_have_text(re.compile("Or the night train."))
    page.goto(original)
    expect(page.locator(".message")).to_have_count(4)  # the chat branched from is as it was


def test_a_chat_is_shared_from_its_header_and_read_and_continued_through_the_link(page, app, upstream_server):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app.url)
    upstream_server.enqueue(Stream(openai_text_stream("Shared **answer**.")))
    _send(page, "Something to share")
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    chat_url = page.url
    page.get_by_text("Share", exact=True).click()
    page.get_by_role("button", name="Create a link").click()
    link = page.get_by_label("Link to this chat")
    expect(link).to_have_value(re.compile(rf"^{re.escape(app.url)}/s/[\w-]+/$"))
    page.get_by_role("button", name="Copy link").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    shared_url = link.input_value()
    assert page.evaluate("navigator.clipboard.readText()") == shared_url

    page.goto(shared_url)
    expect(page.locator(".message-assistant strong")).to_have_text("answer")
    expect(page.locator(".message-user")).to_have_text("Something to share")
    page.locator(".message-assistant").get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == "Shared **answer**."
    page.get_by_role("button", name="Continue in a chat of your own").click()
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    assert page.url != chat_url
    expect(_last_answer(page).locator('[data-part="content"]')).to_have_text("Shared answer.")
    expect(page.get_by_role("textbox", name="Message")).to_be_visible()


@pytest.mark.parametrize("reload", [False, True])
def test_the_reasoning_folds_when_the_answer_starts(page, upstream_server, reload):
    words = " ".join(f"a{i}" for i in range(150))
    upstream_server.enqueue(Stream(openai_text_stream(words, reasoning="Thinking hard about it. " * 25), delay=0.03))
    _send(page, "Think first")
    answer = _last_answer(page)
    expect(answer.locator('[data-part="reasoning"]')).to_contain_text("Thinking hard")
    if reload:  # while still thinking
        page.reload()
    reasoning = answer.locator("details.reasoning")
    expect(reasoning).to_have_attribute("open", "")
    expect(answer.locator(".reasoning > summary")).to_have_text(THOUGHT)
    assert reasoning.evaluate("details => details.open") is False
    expect(answer).to_have_attribute("data-status", "streaming")  # folded as the answer starts, not at its end


def test_text_before_a_lone_closing_think_tag_moves_into_the_folded_reasoning(page, upstream_server):
    reasoning = "Weighing the options one by one. " * 3
    words = " ".join(f"b{i}" for i in range(80))
    chunks = openai_text_stream(words, reasoning=reasoning, reasoning_style="think-close-only")
    upstream_server.enqueue(Stream(chunks, delay=0.02))
    _send(page, "Think, then answer")
    answer = _last_answer(page)
    content = answer.locator('[data-part="content"]')
    expect(content).to_contain_text("Weighing the options")  # no tag yet: it shows as the answer
    expect(answer.locator(".reasoning > summary")).to_have_text(THOUGHT)
    expect(answer.locator('[data-part="reasoning"]')).to_have_text(reasoning)
    expect(content).not_to_contain_text("Weighing")
    assert answer.locator("details.reasoning").evaluate("details => details.open") is False
    expect(answer).to_have_attribute("data-status", "done")
    expect(content).to_have_text(words)


def test_reload_mid_stream_continues_live(page, upstream_server):
    words = " ".join(f"t{i:03d}" for i in range(120))
    upstream_server.enqueue(Stream(openai_text_stream(words), delay=0.03))
    _send(page, "Long one")
    expect(_last_answer(page).locator('[data-part="content"]')).to_contain_text("t010")
    page.reload()
    answer = _last_answer(page)
    expect(answer.locator('[data-part="content"]')).to_contain_text("t060")
    expect(answer).to_have_attribute("data-status", "streaming")
    expect(answer).to_have_attribute("data-status", "done")
    expect(answer.locator('[data-part="content"]')).to_have_text(words)


def test_model_output_is_shown_as_text_and_runs_no_script(page, upstream_server):
    payload = "<img src=x onerror=alert(1)> and <script>alert(2)</script>"
    upstream_server.enqueue(Stream(openai_text_stream(payload), delay=0.01))
    _send(page, "Say something nasty")
    answer = _last_answer(page)
    expect(answer).to_have_attribute("data-status", "done")
    expect(answer.locator('[data-part="content"]')).to_contain_text("<img src=x onerror=alert(1)>")
    assert answer.locator("img").count() == 0 and answer.locator("script").count() == 0
    page.reload()
    expect(_last_answer(page).locator('[data-part="content"]')).to_contain_text("<script>alert(2)</script>")
    assert page.dialogs == []


def test_a_new_chat_takes_settings_first_and_gets_its_title_with_the_first_answer(page, upstream_server):
    header = page.locator("#chat-header")
    expect(header.get_by_role("heading")).to_have_count(0)  # no title yet, but settings already
    header.get_by_text("Chat settings", exact=True).click()
    header.get_by_label("System prompt").fill("Answer as a weather forecaster.")
    header.get_by_role("button", name="Save").click()
    expect(header.get_by_role("status")).to_have_text("Saved.")
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))  # a reload would keep them
    upstream_server.enqueue(Stream(openai_text_stream("Mild and windy."), delay=0.01))
    _send(page, "How is the weather in Copenhagen today")
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    expect(header.get_by_role("heading")).to_have_text("How is the weather in Copenhagen today")
    expect(page).to_have_title("How is the weather in Copenhagen today · Switchboard")  # the tab too
    assert upstream_server.chat_requests[-1].json["messages"][0] == {
        "role": "system", "content": "Answer as a weather forecaster."}
    header.get_by_text("Chat settings", exact=True).click()
    expect(header.get_by_label("System prompt")).to_be_visible()  # htmx wired the swapped-in header

    item = page.locator(".conversation-item[aria-current=page]")  # renamed from the list, on its own page
    item.get_by_label("Actions").click()
    item.get_by_label("Title").fill("Weather")
    item.get_by_role("button", name="Rename").click()
    expect(header.get_by_role("heading")).to_have_text("Weather")
    expect(page).to_have_title("Weather · Switchboard")


def test_a_chats_settings_saved_as_a_preset_start_another_chat_and_apply_to_a_third(page, app, upstream_server):
    header = page.locator("#chat-header")
    header.get_by_text("Chat settings", exact=True).click()
    header.get_by_label("System prompt").fill("Answer as a ship's cook.")
    header.get_by_label("Also save as a preset named").fill("Cook")
    header.get_by_role("button", name="Save").click()
    expect(header.get_by_role("status")).to_have_text("Saved, and as the preset “Cook”.")

    page.locator(".new-chat").click()  # a new chat's page offers it
    page.get_by_role("list", name="Or start from a preset:").get_by_role("button", name="Cook").click()
    expect(page.locator(".flash")).to_have_text("Preset “Cook” applied.")
    prompt = page.locator(".system-prompt-shown")  # <q>: the quotes are the stylesheet's
    expect(prompt).to_have_text("System prompt: Answer as a ship's cook.")
    upstream_server.enqueue(Stream(openai_text_stream("Stew again."), delay=0.01))
    _send(page, "What is for dinner")
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    assert upstream_server.chat_requests[-1].json["messages"][0] == {
        "role": "system", "content": "Answer as a ship's cook."}

    page.goto(f"{app.url}/c/new/")  # a third chat, on another model, takes it from its settings panel
    header.get_by_text("Chat settings", exact=True).click()
    header.get_by_label("Model", exact=True).select_option(label="Small Model")
    header.get_by_role("button", name="Save").click()
    picker = page.locator("#composer").get_by_label("Model", exact=True)
    expect(picker).to_have_value("fake/small@openrouter")
    header.get_by_label("Preset", exact=True).select_option(label="Cook")
    header.get_by_role("button", name="Apply").click()
    expect(header.get_by_role("status")).to_have_text("Preset “Cook” applied.")
    expect(header.get_by_label("System prompt")).to_have_value("Answer as a ship's cook.")
    expect(picker).to_have_value("fake/model@openrouter")  # the composer follows
    page.keyboard.press("Escape")  # the panel, over the messages, folds
    expect(header.get_by_label("System prompt")).to_be_hidden()
    header.get_by_text("Chat settings", exact=True).click()
    page.get_by_role("textbox", name="Message").click()  # and so does a click elsewhere
    expect(header.get_by_label("System prompt")).to_be_hidden()


def test_a_saved_prompt_is_put_in_the_box_by_its_command_and_nothing_is_sent(page, app, upstream_server):
    page.goto(f"{app.url}/settings/prompts/")
    for command, text in [("translate", "Translate into Danish:\n"), ("tldr", "Sum this up in one line:")]:
        page.get_by_label("Command").fill(command)
        page.get_by_label("Text").fill(text)
        page.get_by_role("button", name="Save").click()
        expect(page.locator(".flash")).to_have_text(f"Prompt /{command} saved.")
    page.goto(f"{app.url}/c/new/")
    requests = len(upstream_server.chat_requests)
    box = page.get_by_role("textbox", name="Message")
    menu = page.get_by_role("listbox", name="Prompts")

    box.press_sequentially("/t")
    options = menu.get_by_role("option")
    expect(options).to_have_text(["/tldr Sum this up in one line:", "/translate Translate into Danish:"])
    box.press("ArrowDown")
    expect(menu.get_by_role("option", selected=True)).to_have_text("/translate Translate into Danish:")
    box.press("Enter")  # picks: it does not send
    expect(box).to_have_value("Translate into Danish:\n")
    expect(menu).to_be_hidden()

    box.fill("")
    box.press_sequentially("/tl")
    expect(menu.get_by_role("option")).to_have_count(1)
    box.press("Escape")
    expect(menu).to_be_hidden()
    box.press_sequentially("d")  # typing on offers again; a click picks
    menu.get_by_role("option", name="/tldr").click()
    expect(box).to_have_value("Sum this up in one line:")
    expect(box).to_be_focused()
    box.press_sequentially(" /t")  # not alone in the box: no list
    expect(menu).to_be_hidden()
    assert page.locator('[data-role="user"]').count() == 0 and len(upstream_server.chat_requests) == requests


def test_a_saved_prompts_variables_are_filled_in_as_it_is_put_in_the_box(browser, app):
    page = _signed_in(browser, app, timezone_id="Asia/Tokyo", permissions=["clipboard-read", "clipboard-write"])
    page.goto(f"{app.url}/settings/prompts/")
    page.get_by_label("Command").fill("today")
    page.get_by_label("Text").fill(
        "{{CURRENT_WEEKDAY}} {{CURRENT_DATE}}, {{CURRENT_TIMEZONE}}, for {{USER_NAME}} in {{USER_LANGUAGE}}:"
        " {{CLIPBOARD}} {{OTHER}}"
    )
    page.get_by_role("button", name="Save").click()
    page.goto(f"{app.url}/c/new/")
    page.evaluate("navigator.clipboard.writeText('the copied text')")
    box = page.get_by_role("textbox", name="Message")
    box.press_sequentially("/tod")
    box.press("Enter")
    days = [datetime.now(ZoneInfo("Asia/Tokyo")) + timedelta(seconds=s) for s in (-5, 5)]  # either side of midnight
    expected = [f"{d:%A %Y-%m-%d}, Asia/Tokyo, for alice in English: the copied text {{{{OTHER}}}}" for d in days]
    expect(box).to_have_value(re.compile("|".join(map(re.escape, expected))))
    page.context.close()


def test_math_is_typeset_live_and_after_a_reload(page, upstream_server):
    answer_text = (
        "Energy: $E=mc^2$, and\n\n$$\\sum_{i=1}^n i = \\frac{n(n+1)}{2}$$\n\n"
        "A link in TeX stays inert: $\\href{javascript:alert(1)}{click}$"
    )
    refused = []
    page.on("console", lambda message: refused.append(message.text) if "Refused" in message.text else None)
    upstream_server.enqueue(Stream(openai_text_stream(answer_text), delay=0.01))
    _send(page, "Some maths please")
    for reloaded in (False, True):
        if reloaded:
            page.reload()
        content = _last_answer(page).locator('[data-part="content"]')
        expect(_last_answer(page)).to_have_attribute("data-status", "done")
        inline, display, link = (content.locator(".math").nth(n) for n in range(3))
        expect(inline.locator(".katex")).to_have_count(1)
        expect(inline.locator("annotation")).to_have_text("E=mc^2")  # the TeX, kept for copying and screen readers
        expect(display.locator(".katex-display .mfrac")).to_have_count(1)
        assert display.bounding_box()["height"] > inline.bounding_box()["height"]
        expect(link.locator("a")).to_have_count(0)  # KaTeX's `trust` is off: no link, no script
        loaded = "[...document.fonts].some(f => f.family.includes('KaTeX_Main') && f.status === 'loaded')"
        page.wait_for_function(loaded)  # its font came from our static files
    assert page.dialogs == [] and refused == []


def _long_conversation(app, messages: int) -> str:
    """The id of a conversation of alice's of `messages` messages of Markdown, code and math, as the bench seeds it."""
    seeded = subprocess.run([sys.executable, "-m", "bench.page", "--messages", str(messages)], cwd=ROOT,
                            env={**app.env, "DJANGO_SETTINGS_MODULE": "chatapp.settings"}, capture_output=True,
                            text=True, timeout=120, check=True)  # fmt: skip
    return json.loads(seeded.stdout)["conversation"]


def _message_saying(app, chat_id: str, index: int, content: str) -> str:
    """The id of the message at `index` on the conversation's branch, made to say `content`."""
    return manage(app.env, "shell", "-c", (
        "from chatapp.models import Conversation, Message\n"
        f"message = Conversation.objects.get(id='{chat_id}').branch()[{index}]\n"
        f"Message.objects.filter(pk=message.pk).update(content={content!r})\n"
        "print(message.id)"
    )).split()[-1]  # fmt: skip; the last word: after what the shell says of its own


def _load_every_window(page: Page) -> None:
    """Scroll up until the whole branch is on the page."""
    while page.locator(".earlier-messages").count():
        loaded = page.locator("#messages > article").count()
        page.locator("#main").evaluate("el => { el.scrollTop = 0; }")
        expect(page.locator("#messages > article")).not_to_have_count(loaded)


def test_a_long_conversation_loads_its_earlier_messages_as_the_reader_scrolls_up(page, app):
    page.goto(f"{app.url}/c/{_long_conversation(app, 300)}/")
    articles = page.locator("#messages > article")
    expect(articles).to_have_count(100)
    scroller = page.locator("#main")
    assert scroller.evaluate("el => el.scrollHeight - el.scrollTop - el.clientHeight") < 5  # at the latest

    for loaded in (200, 300):
        first = page.locator("#" + articles.first.get_attribute("id"))
        scroller.evaluate("el => { el.scrollTop = 0; }")  # up to the link: the window before comes
        top = first.bounding_box()["y"]
        expect(articles).to_have_count(loaded)
        page.wait_for_timeout(100)
        assert abs(first.bounding_box()["y"] - top) < 2  # the message the reader saw stays where it was
    expect(page.locator(".earlier-messages")).to_have_count(0)  # the whole branch is there, once, in order
    ids = [int(i) for i in articles.evaluate_all("list => list.map(a => a.dataset.messageId)")]
    assert ids == sorted(ids) and len(set(ids)) == 300
    expect(page.locator(".math:not([data-typeset])")).to_have_count(0)  # typeset as they came in
    assert page.locator(".math .katex").count() > 0
    expect(page.locator("[data-copy-code]:empty")).to_have_count(0)  # and their code blocks' buttons labelled


def test_an_earlier_window_that_failed_to_come_is_asked_for_again_by_its_link(page, app):
    url = f"{app.url}/c/{_long_conversation(app, 200)}/"
    page.goto(url)
    articles = page.locator("#messages > article")
    expect(articles).to_have_count(100)
    page.route("**/earlier/**", lambda route: route.abort())  # the network drops that request
    page.locator("#main").evaluate("el => { el.scrollTop = 0; }")
    link = page.locator(".earlier-messages.failed > a")
    expect(link).to_have_text("Show the 100 earlier messages")
    page.unroute("**/earlier/**")
    link.click()
    expect(articles).to_have_count(200)  # that window, into this page
    expect(page.locator(".earlier-messages")).to_have_count(0)
    assert page.url == url


def test_a_search_result_opens_at_the_message_that_matched(page, app, upstream_server):
    chat_id = _long_conversation(app, 300)
    matched = _message_saying(app, chat_id, 40, "Where is the zeppelin? The Zeppelin, I mean.")
    page.goto(f"{app.url}/c/new/")
    page.get_by_role("searchbox", name="Search conversations").fill("zeppelin")
    result = page.locator(".conversation-item > a")
    expect(result).to_have_text(["Bench: 300 messages"])  # the other chat the bench seeds has no zeppelin
    result.click()
    message = page.locator(f"#m-{matched}")
    expect(message).to_be_in_viewport()  # 260 messages from the end, on screen
    assert message.evaluate("el => el.matches(':target')")  # and marked, with the words that matched
    marked = page.evaluate("[...CSS.highlights.get('search-match')].map(range => range.toString())")
    assert marked == ["zeppelin", "Zeppelin"]
    articles = page.locator("#messages > article")
    expect(articles).to_have_count(100)  # from 20 above it

    for loaded in (200, 280):  # down to the end, a window at a time
        page.locator("#main").evaluate("el => { el.scrollTop = el.scrollHeight; }")
        expect(articles).to_have_count(loaded)
    expect(page.locator(".later-messages")).to_have_count(0)
    ids = [int(i) for i in articles.evaluate_all("list => list.map(a => a.dataset.messageId)")]
    assert ids == sorted(ids) and len(set(ids)) == 280

    # Sent from a page that opened above the end, a message takes the reader to the end, where it is.
    page.reload()  # the page as the search opened it
    expect(message).to_be_in_viewport()
    expect(page.locator(".later-messages")).to_have_count(1)
    upstream_server.enqueue(Stream(openai_text_stream("Back at the end.")))
    _send(page, "Where were we?")
    expect(page).to_have_url(f"{app.url}/c/{chat_id}/")
    expect(_last_answer(page)).to_contain_text("Back at the end.")
    expect(page.locator("#messages > article").last).to_be_in_viewport()


def test_a_search_result_stays_on_screen_while_another_tab_writes_below_it(page, app, upstream_server):
    chat_id = _long_conversation(app, 300)
    matched = _message_saying(app, chat_id, 40, "The zeppelin again.")
    url = f"{app.url}/c/{chat_id}/?keep={matched}&q=zeppelin#m-{matched}"
    page.goto(url)
    message = page.locator(f"#m-{matched}")
    expect(message).to_be_in_viewport()
    expect(page.get_by_role("searchbox", name="Search conversations")).to_have_value("zeppelin")
    # The list still shows the results: this chat, and no other the bench seeded ("Bench: 10 messages").
    expect(page.locator(f"#conversation-{chat_id}")).to_be_visible()
    expect(page.locator(".conversation-item > a", has_not_text="Bench: 300 messages")).to_have_count(0)

    words = " ".join(f"w{i}" for i in range(500))
    upstream_server.enqueue(Stream(openai_text_stream(words), delay=0.02))  # ten seconds of answer
    writer = page.context.new_page()
    writer.goto(f"{app.url}/c/{chat_id}/")
    _send(writer, "Keep writing")
    expect(_last_answer(writer).locator('[data-part="content"]')).to_contain_text("w30")
    page.wait_for_timeout(300)  # what the socket sends of that answer, had it sent any
    assert page.url == url
    expect(message).to_be_in_viewport()  # the reader was not taken to the end

    articles = page.locator("#messages > article")
    for loaded in (200, 282):  # down to the end, a window at a time, the new question and answer with them
        page.locator("#main").evaluate("el => { el.scrollTop = el.scrollHeight; }")
        expect(articles).to_have_count(loaded)
    answer = _last_answer(page)
    expect(answer).to_have_attribute("data-status", "streaming")
    content = answer.locator('[data-part="content"]')
    expect(content).to_contain_text("w300")  # live, six seconds in: four more to go
    live = content.text_content()
    assert answer.get_attribute("data-status") == "streaming" and words.startswith(live)  # every word once
    expect(answer).to_have_attribute("data-status", "done")
    expect(content).to_have_text(words)
    writer.close()


def test_latest_message_takes_a_reader_far_up_back_down(page, app):
    chat_id = _long_conversation(app, 300)
    page.goto(f"{app.url}/c/{chat_id}/")
    articles = page.locator("#messages > article")
    jump = page.get_by_role("button", name="Latest message")
    expect(jump).to_be_hidden()  # at the latest already
    page.locator("#main").evaluate("el => { el.scrollTop = el.scrollHeight / 3; }")
    expect(jump).to_be_visible()
    jump.click()
    expect(articles.last).to_be_in_viewport()
    expect(jump).to_be_hidden()
    expect(page.get_by_role("textbox", name="Message")).to_be_focused()

    # A page that stops above the end (a search result's) opens again at the end.
    kept = articles.first.get_attribute("data-message-id")  # the 201st of 300
    page.goto(f"{app.url}/c/{chat_id}/?keep={kept}#m-{kept}")
    expect(page.locator(".later-messages")).to_have_count(1)
    jump.click()
    expect(page).to_have_url(f"{app.url}/c/{chat_id}/")
    expect(articles.last).to_be_in_viewport()
    expect(jump).to_be_hidden()


def test_a_version_flipped_far_up_a_long_conversation_stays_where_the_reader_saw_it(page, app):
    # A second version of the 202nd message, on screen; the first has the 98 messages after it.
    chat_id = _long_conversation(app, 300)
    created = manage(app.env, "shell", "-c", (
        "from chatapp.models import Conversation, Message\n"
        f"chat = Conversation.objects.get(id='{chat_id}')\n"
        "first = chat.branch()[201]\n"
        "second = Message.objects.create(conversation=chat, parent_id=first.parent_id, role='assistant',"
        " status='done', content='Another take.', content_html='<p>Another take.</p>')\n"
        "Conversation.objects.filter(id=chat.id).update(current_leaf=second)\n"
        "print(first.id, second.id)"
    ))  # fmt: skip
    first_id, second_id = created.split()[-2:]  # after what the shell says of its own
    page.goto(f"{app.url}/c/{chat_id}/")
    _load_every_window(page)
    second = page.locator(f"#m-{second_id}")
    expect(second.locator(".version-number")).to_have_text("2/2")
    flip = second.get_by_role("button", name="Previous version")
    flip.scroll_into_view_if_needed()  # as the click would
    top = second.bounding_box()["y"]
    flip.click()
    first = page.locator(f"#m-{first_id}")
    expect(first.locator(".version-number")).to_have_text("1/2")
    # The page of the branch now: from a screenful above the first version to the latest.
    expect(page.locator("#messages > article")).to_have_count(300 - 201 + KEPT_ABOVE)
    page.wait_for_timeout(100)
    assert abs(first.bounding_box()["y"] - top) < 2  # where the other version was, with 180 fewer messages above


def test_regenerate_and_edit_make_versions(page, upstream_server):
    upstream_server.enqueue(Stream(openai_text_stream("Answer 0."), delay=0.01),
                            Stream(openai_text_stream("Answer 1." + " more" * 40), delay=0.02),
                            Stream(openai_text_stream("Answer 2."), delay=0.01))  # fmt: skip
    _send(page, "A question")
    answer = _last_answer(page)
    expect(answer).to_have_attribute("data-status", "done")
    url, asked = page.url, len(upstream_server.chat_requests)
    other_tab = page.context.new_page()
    other_tab.goto(url)
    expect(other_tab.locator('[data-role="assistant"]')).to_have_count(1)

    answer.get_by_role("button", name="Regenerate").click()
    expect(_last_answer(page).locator(".version-number")).to_have_text("2/2")
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    expect(_last_answer(page).locator('[data-part="content"]')).to_have_text("Answer 1." + " more" * 40)
    for tab in (page, other_tab):  # the old answer made way for the new one, in the tab that watched too
        expect(tab.locator('[data-role="assistant"]')).to_have_count(1)
        expect(tab.locator('[data-role="assistant"] .version-number')).to_have_text("2/2")
    other_tab.close()

    question = page.locator('[data-role="user"]').last
    question.get_by_text("Edit", exact=True).click()
    box = question.get_by_role("textbox", name="Edit message")
    expect(box).to_be_focused()
    box.fill("A better question")
    question.get_by_role("button", name="Save and send").click()
    expect(page.locator('[data-role="user"]').last.locator(".version-number")).to_have_text("2/2")
    expect(_last_answer(page).locator('[data-part="content"]')).to_have_text("Answer 2.")
    expect(page.locator("#messages > article")).to_have_count(2)
    # Over the socket, once each: no form was also posted (the page never left).
    assert page.url == url and len(upstream_server.chat_requests) == asked + 2
    assert upstream_server.chat_requests[-1].json["messages"][-1]["content"] == "A better question"


def test_an_answer_rewritten_by_its_reader_is_a_version_and_what_the_next_question_sends(page, upstream_server):
    upstream_server.enqueue(Stream(openai_text_stream("The capital of Spain is Paris.")),
                            Stream(openai_text_stream("About 3.3 million.")))  # fmt: skip
    _send(page, "Capital of Spain?")
    answer = _last_answer(page)
    expect(answer).to_have_attribute("data-status", "done")
    answer.get_by_text("Edit", exact=True).click()
    box = answer.get_by_role("textbox", name="Edit answer")
    expect(box).to_be_focused()  # the form came as Edit opened, with the answer's text
    expect(box).to_have_value("The capital of Spain is Paris.")
    box.fill("The capital of Spain is **Madrid**.")
    answer.get_by_role("button", name="Save").click()

    edited = _last_answer(page)
    expect(edited.locator(".version-number")).to_have_text("2/2")
    expect(edited.locator('[data-part="content"] strong')).to_have_text("Madrid")
    expect(edited.locator(".meta")).to_contain_text("Edited")
    edited.get_by_role("button", name="Previous version").click()
    expect(_last_answer(page).locator('[data-part="content"]')).to_have_text("The capital of Spain is Paris.")
    _last_answer(page).get_by_role("button", name="Next version").click()
    expect(_last_answer(page).locator(".version-number")).to_have_text("2/2")

    _send(page, "How many live there?")
    expect(_last_answer(page).locator('[data-part="content"]')).to_have_text("About 3.3 million.")
    assert upstream_server.chat_requests[-1].json["messages"][-2] == {
        "role": "assistant", "content": "The capital of Spain is **Madrid**."
    }


def test_an_answer_cut_at_its_length_limit_is_continued_in_place(page, upstream_server):
    upstream_server.enqueue(Stream(openai_text_stream("Foxes are", finish_reason="length")),
                            Stream(openai_text_stream(" quick" * 30 + " and clever."), delay=0.03))  # fmt: skip
    _send(page, "Tell me about foxes")
    answer = _last_answer(page)
    expect(answer).to_have_attribute("data-status", "done")
    expect(answer.locator(".meta")).to_contain_text("Cut off at the length limit")
    asked = len(upstream_server.chat_requests)
    answer.get_by_role("button", name="Continue").click()
    expect(answer).to_have_attribute("data-status", "streaming")  # the same answer, written on
    expect(answer).to_have_attribute("data-status", "done")
    whole = "Foxes are" + " quick" * 30 + " and clever."
    expect(answer.locator('[data-part="content"]')).to_have_text(whole)
    expect(answer.get_by_role("button", name="Continue")).to_have_count(0)
    expect(page.locator('[data-role="assistant"]')).to_have_count(1)
    assert len(upstream_server.chat_requests) == asked + 1  # over the socket, once: no form was posted too
    page.reload()
    expect(_last_answer(page).locator('[data-part="content"]')).to_have_text(whole)


def test_the_system_prompt_tells_the_model_the_time_where_the_reader_is(browser, app, upstream_server):
    page = _signed_in(browser, app, timezone_id="Pacific/Auckland")
    upstream_server.enqueue(Stream(openai_text_stream("Good evening.")))
    header = page.locator("#chat-header")
    header.get_by_text("Chat settings", exact=True).click()
    header.get_by_label("System prompt").fill("It is {{CURRENT_DATETIME}} in {{CURRENT_TIMEZONE}}.")
    header.get_by_role("button", name="Save").click()
    expect(header.get_by_role("status")).to_have_text("Saved.")
    _send(page, "What time is it?")
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    system = upstream_server.chat_requests[-1].json["messages"][0]["content"]
    assert re.fullmatch(r"It is \d{4}-\d\d-\d\d \d\d:\d\d:\d\d in Pacific/Auckland\.", system), system
    page.context.close()


def test_regenerate_takes_the_model_the_picker_shows(page, upstream_server):
    upstream_server.enqueue(Stream(openai_text_stream("By the first.")),
                            Stream(openai_text_stream("By the small one.")))  # fmt: skip
    _send(page, "Which model answers?")
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    page.get_by_label("Model", exact=True).select_option("fake/small@openrouter")
    _last_answer(page).get_by_role("button", name="Regenerate").click()
    expect(_last_answer(page).locator(".version-number")).to_have_text("2/2")
    expect(_last_answer(page).locator('[data-part="content"]')).to_have_text("By the small one.")
    expect(_last_answer(page).locator(".meta")).to_contain_text("fake/small")
    assert upstream_server.chat_requests[-1].json["model"] == "fake/small"


def test_the_mark_of_a_cut_history_comes_and_goes_with_its_answer(page, upstream_server):
    upstream_server.enqueue(*(Stream(openai_text_stream(f"Answer {n}.")) for n in range(4)))
    page.get_by_label("Model", exact=True).select_option("fake/small@openrouter")  # 14,000 tokens: two questions fit
    for n in range(3):
        _send(page, f"Question {n} " + "x" * 14000)
        expect(page.locator('[data-role="assistant"][data-status="done"]')).to_have_count(n + 1)
    mark = page.locator("#messages .context-cut")
    expect(mark).to_have_count(1)  # the third answer was sent from question 1 on: said as it is done
    expect(page.locator("#messages .context-cut + article")).to_contain_text("Question 1")
    page.reload()
    expect(mark).to_have_count(1)
    expect(page.locator("#messages .context-cut + article")).to_contain_text("Question 1")

    question = page.locator('[data-role="user"]').last
    question.get_by_text("Edit", exact=True).click()
    question.get_by_role("textbox", name="Edit message").fill("A short question")
    question.get_by_role("button", name="Save and send").click()
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    expect(_last_answer(page).locator('[data-part="content"]')).to_have_text("Answer 3.")
    expect(mark).to_have_count(0)  # all of it fits now: the old answer's mark went with it
    assert len(upstream_server.chat_requests[-1].json["messages"]) == 5


def test_without_javascript_a_chat_can_send_regenerate_edit_and_stop(browser, app, upstream_server):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{app.url}/accounts/signin/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{app.url}/c/new/")

    def answer_done(text: str) -> None:
        # The page refreshes itself (<noscript> meta refresh) while an answer is
        # written; `expect` looks again after each load, so no reload of our own
        # can collide with one of those.
        expect(_last_answer(page)).to_have_attribute("data-status", "done")
        expect(_last_answer(page).locator('[data-part="content"]')).to_have_text(text)

    upstream_server.enqueue(*(Stream(openai_text_stream(f"Plain {n}."), delay=0.01) for n in range(3)))
    page.get_by_role("textbox", name="Message").fill("No scripts here")
    page.get_by_role("button", name="Send").click()
    answer_done("Plain 0.")
    _last_answer(page).get_by_role("button", name="Regenerate").click()
    answer_done("Plain 1.")
    expect(_last_answer(page).locator(".version-number")).to_have_text("2/2")
    question = page.locator('[data-role="user"]').last
    question.get_by_text("Edit", exact=True).click()
    question.get_by_role("textbox", name="Edit message").fill("Edited without scripts")
    question.get_by_role("button", name="Save and send").click()
    answer_done("Plain 2.")
    assert upstream_server.chat_requests[-1].json["messages"][-1]["content"] == "Edited without scripts"
    _last_answer(page).get_by_text("Edit", exact=True).click()
    _last_answer(page).get_by_role("link", name="Edit this answer").click()  # a page of its own
    page.get_by_role("textbox", name="Edit answer").fill("Rewritten without scripts")
    page.get_by_role("button", name="Save").click()
    expect(_last_answer(page).locator('[data-part="content"]')).to_have_text("Rewritten without scripts")
    expect(_last_answer(page).locator(".version-number")).to_have_text("2/2")

    upstream_server.enqueue(Hang(openai_text_stream("Going on and on", usage=False, done=False)))
    page.get_by_role("textbox", name="Message").fill("Never ending")
    page.get_by_role("button", name="Send").click()
    expect(_last_answer(page)).to_have_attribute("data-status", "streaming")
    for _ in range(3):  # a click can land just as the page refreshes itself, and be lost with the old page
        page.get_by_role("button", name="Stop").click()
        if upstream_server.wait_for_disconnect(2.0):
            break
    else:
        raise AssertionError("the stop never reached the server")
    expect(_last_answer(page)).to_have_attribute("data-status", "stopped")
    chat_url = page.url
    page.locator('[data-role="assistant"]').first.get_by_role("button", name="Branch in new chat").click()
    expect(page.locator("#chat-title")).to_have_text(re.compile("^Branch · "))
    assert page.url != chat_url and page.locator(".message").count() == 2
    context.close()


def test_usable_on_a_phone_screen(browser, app, page):
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(f"{app.url}/c/new/")
    box = page.get_by_role("textbox", name="Message")
    expect(box).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert box.bounding_box()["width"] > 150
    # Every link of the top bar in sight, none scrolled off its end: language and theme are in the preferences.
    topbar = page.locator(".topbar")
    for link in (topbar.get_by_role("link", name="Switchboard"), topbar.get_by_role("link", name="Usage"),
                 topbar.get_by_role("link", name="Settings"), topbar.get_by_role("button", name="Sign out")):
        expect(link).to_be_in_viewport(ratio=1)
    expect(topbar.get_by_label("Language")).to_be_hidden()
    page.goto(f"{app.url}/settings/preferences/")
    expect(page.locator("main").get_by_label("Language")).to_be_visible()
    expect(page.locator("main").get_by_label("Theme")).to_be_visible()

    page.goto(f"{app.url}/c/{uuid.uuid4()}/settings/")  # a chat's settings on their own page (a new chat's)
    card = page.locator(".chat-settings-page").bounding_box()
    assert card["x"] >= 8 and card["x"] + card["width"] <= 375 - 8  # off the screen's edges
    box = page.get_by_label("Allow other providers as fallbacks").bounding_box()
    label = page.get_by_text("Allow other providers as fallbacks").bounding_box()
    assert box["x"] < label["x"] and label["y"] <= box["y"] + box["height"] / 2 <= label["y"] + label["height"]


def test_deleting_the_open_conversation_closes_it_until_undone(page, upstream_server):
    upstream_server.enqueue(Stream(openai_text_stream("Soon gone.")))
    _send(page, "Delete me")
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    item = page.locator(".conversation-item[aria-current=page]")
    page.remove_listener("dialog", page.dismiss_dialogs)
    page.once("dialog", lambda dialog: dialog.accept())  # "Delete this conversation?"
    item.get_by_label("Actions").click()
    item.get_by_role("button", name="Delete").click()
    expect(page.locator("#composer")).to_have_text(re.compile("This conversation was deleted."))
    expect(page.get_by_role("textbox", name="Message")).to_have_count(0)  # nothing can be sent into it
    page.get_by_role("button", name="Undo").click()
    expect(page.get_by_role("textbox", name="Message")).to_be_visible()
    expect(page.locator('[data-role="user"]').last).to_have_text(re.compile("Delete me"))


def test_an_archived_chat_comes_back_to_the_list_when_written_in(page, app, upstream_server):
    upstream_server.enqueue(Stream(openai_text_stream("Filed away.")), Stream(openai_text_stream("Back again.")))
    _send(page, "Archive me")
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    item = page.locator(".conversation-item[aria-current=page]")
    item_id = item.get_attribute("id")
    item.get_by_label("Actions").click()
    item.get_by_role("button", name="Archive").click()
    expect(page.locator(f"#{item_id}")).to_have_text(re.compile("was archived"))
    expect(page.get_by_role("status").filter(has_text="This chat is archived.")).to_be_visible()

    page.reload()  # gone from the list, and the page still says why
    expect(page.locator(f"#{item_id}")).to_have_count(0)
    expect(page.get_by_text("This chat is archived.")).to_be_visible()
    _send(page, "Still there?")
    expect(page.locator(f"#conversation-list-items > #{item_id}")).to_have_count(1)
    expect(page.get_by_text("This chat is archived.")).to_be_hidden()
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    page.goto(f"{app.url}/c/archived/")
    expect(page.get_by_text("No archived chats.")).to_be_visible()


def test_a_new_chat_joins_the_list_once_below_the_pinned_ones(page, app, upstream_server):
    upstream_server.enqueue(Stream(openai_text_stream("Pinned answer.")), Stream(openai_text_stream("New answer.")))
    _send(page, "Pin this one")
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    pinned = page.locator(".conversation-item[aria-current=page]")
    pinned_id = pinned.get_attribute("id")
    pinned.get_by_label("Actions").click()
    pinned.get_by_role("button", name="Pin").click()
    expect(page.locator(f"#{pinned_id}.pinned")).to_have_count(1)

    page.goto(f"{app.url}/c/new/")
    _send(page, "A newer chat")
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    new_id = page.locator(".conversation-item[aria-current=page]").get_attribute("id")
    ids = page.locator("#conversation-list-items > li.conversation-item").evaluate_all("items => items.map(i => i.id)")
    assert ids.count(new_id) == 1
    pinned_ids = page.locator("#conversation-list-items > li.pinned").evaluate_all("items => items.map(i => i.id)")
    assert ids.index(new_id) == len(pinned_ids)  # first after the pinned ones, as a reload would show it


def test_the_list_is_grouped_by_when_each_chat_was_last_written_in(page, app, upstream_server):
    manage(app.env, "shell", "-c", (
        "from datetime import timedelta\n"
        "from accounts.models import User\n"
        "from django.utils import timezone\n"
        "from chatapp.models import Conversation, Message\n"
        "for title, days in (('Zebra, three days old', 3), ('Zebra, two months old', 62)):\n"
        "    chat = Conversation.objects.create(owner=User.objects.get(username='alice'), title=title)\n"
        "    chat.current_leaf = Message.objects.create(conversation=chat, role='user', content=title)\n"
        "    chat.save()\n"
        "    Conversation.objects.filter(pk=chat.pk).update(written_at=timezone.now() - timedelta(days=days))\n"
    ))  # fmt: skip
    upstream_server.enqueue(Stream(openai_text_stream("Fresh.")))
    _send(page, "Zebra, written today")
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    page.get_by_role("searchbox", name="Search conversations").fill("zebra")
    expect(page.locator("#conversation-list-items > li.conversation-item", has_not_text="Zebra")).to_have_count(0)
    expect(page.locator("#conversation-list-items > li.conversation-item")).to_have_count(3)

    def groups() -> list[str]:
        """The list from the top: each heading, and under it the titles of its chats."""
        return page.locator("#conversation-list-items > li").evaluate_all(
            "items => items.map(i => i.classList.contains('list-group') ? '# ' + i.textContent : "
            "i.querySelector('a').textContent.trim())"
        )

    month = page.evaluate("new Date(Date.now() - 62 * 864e5).toLocaleDateString('en', {month: 'long', year: 'numeric'})")
    listed = groups()
    assert listed[0] == "# Today" and listed[1].startswith("Zebra, written today"), listed
    assert listed[2:] == ["# Previous 7 days", "Zebra, three days old", f"# {month}", "Zebra, two months old"]

    item = page.locator(".conversation-item", has_text="three days old")
    item.get_by_label("Actions").click()
    item.get_by_role("button", name="Pin").click()  # the list is drawn again: the headings follow
    expect(page.locator("#conversation-list-items > li").first).to_have_text("Pinned")
    listed = groups()
    assert listed[:3] == ["# Pinned", "📌 Zebra, three days old", "# Today"] and "# Previous 7 days" not in listed


def test_pinning_from_a_search_keeps_the_search(page, upstream_server):
    upstream_server.enqueue(Stream(openai_text_stream("Quokkas smile.")))
    _send(page, "Quokka facts, please")
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    search = page.get_by_role("searchbox", name="Search conversations")
    search.fill("quokka")
    items = page.locator("#conversation-list-items > li.conversation-item")
    expect(items).to_have_count(1)
    items.get_by_label("Actions").click()
    items.get_by_role("button", name="Pin").click()
    expect(page.locator("#conversation-list-items > li.pinned")).to_have_count(1)
    expect(items).to_have_count(1)  # still the search's one result, not the whole list
    expect(search).to_have_value("quokka")


def test_on_a_phone_the_conversation_list_opens_and_closes(page, app):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{app.url}/c/new/")
    assert page.locator(".topbar").bounding_box()["height"] <= 56  # one row: the list never covers its toggle
    toggle = page.get_by_role("button", name="Conversations")
    sidebar = page.locator("#sidebar")
    for close in ("toggle", "Escape", "beside"):
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        expect(sidebar.get_by_role("button", name="New chat")).to_be_in_viewport()
        if close == "toggle":
            toggle.click()
        elif close == "Escape":
            page.keyboard.press("Escape")
        else:
            page.mouse.click(380, 600)
        expect(toggle).to_have_attribute("aria-expanded", "false")
        expect(sidebar.get_by_role("button", name="New chat")).not_to_be_in_viewport()


def test_the_usage_page_draws_todays_chats(page, app, upstream_server):
    upstream_server.enqueue(Stream(openai_text_stream("Counted.", cost=0.0123)))
    _send(page, "Count me")
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    page.goto(f"{app.url}/usage/?metric=cost")
    chart = page.locator("svg.usage-chart")
    expect(chart).to_be_visible()
    bar = chart.locator("rect.usage-bar").last
    expect(bar).to_be_visible()
    assert bar.bounding_box()["height"] > 1
    text = page.inner_text("main")
    assert "fake/model" in text
    costs = [float(c) for c in re.findall(r"\$(\d+\.\d+)", text)]
    assert max(costs) >= 0.0123  # this answer's cost, plus the other tests' earlier today

    page.set_viewport_size({"width": 360, "height": 740})  # a phone: the labels grow, and none is cut off
    box = chart.bounding_box()
    for label in chart.locator(".usage-axis-label").all():
        inside = label.bounding_box()
        right = inside["x"] + inside["width"]
        assert box["x"] <= inside["x"] and right <= box["x"] + box["width"], label.text_content()


def test_a_server_restart_is_said_and_survived(page, app, upstream_server):
    # Last in the module: the server goes down and comes back on the same port and database.
    upstream_server.enqueue(Stream(openai_text_stream("Before the restart.")))
    _send(page, "First")
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    status = page.locator("#connection-status")
    app.stop()
    try:
        expect(status).to_have_text("Connection lost. Reconnecting…")
    finally:
        app.start()
    expect(status).to_be_empty()
    upstream_server.enqueue(Stream(openai_text_stream("After the restart.")))
    _send(page, "Second")
    expect(_last_answer(page).locator('[data-part="content"]')).to_have_text("After the restart.")



def test_files_attached_chosen_or_pasted_go_with_the_message_and_show_on_it(page, upstream_server, tmp_path):
    from tests.test_attachments import png

    picture = tmp_path / "cat.png"
    picture.write_bytes(png(3, 2))
    page.get_by_label("Attach files").set_input_files(str(picture))
    chips = page.locator("#composer-files .attachment-name")
    expect(chips).to_have_text(["cat.png"])
    # A screenshot pasted into the box, and a file that cannot go: it is refused, and says why.
    page.get_by_role("textbox", name="Message").evaluate(
        """(box) => {
            const data = new DataTransfer();
            data.items.add(new File(["# Notes"], "notes.md", {type: "text/markdown"}));
            box.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true}));
        }"""
    )
    expect(chips).to_have_text(["cat.png", "notes.md"])
    page.get_by_label("Attach files").set_input_files(
        {"name": "tool.exe", "mimeType": "application/octet-stream", "buffer": b"MZ\x90\x00\xff\xfe"}
    )
    expect(page.locator("#chat-notice")).to_have_text(
        "tool.exe cannot be attached: only images (PNG, JPEG, GIF, WebP), PDFs and text files can."
    )
    expect(chips).to_have_count(2)
    with page.expect_response(lambda response: response.request.method == "DELETE") as removed:
        page.get_by_role("button", name="Remove notes.md").click()
    assert removed.value.status == 204  # dropped on the server too
    expect(chips).to_have_text(["cat.png"])
    # The first file made the new chat: its address is the chat's, and a reload keeps what was attached and
    # written (the file taken off stays off).
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    page.get_by_role("textbox", name="Message").fill("What is")
    page.reload()
    expect(chips).to_have_text(["cat.png"])
    expect(page.get_by_role("textbox", name="Message")).to_have_value("What is")
    hint = page.locator("#attach-hint")
    expect(hint).to_be_hidden()
    page.get_by_label("Model", exact=True).select_option("fake/small@openrouter")  # its catalogue: text only
    expect(hint).to_have_text("The model picked does not take images: pick one that does before sending.")
    page.get_by_label("Model", exact=True).select_option("fake/model@openrouter")
    expect(hint).to_be_hidden()

    upstream_server.enqueue(Stream(openai_text_stream("A small grey picture.")))
    _send(page, "What is this?")
    expect(_last_answer(page)).to_have_attribute("data-status", "done")
    expect(chips).to_have_count(0)  # sent with the message
    picture_shown = page.locator('[data-role="user"]').last.get_by_role("img", name="cat.png")
    expect(picture_shown).to_be_visible()
    assert picture_shown.evaluate("(img) => img.complete && img.naturalWidth") == 3  # served, and drawn
    sent = upstream_server.chat_requests[-1].json["messages"][-1]["content"]
    assert sent[0] == {"type": "text", "text": "What is this?"} and len(sent) == 2
    assert sent[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(png(3, 2)).decode()
