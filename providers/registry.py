"""The provider registry: one entry per upstream.

Adding a provider is one entry here plus, at most, one adapter in
`providers/adapters/`. Server keys and URLs come from the settings of the
names in `key_setting` / `url_setting` (SPEC section 3).
"""

import random
from dataclasses import dataclass, field
from typing import Literal

from django.conf import settings
from django.utils.encoding import iri_to_uri

Protocol = Literal["openai-chat", "anthropic-messages"]
ReasoningStyle = Literal["openrouter", "openai", "deepseek", "anthropic", "none"]


@dataclass(frozen=True)
class Provider:
    slug: str
    name: str
    default_url: str
    protocol: Protocol
    # Paths appended to the base URL (NextChat's convention, SPEC section 3).
    chat_path: str
    models_path: str
    key_setting: str = ""
    url_setting: str = ""
    # "bearer": Authorization: Bearer <key>; "x-api-key": Anthropic's header;
    # "none": a keyless local server.
    auth: Literal["bearer", "x-api-key", "none"] = "bearer"
    extra_headers: dict[str, str] = field(default_factory=dict)
    reasoning: ReasoningStyle = "none"
    builtin_models: tuple[str, ...] = ()
    messages_path: str = ""  # an Anthropic-compatible endpoint, where there is one
    generation_path: str = ""  # OpenRouter's cost look-up
    icon: str = ""
    # A last assistant message is the start of the answer to write, not one to answer (chatapp.upstream.continuation).
    prefills: bool = False

    @property
    def needs_key(self) -> bool:
        return self.auth != "none"

    @property
    def server_url(self) -> str:
        return (getattr(settings, self.url_setting, "") if self.url_setting else "") or self.default_url

    @property
    def public_server_url(self) -> str:
        """The server's URL if it is the vendor's public one; "" for one the admin set (it may be internal)."""
        return self.server_url if self.server_url == self.default_url else ""

    @property
    def server_keys(self) -> list[str]:
        raw = getattr(settings, self.key_setting, "") if self.key_setting else ""
        return [key.strip() for key in raw.split(",") if key.strip()]

    @property
    def is_configured(self) -> bool:
        """The server can serve this provider without a user's own key."""
        if not self.needs_key:
            return bool(getattr(settings, self.url_setting, ""))
        return bool(self.server_keys)

    def pick_server_key(self) -> str:
        """One key of the pool per request."""
        keys = self.server_keys
        return random.choice(keys) if keys else ""

    def url_for(self, base_url: str, path: str) -> str:
        """Join a base URL and a fixed path without doubling a version segment.

        `https://openrouter.ai/api` + `/v1/models` and `https://openrouter.ai/api/v1`
        + `/v1/models` both give `https://openrouter.ai/api/v1/models`; the
        same for a base that ends with more of the path, as Google's documented
        `.../v1beta/openai/` does for `/v1beta/openai/models`.
        """
        base = base_url.rstrip("/")
        segments = path.strip("/").split("/")
        for count in range(len(segments) - 1, 0, -1):  # the longest leading part of the path first
            leading = "/" + "/".join(segments[:count])
            if base.endswith(leading):
                return f"{base[: -len(leading)]}{path}"
        return f"{base}{path}"

    def auth_headers(self, key: str) -> dict[str, str]:
        if not key or self.auth == "none":
            return {}
        if self.auth == "x-api-key":
            return {"x-api-key": key}
        return {"Authorization": f"Bearer {key}"}

    def request_headers(self, key: str) -> dict[str, str | bytes]:
        headers = dict(self.extra_headers)
        if self.slug == "openrouter":
            # Header values go out as ASCII: an address as a URI, a title
            # ("切换台") as its UTF-8 bytes; as text, httpx refuses either.
            if settings.OPENROUTER_APP_URL:
                headers["HTTP-Referer"] = iri_to_uri(settings.OPENROUTER_APP_URL)
            if title := settings.OPENROUTER_APP_TITLE:
                headers["X-OpenRouter-Title"] = headers["X-Title"] = title if title.isascii() else title.encode()
        headers.update(self.auth_headers(key))
        return headers


ANTHROPIC_VERSION = "2023-06-01"

PROVIDERS: dict[str, Provider] = {
    p.slug: p
    for p in [
        Provider(
            slug="openrouter",
            name="OpenRouter",
            default_url="https://openrouter.ai/api",
            protocol="openai-chat",
            chat_path="/v1/chat/completions",
            models_path="/v1/models",
            messages_path="/v1/messages",
            generation_path="/v1/generation",
            key_setting="OPENROUTER_API_KEY",
            url_setting="OPENROUTER_URL",
            reasoning="openrouter",
            builtin_models=("openrouter/auto",),
            icon="icons/openrouter.svg",
            prefills=True,
        ),
        Provider(
            slug="openai",
            name="OpenAI",
            default_url="https://api.openai.com",
            protocol="openai-chat",
            chat_path="/v1/chat/completions",
            models_path="/v1/models",
            key_setting="OPENAI_API_KEY",
            url_setting="OPENAI_URL",
            reasoning="openai",
            builtin_models=("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3", "o4-mini"),
            icon="icons/openai.svg",
        ),
        Provider(
            slug="anthropic",
            name="Anthropic",
            default_url="https://api.anthropic.com",
            protocol="anthropic-messages",
            chat_path="/v1/messages",
            models_path="/v1/models",
            messages_path="/v1/messages",
            key_setting="ANTHROPIC_API_KEY",
            url_setting="ANTHROPIC_URL",
            auth="x-api-key",
            extra_headers={"anthropic-version": ANTHROPIC_VERSION},
            reasoning="anthropic",
            builtin_models=("claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"),
            icon="icons/anthropic.svg",
            prefills=True,
        ),
        Provider(
            slug="deepseek",
            name="DeepSeek",
            default_url="https://api.deepseek.com",
            protocol="openai-chat",
            chat_path="/v1/chat/completions",
            models_path="/v1/models",
            key_setting="DEEPSEEK_API_KEY",
            url_setting="DEEPSEEK_URL",
            reasoning="deepseek",
            builtin_models=("deepseek-chat", "deepseek-reasoner"),
            icon="icons/deepseek.svg",
        ),
        Provider(
            slug="google",
            name="Google Gemini",
            default_url="https://generativelanguage.googleapis.com",
            protocol="openai-chat",
            chat_path="/v1beta/openai/chat/completions",
            models_path="/v1beta/openai/models",
            key_setting="GOOGLE_API_KEY",
            url_setting="GOOGLE_URL",
            reasoning="openai",
            builtin_models=("gemini-2.5-pro", "gemini-2.5-flash"),
            icon="icons/google.svg",
        ),
        Provider(
            slug="ollama",
            name="Ollama",
            default_url="http://127.0.0.1:11434",
            protocol="openai-chat",
            chat_path="/v1/chat/completions",
            models_path="/v1/models",
            url_setting="OLLAMA_URL",
            auth="none",
            reasoning="deepseek",
            icon="icons/ollama.svg",
        ),
    ]
}


def get_provider(slug_or_name: str) -> Provider | None:
    """Look a provider up by slug or display name, case-insensitively."""
    wanted = slug_or_name.strip().lower()
    for provider in PROVIDERS.values():
        if wanted in (provider.slug, provider.name.lower()):
            return provider
    return None


def configured_providers() -> list[Provider]:
    return [p for p in PROVIDERS.values() if p.is_configured]
