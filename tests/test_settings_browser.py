"""The settings pages in a real browser (Debian's Chromium, never a downloaded one).

Sign in, save a key on the provider card and test the connection (htmx swaps
the card in place); copy a new API token; filter the model table.
"""

import re
import shutil

import pytest

from providers.models import ProviderCredential
from tests.conftest import BROWSER_WAIT_MS, CI, PASSWORD

CHROMIUM = "/usr/bin/chromium"
USER_KEY = "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"

if not shutil.which(CHROMIUM):
    if CI:
        pytest.fail(f"{CHROMIUM} is required under CI", pytrace=False)
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")
sync_api.expect.set_options(timeout=BROWSER_WAIT_MS)


@pytest.fixture(autouse=True)
def _no_server_keys(settings):
    """No provider key or URL from the environment: nothing reaches the internet."""
    for name in ("OPENROUTER", "OPENAI", "ANTHROPIC", "DEEPSEEK", "GOOGLE"):
        setattr(settings, f"{name}_API_KEY", "")
        setattr(settings, f"{name}_URL", "")
    settings.OLLAMA_URL = ""
    settings.CUSTOM_MODELS = ""
    settings.HIDE_USER_API_KEY = False


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API runs an event loop in this thread, so Django takes
    # the test's own database calls (fixtures, assertions) for calls from async
    # code. Only for this test: the rest of the suite keeps the check.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


def _sign_in(page, live_server) -> None:
    page.goto(f"{live_server.url}/accounts/signin/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/")


@pytest.mark.django_db(transaction=True)
def test_save_a_key_and_test_the_connection(browser, live_server, alice, upstream, settings):
    settings.ALLOW_PRIVATE_ENDPOINTS = True
    page = browser.new_page()
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))

    _sign_in(page, live_server)
    page.get_by_role("link", name="Settings").click()
    page.wait_for_url("**/settings/providers/")

    card = page.locator("#provider-openrouter")
    card.get_by_label("Your endpoint URL").fill(upstream.url)
    card.get_by_label("Your API key").fill(USER_KEY)
    card.get_by_role("button", name="Save").click()
    sync_api.expect(card.get_by_text("Saved your settings for OpenRouter.")).to_be_visible()
    sync_api.expect(card.get_by_text("sk-or-...f9a8")).to_be_visible()
    assert page.url.endswith("/settings/providers/")  # swapped in place, no navigation

    card.get_by_role("button", name="Test connection").click()
    sync_api.expect(card.get_by_role("status").filter(has_text="models")).to_contain_text("Connected: 4 models.")

    assert USER_KEY[9:-4] not in page.content()
    assert [r.path for r in upstream.requests] == ["/v1/models"]
    assert upstream.requests[0].headers["authorization"] == f"Bearer {USER_KEY}"
    assert ProviderCredential.objects.get(user=alice).base_url == upstream.url
    assert not [e for e in errors if "Content Security Policy" in e], errors


@pytest.mark.django_db(transaction=True)
def test_new_token_is_copied_and_the_model_table_filters(browser, live_server, alice):
    context = browser.new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    _sign_in(page, live_server)

    page.goto(f"{live_server.url}/settings/tokens/")
    page.get_by_label("Name").fill("laptop")
    page.get_by_role("button", name="Create token").click()
    token = page.get_by_label("New API token")
    sync_api.expect(token).to_have_value(re.compile(r"^sb-"))
    page.get_by_role("button", name="Copy").click()
    sync_api.expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == token.input_value()

    page.goto(f"{live_server.url}/settings/models/")
    rows = page.locator("#model-rows tr")
    total = rows.count()
    page.get_by_label("Filter").fill("claude-opus")
    sync_api.expect(page.locator("#model-rows tr:visible")).to_have_count(1)
    sync_api.expect(page.locator("#model-count")).to_have_text(f"Showing 1 of {total} models.")
    context.close()


@pytest.mark.django_db(transaction=True)
def test_a_long_model_list_is_searchable_on_the_chat_page(browser, live_server, alice, settings):
    # SPEC: OpenRouter's catalogue has hundreds of models, "so the picker is searchable".
    settings.OPENROUTER_API_KEY = "sk-or-server"
    settings.OPENROUTER_URL = "http://127.0.0.1:9"  # no catalogue: the list is CUSTOM_MODELS'
    names = ["anthropic/claude-sonnet", "anthropic/claude-haiku", "openai/gpt-5", "openai/gpt-5-mini",
             "google/gemini-pro", "google/gemini-flash", "deepseek/deepseek-r1", "meta/llama-4", "mistral/large"]
    settings.CUSTOM_MODELS = "-all," + ",".join(f"+{name}@OpenRouter" for name in names)
    page = browser.new_page()
    _sign_in(page, live_server)
    page.goto(f"{live_server.url}/c/new/")
    search = page.get_by_label("Search models")
    picker = page.get_by_label("Model", exact=True)
    search.fill("gemini fla")
    assert picker.input_value() == "google/gemini-flash@openrouter"
    visible = _shown_models(page)
    assert visible == ["google/gemini-flash@openrouter"]
    search.press("Enter")  # picks; sends nothing
    sync_api.expect(page.get_by_role("textbox", name="Message")).to_be_focused()
    search.fill("claude")
    visible = _shown_models(page)
    assert sorted(visible) == ["anthropic/claude-haiku@openrouter", "anthropic/claude-sonnet@openrouter"]


def _shown_models(page) -> list[str]:
    return page.evaluate("[...document.querySelectorAll('#model-select option')].filter(o => !o.hidden).map(o => o.value)")
