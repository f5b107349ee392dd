"""Sign-up rules, sign-in, sign-out, password change (issue: Foundation)."""

import pytest
from django.urls import reverse

from accounts.models import Preferences, User
from tests.conftest import PASSWORD

SIGNUP = "/accounts/signup/"
NEW_PASSWORD = "another-long-passphrase-42"


def _signup(client, username: str, **extra):
    data = {"username": username, "password1": PASSWORD, "password2": PASSWORD, **extra}
    return client.post(SIGNUP, data)


@pytest.mark.django_db
def test_first_visit_leads_to_signup(client):
    response = client.get("/", follow=True)
    assert response.redirect_chain[-1][0] == SIGNUP
    assert "first account on this server" in response.content.decode()


@pytest.mark.django_db
def test_first_account_is_admin_and_lands_on_chat_with_no_key_notice(client):
    response = _signup(client, "root")
    assert response.status_code == 302
    user = User.objects.get(username="root")
    assert user.is_superuser and user.is_staff
    page = client.get(response.url, follow=True)
    assert page.status_code == 200
    assert "No provider key yet" in page.content.decode()
    assert "OPENROUTER_API_KEY" in page.content.decode()


@pytest.mark.django_db
def test_second_signup_is_refused_by_default(client, alice):
    response = _signup(client, "mallory")
    assert response.status_code == 403
    assert not User.objects.filter(username="mallory").exists()
    assert "Sign-up is closed" in response.content.decode()


@pytest.mark.django_db
def test_second_signup_allowed_with_allow_signup(client, alice, settings):
    settings.ALLOW_SIGNUP = True
    response = _signup(client, "carol")
    assert response.status_code == 302
    carol = User.objects.get(username="carol")
    assert not carol.is_superuser and not carol.is_staff


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("code", "accepted"), [("a", True), ("b", True), ("", False), ("c", False), ("a,b", False), ("A", False)]
)
def test_access_code_gates_signup(client, settings, code, accepted):
    settings.ACCESS_CODES = ["a", "b"]
    response = _signup(client, "dave", access_code=code)
    assert User.objects.filter(username="dave").exists() is accepted
    if not accepted:
        assert response.status_code == 200
        assert "This access code is not valid." in response.content.decode()


@pytest.mark.django_db
def test_signup_form_has_no_code_field_without_codes(client):
    assert 'name="access_code"' not in client.get(SIGNUP).content.decode()


@pytest.mark.django_db
def test_signin_and_signout(client, alice):
    response = client.post("/accounts/signin/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/", follow=True).status_code == 200
    client.post("/accounts/signout/")
    response = client.get("/c/new/")
    assert response.status_code == 302 and response.url.startswith("/accounts/signin/")


@pytest.mark.django_db
def test_wrong_password_is_refused(client, alice):
    response = client.post("/accounts/signin/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_password_change(alice_client, alice):
    response = alice_client.post(
        reverse("accounts:password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)


@pytest.mark.django_db
def test_signup_creates_preferences(client):
    _signup(client, "root")
    assert Preferences.objects.filter(user__username="root").exists()


@pytest.mark.django_db
def test_forms_are_csrf_protected(alice):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/accounts/signin/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
