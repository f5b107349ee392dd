"""Each provider's live model list: fetched with the server key, cached, refreshed.

The list comes from `provider.models_path` on the server URL and is
normalised to `CatalogueModel`s (id, name, context length, USD prices per
token, input modalities, reasoning support). OpenRouter says all of that;
Anthropic gives `id` and `display_name`; OpenAI, Google, DeepSeek and Ollama
mostly just `id`, so the rest stays unknown (None).

A provider's catalogue lives in the Django cache (Redis in production, so all
processes share one copy) under a key that includes a hash of the server URL:
pointing a provider elsewhere starts a fresh list. Beside it, a small "stamp"
key changes on every write, so a process can tell with one round trip whether
its parsed copy is still current (`ModelTable.current()` relies on this).

Refresh policy:
- No copy yet: the first caller fetches and waits (outside an event loop).
- A copy older than CATALOGUE_TTL: one background refresh (a cache lock keeps
  it to one per cluster); callers keep using the copy meanwhile.
- A failed refresh keeps the last good copy and records the error and its
  time; the next attempt waits RETRY_AFTER seconds.

The sync path uses its own short-lived `httpx.Client`: the shared
`http_client()` is an AsyncClient whose pooled connections belong to the event
loop that opened them, and a sync caller has no such loop to lend it.

Server keys never appear in an error or a log line: upstream error text is
scrubbed of every key in the pool.
"""

import asyncio
import functools
import hashlib
import logging
import ssl
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.cache import cache

from providers import shared_cache
from providers.registry import PROVIDERS, Provider, configured_providers, get_provider
from providers.transport import http_client

log = logging.getLogger(__name__)

CACHE_PREFIX = "catalogue:v1"
RETRY_AFTER = 60  # seconds between attempts while a provider keeps failing
LOCK_TIMEOUT = 120  # a refresh that died without unlocking frees the lock after this
READ_TIMEOUT = 30.0  # OpenRouter's list is large, but not five minutes large
MAX_ERROR_CHARS = 300
# Read of an error body before its secrets are scrubbed: past a key's length
# beyond what is kept, so that no key cut in two survives the cut.
_ERROR_WINDOW = MAX_ERROR_CHARS + 1000


@dataclass(frozen=True)
class CatalogueModel:
    id: str
    name: str = ""
    context_length: int | None = None
    prompt_price: Decimal | None = None  # USD per token
    completion_price: Decimal | None = None  # USD per token, reasoning tokens included
    input_modalities: tuple[str, ...] = ()
    supports_reasoning: bool | None = None  # None: the provider does not say

    def to_dict(self) -> dict[str, Any]:
        # Plain values in the cache: a pickled class would tie cached copies
        # to this module's shape across deploys.
        return {
            "id": self.id,
            "name": self.name,
            "context_length": self.context_length,
            "prompt_price": None if self.prompt_price is None else str(self.prompt_price),
            "completion_price": None if self.completion_price is None else str(self.completion_price),
            "input_modalities": list(self.input_modalities),
            "supports_reasoning": self.supports_reasoning,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CatalogueModel":
        return cls(
            id=data["id"],
            name=data.get("name") or "",
            context_length=data.get("context_length"),
            prompt_price=_price(data.get("prompt_price")),
            completion_price=_price(data.get("completion_price")),
            input_modalities=tuple(data.get("input_modalities") or ()),
            supports_reasoning=data.get("supports_reasoning"),
        )


@dataclass(frozen=True)
class Catalogue:
    """One provider's cached list and how it got there."""

    provider: str
    models: tuple[CatalogueModel, ...] = ()
    fetched_at: float | None = None  # epoch seconds of the last good copy
    error: str = ""  # the last attempt's error; "" once an attempt succeeds
    error_at: float | None = None
    stamp: str = ""  # changes on every write

    @property
    def age(self) -> float | None:
        """Seconds since the last good copy was fetched, None without one."""
        return None if self.fetched_at is None else max(0.0, time.time() - self.fetched_at)

    @functools.cached_property
    def by_id(self) -> dict[str, CatalogueModel]:
        return {model.id: model for model in self.models}

    def get(self, model_id: str) -> CatalogueModel | None:
        return self.by_id.get(model_id)

    def wants_refresh(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        if self.fetched_at is not None and now - self.fetched_at < settings.CATALOGUE_TTL:
            return False
        # Stale or never fetched; don't hammer an upstream that just failed.
        return self.error_at is None or now - self.error_at >= min(RETRY_AFTER, settings.CATALOGUE_TTL)

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "models": [model.to_dict() for model in self.models],
            "fetched_at": self.fetched_at,
            "error": self.error,
            "error_at": self.error_at,
            "stamp": self.stamp,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Catalogue":
        return cls(
            provider=data["provider"],
            models=tuple(CatalogueModel.from_dict(m) for m in data.get("models") or ()),
            fetched_at=data.get("fetched_at"),
            error=data.get("error") or "",
            error_at=data.get("error_at"),
            stamp=data.get("stamp") or "",
        )


class CatalogueError(Exception):
    """A model list could not be fetched; the message is safe to show to an admin."""


# ---------------------------------------------------------------------------
# Normalising an upstream's model list


def _price(value: Any) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        return None
    # OpenRouter prices a router like openrouter/auto at "-1": not knowable.
    if not price.is_finite() or price < 0:
        return None
    return price


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and value > 0:
        return int(value)
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return int(value)
    return None


_CONTEXT_KEYS = ("context_length", "context_window", "max_input_tokens", "max_model_len", "input_token_limit")


def _context_length(item: dict) -> int | None:
    for key in _CONTEXT_KEYS:
        if (found := _positive_int(item.get(key))) is not None:
            return found
    top = item.get("top_provider")
    return _positive_int(top.get("context_length")) if isinstance(top, dict) else None


def _input_modalities(item: dict) -> tuple[str, ...]:
    arch = item.get("architecture") if isinstance(item.get("architecture"), dict) else {}
    found = arch.get("input_modalities") or item.get("input_modalities")
    if not found and isinstance(arch.get("modality"), str):
        # The older OpenRouter shape: "text+image->text".
        found = arch["modality"].split("->")[0].split("+")
    if not isinstance(found, list):
        return ()
    return tuple(m.strip() for m in found if isinstance(m, str) and m.strip())


def _supports_reasoning(item: dict) -> bool | None:
    params = item.get("supported_parameters")
    if not isinstance(params, list):
        return None
    return "reasoning" in params or "include_reasoning" in params


def _strip_google_prefix(provider: Provider, text: str) -> str:
    # Gemini's OpenAI-compatible list says "models/gemini-2.5-pro"; chat
    # completions want "gemini-2.5-pro".
    if provider.slug == "google" and text.startswith("models/"):
        return text[len("models/") :]
    return text


def parse_models(provider: Provider | str, payload: Any) -> list[CatalogueModel]:
    """Normalise a models response body (`{"data": [...]}`) to CatalogueModels.

    Raises CatalogueError when the body is not a model list at all.
    """
    provider = _provider(provider)
    items = None
    if isinstance(payload, dict):
        items = payload.get("data", payload.get("models"))
    elif isinstance(payload, list):
        items = payload
    if not isinstance(items, list):
        raise CatalogueError("The response is not a model list.")
    models: dict[str, CatalogueModel] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"].strip():
            continue
        model_id = _strip_google_prefix(provider, item["id"].strip())
        name = item.get("display_name") or item.get("name")
        pricing = item.get("pricing") if isinstance(item.get("pricing"), dict) else {}
        models.setdefault(
            model_id,
            CatalogueModel(
                id=model_id,
                name=_strip_google_prefix(provider, name.strip()) if isinstance(name, str) else "",
                context_length=_context_length(item),
                prompt_price=_price(pricing.get("prompt")),
                completion_price=_price(pricing.get("completion")),
                input_modalities=_input_modalities(item),
                supports_reasoning=_supports_reasoning(item),
            ),
        )
    return list(models.values())


# ---------------------------------------------------------------------------
# Fetching


def _provider(provider: Provider | str) -> Provider:
    if isinstance(provider, Provider):
        return provider
    found = PROVIDERS.get(provider) or get_provider(provider)
    if found is None:
        raise CatalogueError(f"Unknown provider {provider!r}.")
    return found


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _timeout() -> httpx.Timeout:
    connect = settings.UPSTREAM_CONNECT_TIMEOUT
    return httpx.Timeout(connect=connect, read=READ_TIMEOUT, write=READ_TIMEOUT, pool=connect)


@dataclass(frozen=True)
class _Fetch:
    """Everything one fetch needs, taken from settings when it was planned.

    A background refresh must not read settings again later: they may have
    changed (a test's settings fixture, say) by the time it runs.
    """

    provider: Provider
    url: str
    headers: dict[str, str] = field(repr=False)
    params: dict[str, str]
    secrets: tuple[str, ...] = field(repr=False)
    timeout: httpx.Timeout
    cache_key: str

    def models_from(self, response: httpx.Response) -> list[CatalogueModel]:
        if response.status_code != 200:
            raise CatalogueError(self.scrub(f"HTTP {response.status_code}: {_error_text(response)}"))
        try:
            payload = response.json()
        except ValueError:
            raise CatalogueError(f"HTTP 200 but the body is not JSON ({self.url}).") from None
        return parse_models(self.provider, payload)

    def scrub(self, text: str) -> str:
        return _scrub(text, self.secrets)

    def describe(self, exc: Exception) -> str:
        if isinstance(exc, CatalogueError):
            return self.scrub(str(exc))
        detail = str(exc) or "no detail"
        return self.scrub(f"{type(exc).__name__}: {detail} ({self.url})")


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:_ERROR_WINDOW] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    if isinstance(error, str):
        return error
    return response.text[:_ERROR_WINDOW]


def _plan(provider: Provider, base_url: str | None = None, key: str | None = None) -> _Fetch:
    base_url = provider.server_url if base_url is None else base_url
    key = provider.pick_server_key() if key is None else key
    params = {"limit": "1000"} if provider.slug == "anthropic" else {}  # Anthropic pages by 20
    return _Fetch(
        provider=provider,
        url=provider.url_for(base_url, provider.models_path),
        headers=provider.request_headers(key),
        params=params,
        secrets=(key, *provider.server_keys, urlsplit(base_url).password or ""),  # a password in the URL too
        timeout=_timeout(),
        cache_key=_key(provider, base_url),
    )


_FETCH_ERRORS = (httpx.HTTPError, httpx.InvalidURL, CatalogueError, ValueError)


async def afetch_models(
    provider: Provider | str, *, base_url: str, key: str, user_supplied: bool = False
) -> list[CatalogueModel]:
    """Fetch a model list from any URL with any key, without caching.

    For "Test connection" with a user's own credentials; pass
    `user_supplied=True` for a URL the user typed (SSRF-guarded client).
    Raises CatalogueError with a message that never contains the key.
    """
    fetch = _plan(_provider(provider), base_url, key)
    try:
        response = await http_client(user_supplied).get(
            fetch.url, headers=fetch.headers, params=fetch.params, timeout=fetch.timeout
        )
        return fetch.models_from(response)
    except _FETCH_ERRORS as exc:
        raise CatalogueError(fetch.describe(exc)) from None


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~70 ms; once per process is enough.
    return httpx.create_ssl_context(trust_env=False)


def _fetch_sync(fetch: _Fetch) -> list[CatalogueModel]:
    client = httpx.Client(timeout=fetch.timeout, follow_redirects=False, trust_env=False, verify=_ssl_context())
    with client:
        response = client.get(fetch.url, headers=fetch.headers, params=fetch.params)
    return fetch.models_from(response)


async def _fetch_async(fetch: _Fetch) -> list[CatalogueModel]:
    response = await http_client().get(fetch.url, headers=fetch.headers, params=fetch.params, timeout=fetch.timeout)
    return fetch.models_from(response)


def _outcome(fetch: _Fetch, previous: Catalogue | None, models=None, exc: Exception | None = None) -> Catalogue:
    now = time.time()
    stamp = uuid.uuid4().hex
    if exc is None:
        return Catalogue(fetch.provider.slug, tuple(models), fetched_at=now, stamp=stamp)
    message = fetch.describe(exc)
    log.warning("Model list of %s could not be refreshed: %s", fetch.provider.slug, message)
    kept = previous or Catalogue(fetch.provider.slug)
    return Catalogue(fetch.provider.slug, kept.models, kept.fetched_at, message, now, stamp)


def _not_configured(provider: Provider) -> Catalogue:
    what = "an API key" if provider.needs_key else "a URL"
    return Catalogue(
        provider.slug,
        error=f"{provider.name} has no server {what} ({provider.key_setting or provider.url_setting}).",
        error_at=time.time(),
    )


# ---------------------------------------------------------------------------
# The cache


def _key(provider: Provider, base_url: str | None = None) -> str:
    url = provider.server_url if base_url is None else base_url
    return f"{CACHE_PREFIX}:{provider.slug}:{hashlib.sha256(url.encode()).hexdigest()[:16]}"


def _stamp_key(key: str) -> str:
    return key + ":stamp"


# Parsed copies by cache key, reused while the stamp in the cache matches.
_parsed: dict[str, Catalogue] = {}


def _stale_keys(keys: Iterable[str], stamps: dict[str, str]) -> list[str]:
    wanted = []
    for key in keys:
        stamp = stamps.get(_stamp_key(key))
        held = _parsed.get(key)
        if stamp and (held is None or held.stamp != stamp):
            wanted.append(key)
    return wanted


def _combine(keys: dict[str, str], stamps: dict[str, str], loaded: dict[str, Any]) -> dict[str, Catalogue | None]:
    result: dict[str, Catalogue | None] = {}
    for slug, key in keys.items():
        stamp = stamps.get(_stamp_key(key))
        if not stamp:
            result[slug] = None
            continue
        if key in loaded:
            try:
                _parsed[key] = Catalogue.from_dict(loaded[key])
            except (KeyError, TypeError, ValueError):
                _parsed.pop(key, None)  # a copy written by another version of this code
        held = _parsed.get(key)
        result[slug] = held if held is not None and held.provider == slug else None
    return result


def _load(keys: dict[str, str]) -> dict[str, Catalogue | None]:
    """The cached catalogues for {provider slug: cache key}."""
    stamps = cache.get_many([_stamp_key(k) for k in keys.values()]) if keys else {}
    wanted = _stale_keys(keys.values(), stamps)
    return _combine(keys, stamps, cache.get_many(wanted) if wanted else {})


async def _aload(keys: dict[str, str]) -> dict[str, Catalogue | None]:
    stamps = await shared_cache.aget_many([_stamp_key(k) for k in keys.values()]) if keys else {}
    wanted = _stale_keys(keys.values(), stamps)
    return _combine(keys, stamps, await shared_cache.aget_many(wanted) if wanted else {})


def _store(fetch: _Fetch, catalogue: Catalogue) -> None:
    # Data first, stamp second: a reader that sees the new stamp finds the new data.
    cache.set(fetch.cache_key, catalogue.to_dict(), timeout=None)
    cache.set(_stamp_key(fetch.cache_key), catalogue.stamp, timeout=None)
    _parsed[fetch.cache_key] = catalogue


async def _astore(fetch: _Fetch, catalogue: Catalogue) -> None:
    await shared_cache.aset(fetch.cache_key, catalogue.to_dict(), timeout=None)
    await shared_cache.aset(_stamp_key(fetch.cache_key), catalogue.stamp, timeout=None)
    _parsed[fetch.cache_key] = catalogue


# ---------------------------------------------------------------------------
# Public: reading and refreshing


def refresh(provider: Provider | str) -> Catalogue:
    """Fetch `provider`'s list now and cache it; on failure keep the last good copy.

    Returns the resulting catalogue; its `error` says what went wrong, if anything.
    """
    provider = _provider(provider)
    if not provider.is_configured:
        return _not_configured(provider)
    return _refresh_planned(_plan(provider))


def _refresh_planned(fetch: _Fetch) -> Catalogue:
    try:
        result = _outcome(fetch, None, models=_fetch_sync(fetch))
    except _FETCH_ERRORS as exc:
        result = _outcome(fetch, _load({fetch.provider.slug: fetch.cache_key})[fetch.provider.slug], exc=exc)
    _store(fetch, result)
    return result


async def arefresh(provider: Provider | str) -> Catalogue:
    provider = _provider(provider)
    if not provider.is_configured:
        return _not_configured(provider)
    return await _arefresh_planned(_plan(provider))


async def _arefresh_planned(fetch: _Fetch) -> Catalogue:
    try:
        result = _outcome(fetch, None, models=await _fetch_async(fetch))
    except _FETCH_ERRORS as exc:
        result = _outcome(fetch, (await _aload({fetch.provider.slug: fetch.cache_key}))[fetch.provider.slug], exc=exc)
    await _astore(fetch, result)
    return result


# Background tasks are held here so the event loop does not drop them half-way.
_background: set[asyncio.Task] = set()


def _lock_key(fetch: _Fetch) -> str:
    return fetch.cache_key + ":refreshing"


def _in_background(provider: Provider) -> None:
    """Start one refresh, unless one is already running somewhere in the cluster."""
    fetch = _plan(provider)
    if not cache.add(_lock_key(fetch), 1, timeout=LOCK_TIMEOUT):
        return
    if _in_event_loop():  # a sync caller on the loop's thread: the loop does the work
        _start_task(fetch)
    else:
        name = f"catalogue-refresh-{provider.slug}"
        threading.Thread(target=_unlocking_refresh, args=(fetch,), name=name, daemon=True).start()


async def _ain_background(provider: Provider) -> None:
    fetch = _plan(provider)
    if await shared_cache.aadd(_lock_key(fetch), 1, timeout=LOCK_TIMEOUT):
        _start_task(fetch)


def _start_task(fetch: _Fetch) -> None:
    task = asyncio.get_running_loop().create_task(_unlocking_arefresh(fetch))
    _background.add(task)
    task.add_done_callback(_background.discard)


def _unlocking_refresh(fetch: _Fetch) -> None:
    try:
        _refresh_planned(fetch)
    finally:
        cache.delete(_lock_key(fetch))


async def _unlocking_arefresh(fetch: _Fetch) -> None:
    try:
        await _arefresh_planned(fetch)
    finally:
        await shared_cache.adelete(_lock_key(fetch))


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def catalogues_for(providers: Iterable[Provider]) -> dict[str, Catalogue]:
    """The cached catalogue of each configured provider, fetching the ones never fetched.

    A first fetch makes the caller wait, except inside an event loop (a sync
    call there must not block it): then it runs in the background and the
    provider shows an empty catalogue meanwhile. Stale copies are refreshed in
    the background.
    """
    providers = [p for p in providers if p.is_configured]
    found = _load({p.slug: _key(p) for p in providers})
    missing = [p for p in providers if found[p.slug] is None]
    if missing and not _in_event_loop():
        with ThreadPoolExecutor(max_workers=len(missing)) as pool:
            for provider, fetched in zip(missing, pool.map(refresh, missing)):
                found[provider.slug] = fetched
    result, wanted = _refresh_wanted(providers, found)
    for provider in wanted:
        _in_background(provider)
    return result


async def acatalogues_for(providers: Iterable[Provider]) -> dict[str, Catalogue]:
    providers = [p for p in providers if p.is_configured]
    found = await _aload({p.slug: _key(p) for p in providers})
    missing = [p for p in providers if found[p.slug] is None]
    for provider, fetched in zip(missing, await asyncio.gather(*(arefresh(p) for p in missing))):
        found[provider.slug] = fetched
    result, wanted = _refresh_wanted(providers, found)
    for provider in wanted:
        await _ain_background(provider)
    return result


def _refresh_wanted(
    providers: list[Provider], found: dict[str, Catalogue | None]
) -> tuple[dict[str, Catalogue], list[Provider]]:
    """Each provider's catalogue (empty while a first fetch is pending) and those to refresh."""
    result, wanted = {}, []
    now = time.time()
    for provider in providers:
        catalogue = found[provider.slug]
        if catalogue is None or catalogue.wants_refresh(now):
            wanted.append(provider)
        result[provider.slug] = catalogue or Catalogue(provider.slug)
    return result, wanted


def cached_catalogue(provider: Provider | str) -> Catalogue | None:
    """What the cache holds for `provider` now; never fetches (admin page, costs)."""
    provider = _provider(provider)
    return _load({provider.slug: _key(provider)})[provider.slug]


async def acached_catalogue(provider: Provider | str) -> Catalogue | None:
    provider = _provider(provider)
    return (await _aload({provider.slug: _key(provider)}))[provider.slug]


def status() -> list[tuple[Provider, Catalogue | None]]:
    """Every configured provider with what the cache holds for it (admin page: age, error)."""
    providers = configured_providers()
    found = _load({p.slug: _key(p) for p in providers})
    return [(p, found[p.slug]) for p in providers]


async def astatus() -> list[tuple[Provider, Catalogue | None]]:
    providers = configured_providers()
    found = await _aload({p.slug: _key(p) for p in providers})
    return [(p, found[p.slug]) for p in providers]


# ---------------------------------------------------------------------------
# Cost


def _tokens(usage: Any, name: str) -> int:
    value = usage.get(name) if isinstance(usage, dict) else getattr(usage, name, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _cost(catalogue: Catalogue | None, model: str, usage: Any) -> Decimal | None:
    entry = catalogue.get(model) if catalogue is not None else None
    if entry is None or entry.prompt_price is None or entry.completion_price is None:
        return None
    # Completion tokens already include reasoning tokens (OpenRouter's
    # convention, which the adapters follow), so those are not added again.
    return _tokens(usage, "prompt_tokens") * entry.prompt_price + _tokens(usage, "completion_tokens") * (
        entry.completion_price
    )


def cost_from_prices(provider_slug: str, model: str, usage: Any) -> Decimal | None:
    """USD cost of `usage` (a `providers.events.Usage` or a usage dict) at catalogue prices.

    For when the provider reports no cost. None when the catalogue does not
    price this model.
    """
    provider = get_provider(provider_slug)
    return _cost(cached_catalogue(provider), model, usage) if provider else None


async def acost_from_prices(provider_slug: str, model: str, usage: Any) -> Decimal | None:
    provider = get_provider(provider_slug)
    return _cost(await acached_catalogue(provider), model, usage) if provider else None
