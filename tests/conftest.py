"""Shared fixtures: users alice (admin) and bob, and the real services under CI.

The fake upstream (a real HTTP server on a loopback port) lives in
tests/fake_upstream.py and is offered as the `upstream` fixture.
"""

import os

import pytest

from accounts.models import User

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PASSWORD = "correct-horse-battery-staple"


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


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The cache may be a shared Redis: every test starts from an empty one."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def upstream():
    """A fake LLM upstream on a free loopback port (tests/fake_upstream.py), one per test."""
    from tests.fake_upstream import FakeUpstream

    server = FakeUpstream().start()
    yield server
    server.stop()
