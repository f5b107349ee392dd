"""Language selection: preference, else cookie, else Accept-Language (SPEC section 10)."""

import pytest

from accounts.models import Preferences


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("accept", "lang", "title"),
    [("zh-Hans", "zh-hans", "登录"), ("zh-CN,zh;q=0.9", "zh-hans", "登录"), ("da", "da", "Log ind"), ("en-US", "en", "Sign in")],
)
def test_signin_page_follows_accept_language(client, alice, accept, lang, title):
    response = client.get("/accounts/signin/", HTTP_ACCEPT_LANGUAGE=accept)
    html = response.content.decode()
    assert f'<html lang="{lang}"' in html
    assert f"<h1>{title}</h1>" in html


@pytest.mark.django_db
def test_switcher_changes_language_for_anonymous_visitors(client, alice):
    response = client.post("/i18n/setlang/", {"language": "da", "next": "/accounts/signin/"})
    assert response.status_code == 302
    html = client.get("/accounts/signin/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="da"' in html


@pytest.mark.django_db
def test_signed_in_users_choice_is_remembered_across_sessions(client, alice):
    client.force_login(alice)
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    assert Preferences.objects.get(user=alice).language == "zh-hans"

    client.logout()
    client.cookies.clear()
    client.force_login(alice)
    html = client.get("/c/new/", HTTP_ACCEPT_LANGUAGE="da").content.decode()
    assert '<html lang="zh-hans"' in html
    assert "新对话" in html


@pytest.mark.django_db
def test_switcher_is_on_every_page(alice_client):
    for url in ["/c/new/", "/accounts/password/"]:
        assert 'name="language"' in alice_client.get(url).content.decode()


@pytest.mark.django_db
def test_unknown_language_is_ignored(alice_client, alice):
    alice_client.post("/i18n/setlang/", {"language": "xx", "next": "/"})
    assert Preferences.objects.filter(user=alice, language="xx").count() == 0
