"""The settings pages: provider cards, API tokens, preferences, the admin's model table."""

import re
import socket

import pytest
from django.db import connection
from django.test import Client

from accounts.models import ApiToken, Preferences
from providers.model_table import ModelTable
from providers.models import ProviderCredential
from tests.fake_upstream import model_entry

USER_KEY = "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"
USER_KEY_SECRET_PART = USER_KEY[9:-4]
OPENAI_KEY = "sk-proj-Qm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8z1c2d"
SERVER_KEY = "sk-or-v1-server0000000000000000000000000000000000000000000000000001"
PUBLIC_URL = "https://93.184.215.14/api"  # an IP literal: no DNS look-up in tests
HTMX = {"HTTP_HX_REQUEST": "true"}
RAW_TOKEN = re.compile(r"sb-[A-Za-z0-9_-]{40,}")


@pytest.fixture(autouse=True)
def _plain_settings(settings):
    """A server with no provider configured and user keys allowed, whatever the environment says."""
    settings.HIDE_USER_API_KEY = False
    settings.ALLOW_PRIVATE_ENDPOINTS = False
    settings.CUSTOM_MODELS = ""
    settings.DEFAULT_MODEL = ""
    for name in ("OPENROUTER", "OPENAI", "ANTHROPIC", "DEEPSEEK", "GOOGLE"):
        setattr(settings, f"{name}_API_KEY", "")
        setattr(settings, f"{name}_URL", "")
    settings.OLLAMA_URL = ""
    return settings


@pytest.fixture
def served_openrouter(settings, upstream):
    """OpenRouter configured on the server, pointing at the fake upstream (a trusted server URL)."""
    settings.OPENROUTER_API_KEY = SERVER_KEY
    settings.OPENROUTER_URL = upstream.url
    return upstream


def _save(client, provider="openrouter", **data):
    data = {"base_url": "", "api_key": "", **data}
    return client.post(f"/settings/providers/{provider}/", data)


def _test_connection(client, provider="openrouter"):
    return client.post(f"/settings/providers/{provider}/test/", **HTMX).content.decode()


def _card(html: str, provider: str = "openrouter") -> str:
    start = html.index(f'id="provider-{provider}"')
    return html[start : html.index("</article>", start)]


def _api_models(client, token: str):
    return client.get("/api/openrouter/v1/models", HTTP_AUTHORIZATION=f"Bearer {token}")


# 1. A stored key never leaves the server


@pytest.mark.django_db
def test_saved_key_is_in_no_response_and_stored_encrypted(alice_client, alice, served_openrouter):
    response = _save(alice_client, api_key=USER_KEY)
    assert response.status_code == 302
    htmx_save = alice_client.post("/settings/providers/openai/", {"base_url": "", "api_key": OPENAI_KEY}, **HTMX)
    assert htmx_save.status_code == 200
    _token, raw_token = ApiToken.issue(alice, "script")

    bodies = {"htmx save": htmx_save.content.decode(), "test": _test_connection(alice_client)}
    for url in [
        "/settings/",
        "/settings/providers/",
        "/settings/tokens/",
        "/settings/preferences/",
        "/settings/models/",
        "/c/new/",
    ]:
        response = alice_client.get(url, follow=True)
        assert response.status_code == 200, url
        bodies[url] = response.content.decode()
    api = _api_models(Client(), raw_token)
    if api.status_code != 404:
        bodies["api"] = api.content.decode()

    for where, body in bodies.items():
        assert USER_KEY_SECRET_PART not in body, where
        assert OPENAI_KEY[8:-4] not in body, where
        assert SERVER_KEY[9:-4] not in body, where
    assert "sk-or-...3f9a" in _card(bodies["/settings/providers/"])
    assert "Connected: 4 models." in bodies["test"]

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ProviderCredential._meta.db_table}")
        rows = repr(cursor.fetchall())
    assert USER_KEY_SECRET_PART not in rows and OPENAI_KEY[8:-4] not in rows
    assert ProviderCredential.objects.get(user=alice, provider="openrouter").api_key == USER_KEY


@pytest.mark.django_db
def test_key_field_is_a_password_field_never_filled_in(alice_client, alice):
    _save(alice_client, api_key=USER_KEY)
    card = _card(alice_client.get("/settings/providers/").content.decode())
    field = re.search(r'<input type="password" name="api_key"[^>]*>', card).group(0)
    assert 'autocomplete="off"' in field and "value=" not in field


# 2. CSRF, ownership, admin-only pages


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/settings/providers/openrouter/", {"api_key": USER_KEY}),
        ("/settings/providers/openrouter/clear/", {}),
        ("/settings/providers/openrouter/test/", {}),
        ("/settings/tokens/new/", {"name": "laptop"}),
        ("/settings/preferences/", {"language": "da", "theme": "dark"}),
        ("/settings/models/refresh/", {}),
    ],
)
def test_forms_need_the_csrf_token(alice, url, data):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(url, data).status_code == 403
    assert client.post(url, data, **HTMX).status_code == 403
    assert not ProviderCredential.objects.exists()
    assert not ApiToken.objects.exists()
    assert Preferences.objects.filter(user=alice, language="da").count() == 0


@pytest.mark.django_db
def test_htmx_post_with_the_header_token_is_accepted(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    page = client.get("/settings/providers/").content.decode()
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    response = client.post("/settings/providers/openrouter/", {"api_key": USER_KEY}, HTTP_X_CSRFTOKEN=token, **HTMX)
    assert response.status_code == 200
    assert ProviderCredential.objects.get(user=alice).key_hint == "sk-or-...3f9a"


@pytest.mark.django_db
def test_users_see_and_change_only_their_own_credentials(client, alice, bob):
    client.force_login(alice)
    _save(client, api_key=USER_KEY, base_url=PUBLIC_URL)
    client.force_login(bob)
    bob_page = client.get("/settings/providers/").content.decode()
    assert "3f9a" not in bob_page and PUBLIC_URL not in bob_page
    assert client.post("/settings/providers/openrouter/clear/").status_code == 302
    _save(client, api_key=OPENAI_KEY)
    mine = ProviderCredential.objects.get(user=alice)
    assert mine.api_key == USER_KEY and mine.base_url == PUBLIC_URL
    assert ProviderCredential.objects.get(user=bob).api_key == OPENAI_KEY


@pytest.mark.django_db
def test_another_users_token_cannot_be_revoked_or_seen(client, alice, bob):
    token, raw = ApiToken.issue(alice, "alice's laptop")
    client.force_login(bob)
    assert client.post(f"/settings/tokens/{token.pk}/revoke/").status_code == 404
    assert client.post(f"/settings/tokens/{token.pk}/revoke/", **HTMX).status_code == 404
    assert "alice&#x27;s laptop" not in client.get("/settings/tokens/").content.decode()
    assert ApiToken.authenticate(raw) == alice


@pytest.mark.django_db
def test_models_page_is_a_404_for_non_admins(bob_client):
    assert bob_client.get("/settings/models/").status_code == 404
    assert bob_client.post("/settings/models/refresh/").status_code == 404
    assert 'href="/settings/models/"' not in bob_client.get("/settings/providers/").content.decode()


@pytest.mark.django_db
def test_unknown_provider_is_a_404(alice_client):
    assert alice_client.post("/settings/providers/nope/", {"api_key": USER_KEY}).status_code == 404
    assert alice_client.post("/settings/providers/nope/test/").status_code == 404
    assert not ProviderCredential.objects.exists()


@pytest.mark.django_db
def test_settings_redirects_to_providers_and_the_topbar_links_there(alice_client):
    response = alice_client.get("/settings/")
    assert response.status_code == 302 and response.url == "/settings/providers/"
    assert 'href="/settings/providers/">Settings</a>' in alice_client.get("/c/new/").content.decode()


# 3. HIDE_USER_API_KEY


@pytest.mark.django_db
def test_hidden_user_keys_remove_the_fields_and_refuse_posts(alice_client, alice, settings):
    settings.HIDE_USER_API_KEY = True
    html = alice_client.get("/settings/providers/").content.decode()
    assert 'name="api_key"' not in html and 'name="base_url"' not in html
    assert "only the administrator's keys are used" in html
    for response in (
        _save(alice_client, api_key=USER_KEY, base_url=PUBLIC_URL),
        alice_client.post("/settings/providers/openrouter/", {"api_key": USER_KEY}, **HTMX),
        alice_client.post("/settings/providers/openrouter/clear/"),
    ):
        assert response.status_code == 403
        assert USER_KEY_SECRET_PART not in response.content.decode()
    assert not ProviderCredential.objects.exists()


# 4. Test connection and the endpoint guard


@pytest.mark.django_db
def test_test_connection_counts_the_models_with_the_users_key(alice_client, served_openrouter):
    _save(alice_client, api_key=USER_KEY)
    card = _card(_test_connection(alice_client))
    assert "Connected: 4 models." in card and "(with your key)" in card
    request = served_openrouter.requests[-1]
    assert request.path == "/v1/models"
    assert request.headers["authorization"] == f"Bearer {USER_KEY}"


@pytest.mark.django_db
def test_test_connection_with_the_servers_key(alice_client, served_openrouter):
    card = _card(_test_connection(alice_client))
    assert "Connected: 4 models." in card and "(with the server's key)" in card
    assert served_openrouter.requests[-1].headers["authorization"] == f"Bearer {SERVER_KEY}"


@pytest.mark.django_db
def test_test_connection_shows_the_upstreams_401(alice_client, served_openrouter):
    _save(alice_client, api_key=USER_KEY)
    served_openrouter.models_status = 401
    card = _card(_test_connection(alice_client))
    assert "Connection failed. The provider answered:" in card
    assert "HTTP 401: The model list is unavailable." in card
    assert USER_KEY_SECRET_PART not in card


@pytest.mark.django_db
def test_test_connection_shows_no_user_the_address_the_admin_set_nor_its_password(alice_client, settings, caplog):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.OLLAMA_URL = f"http://admin:hunter2@127.0.0.1:{port}"
    card = _card(_test_connection(alice_client, "ollama"), "ollama")
    assert "ConnectError" in card
    assert "hunter2" not in card and "127.0.0.1" not in card and str(port) not in card
    assert "hunter2" not in caplog.text


@pytest.mark.django_db
def test_test_connection_without_any_key_says_what_to_do(alice_client):
    card = _card(_test_connection(alice_client))
    assert "Connection failed:" in card and "No API key is configured for OpenRouter" in card


@pytest.mark.django_db
def test_test_connection_without_javascript_renders_the_page(alice_client, served_openrouter):
    response = alice_client.post("/settings/providers/openrouter/test/")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html
    assert "Connected: 4 models." in _card(html)


@pytest.mark.django_db
def test_private_url_is_refused_on_saving_before_any_connection(alice_client, upstream):
    response = _save(alice_client, api_key=USER_KEY, base_url=upstream.url)
    card = _card(response.content.decode())
    assert response.status_code == 200
    assert "127.0.0.1 is a private, local or otherwise reserved address" in card
    assert 'class="field-errors"' in card
    assert not ProviderCredential.objects.exists()
    assert upstream.requests == []


@pytest.mark.django_db
def test_private_url_stored_earlier_is_refused_when_connecting(alice_client, alice, upstream):
    credential = ProviderCredential(user=alice, provider="openrouter", base_url=upstream.url)
    credential.set_key(USER_KEY)
    credential.save()  # as if saved while ALLOW_PRIVATE_ENDPOINTS was on
    card = _card(_test_connection(alice_client))
    assert "Connections to 127.0.0.1 are not allowed" in card
    assert upstream.requests == []


@pytest.mark.django_db
def test_private_url_works_when_allowed(alice_client, alice, upstream, settings):
    settings.ALLOW_PRIVATE_ENDPOINTS = True
    response = _save(alice_client, api_key=USER_KEY, base_url=upstream.url + "/v1/")
    assert response.status_code == 302
    credential = ProviderCredential.objects.get(user=alice)
    assert credential.base_url == upstream.url + "/v1"
    card = _card(_test_connection(alice_client))
    assert "Connected: 4 models." in card
    assert [r.path for r in upstream.requests] == ["/v1/models"]
    assert "Chats use your own key at your own endpoint URL." in card


@pytest.mark.django_db
def test_keyless_provider_takes_a_url_alone(alice_client, alice, upstream, settings):
    settings.ALLOW_PRIVATE_ENDPOINTS = True
    page = alice_client.get("/settings/providers/").content.decode()
    assert 'name="api_key"' not in _card(page, "ollama")
    assert _save(alice_client, "ollama", base_url=upstream.url).status_code == 302
    card = _card(_test_connection(alice_client, "ollama"), "ollama")
    assert "Connected: 4 models." in card and "key)" not in card


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"base_url": "ftp://93.184.215.14", "api_key": USER_KEY}, "Enter a URL that starts with http:// or https://."),
        ({"base_url": "https://10.0.0.8/api", "api_key": USER_KEY}, "10.0.0.8 is a private, local"),
        ({"base_url": "http://169.254.169.254", "api_key": USER_KEY}, "169.254.169.254 is a private, local"),
        ({"api_key": "sk-" + "a" * 498}, "too long for an API key (at most 500 characters)"),
        ({"api_key": "   "}, "The API key is empty."),
        ({"api_key": "sk-one two"}, "no spaces, line breaks or non-ASCII characters"),
        ({}, "Enter your API key, an endpoint URL, or both."),
        ({"base_url": PUBLIC_URL}, "the server&#x27;s key is never sent to an endpoint you set"),
    ],
)
def test_invalid_input_gets_an_inline_error_and_stores_nothing(alice_client, data, message):
    for response in (
        _save(alice_client, **data),
        alice_client.post("/settings/providers/openrouter/", {"base_url": "", "api_key": "", **data}, **HTMX),
    ):
        assert response.status_code == 200
        assert message in _card(response.content.decode())
    assert not ProviderCredential.objects.exists()


@pytest.mark.django_db
def test_empty_key_field_keeps_the_stored_key_and_clear_removes_it(alice_client, alice):
    _save(alice_client, api_key=USER_KEY)
    assert _save(alice_client, base_url=PUBLIC_URL).status_code == 302
    credential = ProviderCredential.objects.get(user=alice)
    assert credential.api_key == USER_KEY and credential.base_url == PUBLIC_URL
    response = alice_client.post("/settings/providers/openrouter/clear/", **HTMX)
    card = _card(response.content.decode())
    assert "Removed your key and URL for OpenRouter." in card and "Stored key" not in card
    assert not ProviderCredential.objects.exists()


@pytest.mark.django_db
def test_htmx_save_answers_with_the_card_alone(alice_client):
    response = alice_client.post("/settings/providers/openrouter/", {"base_url": "", "api_key": USER_KEY}, **HTMX)
    html = response.content.decode()
    assert "<html" not in html and html.strip().startswith(
        '<article class="card provider-card" id="provider-openrouter"'
    )
    assert "Saved your settings for OpenRouter." in html and "sk-or-...3f9a" in html


# 5. Tokens and preferences


@pytest.mark.django_db
def test_token_created_on_the_page_works_until_revoked(alice_client, alice):
    response = alice_client.post("/settings/tokens/new/", {"name": "laptop"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    raw = RAW_TOKEN.search(response.content.decode()).group(0)
    assert f'value="{raw}" readonly' in response.content.decode()
    assert ApiToken.authenticate(raw) == alice
    assert raw not in alice_client.get("/settings/tokens/").content.decode()  # shown once

    api = _api_models(Client(), raw)
    if api.status_code != 404:
        assert api.status_code == 200

    token = ApiToken.objects.get(user=alice)
    listing = alice_client.get("/settings/tokens/").content.decode()
    assert "laptop" in listing and token.display_prefix in listing
    assert "Never" not in listing  # authenticate() just used it
    assert alice_client.post(f"/settings/tokens/{token.pk}/revoke/").status_code == 302
    assert ApiToken.authenticate(raw) is None
    assert "Revoked" in alice_client.get("/settings/tokens/").content.decode()
    if api.status_code != 404:
        assert _api_models(Client(), raw).status_code == 401


@pytest.mark.django_db
def test_tokens_over_htmx_and_with_a_bad_name(alice_client, alice):
    response = alice_client.post("/settings/tokens/new/", {"name": "ci"}, **HTMX)
    html = response.content.decode()
    assert "<html" not in html and 'id="tokens"' in html and RAW_TOKEN.search(html)
    assert "data-copy=" in html
    token = ApiToken.objects.get()
    html = alice_client.post(f"/settings/tokens/{token.pk}/revoke/", **HTMX).content.decode()
    assert "The token “ci” was revoked." in html
    response = alice_client.post("/settings/tokens/new/", {"name": ""})
    assert "This field is required." in response.content.decode()
    assert ApiToken.objects.count() == 1


@pytest.mark.django_db
def test_preferences_save_language_theme_and_default_model(alice_client, alice, served_openrouter):
    page = alice_client.get("/settings/preferences/").content.decode()
    assert '<optgroup label="OpenRouter">' in page
    assert 'value="openai/gpt-4o-mini@openrouter"' in page
    assert ">Follow the browser</option>" in page

    response = alice_client.post(
        "/settings/preferences/",
        {"language": "da", "theme": "dark", "default_model": "anthropic/claude-sonnet-4.5@openrouter"},
    )
    assert response.status_code == 302
    assert response.cookies["django_language"].value == "da"
    prefs = Preferences.objects.get(user=alice)
    assert (prefs.language, prefs.theme, prefs.default_model) == (
        "da",
        "dark",
        "anthropic/claude-sonnet-4.5@openrouter",
    )
    html = alice_client.get("/settings/preferences/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="da"' in html and 'data-theme="dark"' in html
    chat = alice_client.get("/c/new/").content.decode()
    assert 'value="anthropic/claude-sonnet-4.5@openrouter" selected' in chat


@pytest.mark.django_db
def test_preferences_follow_the_browser_again_and_refuse_unknown_models(alice_client, alice):
    alice_client.post("/settings/preferences/", {"language": "da", "theme": "auto", "default_model": ""})
    response = alice_client.post("/settings/preferences/", {"language": "", "theme": "auto", "default_model": ""})
    assert response.cookies["django_language"].value == ""  # deleted
    html = alice_client.get("/settings/preferences/", HTTP_ACCEPT_LANGUAGE="zh-Hans").content.decode()
    assert '<html lang="zh-hans"' in html

    response = alice_client.post("/settings/preferences/", {"language": "", "theme": "auto", "default_model": "x@nope"})
    assert response.status_code == 200 and "Select a valid choice." in response.content.decode()
    assert Preferences.objects.get(user=alice).default_model == ""


# The model table


@pytest.mark.django_db
def test_models_page_shows_the_table_problems_and_catalogues(alice_client, served_openrouter, settings):
    settings.CUSTOM_MODELS = "-all,+openai/gpt-4o-mini@OpenRouter=Mini,+gpt-4o@OpenAl"
    settings.DEFAULT_MODEL = "openai/gpt-4o-mini@OpenRouter"
    html = alice_client.get("/settings/models/").content.decode()
    row = re.search(r"<tr data-search=\"openai/gpt-4o-mini [^>]*>.*?</tr>", html, re.S).group(0)
    assert "OpenRouter" in row and "<code>openai/gpt-4o-mini</code>" in row and "<td>Mini</td>" in row
    assert 'class="yes"' in row and "<code>+openai/gpt-4o-mini@OpenRouter=Mini</code>" in row
    assert '<td class="num">0.15</td><td class="num">0.6</td>' in row
    assert re.search(r'data-search="deepseek/deepseek-r1[^"]*" class="unavailable"', html)
    assert "163,840" in html
    assert "No provider is called “OpenAl”; the entry is ignored." in html
    assert "-all,+openai/gpt-4o-mini@OpenRouter=Mini,+gpt-4o@OpenAl" in html
    assert "<code>openai/gpt-4o-mini@openrouter</code>" in html  # the default in effect
    assert re.search(r"<td>OpenRouter</td>\s*<td>4</td>", html)  # the catalogue status


@pytest.mark.django_db
def test_models_page_filters_without_javascript(alice_client, served_openrouter):
    html = alice_client.get("/settings/models/", {"q": "CLAUDE"}).content.decode()
    rows = re.findall(r'<tr data-search="([^"]*)"', html)
    assert len(rows) >= 2 and all("claude" in row for row in rows)
    total = len(ModelTable.current().rows)
    assert f"{total} models, {total} available." in html and f"Showing {len(rows)} of {total} models." in html


@pytest.mark.django_db
def test_refresh_fetches_the_model_lists_again(alice_client, served_openrouter):
    alice_client.get("/settings/models/")
    before = len(served_openrouter.requests)
    served_openrouter.models = served_openrouter.models + [model_entry("new/model", "New model")]
    response = alice_client.post("/settings/models/refresh/", follow=True)
    assert len(served_openrouter.requests) == before + 1
    html = response.content.decode()
    assert "The model lists were refreshed." in html and "<code>new/model</code>" in html


@pytest.mark.django_db
def test_refresh_failure_is_reported_and_the_last_list_kept(alice_client, served_openrouter):
    alice_client.get("/settings/models/")
    served_openrouter.models_status = 500
    html = alice_client.post("/settings/models/refresh/", follow=True).content.decode()
    assert "Some model lists could not be refreshed: OpenRouter." in html
    assert "HTTP 500: The model list is unavailable." in html
    assert "<code>anthropic/claude-sonnet-4.5</code>" in html


@pytest.mark.django_db
def test_a_long_model_table_renders_in_one_go(alice_client, served_openrouter):
    served_openrouter.models = [model_entry(f"vendor/model-{i}", f"Model {i}") for i in range(1500)]
    html = alice_client.get("/settings/models/").content.decode()
    assert html.count("<tr data-search=") == len(ModelTable.current().rows) > 1500


@pytest.mark.django_db(transaction=True)
async def test_test_connection_under_asgi(async_client, alice, served_openrouter):
    await async_client.aforce_login(alice)
    response = await async_client.post("/settings/providers/openrouter/test/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "Connected: 4 models." in response.content.decode()


@pytest.mark.django_db
def test_test_connection_counts_against_the_rate_limit(alice_client, served_openrouter, two_a_minute):
    for _ in range(2):
        assert "Connected: 4 models." in _test_connection(alice_client)
    card = _card(_test_connection(alice_client))
    assert "Too many requests. Try again in" in card
    assert len(served_openrouter.requests) == 2


@pytest.mark.django_db
def test_an_endpoint_the_admin_set_is_not_shown_to_users(alice_client, settings):
    # A vendor's public URL helps; an address the admin configured (an internal
    # server, a gateway) is not the users' business.
    settings.OPENROUTER_URL = "http://10.1.2.3:8080/gateway"
    page = alice_client.get("/settings/providers/").content.decode()
    assert "10.1.2.3" not in page
    assert "https://api.openai.com" in page  # OpenAI's own, not overridden
