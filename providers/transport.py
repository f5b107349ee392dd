"""HTTP to the upstreams: one shared httpx.AsyncClient per process and purpose.

Server URLs are trusted (the admin set them). A user's own URL goes through a
client whose connections are checked against the SSRF guard when they are
made (providers.endpoints), not only when the URL was saved.
"""

import httpx
from django.conf import settings

_clients: dict[bool, httpx.AsyncClient] = {}


def _timeout() -> httpx.Timeout:
    return httpx.Timeout(
        connect=settings.UPSTREAM_CONNECT_TIMEOUT,
        read=settings.UPSTREAM_READ_TIMEOUT,
        write=30.0,
        pool=settings.UPSTREAM_CONNECT_TIMEOUT,
    )


def http_client(user_supplied: bool = False) -> httpx.AsyncClient:
    """The shared client; `user_supplied` for a URL a user typed in."""
    guarded = user_supplied and not settings.ALLOW_PRIVATE_ENDPOINTS
    client = _clients.get(guarded)
    if client is None or client.is_closed:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=30)
        transport = None
        if guarded:
            from providers.endpoints import GuardedTransport

            transport = GuardedTransport(limits=limits)
        client = httpx.AsyncClient(
            timeout=_timeout(), limits=limits, follow_redirects=False, transport=transport, trust_env=False
        )
        _clients[guarded] = client
    return client
