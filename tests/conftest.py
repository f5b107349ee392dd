"""Shared fixtures: users alice (admin) and bob, and the real services under CI.

The fake upstream (a real HTTP server on a loopback port) lives in
tests/fake_upstream.py and is offered as the `upstream` fixture.
"""

import os
import time

import pytest

from accounts.models import User

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# How long a browser test waits for what the page should show: a wait, not a speed check. These shared machines stall
# for seconds at a time (the host takes their CPU), and Playwright's default of 5 s failed tests that were right.
BROWSER_WAIT_MS = 15_000
PASSWORD = "correct-horse-battery-staple"
OPENROUTER_SERVER_KEY = "sk-or-server-0123456789abcdef"


def needs_service(name: str, available: bool) -> None:
    """Skip locally when a real service is absent; under CI that is a failure."""
    if available:
        return
    if CI:
        pytest.fail(f"{name} is required under CI but is not configured or not reachable")
    pytest.skip(f"{name} not configured")


@pytest.fixture
def alice(db) -> User:
    return User.objects.create_user("alice", "alice@example.com", PASSWORD, is_staff=True, is_superuser=True)


@pytest.fixture
def bob(db) -> User:
    return User.objects.create_user("bob", "bob@example.com", PASSWORD)


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(client, bob):
    client.force_login(bob)
    return client


@pytest.fixture
def two_a_minute(settings):
    """RATE_LIMIT 2/m, from a moment with 10 s of the minute left: the limit's fixed window must not roll over mid-test."""
    left = 60 - time.time() % 60
    if left < 10:
        time.sleep(left)
    settings.RATE_LIMIT = "2/m"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2's deliberate slowness is half a second per user; tests need none of it."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The cache may be a shared Redis: every test starts from an empty one."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _no_language_left_active():
    """A request served in the test's thread leaves its language active there (LocaleMiddleware does not undo it):
    a test asking for a Chinese page would turn the next test's templates Chinese."""
    yield
    from django.utils import translation

    translation.deactivate()


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Every test gets a channel layer of its own.

    A test that fails with a socket open leaves the layer's receive waiting
    on that test's event loop; channels_redis's layer then refuses every
    later test's receive (its lock is bound to the dead loop), so one failure
    would read as many.
    """
    yield
    from channels.layers import channel_layers

    channel_layers.backends.clear()


@pytest.fixture
def upstream():
    """A fake LLM upstream on a free loopback port (tests/fake_upstream.py), one per test."""
    from tests.fake_upstream import FakeUpstream

    server = FakeUpstream().start()
    yield server
    server.stop()


class LiveApp:
    """The project's ASGI app (`chatapp.asgi:application`) served by Daphne on a free loopback port.

    Daphne runs in a thread of the test process, so the server sees what the
    test sees: the test database (use transactional tests: the server's
    connections only see committed rows) and every `settings` change made
    with pytest-django's `settings` fixture. Twisted's reactor cannot be
    restarted, so one server lives for the whole session; the `live_app`
    fixture hands it out per test.
    """

    def __init__(self) -> None:
        self.server = None
        self.thread = None
        self.loop = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> "LiveApp":
        import threading
        import time

        from daphne.server import Server  # importing it installs Twisted's asyncio reactor
        from twisted.internet import reactor

        from chatapp.asgi import application
        from chatapp.serving import leave_forms_to_django

        leave_forms_to_django()  # as a served process does (not the rest of its start: the test database is fresh)

        self.server = Server(
            application=application,
            endpoints=["tcp:port=0:interface=127.0.0.1"],
            signal_handlers=False,
            verbosity=0,
            application_close_timeout=5,
        )
        self.thread = threading.Thread(target=self.server.run, name="live-daphne", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.listening_addresses:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("Daphne did not start listening")
            time.sleep(0.01)
        self.port = self.server.listening_addresses[0][1]
        self.loop = reactor._asyncioEventloop
        return self

    def stop(self) -> None:
        from twisted.internet import reactor

        if self.thread is not None and self.thread.is_alive():
            self.run(self._close_connections)
            reactor.callFromThread(reactor.stop)
            self.thread.join(10)

    @staticmethod
    async def _close_connections() -> None:
        """Close the database connections of the server's threads, so the test database can be dropped."""
        from asgiref.sync import sync_to_async
        from django.db import connections

        await sync_to_async(connections.close_all)()  # the thread-sensitive thread, where they run

    def run(self, coroutine_function, *args, timeout: float = 10.0):
        """Run `await coroutine_function(*args)` on the server's event loop and return its result."""
        import asyncio

        return asyncio.run_coroutine_threadsafe(coroutine_function(*args), self.loop).result(timeout)

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until the server has finished its HTTP requests and written their usage records.

        A client may have its answer before the server is done with the
        request (SDKs hang up after the last event): settle before reading
        what the server writes. Open WebSockets are not waited for.
        """
        self.run(self._settle, timeout / 2, timeout=timeout)

    async def _settle(self, patience: float) -> None:
        import asyncio

        from daphne.http_protocol import WebRequest

        from providers.api_usage import wait_for_accounting

        def busy() -> bool:
            return any(
                isinstance(protocol, WebRequest)
                and details.get("application_instance") is not None
                and not details["application_instance"].done()
                for protocol, details in list(self.server.connections.items())
            )

        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while busy() and loop.time() < deadline:
            await asyncio.sleep(0.005)
        await wait_for_accounting()


@pytest.fixture(scope="session")
def _live_daphne(django_db_setup):
    # After the test database is made, so stopped (its threads' connections closed) before it is dropped.
    server = LiveApp().start()
    yield server
    server.stop()


@pytest.fixture
def live_app(_live_daphne, transactional_db):
    """The app under a real Daphne, e.g. `openai.OpenAI(base_url=f"{live_app.url}/api/openrouter/v1")`.

    Its tests are transactional (the server reads committed rows). Each test
    starts with fresh upstream HTTP clients on the server, so upstream
    settings (timeouts, URLs) changed in the test apply; its background
    writes are awaited before the database is flushed.
    """
    from providers.transport import aclose_clients

    _live_daphne.run(aclose_clients)
    yield _live_daphne
    _live_daphne.settle()
    _live_daphne.run(aclose_clients)


@pytest.fixture(autouse=True)
def _forget_api_credentials():
    """The proxy API remembers tokens and keys for a few seconds: not from one test to the next."""
    import sys

    yield
    if "providers.api_auth" in sys.modules:
        sys.modules["providers.api_auth"].forget()


@pytest.fixture
def openrouter(settings, upstream):
    """OpenRouter with a server key, pointed at the fake upstream."""
    settings.OPENROUTER_API_KEY = OPENROUTER_SERVER_KEY
    settings.OPENROUTER_URL = upstream.url
    return upstream


@pytest.fixture
def carol(django_db_blocker) -> User:
    """A user without a password (for API tokens), in whatever database mode the test uses."""
    with django_db_blocker.unblock():
        return User.objects.create_user("carol")


@pytest.fixture
def token(carol) -> str:
    """A personal API token of carol's."""
    from accounts.models import ApiToken

    return ApiToken.issue(carol, "tests")[1]


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's, and before it drops a PostgreSQL test database, the sessions left on it are ended.

    Persistent connections (CONN_MAX_AGE) opened in the test process's
    worker threads (sync_to_async's, for consumers and async views) outlive
    their tests; PostgreSQL refuses to drop a database anyone is connected to.
    """
    yield
    from django.db import connections

    with django_db_blocker.unblock():
        for connection in connections.all():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                connection.close()
