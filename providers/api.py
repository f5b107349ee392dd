"""The proxy API (SPEC section 8): OpenAI- and Anthropic-compatible routes for scripts and tools.

    POST /api/<provider>/v1/chat/completions   OpenAI Chat Completions (openai-chat providers)
    POST /api/<provider>/v1/messages           Anthropic Messages (anthropic, openrouter)
    GET  /api/<provider>/v1/models[/<id>]      the allowed models, OpenAI list format

Nothing else is forwarded: this is not an open proxy. A request goes through
the same rules as the chat (allow-list, credentials, accounting) and then
upstream as the client sent it: the original body bytes, with headers built
from scratch (the client's Authorization, x-api-key and cookies never leave).
Streams are relayed as they arrive (what arrived together in one piece,
providers.transport.coalesced); usage is read on the side
(providers.api_usage). The answer keeps the upstream's status and body,
except that our key is cut out of error bodies.

Decisions:
- Auth is a personal token (`sb-...`) as `Authorization: Bearer` or
  `x-api-key`, on every route; never the session. Tokens and credentials
  are remembered for a few seconds (providers.api_auth).
- The allow-list covers every model a request can reach: `model` and
  OpenRouter's fallback list `models`; one outside it refuses the request.
- No usable provider key (none stored, none on the server) answers 401
  `provider_key_missing`: the request lacks a credential, only not ours.
- The anthropic provider speaks Messages only: its chat/completions route
  answers 404 and names /v1/messages.
- `anthropic-version` upstream: the registry's for Anthropic itself (one
  place to move it, whatever version a client's SDK was built for), the
  client's for OpenRouter's Messages endpoint; `anthropic-beta` passes
  through on both.
- For an OpenAI-style stream that did not say, `stream_options.include_usage`
  is switched on so the request can be accounted; the client then sees one
  more chunk, with `choices: []` and the usage, as the SDKs expect.
- Requests refused before reaching an upstream (400/401/403/404/413/429)
  are not accounted; every forwarded one is, 502/504 and 499 included.
"""

import asyncio
import functools
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from providers import api_auth, ratelimit
from providers.api_auth import authenticate, endpoint_for
from providers.api_errors import ApiError, Dialect, error_message
from providers.api_usage import Call, UsageReader, account, usage_of_answer
from providers.model_table import ModelEntry, ModelTable
from providers.registry import ANTHROPIC_VERSION, PROVIDERS, Provider
from providers.transport import UpstreamBlocked, UpstreamUnavailable, coalesced, open_upstream
from providers.usage import CLIENT_CLOSED

logger = logging.getLogger(__name__)

TOKEN_CACHE_SECONDS = api_auth.CACHE_SECONDS

# Upstream response headers a client may see; everything else (cookies,
# hop-by-hop headers, the upstream's own rate limits) stays here.
PASSED_HEADERS = ("retry-after", "request-id", "x-request-id")
_ANTHROPIC_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")
_ANTHROPIC_BETA = re.compile(r"[A-Za-z0-9._,\- ]{1,500}")


@dataclass(frozen=True)
class Route:
    dialect: Dialect
    upstream_path: Callable[[Provider], str]  # "" when the provider has no such endpoint


CHAT = Route("openai", lambda p: p.chat_path if p.protocol == "openai-chat" else "")
MESSAGES = Route("anthropic", lambda p: p.messages_path)


def _answers_errors(dialect: Dialect):
    """Our errors in the route's shape; an unexpected failure is logged and answered, never a bare 500 page."""

    def decorate(view):
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponseBase:
            try:
                return await view(request, *args, **kwargs)
            except ApiError as error:
                return error.response(dialect)
            except Exception:
                logger.exception("proxy API: %s %s failed unexpectedly", request.method, request.path)
                error = ApiError(500, "internal_error", _("The request failed because of an error on the server."))
                return error.response(dialect)

        return csrf_exempt(login_not_required(wrapper))

    return decorate


# Views ----------------------------------------------------------------------


@_answers_errors("openai")
async def chat_completions(request: HttpRequest, provider: str) -> HttpResponseBase:
    return await _proxy(request, provider, CHAT)


@_answers_errors("anthropic")
async def messages(request: HttpRequest, provider: str) -> HttpResponseBase:
    return await _proxy(request, provider, MESSAGES)


@_answers_errors("openai")
async def models(request: HttpRequest, provider: str) -> HttpResponseBase:
    found = _provider(provider)
    _require_method(request, "GET")
    await _count(await authenticate(request))
    table = await ModelTable.acurrent()
    data = [_model_object(row) for row in table.available(found.slug)]
    return JsonResponse(
        {
            "object": "list",
            "data": data,
            # Anthropic's list fields, so its SDK can page through this too.
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


@_answers_errors("openai")
async def model_detail(request: HttpRequest, provider: str, model: str) -> HttpResponseBase:
    found = _provider(provider)
    _require_method(request, "GET")
    await _count(await authenticate(request))
    row = next((r for r in (await ModelTable.acurrent()).available(found.slug) if r.name == model), None)
    if row is None:
        raise ApiError(404, "model_not_found", _("The model %(model)s is not available.") % {"model": model})
    return JsonResponse(_model_object(row))


@_answers_errors("openai")
async def unknown_path(request: HttpRequest, path: str = "") -> HttpResponseBase:
    raise ApiError(
        404,
        "unknown_path",
        _(
            "Unknown API path. This server forwards POST /api/<provider>/v1/chat/completions, "
            "POST /api/<provider>/v1/messages and GET /api/<provider>/v1/models."
        ),
    )


# The request path -----------------------------------------------------------


async def _proxy(request: HttpRequest, slug: str, route: Route) -> HttpResponseBase:
    started = time.monotonic()
    provider = _provider(slug)
    upstream_path = route.upstream_path(provider)
    if not upstream_path:
        raise _route_missing(provider, route)
    _require_method(request, "POST")
    _check_declared_length(request)
    user = await authenticate(request)
    await _count(user)
    body = _read_body(request)
    payload = _parse(body)
    model = payload["model"]
    table = await ModelTable.acurrent()
    for asked in _models_asked(payload):
        if not table.is_allowed(provider.slug, asked):
            raise ApiError(
                403,
                "model_not_allowed",
                _("The model %(model)s is not allowed for %(provider)s on this server.")
                % {"model": asked, "provider": provider.name},
            )
    endpoint = await endpoint_for(user, provider)
    stream = payload.get("stream") is True
    if route is CHAT and stream and "stream_options" not in payload:
        body = _asking_for_usage(body, payload)
    call = Call(user.pk, provider, model, endpoint, route.dialect, started)
    url = provider.url_for(endpoint.base_url, upstream_path)
    return await _forward(call, url, _upstream_headers(request, provider, endpoint.api_key, route, stream), body)


def _provider(slug: str) -> Provider:
    provider = PROVIDERS.get(slug)
    if provider is None:
        raise ApiError(
            404,
            "unknown_provider",
            _("Unknown provider %(provider)s. Known providers: %(known)s.")
            % {"provider": slug, "known": ", ".join(PROVIDERS)},
        )
    return provider


def _route_missing(provider: Provider, route: Route) -> ApiError:
    if route is CHAT:
        message = _("%(provider)s speaks the Anthropic Messages API: use /api/%(slug)s/v1/messages.")
    else:
        message = _(
            "%(provider)s has no Anthropic Messages endpoint: use /api/%(slug)s/v1/chat/completions."
        )
    return ApiError(404, "unknown_path", message % {"provider": provider.name, "slug": provider.slug})


def _require_method(request: HttpRequest, method: str) -> None:
    if request.method != method:
        raise ApiError(
            405,
            "method_not_allowed",
            _("Method %(method)s is not allowed here; use %(allowed)s.")
            % {"method": request.method, "allowed": method},
            headers={"Allow": method},
        )


def _too_large() -> ApiError:
    return ApiError(
        413,
        "request_too_large",
        _("The request body is larger than %(limit)d bytes.") % {"limit": settings.PROXY_MAX_BODY_BYTES},
    )


def _check_declared_length(request: HttpRequest) -> None:
    """Refuse by Content-Length before reading anything."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ApiError(400, "invalid_request", _("The Content-Length header is not a number.")) from None
    if declared > settings.PROXY_MAX_BODY_BYTES:
        raise _too_large()


def _read_body(request: HttpRequest) -> bytes:
    limit = settings.PROXY_MAX_BODY_BYTES
    body = request.read(limit + 1)
    if len(body) > limit:
        raise _too_large()
    return body


def _parse(body: bytes) -> dict:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", _("The request body is not valid JSON.")) from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", _("The request body must be a JSON object."))
    model = payload.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ApiError(400, "missing_model", _("The request must name a model (a non-empty string)."))
    if not isinstance(payload.get("messages"), list):
        raise ApiError(400, "invalid_messages", _("The request must have a list of messages."))
    return payload


def _models_asked(payload: dict) -> list[str]:
    """Every model the request can reach upstream, each to be checked against the allow-list.

    `model`, and OpenRouter's fallback list `models` (the upstream moves on
    to those when the first fails, e.g. on a prompt too long for it). A key
    that only differs in case (`"Model"`) is refused: the body goes upstream
    as sent, and a case-insensitive reader (Go's, Ollama's) could take it
    for the model.
    """
    for key in payload:
        if key.lower() in ("model", "models") and key not in ("model", "models"):
            raise ApiError(400, "invalid_request", _("Unknown field %(field)s.") % {"field": key})
    fallbacks = payload.get("models", [])
    if not isinstance(fallbacks, list) or not all(isinstance(m, str) and m.strip() for m in fallbacks):
        raise ApiError(400, "invalid_request", _("models must be a list of model names."))
    return [payload["model"], *fallbacks]


def _asking_for_usage(body: bytes, payload: dict) -> bytes:
    """The body with `stream_options.include_usage` on, the original bytes otherwise untouched."""
    if json.detect_encoding(body) == "utf-8" and body.lstrip()[:1] == b"{":
        # The key is absent, so putting it first keeps the object valid.
        start = body.index(b"{") + 1
        return body[:start] + b'"stream_options":{"include_usage":true},' + body[start:]
    return json.dumps({**payload, "stream_options": {"include_usage": True}}).encode()


async def _count(user) -> None:
    """One request against the user's RATE_LIMIT; 429 when over it."""
    retry_after = await ratelimit.ahit(user.pk)
    if retry_after is not None:
        raise ApiError(
            429,
            "rate_limited",
            ratelimit.refusal(retry_after),
            headers={"Retry-After": str(retry_after)},
        )


def forget_tokens() -> None:
    """Forget remembered tokens and keys in this process at once (the settings page revoking a token)."""
    api_auth.forget()


def _upstream_headers(request: HttpRequest, provider: Provider, key: str, route: Route, stream: bool) -> dict:
    headers = provider.request_headers(key)
    headers["Content-Type"] = "application/json"
    headers["Accept"] = "text/event-stream" if stream else "application/json"
    # Bytes are relayed as they come: an encoded body would need decoding first.
    headers["Accept-Encoding"] = "identity"
    if route is MESSAGES:
        # The registry pins the version Anthropic itself gets; other Messages
        # endpoints (OpenRouter's) get the client's, else that one.
        version = request.headers.get("anthropic-version", "")
        headers.setdefault("anthropic-version", version if _ANTHROPIC_VERSION.fullmatch(version) else ANTHROPIC_VERSION)
        beta = request.headers.get("anthropic-beta", "")
        if _ANTHROPIC_BETA.fullmatch(beta):
            headers["anthropic-beta"] = beta
    return headers


# Forwarding -----------------------------------------------------------------


async def _forward(call: Call, url: str, headers: dict, body: bytes) -> HttpResponseBase:
    exchange = _exchange(call, url, headers, body)
    try:
        response = await anext(exchange)
    except UpstreamUnavailable as exc:
        account(call, status=exc.http_status, error=str(exc))
        raise _unavailable(exc) from None
    except (httpx.HTTPError, ValueError) as exc:  # e.g. a stored key that cannot be sent in a header
        account(call, status=502, error=type(exc).__name__)
        raise ApiError(502, "upstream_unreachable", _("The request could not be sent upstream.")) from None
    call.first_byte = time.monotonic()
    handed_over = False
    try:
        if 300 <= response.status_code < 400:
            account(call, status=502, error=f"redirect {response.status_code}")
            raise ApiError(
                502, "upstream_redirect", _("The upstream answered with a redirect, which is not followed.")
            )
        if response.is_success and _is_event_stream(response):
            call.first_byte = None  # the first chunk of the body, not the head
            handed_over = True
            return StreamingHttpResponse(exchange, status=response.status_code, headers=_stream_headers(response))
        try:
            content = await response.aread()
        except httpx.HTTPError as exc:
            status = 504 if isinstance(exc, httpx.TimeoutException) else 502
            account(call, status=status, error=type(exc).__name__)
            raise _broken(status) from None
    finally:
        if not handed_over:
            await exchange.aclose()
    return _whole_answer(call, response, content)


async def _exchange(call: Call, url: str, headers: dict, body: bytes) -> AsyncIterator:
    """The upstream exchange: yields the response (its head), then, if iterated on, the body as it arrives.

    A generator, so that its holder (the view, then Django's streaming
    response) ends the exchange by closing it; when the client goes away
    Django cancels or closes it, leaving `open_upstream` closes the upstream
    connection at once, and the upstream stops generating. A generator
    dropped unclosed is closed by the event loop.
    """
    async with open_upstream("POST", url, headers, body, call.endpoint.user_supplied) as response:
        yield response
        reader = UsageReader(call.dialect)
        status, error = response.status_code, ""
        try:
            async for chunk in coalesced(response):
                if call.first_byte is None:
                    call.first_byte = time.monotonic()
                reader.feed(chunk)
                yield chunk
        except (asyncio.CancelledError, GeneratorExit):
            if not reader.done:  # SDKs may hang up right after the last event: that is no 499
                status, error = CLIENT_CLOSED, "the client closed the connection"
            raise
        except httpx.HTTPError as exc:
            status = 504 if isinstance(exc, httpx.TimeoutException) else 502
            error = f"the upstream stream broke off ({type(exc).__name__})"
            yield _stream_error_event(call.dialect, _broken(status))
        except Exception:
            logger.exception("proxy API: relaying %s failed unexpectedly", call.provider.slug)
            status, error = 502, "relay failure"
            yield _stream_error_event(call.dialect, _broken(502))
        finally:
            reader.close()
            if reader.error and not error:
                status, error = 502, reader.error  # the upstream failed after its 200
            account(call, status=status, usage=reader.usage, response_id=reader.response_id, error=error)


def _is_event_stream(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").split(";")[0].strip().lower() == "text/event-stream"


def _passed_headers(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name] for name in PASSED_HEADERS if name in response.headers}


def _stream_headers(response: httpx.Response) -> dict[str, str]:
    return {
        "Content-Type": response.headers["content-type"],
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
        **_passed_headers(response),
    }


def _whole_answer(call: Call, response: httpx.Response, content: bytes) -> HttpResponse:
    status = response.status_code
    if status >= 400 and call.endpoint.api_key:
        # Some upstreams quote the key they were sent back in their error.
        content = content.replace(call.endpoint.api_key.encode(), b"[key]")
    try:
        payload = json.loads(content)
    except (ValueError, RecursionError):
        payload = None
    if status < 400:
        usage, response_id = usage_of_answer(call.dialect, payload)
        account(call, status=status, usage=usage, response_id=response_id)
    else:
        error = error_message(payload) or content[:200].decode("utf-8", "replace")
        account(call, status=status, error=error)
    headers = _passed_headers(response)
    content_type = response.headers.get("content-type", "application/json")
    return HttpResponse(content, status=status, content_type=content_type, headers=headers)


def _unavailable(exc: UpstreamUnavailable) -> ApiError:
    if isinstance(exc, UpstreamBlocked):
        return ApiError(exc.http_status, exc.code, exc.user_message)
    if exc.http_status == 504:
        return ApiError(504, "upstream_timeout", _("The upstream did not answer in time."))
    return ApiError(exc.http_status, "upstream_unreachable", _("The upstream could not be reached."))


def _broken(status: int) -> ApiError:
    if status == 504:
        return ApiError(504, "upstream_timeout", _("The upstream stopped sending in the middle of the answer."))
    return ApiError(502, "upstream_error", _("The upstream broke off in the middle of the answer."))


def _stream_error_event(dialect: Dialect, error: ApiError) -> bytes:
    """An error event in the stream's own protocol, so the client's SDK raises instead of ending quietly."""
    body = error.response(dialect).content.decode()
    if dialect == "anthropic":
        return f"\n\nevent: error\ndata: {body}\n\n".encode()
    return f"\n\ndata: {body}\n\n".encode()


def _model_object(row: ModelEntry) -> dict:
    model = {
        "id": row.name,
        "object": "model",
        "created": 0,
        "owned_by": row.provider,
        "name": row.label,
        # Anthropic's fields, for its SDK.
        "type": "model",
        "display_name": row.label,
        "created_at": "1970-01-01T00:00:00Z",
    }
    if row.context_length:
        model["context_length"] = row.context_length
    if row.prompt_price is not None and row.completion_price is not None:
        model["pricing"] = {"prompt": format(row.prompt_price, "f"), "completion": format(row.completion_price, "f")}
    return model
