"""Who is calling the proxy API, and with which upstream credential.

A personal token (`sb-...`) as `Authorization: Bearer` or `x-api-key`; never
the session. Both look-ups are remembered for CACHE_SECONDS per process, so
a warm request touches no database at all (with PostgreSQL and no
CONN_MAX_AGE, a query also costs a new connection).

A change that must act at once is forgotten as its transaction commits: a
token revoked or deleted, a user deactivated, a stored key saved or
removed. In this process directly; in the others (with REDIS_URL several
serve the API) through the channel layer, which every Daphne process
listens to (`listen_for_forgetting`, started by chatapp.serving). Should
that message be lost, what a process remembers still expires within
CACHE_SECONDS.

Requests that miss together share one look-up: a burst of a hundred streams
arriving as the remembered token expires must not queue a hundred queries
on the sync thread, each request waiting for all the others' (measured in
the benchmark: the burst's first tokens came ~0.2 s later than when the
token was remembered).
"""

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Hashable

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
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

logger = logging.getLogger(__name__)

CACHE_SECONDS = 5.0
_CACHE_SIZE = 10_000
FORGET_GROUP = "api-auth-forget"
REJOIN_SECONDS = 3600.0  # channels-redis drops a group's members after a day unless they join again
RETRY_SECONDS = 5.0  # after the channel layer failed (Redis restarting)
_WHAT = ("tokens", "every_token", "credentials_of")  # what a message to FORGET_GROUP may name


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
    """Drop every remembered token and credential, in this process."""
    _users.forget()
    _endpoints.forget()


# Forgetting everywhere ---------------------------------------------------------


def _forget_here(tokens: Collection[str] = (), every_token: bool = False, credentials_of: int | None = None) -> None:
    """`tokens`: sha256 digests; `credentials_of`: a user id whose endpoints go."""
    if every_token:
        _users.forget()
    elif tokens:
        _users.forget(lambda key: key in tokens)
    if credentials_of is not None:
        _endpoints.forget(lambda key: key[0] == credentials_of)


def forget_everywhere(**what) -> None:
    """Forget `what` (as _forget_here takes it) here now; once the transaction commits, here and everywhere.

    Here twice: a look-up made before the commit read the rows as they were.
    """
    _forget_here(**what)
    transaction.on_commit(lambda: _forget_and_tell(what), robust=True)


def _shared_layer():
    """The channel layer, when other processes share it (REDIS_URL); else None."""
    layer = get_channel_layer()
    return None if layer is None or isinstance(layer, InMemoryChannelLayer) else layer


def _forget_and_tell(what: dict) -> None:
    _forget_here(**what)
    if (layer := _shared_layer()) is None:
        return
    try:
        async_to_sync(layer.group_send)(FORGET_GROUP, {"type": "api_auth.forget", **what})
    except Exception:  # the revocation itself stands: the others' memory expires within CACHE_SECONDS
        logger.warning("could not tell the other processes what to forget", exc_info=True)


_listening: asyncio.Task | None = None  # held: the loop keeps only a weak reference to a task


def listen_for_forgetting() -> asyncio.Task | None:
    """In a server process, on its loop: forget what any process says changed."""
    global _listening
    if (layer := _shared_layer()) is None:
        return None
    _listening = asyncio.get_running_loop().create_task(_listen(layer), name="api-auth-forget")
    return _listening


async def _listen(layer) -> None:
    while True:
        try:
            channel = await layer.new_channel()
            while True:
                await layer.group_add(FORGET_GROUP, channel)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(REJOIN_SECONDS):
                        while True:
                            message = await layer.receive(channel)
                            _forget_here(**{key: message[key] for key in _WHAT if key in message})
        except Exception:
            logger.warning("not listening for what to forget; again in %s s", RETRY_SECONDS, exc_info=True)
            await asyncio.sleep(RETRY_SECONDS)


@receiver([post_save, post_delete], sender=ApiToken, dispatch_uid="api_auth_forget_token")
def _forget_token(sender, instance: ApiToken, created: bool = False, update_fields=None, **kwargs) -> None:
    if not created and (update_fields is None or "revoked_at" in update_fields):
        forget_everywhere(tokens=[instance.token_hash])


@receiver(post_save, sender=get_user_model(), dispatch_uid="api_auth_forget_user")
def _forget_user(sender, instance, created: bool, update_fields=None, **kwargs) -> None:
    # Deactivated (or anything else an admin saved): their tokens are refused from now on.
    # Signing in saves only last_login, and forgets nothing.
    if not created and (update_fields is None or "is_active" in update_fields):
        forget_everywhere(every_token=True)


@receiver([post_save, post_delete], sender=ProviderCredential, dispatch_uid="api_auth_forget_credential")
def _forget_credentials_of(sender, instance: ProviderCredential, **kwargs) -> None:
    forget_everywhere(credentials_of=instance.user_id)
