import hmac

from django import forms
from django.conf import settings
from django.contrib.auth.forms import UserCreationForm
from django.utils.translation import get_language_info
from django.utils.translation import gettext_lazy as _

from accounts.models import ApiToken, Preferences, User


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
    """Language, theme and default model.

    Given `model_groups` (`chatapp.picker.picker_groups` of the providers the
    user can reach), the default model is a grouped select of those models,
    blank meaning the server's default (`default_label` names it).
    """

    class Meta:
        model = Preferences
        fields = ("language", "theme", "default_model")

    def __init__(self, *args, model_groups=None, default_label: str = "", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Each language in its own name, as in the switcher.
        self.fields["language"].choices = [("", _("Follow the browser"))] + [
            (code, get_language_info(code)["name_local"]) for code, _name in settings.LANGUAGES
        ]
        if model_groups is not None:
            self.fields["default_model"] = forms.ChoiceField(
                label=self.fields["default_model"].label,
                help_text=_("New chats start with it, unless the preset they start from names another model."),
                required=False,
                choices=self._model_choices(model_groups, default_label),
            )

    def _model_choices(self, model_groups, default_label: str) -> list:
        choices: list = [("", default_label or _("Server default"))]
        offered = {option.ref for group in model_groups for option in group.options}
        current = self.instance.default_model if self.instance else ""
        if current and current not in offered:
            # Kept selectable, so saving the other fields does not drop it silently.
            choices.append((current, _("%(model)s (not offered now)") % {"model": current}))
        choices += [
            (group.provider.name, [(option.ref, option.label) for option in group.options]) for group in model_groups
        ]
        return choices


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        label=_("Name"),
        max_length=ApiToken._meta.get_field("name").max_length,
        help_text=_("Where you will use it, e.g. “laptop” or “CI”."),
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
