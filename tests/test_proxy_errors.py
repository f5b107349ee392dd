"""Every error status of the proxy API (SPEC section 8), in the shape of the route's API.

OpenAI routes answer `{"error": {"message", "type", "code"}}`, the Anthropic
Messages routes `{"type": "error", "error": {"type", "message"}}`; upstream
errors keep the upstream's status and body. Bad input never gets a 500.
"""

import json
import socket

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts.models import ApiToken
from providers.models import ProviderCredential
from tests.conftest import OPENROUTER_SERVER_KEY
from tests.fake_upstream import Hang, Status, openai_text_stream

pytestmark = pytest.mark.django_db(transaction=True)

SERVER_KEY = OPENROUTER_SERVER_KEY


@pytest.fixture
def openrouter(openrouter, settings):
    settings.UPSTREAM_MAX_TRIES = 1  # upstream errors reach the client at once, not after retries
    return openrouter
CHAT = "/api/openrouter/v1/chat/completions"
MESSAGES = "/api/openrouter/v1/messages"
BODY = {"model": "fake/model", "messages": [{"role": "user", "content": "Hi"}]}








async def call(path: str, body: dict | bytes = b"", token: str = "", method: str = "post", **headers):
    client = AsyncClient()
    if token:
        headers.setdefault("Authorization", f"Bearer {token}")
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    if method == "get":
        response = await client.get(path, headers=headers)
    else:
        response = await client.generic(method.upper(), path, data, "application/json", headers=headers)
    if response.streaming:
        response.body = b"".join([chunk async for chunk in response.streaming_content])
    else:
        response.body = response.content
    return response


def openai_error(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    error = json.loads(response.body)["error"]
    assert set(error) >= {"message", "type", "code"}
    assert error["code"] == code and error["message"]
    return error


def anthropic_error(response, status: int, kind: str) -> dict:
    assert response.status_code == status
    payload = json.loads(response.body)
    assert payload["type"] == "error" and payload["error"]["type"] == kind and payload["error"]["message"]
    return payload["error"]


# 400 -------------------------------------------------------------------------


async def test_bad_json_gets_400(openrouter, token):
    error = openai_error(await call(CHAT, b'{"model": "fake/model",', token), 400, "invalid_json")
    assert error["type"] == "invalid_request_error"
    anthropic_error(await call(MESSAGES, b"not json", token), 400, "invalid_request_error")
    assert not openrouter.chat_requests


async def test_a_body_that_is_not_an_object_gets_400(openrouter, token):
    openai_error(await call(CHAT, b'["model"]', token), 400, "invalid_json")


async def test_a_missing_model_gets_400(openrouter, token):
    openai_error(await call(CHAT, {"messages": []}, token), 400, "missing_model")
    openai_error(await call(CHAT, {"model": "  ", "messages": []}, token), 400, "missing_model")
    anthropic_error(await call(MESSAGES, {"model": 3, "messages": []}, token), 400, "invalid_request_error")


async def test_messages_that_are_not_a_list_get_400(openrouter, token):
    openai_error(await call(CHAT, {"model": "fake/model", "messages": "Hi"}, token), 400, "invalid_messages")


# 401 -------------------------------------------------------------------------


async def test_a_missing_or_bad_token_gets_401(openrouter, token):
    openai_error(await call(CHAT, BODY), 401, "missing_token")
    error = openai_error(await call(CHAT, BODY, "sb-not-a-real-token"), 401, "invalid_token")
    assert error["type"] == "authentication_error"
    anthropic_error(await call(MESSAGES, BODY, **{"x-api-key": "sb-nope"}), 401, "authentication_error")
    assert not openrouter.chat_requests


@pytest.mark.parametrize("how", ["revoked", "deleted", "revoked in the admin", "owner deactivated"])
async def test_a_token_taken_away_gets_401_at_once(openrouter, token, alice, how):
    assert (await call(CHAT, BODY, token)).status_code == 200  # and remembered for a few seconds
    await sync_to_async(_take_away)(await ApiToken.objects.aget(), how, alice)
    openai_error(await call(CHAT, BODY, token), 401, "invalid_token")


def _take_away(token: ApiToken, how: str, admin_user) -> None:
    if how == "revoked":
        token.revoke()
    elif how == "deleted":
        token.delete()
    elif how == "revoked in the admin":
        client = Client()
        client.force_login(admin_user)
        response = client.post("/admin/accounts/apitoken/", {"action": "revoke_tokens", "_selected_action": [token.pk]})
        assert response.status_code == 302 and ApiToken.objects.get().is_revoked
    else:
        token.user.is_active = False
        token.user.save()


async def test_a_session_does_not_authenticate(openrouter, carol):
    client = AsyncClient()
    await client.aforce_login(carol)
    response = await client.post(CHAT, BODY, content_type="application/json")
    response.body = response.content
    openai_error(response, 401, "missing_token")


async def test_no_provider_key_anywhere_gets_401(settings, token):
    settings.OPENROUTER_API_KEY = ""
    error = openai_error(await call(CHAT, BODY, token), 401, "provider_key_missing")
    assert "OPENROUTER_API_KEY" in error["message"]


# 403, 404, 405 -----------------------------------------------------------------


async def test_a_model_not_allowed_gets_403(openrouter, settings, token):
    settings.CUSTOM_MODELS = "-all,+fake/model@OpenRouter"
    forbidden = {**BODY, "model": "openai/gpt-4o-mini"}
    error = openai_error(await call(CHAT, forbidden, token), 403, "model_not_allowed")
    assert "openai/gpt-4o-mini" in error["message"]
    anthropic_error(await call(MESSAGES, forbidden, token), 403, "permission_error")
    assert (await call(CHAT, BODY, token)).status_code == 200
    assert len(openrouter.chat_requests) == 1


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
async def test_a_fallback_model_not_allowed_gets_403_and_nothing_goes_upstream(openrouter, settings, token, path):
    """OpenRouter falls back to `models` when the first fails: each of them is checked."""
    settings.CUSTOM_MODELS = "-all,+fake/model@OpenRouter,+fake/other@OpenRouter"
    forbidden = {**BODY, "models": ["fake/model", "openai/o1-pro"]}
    response = await call(path, forbidden, token)
    assert response.status_code == 403 and "openai/o1-pro" in response.content.decode()
    allowed = await call(CHAT, {**BODY, "models": ["fake/model", "fake/other"]}, token)
    assert allowed.status_code == 200
    assert [r.json.get("models") for r in openrouter.chat_requests] == [["fake/model", "fake/other"]]


@pytest.mark.parametrize("body", [{"Model": "openai/o1-pro"}, {"MODELS": ["openai/o1-pro"]}, {"models": "openai/o1-pro"},
                                  {"models": [None]}])  # fmt: skip
async def test_a_model_field_a_lenient_upstream_could_read_is_refused(openrouter, settings, token, body):
    settings.CUSTOM_MODELS = "-all,+fake/model@OpenRouter"
    openai_error(await call(CHAT, {**BODY, **body}, token), 400, "invalid_request")
    assert openrouter.chat_requests == []


async def test_an_unknown_provider_gets_404(token):
    error = openai_error(await call("/api/nope/v1/chat/completions", BODY, token), 404, "unknown_provider")
    assert "openrouter" in error["message"]
    anthropic_error(await call("/api/nope/v1/messages", BODY, token), 404, "not_found_error")
    openai_error(await call("/api/nope/v1/models", token=token, method="get"), 404, "unknown_provider")


@pytest.mark.parametrize(
    "path",
    ["/api/openrouter/v1/embeddings", "/api/openrouter/v1/generation", "/api/openrouter/api/v1/chat/completions",
     "/api/openrouter/v1/chat/completions/", "/api/", "/api/openrouter", "/api/../admin/"],
)  # fmt: skip
async def test_an_unknown_path_gets_404_and_is_not_forwarded(openrouter, token, path):
    openai_error(await call(path, BODY, token), 404, "unknown_path")
    assert not openrouter.requests


async def test_the_wrong_protocol_for_a_provider_gets_404_naming_the_right_route(token):
    error = openai_error(await call("/api/anthropic/v1/chat/completions", BODY, token), 404, "unknown_path")
    assert "/api/anthropic/v1/messages" in error["message"]
    error = anthropic_error(await call("/api/openai/v1/messages", BODY, token), 404, "not_found_error")
    assert "/api/openai/v1/chat/completions" in error["message"]


async def test_a_wrong_method_gets_405(token):
    response = await call(CHAT, token=token, method="get")
    openai_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"


# 413 -------------------------------------------------------------------------


async def test_a_declared_body_too_large_gets_413(openrouter, settings, token):
    settings.PROXY_MAX_BODY_BYTES = 100
    big = {**BODY, "messages": [{"role": "user", "content": "x" * 200}]}
    openai_error(await call(CHAT, big, token), 413, "request_too_large")
    anthropic_error(await call(MESSAGES, big, token), 413, "request_too_large")
    assert not openrouter.chat_requests


def test_a_chunked_body_too_large_gets_413(live_app, openrouter, settings, token):
    settings.PROXY_MAX_BODY_BYTES = 1000
    pieces = [b'{"model": "fake/model", "messages": [{"role": "user", "content": "', b"x" * 600, b"x" * 600, b'"}]}']
    response = httpx.post(
        f"{live_app.url}{CHAT}", content=iter(pieces), headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    assert not openrouter.chat_requests


# 429 -------------------------------------------------------------------------


async def test_too_many_requests_get_429_with_retry_after(openrouter, two_a_minute, token):
    for _ in range(2):
        assert (await call(CHAT, BODY, token)).status_code == 200
    response = await call(CHAT, BODY, token)
    openai_error(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 60
    anthropic_error(await call(MESSAGES, BODY, token), 429, "rate_limit_error")
    assert len(openrouter.chat_requests) == 2


# Upstream errors ---------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 402, 404, 422, 429, 500, 503, 529])
async def test_upstream_errors_pass_through_with_status_and_body(openrouter, token, status):
    body = {"error": {"message": f"upstream says {status}", "code": status, "metadata": {"raw": "x"}}}
    openrouter.enqueue(Status(status, body, headers={"Retry-After": "7", "Set-Cookie": "a=b", "Server": "up"}))
    response = await call(CHAT, BODY, token)
    assert response.status_code == status
    assert json.loads(response.body) == body
    assert response.get("Retry-After") == "7"
    assert "a" not in response.cookies and response.get("Server") != "up"


async def test_an_upstream_html_error_passes_through_too(openrouter, token):
    openrouter.enqueue(Status(502, b"<html>Bad gateway</html>", headers={"Content-Type": "text/html"}))
    response = await call(MESSAGES, BODY, token)
    assert (response.status_code, response.body, response["Content-Type"]) == (
        502, b"<html>Bad gateway</html>", "text/html",
    )  # fmt: skip


async def test_an_upstream_redirect_is_not_followed(openrouter, token):
    openrouter.enqueue(Status(302, b"", headers={"Location": "http://169.254.169.254/"}))
    response = await call(CHAT, BODY, token)
    openai_error(response, 502, "upstream_redirect")
    assert "Location" not in response


# 502, 504 --------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_an_unreachable_upstream_gets_502(settings, token):
    settings.OPENROUTER_API_KEY = SERVER_KEY
    settings.OPENROUTER_URL = f"http://127.0.0.1:{_closed_port()}"
    settings.UPSTREAM_MAX_TRIES = 1
    error = openai_error(await call(CHAT, BODY, token), 502, "upstream_unreachable")
    assert "127.0.0.1" not in error["message"] and SERVER_KEY not in error["message"]
    anthropic_error(await call(MESSAGES, BODY, token), 502, "api_error")


async def test_a_stored_key_that_cannot_be_sent_gets_502(openrouter, carol, token):
    credential = ProviderCredential(user=carol, provider="openrouter")
    credential.set_key("sk-or-cl\u00e9-\u2603-0123456789")
    await credential.asave()
    openai_error(await call(CHAT, BODY, token), 502, "upstream_unreachable")
    assert not openrouter.chat_requests


async def test_an_upstream_that_does_not_answer_gets_504(openrouter, settings, token):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    openrouter.enqueue(Hang(send_head=False), Hang(send_head=False))
    openai_error(await call(CHAT, BODY, token), 504, "upstream_timeout")
    anthropic_error(await call(MESSAGES, BODY, token), 504, "timeout_error")


async def test_a_stream_that_stalls_ends_with_an_error_event(openrouter, settings, token):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    openrouter.enqueue(Hang(openai_text_stream("Hello world", done=False)[:3]))
    response = await call(CHAT, {**BODY, "stream": True}, token)
    assert response.status_code == 200
    *_, last = [line for line in response.body.split(b"\n") if line.startswith(b"data:")]
    assert json.loads(last[5:])["error"]["code"] == "upstream_timeout"


# Arbitrary input ---------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
PLAUSIBLE = st.fixed_dictionaries(
    {"model": st.one_of(st.just("fake/model"), st.text(max_size=30), JSON)},
    optional={"messages": st.one_of(st.just([]), JSON), "stream": st.one_of(st.booleans(), JSON),
              "stream_options": JSON, "max_tokens": JSON},
)  # fmt: skip
BODIES = st.one_of(
    st.binary(max_size=200),
    JSON.map(lambda value: json.dumps(value).encode()),
    PLAUSIBLE.map(lambda value: json.dumps(value).encode()),
    st.just(b"[" * 5000 + b"]" * 5000),
    st.just(b'{"model": "' + "\u00e9".encode("utf-16") + b'"}'),
    PLAUSIBLE.map(lambda value: json.dumps(value).encode("utf-16-le")),
)
PATHS = st.sampled_from([CHAT, MESSAGES, "/api/anthropic/v1/messages", "/api/openai/v1/chat/completions",
                         "/api/openrouter/v1/models", "/api/openrouter/v1/models/x", "/api/zzz/v1/messages",
                         "/api/openrouter/v1/chat/completions/extra"])  # fmt: skip


@hypothesis_settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=PATHS, body=BODIES, method=st.sampled_from(["post", "post", "post", "get", "put"]))
async def test_arbitrary_requests_never_get_a_500(openrouter, settings, token, path, body, method):
    settings.RATE_LIMIT = "off"
    settings.ANTHROPIC_API_KEY = "sk-ant-0123456789"
    settings.ANTHROPIC_URL = openrouter.url
    response = await call(path, body, token, method=method)
    assert response.status_code < 500, response.body[:500]
    if response.status_code >= 400:
        payload = json.loads(response.body)
        assert "error" in payload
