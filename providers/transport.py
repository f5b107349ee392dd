"""HTTP to the upstreams: shared httpx.AsyncClients and the retrying request.

Server URLs are trusted (the admin set them). A user's own URL goes through a
client whose connections are checked against the SSRF guard when they are
made (providers.endpoints), not only when the URL was saved.

`open_upstream` is the one way out: it retries connection failures and
429/500/502/503/504/529 answers with backoff, but only before the first byte of a
response is handed to the caller. After that nothing is ever repeated, so a
stream is never answered twice.
"""

import asyncio
import functools
import logging
import random
import ssl
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import certifi
import httpx
from django.conf import settings

from providers.pool import PooledTransport

logger = logging.getLogger(__name__)

# An AsyncClient's connections belong to the event loop they were opened in:
# Daphne runs one loop per process, tests a new loop per test. So clients are
# kept per loop (and per guarded/unguarded) and die with their loop.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bool, httpx.AsyncClient]]" = (
    weakref.WeakKeyDictionary()
)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
_NO_ANSWER_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)
BACKOFF_SECONDS = 0.25  # first pause; doubled on every further try
RETRY_AFTER_CAP = 4.0  # a chat user will not wait longer than this for a retry


class UpstreamUnavailable(Exception):
    """The upstream gave no HTTP answer. The message never contains a key."""

    code = "unreachable"
    http_status = 502  # what a proxy should answer instead


class UpstreamUnreachable(UpstreamUnavailable):
    """Connection refused or reset, DNS failure, protocol garbage."""


class UpstreamTimeout(UpstreamUnavailable):
    code = "timeout"
    http_status = 504


class UpstreamBlocked(UpstreamUnavailable):
    """The SSRF guard refused a user-set URL; `user_message` is translated."""

    code = "blocked_endpoint"
    http_status = 502

    def __init__(self, message: str, user_message: str) -> None:
        super().__init__(message)
        self.user_message = user_message


def _timeout() -> httpx.Timeout:
    return httpx.Timeout(
        connect=settings.UPSTREAM_CONNECT_TIMEOUT,
        read=settings.UPSTREAM_READ_TIMEOUT,
        write=30.0,
        pool=settings.UPSTREAM_CONNECT_TIMEOUT,
    )


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle takes tens of milliseconds: once per process, not per client.
    return ssl.create_default_context(cafile=certifi.where())


class _NoCookies(httpx.Cookies):
    """Cookies that are never kept and never sent."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass

    def set_cookie_header(self, request: httpx.Request) -> None:
        pass


class _Client(httpx.AsyncClient):
    """httpx's client with no cookie jar.

    The client is shared by every user of the process: a cookie set in
    answer to one user's request must never ride along on another's. And
    with no jar, an answer costs no Set-Cookie parsing (httpx copies the
    request's headers for its jar on every response, cookies or not: ~3% of
    the proxy's time per request in the benchmark).
    """

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies) -> None:
        pass


_NO_COOKIES = _NoCookies()


@functools.lru_cache(maxsize=512)
def _url(url: str) -> httpx.URL:
    # Parsing a URL is a good part of what building a request costs; upstream URLs repeat.
    return httpx.URL(url)


def _new_client(guarded: bool) -> httpx.AsyncClient:
    # Kept-alive connections spare a TLS handshake per request; our pool
    # (providers.pool) makes a hundred of them cheap to keep.
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100, keepalive_expiry=30)
    if guarded:
        from providers.endpoints import GuardedTransport

        transport = GuardedTransport(verify=_tls_context(), limits=limits)
    else:
        transport = PooledTransport(verify=_tls_context(), limits=limits, trust_env=False)
    return _Client(timeout=_timeout(), follow_redirects=False, transport=transport, trust_env=False)


def _clients_of_running_loop() -> dict[bool, httpx.AsyncClient]:
    """The running loop's clients; outside a loop, a throwaway dict (nothing is shared)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return {}
    return _clients.setdefault(loop, {})


def http_client(user_supplied: bool = False) -> httpx.AsyncClient:
    """The shared client of the running event loop; `user_supplied` for a URL a user typed in.

    Called outside a running loop it returns a new client that nobody else
    shares: the caller closes it.
    """
    guarded = user_supplied and not settings.ALLOW_PRIVATE_ENDPOINTS
    clients = _clients_of_running_loop()
    client = clients.get(guarded)
    if client is None or client.is_closed:
        client = clients[guarded] = _new_client(guarded)
    return client


async def aclose_clients() -> None:
    """Close the running loop's clients (for a clean shutdown or test teardown)."""
    clients = _clients_of_running_loop()
    while clients:
        _guarded, client = clients.popitem()
        await client.aclose()


def _retry_delay(attempt: int, response: httpx.Response | None) -> float:
    """Seconds to wait before try number `attempt + 1`."""
    if response is not None:
        retry_after = response.headers.get("retry-after", "").strip()
        try:
            return min(max(float(retry_after), 0.0), RETRY_AFTER_CAP)
        except ValueError:
            pass  # absent, or an HTTP date: fall back to our own backoff
    pause = BACKOFF_SECONDS * 2 ** (attempt - 1)
    return min(pause * random.uniform(1.0, 1.25), RETRY_AFTER_CAP)


def _unavailable(exc: httpx.TransportError) -> UpstreamUnavailable:
    from providers.endpoints import BlockedEndpoint

    if isinstance(exc, BlockedEndpoint):
        return UpstreamBlocked(f"connection to {exc.host} refused by the endpoint guard", str(exc.user_message))
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(f"the upstream did not answer in time ({type(exc).__name__})")
    return UpstreamUnreachable(f"the upstream could not be reached ({type(exc).__name__}: {exc})")


def _worth_retrying(exc: httpx.TransportError) -> bool:
    """Connection failures with no answer at all, typically a kept-alive connection the server had closed.

    Not a read timeout: the upstream may be busy with the request, and a
    second one would be paid twice.
    """
    from providers.endpoints import BlockedEndpoint

    if isinstance(exc, BlockedEndpoint):
        return False
    return isinstance(exc, _NO_ANSWER_ERRORS)


@asynccontextmanager
async def open_upstream(
    method: str,
    url: str,
    headers: Mapping[str, str],
    content: bytes | None = None,
    user_supplied: bool = False,
) -> AsyncIterator[httpx.Response]:
    """Send one request upstream and hold its response open for streaming.

        async with open_upstream("POST", url, headers, body, endpoint.user_supplied) as response:
            async for chunk in response.aiter_raw():
                ...

    The response is opened with `stream=True`: nothing of the body has been
    read when it is handed over, whatever its status. Retries (bounded by
    UPSTREAM_MAX_TRIES, exponential backoff, `Retry-After` honoured up to a
    few seconds) happen only on connection failures and on 429/500/502/503/504/529
    answers, all before the caller sees any byte; the last answer, retryable
    or not, is handed over as it is. Redirects are not followed: a 3xx is
    handed over too.

    Leaving the block closes the response; when the consuming task is
    cancelled that closes the upstream connection at once, which is how a
    stopped generation or a disconnected API client cancels upstream work.

    Raises UpstreamTimeout (answer 504), UpstreamUnreachable (502) or
    UpstreamBlocked (a user URL refused by the SSRF guard) when no HTTP answer
    came; all are UpstreamUnavailable with `.code` and `.http_status`. A
    failure while reading the body later surfaces as the httpx exception
    itself (httpx.ReadTimeout, httpx.RemoteProtocolError, ...).
    """
    client = http_client(user_supplied)
    tries = max(1, settings.UPSTREAM_MAX_TRIES)
    response: httpx.Response | None = None
    for attempt in range(1, tries + 1):
        try:
            request = client.build_request(method, _url(url), headers=headers, content=content)
        except httpx.InvalidURL as exc:
            raise UpstreamUnreachable(f"the upstream URL is not valid ({exc})") from exc
        try:
            response = await client.send(request, stream=True)
        except httpx.TransportError as exc:
            if attempt == tries or not _worth_retrying(exc):
                raise _unavailable(exc) from exc
            delay = _retry_delay(attempt, None)
            logger.info(
                "upstream %s unreachable (%s), try %d of %d", request.url.host, type(exc).__name__, attempt, tries
            )
        else:
            if response.status_code not in RETRYABLE_STATUSES or attempt == tries:
                break
            delay = _retry_delay(attempt, response)
            logger.info(
                "upstream %s answered %d, try %d of %d", request.url.host, response.status_code, attempt, tries
            )
            await response.aclose()
        await asyncio.sleep(delay)
    assert response is not None
    try:
        yield response
    finally:
        await response.aclose()


def coalesced(response: httpx.Response) -> AsyncIterator[bytes]:
    """The response body as it arrives, with whatever arrived together joined into one piece.

    An upstream streams a token per HTTP chunk. Relayed one by one, every
    token would pay for the whole way out (Django's streaming response,
    Daphne, Twisted) even when a hundred came in one read. Our transport
    joins them as it reads: a read takes all the socket delivered since the
    last one (providers.network), and all the whole chunks in it become one
    piece (providers.http11). So a caller busy relaying one piece gets all
    that came meanwhile as the next: one piece per read under load, one per
    token when tokens come slowly.

    Errors reading the body are raised as httpx raises them, after the
    pieces that came before them; closing the iterator early closes the
    response's stream.
    """
    # An encoded body (an upstream that ignored `Accept-Encoding: identity`) is decoded; a plain one is not touched.
    return response.aiter_raw() if "content-encoding" not in response.headers else response.aiter_bytes()
