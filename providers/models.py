import re

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from providers import crypto
from providers.endpoints import validate_user_url
from providers.registry import PROVIDERS


def provider_choices() -> list[tuple[str, str]]:
    # A callable, so adding a provider to the registry needs no migration.
    return [(p.slug, p.name) for p in PROVIDERS.values()]


# Public, well-known key prefixes ("sk-", "sk-or-", "sk-ant-", "sk-proj-").
_KEY_PREFIX = re.compile(r"^(?:[A-Za-z0-9]{1,5}-){1,2}")
_MAX_PREFIX = 8
_SUFFIX = 4


def mask_key(key: str) -> str:
    """A masked hint such as `sk-or-...3f9a`: a public prefix and the last four.

    Short keys show less, so the hint never gives away a meaningful share of a key.
    """
    key = key.strip()
    if len(key) < 20:
        return "..."
    match = _KEY_PREFIX.match(key)
    prefix = match.group(0) if match else ""
    if len(prefix) > _MAX_PREFIX:
        prefix = prefix[: prefix.index("-") + 1]
    if not match or len(prefix) > len(key) // 4:
        prefix = key[: min(3, len(key) // 4)]
    return f"{prefix}...{key[-_SUFFIX:]}"


class ProviderCredential(models.Model):
    """A user's own endpoint URL and/or API key for one provider (SPEC section 6)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="provider_credentials",
        verbose_name=_("user"),
    )
    provider = models.CharField(_("provider"), max_length=32, choices=provider_choices)
    base_url = models.CharField(
        _("endpoint URL"),
        max_length=2048,
        blank=True,
        validators=[validate_user_url],
        help_text=_("Leave empty to use the provider's default URL."),
    )
    # Never the key itself: an AES-GCM token from providers.crypto.
    encrypted_key = models.TextField(_("encrypted API key"), blank=True, editable=False)
    key_hint = models.CharField(_("key hint"), max_length=32, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("provider credential")
        verbose_name_plural = _("provider credentials")
        constraints = [
            models.UniqueConstraint(fields=["user", "provider"], name="providers_credential_unique_user_provider")
        ]

    def __str__(self) -> str:
        return f"{self.user} / {self.get_provider_display()}"

    @property
    def has_api_key(self) -> bool:
        return bool(self.encrypted_key)

    @property
    def api_key(self) -> str:
        """The plaintext key, or "". Raises crypto.KeyDecryptionError if unreadable."""
        return crypto.decrypt(self.encrypted_key) if self.encrypted_key else ""

    def set_key(self, plaintext: str) -> None:
        """Encrypt and keep a key (not saved until `save()`); an empty key clears it."""
        plaintext = (plaintext or "").strip()
        if not plaintext:
            self.clear_key()
            return
        self.encrypted_key = crypto.encrypt(plaintext)
        self.key_hint = mask_key(plaintext)

    def clear_key(self) -> None:
        self.encrypted_key = ""
        self.key_hint = ""


from providers.usage import UsageRecord  # noqa: E402,F401
