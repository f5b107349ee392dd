"""Who is calling the proxy API, and with which upstream credential.

A personal token (`sb-...`) as `Authorization: Bearer` or `x-api-key`; never
the session. Both look-ups are remembered for CACHE_SECONDS per process, so
a warm request touches no database at all (with PostgreSQL and no
CONN_MAX_AGE, a query also costs a new connection). The price: a revoked
token, or a key changed by another server process, may still be used for
that long. A key saved or deleted in this process is forgotten at once.

Requests that miss together share one look-up: a burst of a hundred streams
arriving as the remembered token expires must not queue a hundred queries
on the sync thread, each request waiting for all the others' (measured in
the benchmark: the burst's first tokens came ~0.2 s later than when the
token was remembered).
"""

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Awaitable, Callable, Hashable

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils.translation import gettext as _

from accounts.models import ApiToken
from providers.api_errors import ApiError
from providers.credentials import CredentialError, Endpoint, UnreadableCredential, resolve_endpoint
from providers.database import database_sync_to_async
from providers.models import ProviderCredential
from providers.registry import Provider

CACHE_SECONDS = 5.0
_CACHE_SIZE = 10_000


class _Memory:
    """Look-up results remembered for CACHE_SECONDS; concurrent misses of one key share a single look-up.

    A result the look-up returns as None, or an exception it raises, is not
    remembered: the next request asks again.
    """

    def __init__(self) -> None:
        self._known: dict[Hashable, tuple[float, object]] = {}  # key -> (expiry, value)
        self._pending: dict[Hashable, asyncio.Future] = {}
        self._forgotten = 0  # bumped by forget(): a look-up begun before must not be remembered

    async def get(self, key: Hashable, lookup: Callable[[], Awaitable]):
        known = self._known.get(key)
        if known is not None and known[0] > time.monotonic():
            return known[1]
        pending = self._pending.get(key)
        if pending is None or pending.get_loop() is not asyncio.get_running_loop():
            pending = self._pending[key] = asyncio.ensure_future(self._look_up(key, lookup))
        # Shielded: one waiter leaving (a client hanging up) must not cancel the others' look-up.
        return await asyncio.shield(pending)

    async def _look_up(self, key: Hashable, lookup: Callable[[], Awaitable]):
        forgotten = self._forgotten
        try:
            value = await lookup()
            if value is not None and forgotten == self._forgotten:
                if len(self._known) >= _CACHE_SIZE:
                    self._known.clear()
                self._known[key] = (time.monotonic() + CACHE_SECONDS, value)
            return value
        finally:
            if self._pending.get(key) is asyncio.current_task():
                self._pending.pop(key, None)

    def forget(self, matching: Callable[[Hashable], bool] = lambda key: True) -> None:
        self._forgotten += 1
        for memory in (self._known, self._pending):
            # list() copies at once: the settings pages call this from their own threads.
            for key in [key for key in list(memory) if matching(key)]:
                memory.pop(key, None)


_users = _Memory()  # sha256 of the token -> user
_endpoints = _Memory()  # (user id, provider, server settings) -> endpoint


def raw_token(request: HttpRequest) -> str:
    # META, not request.headers: that builds a dict of every header first,
    # about 2% of the proxy's CPU for a burst of request starts (py-spy).
    scheme, _space, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.META.get("HTTP_X_API_KEY", "").strip()


async def authenticate(request: HttpRequest):
    """The token's user; ApiError 401 without a valid token."""
    raw = raw_token(request)
    if not raw:
        raise ApiError(
            401,
            "missing_token",
            _("No API token. Send your personal token as Authorization: Bearer <token> or x-api-key."),
        )
    digest = hashlib.sha256(raw.encode()).hexdigest()
    user = await _users.get(digest, lambda: _user_of(raw))
    if user is None:
        raise ApiError(401, "invalid_token", _("The API token is not valid, or it was revoked."))
    return user


async def endpoint_for(user, provider: Provider) -> Endpoint:
    """Where `user`'s request to `provider` goes (SPEC section 6); ApiError 401 when there is no key.

    No key anywhere is a 401 `provider_key_missing`: the request lacks a
    credential, only not the caller's own.
    """
    # The server's settings are part of the key: a changed URL or key pool
    # must not be served from memory.
    key = (user.pk, provider.slug, provider.server_url, tuple(provider.server_keys), settings.HIDE_USER_API_KEY)
    try:
        endpoint = await _endpoints.get(key, lambda: _resolve_endpoint(user, provider))
    except CredentialError as exc:
        code = "provider_key_unreadable" if isinstance(exc, UnreadableCredential) else "provider_key_missing"
        raise ApiError(401, code, exc.message) from None
    if len(provider.server_keys) > 1 and endpoint.api_key in provider.server_keys:
        # A pool hands out one key per request, remembered or not.
        endpoint = dataclasses.replace(endpoint, api_key=provider.pick_server_key())
    return endpoint


# The proxy's requests send no request signals (chatapp.proxy_handler): the
# look-ups recycle stale database connections themselves, before and after.
_user_of = database_sync_to_async(ApiToken.authenticate)
_resolve_endpoint = database_sync_to_async(resolve_endpoint)


def forget() -> None:
    """Drop every remembered token and credential (tests; a revocation that must act at once)."""
    _users.forget()
    _endpoints.forget()


@receiver([post_save, post_delete], sender=ProviderCredential, dispatch_uid="api_auth_forget_credential")
def _forget_credentials_of(sender, instance: ProviderCredential, **kwargs) -> None:
    _endpoints.forget(lambda key: key[0] == instance.user_id)
