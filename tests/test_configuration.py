"""Settings come from the environment (SPEC section 3)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from providers.registry import PROVIDERS

ROOT = Path(__file__).resolve().parent.parent


def _settings_with(env: dict[str, str], expression: str) -> str:
    """Import the settings in a fresh interpreter with `env` and print an expression."""
    clean = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_URL")) and k not in ("DEBUG", "CODE")}
    clean.update(env)
    code = f"import chatapp.settings as s; print({expression})"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_debug_is_off_unless_set():
    assert _settings_with({}, "s.DEBUG") == "False"
    assert _settings_with({"DEBUG": "true"}, "s.DEBUG") == "True"


def test_database_url_selects_postgres():
    engine = _settings_with({"DATABASE_URL": "postgres://u@db.example:5432/sb"}, "s.DATABASES['default']['ENGINE']")
    assert engine == "django.db.backends.postgresql"


def test_default_database_is_sqlite_under_data(tmp_path):
    name = _settings_with({}, "s.DATABASES['default']['NAME']")
    assert name.endswith("data/db.sqlite3")


def test_redis_url_switches_channel_layer_and_cache():
    layer = _settings_with({"REDIS_URL": "redis://127.0.0.1:6379/0"}, "s.CHANNEL_LAYERS['default']['BACKEND'], s.CACHES['default']['BACKEND']")
    assert "channels_redis.core.RedisChannelLayer" in layer and "RedisCache" in layer
    assert "InMemoryChannelLayer" in _settings_with({}, "s.CHANNEL_LAYERS['default']['BACKEND']")


def test_codes_and_provider_keys_are_read():
    assert _settings_with({"CODE": "a, b"}, "s.ACCESS_CODES") == "['a', 'b']"
    assert _settings_with({"OPENROUTER_API_KEY": "k1,k2"}, "s.OPENROUTER_API_KEY") == "k1,k2"
    assert _settings_with({"BASE_URL": "http://x.example"}, "s.OPENAI_URL") == "http://x.example"


def test_generated_secret_key_is_kept():
    first = _settings_with({"SECRET_KEY": ""}, "s.SECRET_KEY")
    second = _settings_with({"SECRET_KEY": ""}, "s.SECRET_KEY")
    assert first == second and len(first) >= 50
    assert (ROOT / "data" / "secret_key").read_text().strip() == first


def test_check_deploy_is_clean_with_production_settings():
    env = {
        **os.environ,
        "DEBUG": "false",
        "HTTPS": "true",
        "SECRET_KEY": "x7$kq!2n" * 8,
        "ALLOWED_HOSTS": "chat.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_https_trusts_the_forwarded_proto_and_secures_cookies():
    assert _settings_with({"HTTPS": "true"}, "s.SECURE_PROXY_SSL_HEADER") == "('HTTP_X_FORWARDED_PROTO', 'https')"
    assert _settings_with({"HTTPS": "true"}, "s.SESSION_COOKIE_SECURE, s.SECURE_SSL_REDIRECT") == "True True"


@pytest.mark.parametrize(
    ("provider", "pasted", "joined"),
    [
        ("openrouter", "https://openrouter.ai/api", "https://openrouter.ai/api/v1/chat/completions"),
        ("openrouter", "https://openrouter.ai/api/v1/", "https://openrouter.ai/api/v1/chat/completions"),
        ("google", "https://generativelanguage.googleapis.com",
         "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"),
        ("google", "https://generativelanguage.googleapis.com/v1beta",
         "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"),
        ("google", "https://generativelanguage.googleapis.com/v1beta/openai/",  # Google's documented base_url
         "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"),
        ("ollama", "http://gpu-box:11434/v1", "http://gpu-box:11434/v1/chat/completions"),
        ("ollama", "http://gpu-box:11434/ollama", "http://gpu-box:11434/ollama/v1/chat/completions"),
    ],
)  # fmt: skip
def test_a_pasted_base_url_is_joined_without_doubling_the_path(provider, pasted, joined):
    """SPEC section 3: a URL pasted with the path's version segment already on it is not doubled."""
    found = PROVIDERS[provider]
    assert found.url_for(pasted, found.chat_path) == joined
