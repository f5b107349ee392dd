"""Login is required everywhere but the auth pages, /healthz and static files."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

PUBLIC = {"/accounts/signin/", "/accounts/signup/", "/healthz", "/jsi18n/", "/i18n/setlang/"}


def _concrete_paths(resolver=None, prefix="") -> list[str]:
    """Every URL of the project, with sample values for its converters."""
    resolver = resolver or get_resolver()
    paths = []
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            paths += _concrete_paths(pattern, route)
        elif isinstance(pattern, URLPattern):
            paths.append(route)
    return paths


def _sample(route: str) -> str | None:
    if route.startswith("admin/") or route.startswith("^"):
        return None
    for converter, value in {
        "<uuid:conversation_id>": "7d3c0f5e-3b1c-4f7e-9f1d-1c2b3a4d5e6f",
        "<int:pk>": "1",
        "<int:token_id>": "1",
        "<str:provider>": "openrouter",
        "<slug:provider>": "openrouter",
        "<slug:slug>": "openrouter",
    }.items():
        route = route.replace(converter, value)
    if "<" in route:
        return None
    return "/" + route


@pytest.mark.django_db
def test_every_page_needs_a_signed_in_user(client):
    checked = 0
    for route in _concrete_paths():
        url = _sample(route)
        if url is None or url in PUBLIC or url.startswith("/api/"):
            continue
        response = client.get(url)
        assert response.status_code in (302, 401, 403, 405), url
        if response.status_code == 302:
            assert response.url.startswith("/accounts/signin/"), url
        checked += 1
    assert checked >= 3


@pytest.mark.django_db
def test_public_pages_answer_anonymous_users(client, alice):
    assert client.get("/accounts/signin/").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/jsi18n/").status_code == 200


@pytest.mark.django_db
def test_admin_requires_staff(client, bob_client):
    assert client.get("/admin/").status_code == 302
    assert bob_client.get("/admin/").status_code == 302


@pytest.mark.django_db
def test_another_users_conversation_is_404(alice, bob_client):
    from chatapp.models import Conversation

    chat = Conversation.objects.create(owner=alice, title="Alice's secret")
    response = bob_client.get(chat.get_absolute_url())
    assert response.status_code == 404
