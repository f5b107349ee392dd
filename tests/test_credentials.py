"""Stored provider keys and which key a request uses (SPEC section 6)."""

from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from providers import crypto
from providers.credentials import (
    CredentialError,
    Endpoint,
    MissingCredential,
    UnreadableCredential,
    aresolve_endpoint,
    resolve_endpoint,
)
from providers.models import ProviderCredential, mask_key
from providers.registry import PROVIDERS

USER_KEY = "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"
USER_KEY_SECRET_PART = USER_KEY[9:-4]
SERVER_KEY = "sk-or-v1-server0000000000000000000000000000000000000000000000000001"
OPENROUTER = PROVIDERS["openrouter"]
OLLAMA = PROVIDERS["ollama"]


def _store(user, provider: str = "openrouter", *, key: str = "", base_url: str = "") -> ProviderCredential:
    credential = ProviderCredential(user=user, provider=provider, base_url=base_url)
    credential.set_key(key)
    credential.save()
    return credential


@pytest.fixture
def server_keys(settings):
    settings.HIDE_USER_API_KEY = False
    settings.OPENROUTER_API_KEY = SERVER_KEY
    settings.OPENROUTER_URL = "https://gateway.example/api"
    settings.OLLAMA_URL = ""
    return settings


# Storage


def test_stored_key_is_not_in_a_database_dump(bob):
    credential = _store(bob, key=USER_KEY)
    dump = StringIO()
    call_command("dumpdata", "accounts", "providers", stdout=dump)
    assert credential.encrypted_key in dump.getvalue()  # the row is in the dump...
    assert USER_KEY_SECRET_PART not in dump.getvalue()  # ...but not the key
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ProviderCredential._meta.db_table}")
        rows = repr(cursor.fetchall())
    assert USER_KEY_SECRET_PART not in rows
    assert ProviderCredential.objects.get().api_key == USER_KEY


def test_same_key_encrypts_differently_each_time():
    first, second = crypto.encrypt(USER_KEY), crypto.encrypt(USER_KEY)
    assert first != second and first.startswith("v1:")
    assert crypto.decrypt(first) == crypto.decrypt(second) == USER_KEY


def test_wrong_key_gives_a_clear_typed_error(settings):
    settings.FIELD_ENCRYPTION_KEY = "the first key"
    token = crypto.encrypt(USER_KEY)
    settings.FIELD_ENCRYPTION_KEY = "another key"
    with pytest.raises(crypto.KeyDecryptionError) as excinfo:
        crypto.decrypt(token)
    message = str(excinfo.value)
    assert "could not be decrypted" in message
    assert USER_KEY_SECRET_PART not in message and "first key" not in message and "another key" not in message


@pytest.mark.parametrize("mangle", [lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB"), lambda t: "v2" + t[2:]])
def test_tampered_or_foreign_token_is_refused(mangle):
    with pytest.raises(crypto.KeyDecryptionError):
        crypto.decrypt(mangle(crypto.encrypt(USER_KEY)))
    with pytest.raises(crypto.KeyDecryptionError):
        crypto.decrypt("not a token at all")


def test_field_encryption_key_falls_back_to_secret_key(settings):
    settings.FIELD_ENCRYPTION_KEY = ""
    token = crypto.encrypt(USER_KEY)
    settings.SECRET_KEY = "a different secret key"
    with pytest.raises(crypto.KeyDecryptionError):
        crypto.decrypt(token)


def test_key_derivation_is_cached(settings, monkeypatch):
    settings.FIELD_ENCRYPTION_KEY = "cache me"
    calls = []
    real_hkdf = crypto.HKDF

    def counting_hkdf(*args, **kwargs):
        calls.append(1)
        return real_hkdf(*args, **kwargs)

    monkeypatch.setattr(crypto, "HKDF", counting_hkdf)
    crypto._derive.cache_clear()
    crypto.decrypt(crypto.encrypt(USER_KEY))
    after_first = len(calls)
    for _ in range(50):
        crypto.decrypt(crypto.encrypt(USER_KEY))
    assert len(calls) == after_first


def test_rotation_re_encrypts_with_the_new_key(settings, alice, bob):
    settings.FIELD_ENCRYPTION_KEY = "old key"
    settings.FIELD_ENCRYPTION_OLD_KEYS = []
    _store(alice, key=USER_KEY)
    _store(bob, "openai", key="sk-proj-bob0000000000000000000000000000000000001")
    _store(bob, "ollama", base_url="https://ollama.example")  # no key: nothing to rotate

    settings.FIELD_ENCRYPTION_KEY = "new key"
    settings.FIELD_ENCRYPTION_OLD_KEYS = ["old key"]
    out = StringIO()
    call_command("rotate_encryption_key", stdout=out)
    assert "Re-encrypted 2 key(s); 0 already current; 0 unreadable." in out.getvalue()
    assert "sk-" not in out.getvalue()

    settings.FIELD_ENCRYPTION_OLD_KEYS = []
    assert ProviderCredential.objects.get(user=alice).api_key == USER_KEY
    assert ProviderCredential.objects.get(user=bob, provider="openai").key_hint == "sk-proj-...0001"

    again = StringIO()
    call_command("rotate_encryption_key", stdout=again)
    assert "Re-encrypted 0 key(s); 2 already current" in again.getvalue()


def test_rotation_names_unreadable_rows_without_keys(settings, bob):
    settings.FIELD_ENCRYPTION_KEY = "lost key"
    _store(bob, key=USER_KEY)
    settings.FIELD_ENCRYPTION_KEY = "new key"
    settings.FIELD_ENCRYPTION_OLD_KEYS = []
    with pytest.raises(CommandError) as excinfo:
        call_command("rotate_encryption_key", stdout=StringIO())
    assert "bob / openrouter" in str(excinfo.value)
    assert USER_KEY_SECRET_PART not in str(excinfo.value)


@pytest.mark.parametrize(
    "key, hint",
    [
        (USER_KEY, "sk-or-...3f9a"),
        ("sk-ant-api03-" + "x" * 80 + "wxyz", "sk-ant-...wxyz"),
        ("sk-proj-" + "x" * 100 + "1234", "sk-proj-...1234"),
        ("sk-" + "x" * 44 + "9876", "sk-...9876"),
        ("AIzaSy" + "x" * 29 + "abcd", "AIz...abcd"),
        ("abcde-fghij-" + "x" * 30 + "5678", "abcde-...5678"),
        ("tooshort-123", "..."),
    ],
)
def test_key_hint_shows_a_prefix_and_the_last_four(key, hint):
    assert mask_key(key) == hint
    assert len(hint.replace("...", "")) <= 12


def test_set_key_keeps_a_hint_and_clear_key_forgets_both(bob):
    credential = _store(bob, key=USER_KEY)
    assert credential.key_hint == "sk-or-...3f9a" and credential.has_api_key
    credential.clear_key()
    credential.save()
    credential.refresh_from_db()
    assert (credential.encrypted_key, credential.key_hint, credential.api_key) == ("", "", "")


def test_private_base_url_is_refused_by_the_model(settings, bob):
    settings.ALLOW_PRIVATE_ENDPOINTS = False
    credential = ProviderCredential(user=bob, provider="openai", base_url="http://169.254.169.254/latest")
    with pytest.raises(ValidationError) as excinfo:
        credential.full_clean()
    assert "base_url" in excinfo.value.message_dict


def test_admin_shows_the_hint_never_the_key(alice_client, bob):
    credential = _store(bob, key=USER_KEY)
    pages = [
        alice_client.get(reverse("admin:providers_providercredential_changelist")),
        alice_client.get(reverse("admin:providers_providercredential_change", args=[credential.pk])),
    ]
    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert "sk-or-...3f9a" in html
        assert USER_KEY_SECRET_PART not in html
        assert credential.encrypted_key not in html


# Resolution


def test_users_own_key_and_url_are_used(server_keys, bob):
    _store(bob, key=USER_KEY, base_url="https://my-gateway.example/api")
    assert resolve_endpoint(bob, OPENROUTER) == Endpoint("https://my-gateway.example/api", USER_KEY, user_supplied=True)


def test_users_own_key_without_url_goes_to_the_server_url(server_keys, bob):
    _store(bob, key=USER_KEY)
    assert resolve_endpoint(bob, "openrouter") == Endpoint("https://gateway.example/api", USER_KEY, user_supplied=False)


def test_server_key_is_used_when_the_user_has_none(server_keys, alice, bob):
    _store(alice, key=USER_KEY)
    assert resolve_endpoint(bob, OPENROUTER) == Endpoint("https://gateway.example/api", SERVER_KEY)


def test_server_key_is_never_sent_to_a_user_url(server_keys, bob):
    _store(bob, base_url="https://collector.example/api")
    with pytest.raises(MissingCredential) as excinfo:
        resolve_endpoint(bob, OPENROUTER)
    assert "OpenRouter" in str(excinfo.value) and "API key" in str(excinfo.value)
    assert SERVER_KEY not in str(excinfo.value)


def test_keyless_provider_uses_the_users_url(server_keys, bob):
    _store(bob, "ollama", base_url="https://ollama.example")
    assert resolve_endpoint(bob, OLLAMA) == Endpoint("https://ollama.example", "", user_supplied=True)


def test_keyless_provider_uses_the_server_url_when_configured(server_keys, bob):
    with pytest.raises(MissingCredential):
        resolve_endpoint(bob, OLLAMA)
    server_keys.OLLAMA_URL = "http://127.0.0.1:11434"
    assert resolve_endpoint(bob, OLLAMA) == Endpoint("http://127.0.0.1:11434")


def test_hide_user_api_key_ignores_stored_key_and_url(server_keys, bob):
    _store(bob, key=USER_KEY, base_url="https://my-gateway.example/api")
    server_keys.HIDE_USER_API_KEY = True
    assert resolve_endpoint(bob, OPENROUTER) == Endpoint("https://gateway.example/api", SERVER_KEY)
    server_keys.OPENROUTER_API_KEY = ""
    with pytest.raises(MissingCredential) as excinfo:
        resolve_endpoint(bob, OPENROUTER)
    assert "Add your own key" not in str(excinfo.value)


def test_no_key_anywhere_says_what_to_configure(server_keys, bob):
    server_keys.OPENROUTER_API_KEY = ""
    with pytest.raises(MissingCredential) as excinfo:
        resolve_endpoint(bob, OPENROUTER)
    assert "OpenRouter" in str(excinfo.value) and "OPENROUTER_API_KEY" in str(excinfo.value)


def test_unreadable_user_key_is_a_typed_error(server_keys, bob):
    server_keys.FIELD_ENCRYPTION_KEY = "before"
    _store(bob, key=USER_KEY)
    server_keys.FIELD_ENCRYPTION_KEY = "after"
    with pytest.raises(UnreadableCredential) as excinfo:
        resolve_endpoint(bob, OPENROUTER)
    assert isinstance(excinfo.value, CredentialError)
    assert "OpenRouter" in str(excinfo.value) and USER_KEY_SECRET_PART not in str(excinfo.value)


def test_a_key_pool_spreads_requests(server_keys, bob):
    server_keys.OPENROUTER_API_KEY = "sk-pool-1, sk-pool-2,sk-pool-3"
    used = {resolve_endpoint(bob, OPENROUTER).api_key for _ in range(200)}
    assert used == {"sk-pool-1", "sk-pool-2", "sk-pool-3"}


def test_endpoint_repr_has_no_key():
    endpoint = Endpoint("https://openrouter.ai/api", USER_KEY)
    assert USER_KEY not in repr(endpoint) and USER_KEY not in str(endpoint)
    assert "openrouter.ai" in repr(endpoint)


@pytest.mark.django_db(transaction=True)
async def test_async_resolution_follows_the_same_rules(server_keys, bob):
    credential = ProviderCredential(user=bob, provider="openrouter", base_url="https://my-gateway.example/api")
    credential.set_key(USER_KEY)
    await credential.asave()
    assert await aresolve_endpoint(bob, OPENROUTER) == Endpoint(
        "https://my-gateway.example/api", USER_KEY, user_supplied=True
    )
    credential.clear_key()
    await credential.asave()
    with pytest.raises(MissingCredential):
        await aresolve_endpoint(bob, OPENROUTER)
