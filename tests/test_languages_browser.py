"""Every page read in Chinese and in Danish shows no English of our catalogue.

A real browser (Debian's Chromium) asks for each page with its
Accept-Language; the visible text of the page must contain none of the
English source strings whose translation differs (user content and model
names aside: the test's conversation is written in the page's language).
"""

import re
import uuid
from pathlib import Path

import pytest

from tests.conftest import CI
from tests.live_server import PASSWORD, AppServer, base_env, manage, prepared_database
from tests.test_catalogues import read_po

CHROMIUM = Path("/usr/bin/chromium")
LOCALE = Path(__file__).resolve().parent.parent / "locale"

if not CHROMIUM.exists():
    if CI:
        raise RuntimeError("Chromium is required under CI: apt-get install chromium")
    pytest.skip("Debian's Chromium is not installed", allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402

CONVERSATION = uuid.UUID("5d1f6c1e-2a7b-4c3d-9e8f-0a1b2c3d4e5f")
PAGES = [
    "/c/new/",
    f"/c/{CONVERSATION}/",
    "/settings/providers/",
    "/settings/tokens/",
    "/settings/preferences/",
    "/settings/models/",
    "/usage/",
    "/usage/all/",
    "/c/import/",
    "/accounts/password/",
]


def english_strings(language: str) -> list[str]:
    """Source strings a reader of `language` should never meet in English."""
    strings = []
    for catalogue in ("django.po", "djangojs.po"):
        path = LOCALE / language / "LC_MESSAGES" / catalogue
        for entry in read_po(path.read_text(encoding="utf-8")):
            text = entry.msgid
            if entry.is_header or entry.msgstr.get(0, "") == text or "%" in text or "{" in text or "<" in text:
                continue
            # Single short words (e.g. "Model", "Error") recur inside names and
            # other languages; sentences and longer labels are what a missed
            # translation shows.
            if " " in text or len(text) >= 8:
                strings.append(text)
    return strings


def visible_english(text: str, strings: list[str]) -> list[str]:
    # Not inside a path or URL template such as /api/<provider>/v1.
    return [s for s in strings if re.search(rf"(?<![\w/<-]){re.escape(s)}(?![\w/>-])", text)]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    database = tmp_path_factory.mktemp("languages") / "db.sqlite3"
    env = base_env(
        DATABASE_URL=f"sqlite:///{database}",
        OPENROUTER_API_KEY="sk-or-languages",
        OPENROUTER_URL="http://127.0.0.1:9",  # nothing listens: built-in models only
    )
    prepared_database(env)
    manage(
        env,
        "shell",
        "-c",
        "from accounts.models import User; from chatapp.models import Conversation, Message; "
        f"c = Conversation.objects.create(id='{CONVERSATION}', owner=User.objects.get(username='alice'), "
        "title='Samtale 对话', model='openrouter/auto@openrouter'); "
        "q = Message.objects.create(conversation=c, role='user', content='Hej 你好'); "
        "a = Message.objects.create(conversation=c, parent=q, role='assistant', content='Hej 你好', "
        "status='done', model='openrouter/auto@openrouter', prompt_tokens=3, completion_tokens=4, "
        "time_to_first_token=0.2, duration=0.5, reasoning='…', reasoning_duration=1.0); "
        "c.current_leaf = a; c.save()",
    )
    server = AppServer(env).start()
    yield server
    server.stop()


@pytest.mark.parametrize(("language", "browser_locale", "html_lang"), [("zh_Hans", "zh-CN", "zh-hans"), ("da", "da-DK", "da")])
def test_every_page_is_free_of_english(app, language, browser_locale, html_lang):
    strings = english_strings(language)
    assert len(strings) > 100, "the catalogue looks empty"
    found = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context(locale=browser_locale)
        page = context.new_page()
        page.goto(f"{app.url}/accounts/signin/")
        assert page.get_attribute("html", "lang") == html_lang
        found["/accounts/signin/"] = visible_english(page.inner_text("body"), strings)
        page.locator("input[name=username]").fill("alice")
        page.locator("input[name=password]").fill(PASSWORD)
        page.locator("button[type=submit].primary").click()
        page.wait_for_load_state()
        for path in PAGES:
            page.goto(f"{app.url}{path}")
            assert page.get_attribute("html", "lang") == html_lang, path
            found[path] = visible_english(page.inner_text("body"), strings)
        browser.close()
    assert not any(found.values()), {path: words for path, words in found.items() if words}
