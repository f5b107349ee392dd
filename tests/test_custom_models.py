"""CUSTOM_MODELS and the model table (SPEC section 5), NextChat's cases included."""

import socket

import pytest
from asgiref.sync import sync_to_async

from providers.catalogue import CatalogueModel
from providers.model_table import ModelTable, parse_model_ref
from providers.registry import PROVIDERS


@pytest.fixture
def refused_url() -> str:
    """A loopback URL nobody listens on: catalogue fetches fail at once, offline."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def table_for(settings, refused_url):
    """Set CUSTOM_MODELS, DEFAULT_MODEL and server keys, then read ModelTable.current()."""

    def table_for(custom_models: str = "", providers=("openrouter",), default_model: str = "") -> ModelTable:
        settings.CUSTOM_MODELS = custom_models
        settings.DEFAULT_MODEL = default_model
        for provider in PROVIDERS.values():
            if provider.key_setting:
                key = f"sk-{provider.slug}-test" if provider.slug in providers else ""
                setattr(settings, provider.key_setting, key)
                setattr(settings, provider.url_setting, refused_url)
            else:  # keyless Ollama is configured by its URL
                setattr(settings, provider.url_setting, refused_url if provider.slug in providers else "")
        return ModelTable.current()

    return table_for


def allowed(table: ModelTable) -> set[tuple[str, str]]:
    return {(row.provider, row.name) for row in table.rows if row.available}


OPENROUTER_CATALOGUE = [
    CatalogueModel("anthropic/claude-sonnet-4.5", "Anthropic: Claude Sonnet 4.5", context_length=1_000_000),
    CatalogueModel("anthropic/claude-haiku-4.5", "Anthropic: Claude Haiku 4.5"),
    CatalogueModel("openai/gpt-4o", "OpenAI: GPT-4o"),
    CatalogueModel("qwen/qwen3-32b:free", "Qwen: Qwen3 32B (free)"),
    CatalogueModel("deepseek-chat", "A model id some other provider also has"),
]


def with_catalogue(custom_models: str, configured=("openrouter",)) -> ModelTable:
    return ModelTable(custom_models, {"openrouter": OPENROUTER_CATALOGUE}, configured)


# -- empty CUSTOM_MODELS ---------------------------------------------------


def test_any_model_is_accepted_when_custom_models_is_empty(table_for):
    table = table_for("")
    assert not table.restricted
    assert table.is_allowed("openrouter", "someone/brand-new-model")
    assert table.is_allowed("anthropic", "claude-from-the-future")


def test_unknown_provider_or_empty_model_is_never_accepted(table_for):
    table = table_for("")
    assert not table.is_allowed("nope", "gpt-4o")
    assert not table.is_allowed("openai", "")


def test_blank_entries_alone_count_as_empty(table_for):
    assert table_for(" , ,, ").is_allowed("openai", "anything")


def test_empty_custom_models_offers_built_ins_of_configured_providers_only(table_for):
    table = table_for("", providers=("openrouter", "deepseek"))
    assert [(r.provider, r.name) for r in table.available()] == [
        ("openrouter", "openrouter/auto"),
        ("deepseek", "deepseek-chat"),
        ("deepseek", "deepseek-reasoner"),
    ]
    # Asked for by name, a provider without a server key still lists its
    # built-ins: a user may bring their own key.
    assert [r.name for r in table.available("google")] == ["gemini-2.5-pro", "gemini-2.5-flash"]


def test_catalogue_models_join_the_built_ins():
    table = with_catalogue("")
    names = [row.name for row in table.available("openrouter")]
    assert names[0] == "openrouter/auto"
    assert "anthropic/claude-sonnet-4.5" in names
    row = table.find("openrouter", "anthropic/claude-sonnet-4.5")
    assert row.label == "Anthropic: Claude Sonnet 4.5"
    assert row.context_length == 1_000_000
    assert row.decided_by == "catalogue"
    assert table.find("openrouter", "openrouter/auto").decided_by == "built-in"


# -- set CUSTOM_MODELS -----------------------------------------------------


def test_unknown_model_is_rejected_when_custom_models_is_set(table_for):
    table = table_for("+qwen/qwen3-32b:free@OpenRouter")
    assert table.restricted
    assert table.is_allowed("openrouter", "qwen/qwen3-32b:free")
    assert table.is_allowed("openrouter", "openrouter/auto")  # still enabled: no -all
    assert not table.is_allowed("openrouter", "someone/brand-new-model")


def test_minus_all_then_one_openrouter_model_allows_only_that_model(table_for):
    table = table_for("-all,+qwen/qwen3-32b:free@OpenRouter", providers=("openrouter", "openai"))
    assert allowed(table) == {("openrouter", "qwen/qwen3-32b:free")}
    assert not table.is_allowed("openrouter", "openrouter/auto")
    assert not table.is_allowed("openai", "gpt-4o")
    assert [row.ref for row in table.available()] == ["qwen/qwen3-32b:free@openrouter"]


def test_whitespace_around_entries_is_ignored(table_for):
    table = table_for("  -all ,\t+gpt-4o@OpenAI ,  ,+ o3@OpenAI\n", providers=("openai",))
    assert allowed(table) == {("openai", "gpt-4o"), ("openai", "o3")}
    assert table.find("openai", "gpt-4o").decided_by == "+gpt-4o@OpenAI"


def test_name_without_plus_enables_like_plus(table_for):
    table = table_for("-all,gpt-4o-mini@OpenAI", providers=("openai",))
    assert allowed(table) == {("openai", "gpt-4o-mini")}


def test_display_name_sets_the_label_and_enables(table_for):
    table = table_for("-all,gpt-4o=GPT Four,+x-1@OpenRouter=Team @ Work = fast", providers=("openai", "openrouter"))
    gpt = table.find("openai", "gpt-4o")
    assert (gpt.label, gpt.available) == ("GPT Four", True)
    # The label is split off at the first "=", before the provider at the last "@".
    assert table.find("openrouter", "x-1").label == "Team @ Work = fast"


def test_disabling_ignores_a_label(table_for):
    table = table_for("-gpt-4o@OpenAI=Gone", providers=("openai",))
    row = table.find("openai", "gpt-4o")
    assert (row.available, row.label) == (False, "gpt-4o")


@pytest.mark.parametrize("spelling", ["OpenRouter", "openrouter", "OPENROUTER", " openRouter "])
def test_provider_names_match_in_any_case(table_for, spelling):
    table = table_for(f"-all,+qwen/qwen3-32b:free@{spelling}")
    assert allowed(table) == {("openrouter", "qwen/qwen3-32b:free")}


@pytest.mark.parametrize("spelling", ["Google", "google", "Google Gemini", "GOOGLE GEMINI"])
def test_provider_matches_by_slug_or_display_name(table_for, spelling):
    table = table_for(f"-all,+gemini-2.5-flash@{spelling}", providers=("google",))
    assert allowed(table) == {("google", "gemini-2.5-flash")}


def test_unknown_provider_entry_is_reported_and_ignored(table_for):
    table = table_for("-all,+gpt-4o@OpenAl", providers=("openai",))
    assert allowed(table) == set()
    assert table.find("openai", "gpt-4o@OpenAl") is None
    assert [p.entry for p in table.problems] == ["+gpt-4o@OpenAl"]
    assert "OpenAl" in str(table.problems[0].message)


def test_model_names_are_case_sensitive(table_for):
    table = table_for("-all,+GPT-4o@OpenAI,-Gpt-4o-mini@OpenAI", providers=("openai",))
    assert table.is_allowed("openai", "GPT-4o")
    assert not table.is_allowed("openai", "gpt-4o")
    assert table.find("openai", "GPT-4o").source == "custom"
    assert [p.entry for p in table.problems] == ["-Gpt-4o-mini@OpenAI"]  # matched nothing


def test_provider_is_split_at_the_last_at_sign(table_for):
    table = table_for("-all,+team@home/llama:8b@Ollama", providers=("ollama",))
    assert allowed(table) == {("ollama", "team@home/llama:8b")}


def test_minus_all_at_provider_only_disables_that_provider(table_for):
    table = table_for("-all@OpenAI", providers=("openai", "deepseek"))
    assert not any(row.available for row in table.rows if row.provider == "openai")
    assert table.is_allowed("deepseek", "deepseek-chat")
    assert table.find("openai", "o3").decided_by == "-all@OpenAI"


def test_plus_all_at_provider_reenables_only_that_provider(table_for):
    table = table_for("-all,+all@deepseek", providers=("openai", "deepseek"))
    assert allowed(table) == {("deepseek", "deepseek-chat"), ("deepseek", "deepseek-reasoner")}


def test_plus_all_enables_every_model_known_so_far_but_not_later_ones(table_for):
    table = table_for("-all,+all,-o3@OpenAI,+late@OpenRouter", providers=("openai", "openrouter"))
    assert table.is_allowed("openai", "gpt-4o")
    assert table.is_allowed("anthropic", "claude-sonnet-4-5")
    assert not table.is_allowed("openai", "o3")
    assert table.is_allowed("openrouter", "late")


@pytest.mark.parametrize(
    ("custom_models", "expected", "decided_by"),
    [
        ("-o3@OpenAI,+o3@OpenAI", True, "+o3@OpenAI"),
        ("+o3@OpenAI,-o3@OpenAI", False, "-o3@OpenAI"),
        ("-all,+o3@OpenAI,-all", False, "-all"),
        ("+o3@OpenAI,-all,+all@OpenAI", True, "+all@OpenAI"),
    ],
)
def test_entries_apply_left_to_right(table_for, custom_models, expected, decided_by):
    table = table_for(custom_models, providers=("openai",))
    assert table.is_allowed("openai", "o3") is expected
    assert table.find("openai", "o3").decided_by == decided_by


def test_rows_untouched_by_any_entry_say_built_in(table_for):
    table = table_for("-o3@OpenAI", providers=("openai",))
    assert table.find("openai", "gpt-4o").decided_by == "built-in"


def test_nonsense_entries_are_reported_not_applied(table_for):
    table = table_for("-all,+,=Label,+@OpenAI,+gpt-4o@OpenAI", providers=("openai",))
    assert allowed(table) == {("openai", "gpt-4o")}
    assert [p.entry for p in table.problems] == ["+", "=Label", "+@OpenAI"]


# -- a model without a provider --------------------------------------------


def test_model_without_provider_is_enabled_where_a_configured_provider_knows_it(table_for):
    table = table_for("-all,+gpt-4o", providers=("openrouter", "openai"))
    assert allowed(table) == {("openai", "gpt-4o")}
    assert table.find("openrouter", "gpt-4o") is None  # not added to a provider that lacks it


def test_model_without_provider_prefers_configured_providers_over_built_ins_elsewhere():
    table = with_catalogue("-all,+deepseek-chat", configured=("openrouter",))
    assert allowed(table) == {("openrouter", "deepseek-chat")}
    # Known only to a provider without a server key: enabled there for users' own keys.
    table = with_catalogue("-all,+claude-haiku-4-5", configured=("openrouter",))
    assert allowed(table) == {("anthropic", "claude-haiku-4-5")}


def test_disabling_without_provider_disables_it_everywhere():
    table = with_catalogue("-deepseek-chat", configured=("openrouter", "deepseek"))
    assert not table.is_allowed("openrouter", "deepseek-chat")
    assert not table.is_allowed("deepseek", "deepseek-chat")
    assert table.is_allowed("deepseek", "deepseek-reasoner")


def test_unknown_model_without_provider_goes_to_first_configured_openai_chat_provider(table_for):
    table = table_for("-all,+my-finetune", providers=("anthropic", "deepseek", "google"))
    assert allowed(table) == {("deepseek", "my-finetune")}  # Anthropic speaks another protocol
    assert table.find("deepseek", "my-finetune").decided_by == "+my-finetune"


def test_unknown_model_without_provider_goes_to_openai_when_nothing_is_configured(table_for):
    table = table_for("-all,+my-finetune", providers=())
    assert allowed(table) == {("openai", "my-finetune")}


# -- wildcards ---------------------------------------------------------------


def test_wildcard_enables_matching_catalogue_models():
    table = with_catalogue("-all,+anthropic/*@OpenRouter")
    assert allowed(table) == {
        ("openrouter", "anthropic/claude-sonnet-4.5"),
        ("openrouter", "anthropic/claude-haiku-4.5"),
    }
    assert table.find("openrouter", "anthropic/claude-haiku-4.5").decided_by == "+anthropic/*@OpenRouter"


def test_wildcard_disables_matching_models_and_treats_other_characters_literally():
    table = with_catalogue("-*:free@OpenRouter,-openai.gpt*@OpenRouter")
    assert not table.is_allowed("openrouter", "qwen/qwen3-32b:free")
    assert table.is_allowed("openrouter", "openai/gpt-4o")  # "." is not a regex dot
    assert table.is_allowed("openrouter", "anthropic/claude-haiku-4.5")
    assert [p.entry for p in table.problems] == ["-openai.gpt*@OpenRouter"]


def test_wildcard_never_adds_a_model():
    table = with_catalogue("-all,+mistralai/*@OpenRouter")
    assert allowed(table) == set()
    assert [p.entry for p in table.problems] == ["+mistralai/*@OpenRouter"]


def test_wildcard_is_case_sensitive():
    table = with_catalogue("-all,+Anthropic/*@OpenRouter")
    assert allowed(table) == set()


# -- references and the default model ----------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("gpt-4o@OpenAI", ("openai", "gpt-4o")),
        ("anthropic/claude-sonnet-4.5@openrouter", ("openrouter", "anthropic/claude-sonnet-4.5")),
        ("team@home/llama@Ollama", ("ollama", "team@home/llama")),
        ("gpt-4o", (None, "gpt-4o")),
        ("user@example", (None, "user@example")),  # not a provider: part of the name
        ("  deepseek-chat@DEEPSEEK ", ("deepseek", "deepseek-chat")),
        ("", (None, "")),
    ],
)
def test_parse_model_ref(ref, expected):
    assert parse_model_ref(ref) == expected


def test_default_model_with_provider(table_for):
    table = table_for("", providers=("openrouter", "deepseek"), default_model="deepseek-reasoner@DeepSeek")
    assert table.default_model() == ("deepseek", "deepseek-reasoner")


def test_default_model_without_provider_uses_the_provider_that_has_it(table_for):
    table = table_for("", providers=("openrouter", "openai"), default_model="o3")
    assert table.default_model() == ("openai", "o3")


def test_disallowed_default_model_falls_back_to_the_first_available(table_for):
    table = table_for(
        "-all,+gpt-4o-mini@OpenAI,+qwen/qwen3-32b:free@OpenRouter",
        providers=("openrouter", "openai"),
        default_model="o3@OpenAI",
    )
    # "First" follows the admin's order, not the registry's (OpenRouter comes first there).
    assert table.default_model() == ("openai", "gpt-4o-mini")


def test_default_model_the_server_cannot_reach_falls_back(table_for):
    table = table_for("", providers=("deepseek",), default_model="o3")  # only OpenAI has o3
    assert table.default_model() == ("deepseek", "deepseek-chat")
    # A user with their own OpenAI key can reach it.
    assert table.default_model(providers=("deepseek", "openai")) == ("openai", "o3")


def test_without_default_model_the_first_available_is_the_default(table_for):
    assert table_for("", providers=("deepseek",)).default_model() == ("deepseek", "deepseek-chat")


def test_no_default_model_when_nothing_is_available(table_for):
    assert table_for("-all", providers=("openai",)).default_model() is None


def test_resolve_rejects_a_disallowed_reference(table_for):
    table = table_for("-all,+gpt-4o@OpenAI", providers=("openai",))
    assert table.resolve("gpt-4o") == ("openai", "gpt-4o")
    assert table.resolve("o3@OpenAI") is None
    assert table.resolve("o3") is None


# -- the current table --------------------------------------------------------


def test_current_table_is_reused_until_custom_models_changes(table_for, settings):
    first = table_for("-all,+gpt-4o@OpenAI", providers=("openai",))
    assert ModelTable.current() is first
    settings.CUSTOM_MODELS = "-all,+o3@OpenAI"
    second = ModelTable.current()
    assert second is not first
    assert allowed(second) == {("openai", "o3")}


async def test_async_current_table_is_the_sync_one(table_for):
    table = await sync_to_async(table_for)("-all,+gpt-4o@OpenAI=GPT Four", providers=("openai",))
    assert await ModelTable.acurrent() is table
