"""The SSRF guard on user-set endpoint URLs (SPEC section 6).

The fake upstream on a loopback port stands in for an internal service: the
guard must keep requests away from it unless ALLOW_PRIVATE_ENDPOINTS is set.
"""

import ipaddress
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from django.core.exceptions import ValidationError

from providers import endpoints, transport
from providers.endpoints import BlockedEndpoint, GuardedNetworkBackend, GuardedTransport, validate_user_url
from providers.transport import http_client
from tests.certificates import self_signed
from tests.fake_upstream import Status

# Hosts that must never be reached from a user's URL. Requests go to the fake
# upstream's port, so a refusal cannot be mistaken for "nothing listens there".
BLOCKED_HOSTS = [
    "127.0.0.1",
    "[::1]",
    "10.0.0.1",
    "169.254.169.254",
    "[::ffff:127.0.0.1]",
    "0.0.0.0",
    "2130706433",
    "localhost",
]
ODD_LOOPBACK_SPELLINGS = ["0x7f.1", "127.1", "0x7f000001", "[::ffff:7f00:1]"]
OTHER_BLOCKED_HOSTS = ["100.64.0.1", "192.168.1.10", "172.16.0.1", "[fd00:ec2::254]", "[fe80::1]", "224.0.0.1"]


class _TLSRecorder(BaseHTTPRequestHandler):
    """The fake upstream speaks plain HTTP; this one answers over TLS."""

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        body = b'{"object": "list", "data": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def _serve_tls(tls_context: ssl.SSLContext):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TLSRecorder)
    server.daemon_threads = True
    server.requests = []
    server.socket = tls_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
async def fresh_clients():
    """The shared clients of this test's event loop, closed afterwards."""
    yield
    await transport.aclose_clients()


def _url(host: str, port: int) -> str:
    return f"http://{host}:{port}/v1/models"


@pytest.mark.parametrize("host", BLOCKED_HOSTS + ODD_LOOPBACK_SPELLINGS + OTHER_BLOCKED_HOSTS)
def test_private_url_is_refused_when_saved(settings, host):
    settings.ALLOW_PRIVATE_ENDPOINTS = False
    with pytest.raises(ValidationError) as excinfo:
        validate_user_url(f"http://{host}/api")
    assert excinfo.value.code == "private_address"
    assert "private" in excinfo.value.messages[0]


def test_octal_loopback_is_refused(settings):
    settings.ALLOW_PRIVATE_ENDPOINTS = False
    with pytest.raises(ValidationError):
        validate_user_url("http://0177.0.0.1/")
    assert endpoints.literal_address("0177.0.0.1") == ipaddress.ip_address("127.0.0.1")


@pytest.mark.parametrize("host", BLOCKED_HOSTS)
async def test_private_address_is_refused_at_connection_time(settings, fresh_clients, upstream, host):
    settings.ALLOW_PRIVATE_ENDPOINTS = False
    port = upstream.port
    with pytest.raises(BlockedEndpoint) as excinfo:
        await http_client(user_supplied=True).get(_url(host, port))
    assert "not allowed" in str(excinfo.value)
    assert isinstance(excinfo.value, httpx.ConnectError)  # callers' "unreachable" handling applies
    assert upstream.requests == []


@pytest.mark.parametrize("host", BLOCKED_HOSTS)
async def test_private_address_is_allowed_when_configured(settings, fresh_clients, upstream, host):
    settings.ALLOW_PRIVATE_ENDPOINTS = True
    port = upstream.port
    assert validate_user_url(f"http://{host}:{port}/api/") == f"http://{host}:{port}/api"
    if host in ("127.0.0.1", "localhost", "2130706433", "0.0.0.0"):
        response = await http_client(user_supplied=True).get(_url(host, port))
        assert response.status_code == 200
        assert response.json() == {"data": upstream.models}
        assert upstream.requests[0].path == "/v1/models"


async def test_server_clients_are_not_guarded(settings, fresh_clients):
    # The admin's own URLs (OLLAMA_URL on loopback) are trusted.
    settings.ALLOW_PRIVATE_ENDPOINTS = False
    assert not isinstance(http_client()._transport, GuardedTransport)
    assert isinstance(http_client(user_supplied=True)._transport, GuardedTransport)


async def test_redirect_is_returned_not_followed(settings, fresh_clients, upstream):
    settings.ALLOW_PRIVATE_ENDPOINTS = True
    upstream.enqueue(Status(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}))
    response = await http_client(user_supplied=True).post(f"{upstream.url}/v1/chat/completions", json={})
    assert response.status_code == 302
    assert response.headers["location"] == "http://169.254.169.254/latest/meta-data/"
    assert len(upstream.requests) == 1


@pytest.mark.parametrize(
    "url, code",
    [
        ("ftp://files.example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("api.example.com/v1", "scheme"),
        ("http://", "host"),
        ("https://user:secret@api.example.com/", "credentials"),
        ("https://api.example.com/v1?key=1", "query"),
        ("https://api.example.com/v1#x", "query"),
        ("https://api.example.com/" + "a" * 3000, "length"),
        ("https://api.exa mple.com/", "invalid"),
        ("https://api.example.com:99999/", "invalid"),
    ],
)
def test_malformed_url_is_refused(url, code):
    with pytest.raises(ValidationError) as excinfo:
        validate_user_url(url)
    assert excinfo.value.code == code


def test_public_url_is_normalised(settings, monkeypatch):
    settings.ALLOW_PRIVATE_ENDPOINTS = False
    monkeypatch.setattr(socket, "getaddrinfo", _resolver({"api.example.com": ["93.184.216.34"]}))
    assert validate_user_url("  HTTPS://API.Example.COM:443/v1/ ") == "https://api.example.com/v1"
    assert validate_user_url("http://8.8.8.8:8080/v1/") == "http://8.8.8.8:8080/v1"


def test_name_with_any_private_address_is_refused(settings, monkeypatch):
    settings.ALLOW_PRIVATE_ENDPOINTS = False
    monkeypatch.setattr(socket, "getaddrinfo", _resolver({"mixed.example": ["93.184.216.34", "10.1.2.3"]}))
    with pytest.raises(ValidationError):
        validate_user_url("https://mixed.example/v1")


def test_embedded_ipv4_forms_are_judged_by_their_ipv4():
    for text in ["::ffff:127.0.0.1", "2002:7f00:1::", "64:ff9b::a9fe:a9fe", "2002:a00:1::"]:
        assert endpoints.is_disallowed_address(ipaddress.ip_address(text)), text
    assert not endpoints.is_disallowed_address(ipaddress.ip_address("2606:4700::1111"))
    assert not endpoints.is_disallowed_address(ipaddress.ip_address("1.1.1.1"))


def _resolver(table: dict[str, list[str]]):
    """A stand-in for socket.getaddrinfo: names from `table`, nothing else."""

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        host = host.decode() if isinstance(host, bytes) else host
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
            for ip in table[host]
        ]

    return getaddrinfo


async def test_dns_rebinding_is_refused_at_connection_time(settings, fresh_clients, upstream, monkeypatch):
    """A name that was public when saved and points to loopback when used."""
    settings.ALLOW_PRIVATE_ENDPOINTS = False
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])

    def rebinding_getaddrinfo(host, port, *args, **kwargs):
        return _resolver({"rebind.example": next(answers)})(host, port)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
    url = f"http://rebind.example:{upstream.port}/v1"
    assert validate_user_url(url) == url
    with pytest.raises(BlockedEndpoint):
        await http_client(user_supplied=True).get(url + "/models")
    assert upstream.requests == []


class _PinnedBackend(GuardedNetworkBackend):
    """Resolves every name to loopback, which this test's policy allows."""

    async def resolve(self, host: str, port: int):
        return [ipaddress.ip_address("127.0.0.1")]


@pytest.fixture
def loopback_allowed(monkeypatch):
    monkeypatch.setattr(endpoints, "is_disallowed_address", lambda ip: str(ip) != "127.0.0.1")


async def test_guard_connects_to_the_address_it_checked(loopback_allowed, upstream):
    # `upstream.test` does not resolve anywhere: success means the connection
    # went to the vetted address, not to a second look-up of the name.
    async with httpx.AsyncClient(transport=GuardedTransport(network_backend=_PinnedBackend())) as client:
        response = await client.get(f"http://upstream.test:{upstream.port}/v1/models")
    assert response.status_code == 200
    assert upstream.requests[0].headers["host"] == f"upstream.test:{upstream.port}"


async def test_tls_verifies_the_host_name_not_the_address(loopback_allowed, tmp_path):
    server_context, client_context = self_signed(tmp_path, "upstream.test")
    server, thread = _serve_tls(server_context)
    try:
        port = server.server_port
        guarded = GuardedTransport(verify=client_context, network_backend=_PinnedBackend())
        async with httpx.AsyncClient(transport=guarded) as client:
            response = await client.get(f"https://upstream.test:{port}/v1/models")
        assert response.status_code == 200
        assert server.requests == ["/v1/models"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
