"""The per-provider settings form: a user's own endpoint URL and API key."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from providers.endpoints import MAX_URL_LENGTH, validate_user_url
from providers.models import ProviderCredential
from providers.registry import Provider

MAX_KEY_LENGTH = 500


class ProviderCredentialForm(forms.Form):
    """Save a URL and/or a key; an empty key field keeps the stored key.

    The stored key is never rendered back, so "leave it empty" is the only way
    to change the URL without typing the key again.
    """

    base_url = forms.CharField(
        label=_("Your endpoint URL"),
        required=False,
        # Not a URLField: validate_user_url gives the better messages, and
        # max_length stays generous so our own length message is the one shown.
        max_length=MAX_URL_LENGTH * 2,
        widget=forms.TextInput(attrs={"inputmode": "url", "autocomplete": "off", "spellcheck": "false"}),
    )
    api_key = forms.CharField(
        label=_("Your API key"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false"}, render_value=False),
    )

    def __init__(self, *args, provider: Provider, credential: ProviderCredential | None = None, **kwargs) -> None:
        self.provider = provider
        self.credential = credential
        kwargs.setdefault("auto_id", f"id_{provider.slug}_%s")
        if credential is not None:
            kwargs.setdefault("initial", {"base_url": credential.base_url})
        super().__init__(*args, **kwargs)
        self.fields["base_url"].widget.attrs["placeholder"] = provider.public_server_url
        key_field = self.fields["api_key"]
        if credential is not None and credential.has_api_key:
            key_field.widget.attrs["placeholder"] = _("Leave empty to keep the stored key")
        else:
            key_field.widget.attrs["placeholder"] = _("Paste your API key")
        if not provider.needs_key:
            del self.fields["api_key"]

    def clean_base_url(self) -> str:
        url = self.cleaned_data["base_url"].strip()
        # Blocking DNS for a host name: the price of a clear message on saving.
        # The connection-time guard checks again on every request.
        return validate_user_url(url) if url else ""

    def clean_api_key(self) -> str:
        raw = self.cleaned_data["api_key"]
        if raw == "":
            return ""
        key = raw.strip()
        if not key:
            raise ValidationError(_("The API key is empty."), code="empty")
        if len(key) > MAX_KEY_LENGTH:
            raise ValidationError(
                _("This is too long for an API key (at most %(max)d characters)."),
                code="length",
                params={"max": MAX_KEY_LENGTH},
            )
        # The key travels in an HTTP header: printable ASCII without spaces.
        if not all(33 <= ord(ch) <= 126 for ch in key):
            raise ValidationError(
                _("An API key contains no spaces, line breaks or non-ASCII characters; check what you pasted."),
                code="characters",
            )
        return key

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        url, key = cleaned.get("base_url", ""), cleaned.get("api_key", "")
        has_key = bool(key) or (self.credential is not None and self.credential.has_api_key)
        if not url and not has_key and (self.credential is None or not self.credential.base_url):
            if self.provider.needs_key:
                raise ValidationError(_("Enter your API key, an endpoint URL, or both."), code="empty")
            raise ValidationError(_("Enter an endpoint URL."), code="empty")
        if url and self.provider.needs_key and not has_key:
            self.add_error(
                "api_key",
                ValidationError(
                    _("Add your API key for this URL: the server's key is never sent to an endpoint you set."),
                    code="key_required",
                ),
            )
        return cleaned

    def save(self, user) -> ProviderCredential | None:
        """Store what was entered; None when nothing is left to store."""
        credential = self.credential or ProviderCredential(user=user, provider=self.provider.slug)
        credential.base_url = self.cleaned_data["base_url"]
        if self.cleaned_data.get("api_key"):
            credential.set_key(self.cleaned_data["api_key"])
        if not credential.base_url and not credential.has_api_key:
            if credential.pk is not None:
                credential.delete()
            return None
        credential.save()
        return credential
