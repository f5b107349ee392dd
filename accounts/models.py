from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
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
