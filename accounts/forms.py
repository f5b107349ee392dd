import hmac

from django import forms
from django.conf import settings
from django.contrib.auth.forms import UserCreationForm
from django.utils.translation import gettext_lazy as _

from accounts.models import Preferences, User


def access_code_is_valid(code: str) -> bool:
    """Compare against every configured code in constant time."""
    given = code.encode()
    matches = [hmac.compare_digest(given, allowed.encode()) for allowed in settings.ACCESS_CODES]
    return any(matches)


class SignUpForm(UserCreationForm):
    access_code = forms.CharField(
        label=_("Access code"),
        required=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text=_("Ask the administrator of this server for one."),
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not settings.ACCESS_CODES:
            del self.fields["access_code"]

    def clean_access_code(self) -> str:
        code = self.cleaned_data.get("access_code", "")
        if not access_code_is_valid(code):
            raise forms.ValidationError(_("This access code is not valid."), code="invalid_code")
        return code


class PreferencesForm(forms.ModelForm):
    class Meta:
        model = Preferences
        fields = ("language", "theme", "default_model")
