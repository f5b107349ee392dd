import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    """Our own user model from day one, so fields can be added without pain."""

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        verbose_name = _("user")
        verbose_name_plural = _("users")


class Preferences(models.Model):
    class Theme(models.TextChoices):
        AUTO = "auto", _("Automatic")
        LIGHT = "light", _("Light")
        DARK = "dark", _("Dark")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preferences", verbose_name=_("user")
    )
    language = models.CharField(_("language"), max_length=10, blank=True, choices=settings.LANGUAGES)
    theme = models.CharField(_("theme"), max_length=10, choices=Theme.choices, default=Theme.AUTO)
    default_model = models.CharField(_("default model"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("preferences")
        verbose_name_plural = _("preferences")

    def __str__(self) -> str:
        return str(self.user)

    @classmethod
    def for_user(cls, user) -> "Preferences":
        prefs, _created = cls.objects.get_or_create(user=user)
        return prefs


TOKEN_MARKER = "sb-"
# 32 random bytes: 43 URL-safe characters after the marker.
_TOKEN_BYTES = 32
_PREFIX_LENGTH = 8
# Longer input is not a token; refuse it before hashing anything.
_MAX_TOKEN_LENGTH = 200
# A token used all day long is written at most once a minute, not per request.
LAST_USED_PRECISION = timedelta(minutes=1)


def _hash_token(raw: str) -> str:
    # The tokens are 256 random bits, so a fast unsalted hash is enough: there
    # is nothing to brute-force that a slow password hash would protect.
    return hashlib.sha256(raw.encode()).hexdigest()


def _looks_like_token(raw: str | None) -> bool:
    return bool(raw) and raw.startswith(TOKEN_MARKER) and len(raw) <= _MAX_TOKEN_LENGTH


class ApiToken(models.Model):
    """A personal token for the proxy API (SPEC section 8); only its hash is kept."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens", verbose_name=_("user")
    )
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(
        _("prefix"), max_length=_PREFIX_LENGTH, editable=False, help_text=_("Recognises a token in lists.")
    )
    token_hash = models.CharField(_("token hash"), max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix})"

    @property
    def display_prefix(self) -> str:
        return f"{TOKEN_MARKER}{self.prefix}…"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @classmethod
    def issue(cls, user, name: str) -> tuple["ApiToken", str]:
        """Create a token; the raw value is returned once and never stored."""
        raw = TOKEN_MARKER + secrets.token_urlsafe(_TOKEN_BYTES)
        token = cls.objects.create(
            user=user, name=name, prefix=raw[len(TOKEN_MARKER) :][:_PREFIX_LENGTH], token_hash=_hash_token(raw)
        )
        return token, raw

    @classmethod
    def authenticate(cls, raw: str | None):
        """The active user owning this unrevoked token, or None."""
        if not _looks_like_token(raw):
            return None
        digest = _hash_token(raw)
        token = cls.objects.select_related("user").filter(token_hash=digest, revoked_at__isnull=True).first()
        if not token or not token._accepts(digest):
            return None
        now = timezone.now()
        if token._needs_touch(now):
            token._stale_touch_rows(now).update(last_used_at=now)
        return token.user

    @classmethod
    async def aauthenticate(cls, raw: str | None):
        if not _looks_like_token(raw):
            return None
        digest = _hash_token(raw)
        token = await cls.objects.select_related("user").filter(token_hash=digest, revoked_at__isnull=True).afirst()
        if not token or not token._accepts(digest):
            return None
        now = timezone.now()
        if token._needs_touch(now):
            await token._stale_touch_rows(now).aupdate(last_used_at=now)
        return token.user

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])

    def _accepts(self, digest: str) -> bool:
        # The lookup already matched; the constant-time check keeps the
        # comparison honest should the lookup ever become a prefix search.
        return hmac.compare_digest(self.token_hash, digest) and self.user.is_active

    def _needs_touch(self, now) -> bool:
        return self.last_used_at is None or now - self.last_used_at >= LAST_USED_PRECISION

    def _stale_touch_rows(self, now) -> models.QuerySet:
        # Conditional, so concurrent requests with one token write only once.
        stale = models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lte=now - LAST_USED_PRECISION)
        return ApiToken.objects.filter(stale, pk=self.pk)
