"""The SSRF guard for endpoint URLs that users type in (SPEC section 6).

Two checks, one policy (`is_disallowed_address`):

- `validate_user_url` when a URL is saved, so the user gets a clear message;
- `GuardedTransport` when a connection is made: it resolves the host itself,
  refuses if any address is disallowed and connects to the address it
  checked. A name that resolved to a public address on saving and to
  127.0.0.1 later (DNS rebinding) is therefore still refused.

Both parse URLs with httpx, the same parser that later makes the request, so
the host that is checked is the host that is contacted.
"""

import ipaddress
import re
import socket
import typing

import anyio
import httpcore
import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from providers.network import AsyncioBackend
from providers.pool import PooledTransport

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048

# Beyond what `ipaddress` calls non-global: cloud metadata services, whose
# IPv4 address is link-local anyway, named here so the rule is explicit.
_METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_SHARED_NETWORK = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT
_NAT64_NETWORK = ipaddress.ip_network("64:ff9b::/96")
# inet_aton's legacy spellings of IPv4: 2130706433, 0x7f.1, 127.1, 0177.0.0.1.
_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)


def is_disallowed_address(ip: IPAddress) -> bool:
    """Loopback, private, link-local, unspecified, multicast, reserved, shared, metadata."""
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address a host may route to.
        embedded = [ip.ipv4_mapped, ip.sixtofour]
        if ip.teredo:
            embedded.extend(ip.teredo)
        if ip in _NAT64_NETWORK:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if any(v4 is not None and is_disallowed_address(v4) for v4 in embedded):
            return True
    return (
        not ip.is_global
        or ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
        or (ip.version == 4 and ip in _SHARED_NETWORK)
        or ip in _METADATA_ADDRESSES
    )


def literal_address(host: str) -> IPAddress | None:
    """The address a host is spelled as, if it is an IP literal in any form."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.match(host):
        # The C resolver reads these as IPv4 addresses; so must we.
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    return None


def validate_user_url(url: str) -> str:
    """Check a user-set endpoint URL and return it normalised.

    Raises ValidationError with a translated message. A host name that does not
    resolve now is accepted: it cannot reach anything today, and
    GuardedTransport checks it again on every connection.
    """
    url = (url or "").strip()
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError(
            _("The URL is too long (at most %(max)d characters)."), code="length", params={"max": MAX_URL_LENGTH}
        )
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ValidationError(_("Enter a valid URL."), code="invalid")
    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except (httpx.InvalidURL, ValueError, TypeError):
        raise ValidationError(_("Enter a valid URL."), code="invalid") from None
    if parsed.scheme not in ("http", "https") or "://" not in url:
        raise ValidationError(_("Enter a URL that starts with http:// or https://."), code="scheme")
    if not parsed.host:
        raise ValidationError(_("The URL needs a host name."), code="host")
    if parsed.userinfo or "@" in url.split("://", 1)[1].split("/", 1)[0]:
        raise ValidationError(
            _("Remove the user name and password from the URL; put the key in the API key field."),
            code="credentials",
        )
    if port is not None and not 0 < port < 65536:
        raise ValidationError(_("Enter a valid URL."), code="invalid")
    if parsed.query or parsed.fragment:
        # The provider's paths are appended to this URL; a query or fragment
        # would end up in the middle of the request URL.
        raise ValidationError(_("Remove the query string and fragment from the URL."), code="query")

    host = parsed.raw_host.decode("ascii")
    if not settings.ALLOW_PRIVATE_ENDPOINTS:
        _check_host(host, port or (443 if parsed.scheme == "https" else 80))

    default_port = {"http": 80, "https": 443}[parsed.scheme]
    netloc = parsed.netloc.decode("ascii") if port not in (None, default_port) else _bracketed(host)
    return f"{parsed.scheme}://{netloc}{parsed.raw_path.decode('ascii').rstrip('/')}"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _private_address_error(host: str, *, resolved: bool) -> ValidationError:
    if resolved:
        message = _(
            "%(host)s resolves to a private, local or otherwise reserved address. "
            "Your own endpoint must be a public address, unless the administrator sets ALLOW_PRIVATE_ENDPOINTS."
        )
    else:
        message = _(
            "%(host)s is a private, local or otherwise reserved address. "
            "Your own endpoint must be a public address, unless the administrator sets ALLOW_PRIVATE_ENDPOINTS."
        )
    return ValidationError(message, code="private_address", params={"host": host})


def _check_host(host: str, port: int) -> None:
    ip = literal_address(host)
    if ip is not None:
        if is_disallowed_address(ip):
            raise _private_address_error(host, resolved=False)
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return
    if any(is_disallowed_address(_info_address(info)) for info in infos):
        raise _private_address_error(host, resolved=True)


def _info_address(info: tuple) -> IPAddress:
    # Drop an IPv6 zone ("fe80::1%eth0"): ipaddress in 3.12 keeps it as scope_id.
    return ipaddress.ip_address(info[4][0].split("%", 1)[0])


class BlockedAddress(httpcore.ConnectError):
    """Raised inside httpcore; GuardedTransport turns it into BlockedEndpoint."""


class BlockedEndpoint(httpx.ConnectError):
    """A connection to a user-set URL was refused by the SSRF guard.

    A subclass of httpx.ConnectError, so code that handles unreachable
    upstreams handles this too; retrying it is pointless.
    """

    def __init__(self, host: str, *, request: httpx.Request | None = None) -> None:
        self.host = host
        self.user_message = _("Connections to %(host)s are not allowed: it is a private or local address.") % {
            "host": host
        }
        super().__init__(str(self.user_message), request=request)


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves, vets every address, then connects to a vetted address.

    TLS still verifies the request's host name: httpcore passes
    `server_hostname` to `start_tls` separately from the address.
    """

    def __init__(self, backend: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._backend = backend or AsyncioBackend()

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        ip = literal_address(host)
        if ip is not None:
            return [ip]
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"Cannot resolve {host}: {exc}") from exc
        addresses: list[IPAddress] = []
        for info in infos:
            if (ip := _info_address(info)) not in addresses:
                addresses.append(ip)
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await self.resolve(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"Resolving {host} timed out") from exc
        # Any bad address refuses the host: otherwise a name with one public
        # and one private record would be a coin toss.
        if not addresses or any(is_disallowed_address(ip) for ip in addresses):
            raise BlockedAddress(host)
        last_error: Exception | None = None
        for ip in addresses:
            try:
                return await self._backend.connect_tcp(
                    str(ip), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress(path)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class GuardedTransport(PooledTransport):
    """An httpx transport whose every connection goes through the SSRF guard."""

    def __init__(self, *, network_backend: httpcore.AsyncNetworkBackend | None = None, **options) -> None:
        # No proxy and no Unix socket (trust_env off): either would reach addresses we never see.
        options["trust_env"] = False
        super().__init__(network_backend=network_backend or GuardedNetworkBackend(), **options)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.ConnectError as exc:
            if isinstance(exc.__cause__, BlockedAddress):
                raise BlockedEndpoint(request.url.host, request=request) from None
            raise
