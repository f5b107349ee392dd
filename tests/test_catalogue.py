"""Model catalogues: fetched over HTTP with the server key, cached, refreshed (SPEC section 5)."""

import asyncio
import time
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from providers import catalogue
from providers.catalogue import acost_from_prices, cost_from_prices
from providers.events import Usage
from providers.model_table import ModelTable
from providers.registry import PROVIDERS
from tests.fake_upstream import model_entry

KEY = "sk-or-test-0123456789"


@pytest.fixture
def servers(settings):
    """No provider configured, no CUSTOM_MODELS: each test turns on what it needs."""
    for provider in PROVIDERS.values():
        if provider.key_setting:
            setattr(settings, provider.key_setting, "")
        setattr(settings, provider.url_setting, "")
    settings.CUSTOM_MODELS = ""
    settings.DEFAULT_MODEL = ""
    settings.CATALOGUE_TTL = 3600
    return settings


@pytest.fixture
def openrouter(servers, upstream):
    """OpenRouter with a server key, pointed at the fake upstream."""
    servers.OPENROUTER_API_KEY = KEY
    servers.OPENROUTER_URL = upstream.url
    return upstream


def model_requests(upstream) -> list:
    return [r for r in upstream.requests if r.path.endswith("/models")]


def wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_first_read_fetches_the_list_with_the_server_key(openrouter):
    table = ModelTable.current()
    [request] = model_requests(openrouter)
    assert request.path == "/v1/models"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert table.find("openrouter", "deepseek/deepseek-r1") is not None


def test_openrouter_metadata_is_parsed(openrouter):
    table = ModelTable.current()
    claude = table.find("openrouter", "anthropic/claude-sonnet-4.5")
    assert claude.label == "Anthropic: Claude Sonnet 4.5"
    assert claude.context_length == 1_000_000
    assert (claude.prompt_price, claude.completion_price) == (Decimal("0.000003"), Decimal("0.000015"))
    assert claude.input_modalities == ("text", "image")
    assert claude.supports_reasoning is True
    assert table.find("openrouter", "openai/gpt-4o-mini").supports_reasoning is False
    free = table.find("openrouter", "meta-llama/llama-3.3-70b-instruct:free")
    assert (free.prompt_price, free.completion_price) == (Decimal(0), Decimal(0))


def test_variable_prices_are_unknown_not_negative(openrouter):
    openrouter.models = [model_entry("openrouter/auto", "Auto Router", prompt_price="-1", completion_price="-1")]
    auto = ModelTable.current().find("openrouter", "openrouter/auto")
    assert (auto.label, auto.source) == ("Auto Router", "built-in")  # the built-in, described by the catalogue
    assert auto.prompt_price is None and auto.completion_price is None


def test_second_read_is_served_from_the_cache(openrouter):
    ModelTable.current()
    ModelTable.current()
    # Another process has no parsed copy of its own, but shares the cache.
    catalogue._parsed.clear()
    ModelTable._memo.clear()
    assert ModelTable.current().find("openrouter", "deepseek/deepseek-r1") is not None
    assert len(model_requests(openrouter)) == 1


def test_failed_refresh_keeps_the_last_good_copy_and_records_the_error(openrouter):
    good = catalogue.refresh("openrouter")
    openrouter.models_status = 500
    failed = catalogue.refresh("openrouter")
    assert failed.models == good.models
    assert failed.fetched_at == good.fetched_at
    assert "HTTP 500" in failed.error and "model list is unavailable" in failed.error
    assert KEY not in failed.error
    assert ModelTable.current().find("openrouter", "anthropic/claude-sonnet-4.5") is not None
    assert catalogue.cached_catalogue("openrouter").error == failed.error

    [(provider, held)] = catalogue.status()
    assert provider.slug == "openrouter" and held.error == failed.error and held.age is not None

    openrouter.models_status = 200
    assert catalogue.refresh("openrouter").error == ""


def test_failed_first_fetch_is_not_retried_on_every_request(openrouter):
    openrouter.models_status = 503
    table = ModelTable.current()
    assert [row.name for row in table.available("openrouter")] == ["openrouter/auto"]
    ModelTable.current()
    assert len(model_requests(openrouter)) == 1
    assert "HTTP 503" in catalogue.cached_catalogue("openrouter").error


def test_unreachable_upstream_is_recorded_without_the_key(servers, upstream):
    servers.OPENROUTER_API_KEY = KEY
    servers.OPENROUTER_URL = upstream.url
    upstream.stop()
    result = catalogue.refresh("openrouter")
    assert result.models == () and result.fetched_at is None
    assert "ConnectError" in result.error and KEY not in result.error


def test_stale_copy_is_served_while_a_background_refresh_runs(openrouter, settings):
    catalogue.refresh("openrouter")
    openrouter.models = [model_entry("new/model", "New Model")]
    settings.CATALOGUE_TTL = 0

    table = ModelTable.current()
    assert table.find("openrouter", "anthropic/claude-sonnet-4.5") is not None  # the old copy, at once
    assert table.find("openrouter", "new/model") is None

    settings.CATALOGUE_TTL = 3600  # the copy the background refresh writes is fresh
    assert wait_for(lambda: ModelTable.current().find("openrouter", "new/model") is not None)
    assert len(model_requests(openrouter)) == 2


async def test_async_stale_copy_is_served_while_a_task_refreshes_it(openrouter, settings):
    await catalogue.arefresh("openrouter")
    openrouter.models = [model_entry("new/model", "New Model")]
    settings.CATALOGUE_TTL = 0

    table = await ModelTable.acurrent()
    assert table.find("openrouter", "new/model") is None

    settings.CATALOGUE_TTL = 3600
    for _ in range(500):
        if (await ModelTable.acurrent()).find("openrouter", "new/model") and not catalogue._background:
            break
        await asyncio.sleep(0.01)
    assert (await ModelTable.acurrent()).find("openrouter", "new/model") is not None
    assert len(model_requests(openrouter)) == 2


def test_wildcard_expands_against_the_fetched_catalogue(openrouter, settings):
    settings.CUSTOM_MODELS = "-all, +anthropic/*@OpenRouter, +deepseek/*@openrouter"
    table = ModelTable.current()
    assert [row.name for row in table.available()] == ["anthropic/claude-sonnet-4.5", "deepseek/deepseek-r1"]
    assert table.find("openrouter", "deepseek/deepseek-r1").context_length == 163840
    assert not table.is_allowed("openrouter", "openai/gpt-4o-mini")
    assert not table.is_allowed("openrouter", "anthropic/claude-opus-9")


def test_anthropic_list_is_fetched_with_x_api_key_and_display_names(servers, upstream):
    servers.ANTHROPIC_API_KEY = "sk-ant-test"
    servers.ANTHROPIC_URL = upstream.url
    upstream.models = [
        {"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5"},
        {"type": "model", "id": "claude-next", "display_name": "Claude Next"},
    ]
    table = ModelTable.current()
    [request] = model_requests(upstream)
    assert request.headers["x-api-key"] == "sk-ant-test"
    assert "authorization" not in request.headers
    assert request.headers["anthropic-version"]
    assert request.query == {"limit": "1000"}
    assert table.find("anthropic", "claude-sonnet-4-5").label == "Claude Sonnet 4.5"
    assert table.find("anthropic", "claude-next").source == "catalogue"


def test_google_ids_lose_their_models_prefix(servers, upstream):
    servers.GOOGLE_API_KEY = "g-test"
    servers.GOOGLE_URL = upstream.url
    upstream.models = [{"id": "models/gemini-3-pro", "object": "model", "owned_by": "google"}]
    table = ModelTable.current()
    assert model_requests(upstream)[0].path == "/v1beta/openai/models"
    assert table.find("google", "gemini-3-pro") is not None


def test_keyless_ollama_is_fetched_without_credentials(servers, upstream):
    servers.OLLAMA_URL = upstream.url
    upstream.models = [{"id": "qwen3:8b", "object": "model"}]
    assert [row.name for row in ModelTable.current().available()] == ["qwen3:8b"]
    assert "authorization" not in model_requests(upstream)[0].headers


def test_catalogue_is_fetched_only_for_configured_providers(servers, upstream):
    servers.OPENAI_URL = upstream.url  # a URL but no key
    assert catalogue.refresh("openai").error
    ModelTable.current()
    assert model_requests(upstream) == []


async def test_async_twins_fetch_once_through_the_shared_client(openrouter):
    table = await ModelTable.acurrent()
    assert table.find("openrouter", "anthropic/claude-sonnet-4.5") is not None
    assert await ModelTable.acurrent() is table
    refreshed = await catalogue.arefresh("openrouter")
    assert len(refreshed.models) == 4
    assert len(model_requests(openrouter)) == 2
    assert model_requests(openrouter)[1].headers["authorization"] == f"Bearer {KEY}"


# -- cost ----------------------------------------------------------------------


def test_cost_from_catalogue_prices(openrouter):
    catalogue.refresh("openrouter")
    # Completion tokens already include the reasoning tokens: not counted twice.
    usage = Usage(prompt_tokens=1000, completion_tokens=500, reasoning_tokens=200)
    assert cost_from_prices("openrouter", "anthropic/claude-sonnet-4.5", usage) == Decimal("0.0105")
    as_dict = {"prompt_tokens": 2_000_000, "completion_tokens": 1_000_000}
    assert cost_from_prices("OpenRouter", "openai/gpt-4o-mini", as_dict) == Decimal("0.9")
    assert cost_from_prices("openrouter", "meta-llama/llama-3.3-70b-instruct:free", usage) == 0


def test_cost_is_unknown_without_catalogue_prices(openrouter):
    catalogue.refresh("openrouter")
    usage = Usage(prompt_tokens=10, completion_tokens=10)
    assert cost_from_prices("openrouter", "no/such-model", usage) is None
    assert cost_from_prices("openai", "gpt-4o", usage) is None
    assert cost_from_prices("nope", "gpt-4o", usage) is None


async def test_async_cost_from_catalogue_prices(openrouter):
    await catalogue.arefresh("openrouter")
    usage = Usage(prompt_tokens=100, completion_tokens=10)
    assert await acost_from_prices("openrouter", "deepseek/deepseek-r1", usage) == Decimal("0.00006")


# -- the command -----------------------------------------------------------------


def test_refresh_command_reports_each_provider(openrouter):
    out = StringIO()
    call_command("refresh_catalogue", stdout=out)
    assert out.getvalue().strip() == "openrouter: 4 models"


def test_refresh_command_fails_when_a_list_cannot_be_fetched(openrouter):
    openrouter.models_status = 500
    with pytest.raises(CommandError):
        call_command("refresh_catalogue", "OpenRouter", stdout=StringIO(), stderr=StringIO())


async def test_a_stream_without_a_reported_cost_is_priced_from_the_catalogue(openrouter):
    from providers.completion import ChatMessage, CompletionRequest, stream_completion
    from providers.credentials import Endpoint
    from providers.events import Usage as UsageEvent
    from tests.fake_upstream import Stream, openai_text_stream

    await catalogue.arefresh("openrouter")
    openrouter.default_generation_cost = None  # no cost from the generation look-up either
    usage = {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    openrouter.enqueue(Stream(openai_text_stream("Priced.", usage=usage)))
    request = CompletionRequest(
        provider=PROVIDERS["openrouter"], model="deepseek/deepseek-r1", messages=[ChatMessage("user", "Hi")]
    )
    events = [e async for e in stream_completion(request, Endpoint(openrouter.url, KEY))]
    (reported,) = [e for e in events if isinstance(e, UsageEvent)]
    assert reported.cost == Decimal("0.00006") and reported.cost_source == "catalogue"
