"""Who is calling the proxy API, and with which upstream credential.

A personal token (`sb-...`) as `Authorization: Bearer` or `x-api-key`; never
the session. Both look-ups are remembered for CACHE_SECONDS per process, so
a warm request touches no database at all (with PostgreSQL and no
CONN_MAX_AGE, a query also costs a new connection). The price: a revoked
token, or a key changed by another server process, may still be used for
that long. A key saved or deleted in this process is forgotten at once.
"""

import dataclasses
import hashlib
import time

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils.translation import gettext as _

from accounts.models import ApiToken
from providers.api_errors import ApiError
from providers.credentials import CredentialError, Endpoint, UnreadableCredential, aresolve_endpoint
from providers.models import ProviderCredential
from providers.registry import Provider

CACHE_SECONDS = 5.0
_CACHE_SIZE = 10_000

_users: dict[str, tuple[float, object]] = {}  # sha256 of the token -> (expiry, user)
_endpoints: dict[tuple, tuple[float, Endpoint]] = {}  # (user id, provider, server settings) -> (expiry, endpoint)


def raw_token(request: HttpRequest) -> str:
    scheme, _space, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key", "").strip()


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
    now = time.monotonic()
    known = _users.get(digest)
    if known is not None and known[0] > now:
        return known[1]
    user = await ApiToken.aauthenticate(raw)
    if user is None:
        _users.pop(digest, None)
        raise ApiError(401, "invalid_token", _("The API token is not valid, or it was revoked."))
    _remember(_users, digest, (now + CACHE_SECONDS, user))
    return user


async def endpoint_for(user, provider: Provider) -> Endpoint:
    """Where `user`'s request to `provider` goes (SPEC section 6); ApiError 401 when there is no key.

    No key anywhere is a 401 `provider_key_missing`: the request lacks a
    credential, only not the caller's own.
    """
    # The server's settings are part of the key: a changed URL or key pool
    # must not be served from memory.
    key = (user.pk, provider.slug, provider.server_url, tuple(provider.server_keys), settings.HIDE_USER_API_KEY)
    now = time.monotonic()
    known = _endpoints.get(key)
    if known is not None and known[0] > now:
        endpoint = known[1]
    else:
        try:
            endpoint = await aresolve_endpoint(user, provider)
        except CredentialError as exc:
            code = "provider_key_unreadable" if isinstance(exc, UnreadableCredential) else "provider_key_missing"
            raise ApiError(401, code, exc.message) from None
        _remember(_endpoints, key, (now + CACHE_SECONDS, endpoint))
    if len(provider.server_keys) > 1 and endpoint.api_key in provider.server_keys:
        # A pool hands out one key per request, remembered or not.
        endpoint = dataclasses.replace(endpoint, api_key=provider.pick_server_key())
    return endpoint


def _remember(cache: dict, key, value) -> None:
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[key] = value


def forget() -> None:
    """Drop every remembered token and credential (tests; a revocation that must act at once)."""
    _users.clear()
    _endpoints.clear()


@receiver([post_save, post_delete], sender=ProviderCredential, dispatch_uid="api_auth_forget_credential")
def _forget_credentials_of(sender, instance: ProviderCredential, **kwargs) -> None:
    for key in list(_endpoints):
        if key[0] == instance.user_id:
            _endpoints.pop(key, None)
