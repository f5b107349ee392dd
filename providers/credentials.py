"""Which URL and key a request goes to (SPEC section 6).

A server key is never sent to a user-set URL: a user URL goes with the
user's own key, with no key for a keyless provider, or not at all.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from providers.crypto import KeyDecryptionError
from providers.registry import PROVIDERS, Provider

if TYPE_CHECKING:
    from providers.models import ProviderCredential


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key: str = ""
    # A user's own URL: connections go through the SSRF guard, and a server
    # key is never sent there.
    user_supplied: bool = False

    def __repr__(self) -> str:  # never let a key reach a log line
        return f"Endpoint(base_url={self.base_url!r}, user_supplied={self.user_supplied})"


class CredentialError(Exception):
    """No usable key for a request. `message` is translated and safe to show."""

    def __init__(self, message) -> None:
        self.message = message
        super().__init__(str(message))

    def __str__(self) -> str:
        return str(self.message)


class MissingCredential(CredentialError):
    pass


class UnreadableCredential(CredentialError):
    """The user's stored key cannot be decrypted (the server key changed)."""


def _provider(provider: Provider | str) -> Provider:
    if isinstance(provider, Provider):
        return provider
    found = PROVIDERS.get(provider)
    if found is None:
        raise MissingCredential(_("Unknown provider %(provider)s.") % {"provider": provider})
    return found


def _endpoint_for(provider: Provider, credential: "ProviderCredential | None") -> Endpoint:
    """The rules, apart from the database look-up shared by both twins."""
    if credential is not None:
        user_url = credential.base_url
        try:
            user_key = credential.api_key
        except KeyDecryptionError:
            raise UnreadableCredential(
                _(
                    "Your stored API key for %(provider)s can no longer be read, probably because the "
                    "server's encryption key changed. Enter your key again in Settings."
                )
                % {"provider": provider.name}
            ) from None
        if user_key:
            # Without a URL of their own the key goes to the admin's URL: it
            # may be a mirror or gateway that users have to go through.
            return Endpoint(user_url or provider.server_url, user_key, user_supplied=bool(user_url))
        if user_url:
            if not provider.needs_key:
                return Endpoint(user_url, "", user_supplied=True)
            # A server key is never sent to a user-set URL.
            raise MissingCredential(
                _(
                    "You set your own URL for %(provider)s but no API key. Add your key in Settings, "
                    "or clear the URL to use the server's key."
                )
                % {"provider": provider.name}
            )
    if not provider.needs_key:
        if provider.is_configured:
            return Endpoint(provider.server_url)
        raise MissingCredential(
            _("%(provider)s is not configured on this server. Set your own URL for it in Settings.")
            % {"provider": provider.name}
        )
    if key := provider.pick_server_key():
        return Endpoint(provider.server_url, key)
    if settings.HIDE_USER_API_KEY:
        message = _("No API key is configured for %(provider)s. Ask the administrator to set %(setting)s.")
    else:
        message = _(
            "No API key is configured for %(provider)s. Add your own key in Settings, "
            "or ask the administrator to set %(setting)s."
        )
    raise MissingCredential(message % {"provider": provider.name, "setting": provider.key_setting})


def _wants_own_credential(user) -> bool:
    return not settings.HIDE_USER_API_KEY and bool(getattr(user, "is_authenticated", False))


def resolve_endpoint(user, provider: Provider | str) -> Endpoint:
    """Where a request of `user` to `provider` goes and with which key.

    The user's own key and URL if stored (unless HIDE_USER_API_KEY), else the
    server's. Raises MissingCredential or UnreadableCredential (both
    CredentialError) with a translated message.
    """
    # Imported here: adapters import Endpoint from this module, possibly while
    # the app registry is still loading.
    from providers.models import ProviderCredential

    provider = _provider(provider)
    credential = None
    if _wants_own_credential(user):
        credential = ProviderCredential.objects.filter(user=user, provider=provider.slug).first()
    return _endpoint_for(provider, credential)


async def aresolve_endpoint(user, provider: Provider | str) -> Endpoint:
    from providers.models import ProviderCredential

    provider = _provider(provider)
    credential = None
    if _wants_own_credential(user):
        credential = await ProviderCredential.objects.filter(user=user, provider=provider.slug).afirst()
    return _endpoint_for(provider, credential)


class UserCredentials:
    """One user's stored keys and URLs, read in one query, and what follows from them.

    For a request that needs both the providers the user can reach (to check
    the model) and the endpoint of the one chosen: one look-up, not two.
    """

    def __init__(self, user) -> None:
        from providers.models import ProviderCredential

        self._stored: dict[str, ProviderCredential] = {}
        if _wants_own_credential(user):
            self._stored = {stored.provider: stored for stored in ProviderCredential.objects.filter(user=user)}

    def reachable(self) -> list[str]:
        """Providers the user can chat with: the server's, plus those they brought a key or URL for."""
        reachable = {p.slug for p in PROVIDERS.values() if p.is_configured}
        reachable.update(slug for slug, stored in self._stored.items() if stored.encrypted_key or stored.base_url)
        return [slug for slug in PROVIDERS if slug in reachable]

    def endpoint(self, provider: Provider | str) -> Endpoint:
        """As resolve_endpoint, from what was read."""
        provider = _provider(provider)
        return _endpoint_for(provider, self._stored.get(provider.slug))


def reachable_providers(user) -> list[str]:
    """Providers `user` can chat with: the server's, plus those they brought a key or URL for."""
    return UserCredentials(user).reachable()
