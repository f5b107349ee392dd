from django import forms
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from chatapp.models import ChatSettings, Conversation, Preset, Prompt
from chatapp.picker import picker_groups
from providers.model_table import ModelTable

REASONING_EFFORTS = [
    ("", _("Model default")),
    ("minimal", _("Minimal")),
    ("low", _("Low")),
    ("medium", _("Medium")),
    ("high", _("High")),
    ("xhigh", _("Extra high")),
]


class RenameForm(forms.ModelForm):
    class Meta:
        model = Conversation
        fields = ("title",)


class ChatSettingsForm(forms.ModelForm):
    """A chat's settings, or a preset's: the model offered to this user, and the parameters."""

    model = forms.ChoiceField(label=_("Model"))
    temperature = forms.FloatField(label=_("Temperature"), required=False, min_value=0, max_value=2)
    top_p = forms.FloatField(label=_("Top p"), required=False, min_value=0, max_value=1)
    max_tokens = forms.IntegerField(label=_("Max tokens"), required=False, min_value=1, max_value=1_000_000)
    reasoning_effort = forms.ChoiceField(label=_("Reasoning effort"), choices=REASONING_EFFORTS, required=False)
    provider_order = forms.CharField(
        label=_("OpenRouter provider order"),
        required=False,
        max_length=500,
        help_text=_("Comma-separated provider names, tried in this order, e.g. anthropic, openai."),
    )

    class Meta:
        fields = ChatSettings.SETTINGS
        labels = {"system_prompt": _("System prompt"), "allow_fallbacks": _("Allow other providers as fallbacks")}
        widgets = {"system_prompt": forms.Textarea(attrs={"rows": 4})}
        help_texts = {
            "system_prompt": _(
                "{{CURRENT_DATE}}, {{CURRENT_TIME}}, {{CURRENT_WEEKDAY}}, {{USER_NAME}} and {{USER_LANGUAGE}} are "
                "filled in as each message is sent."
            )
        }

    def __init__(self, *args, providers: list[str], table: ModelTable, **kwargs):
        super().__init__(*args, **kwargs)
        self.providers, self.table = providers, table
        self.fields["model"].choices = [
            (group.provider.name, [(option.ref, option.label) for option in group.options])
            for group in picker_groups(providers, table)
        ]
        self.initial["provider_order"] = ", ".join(self.instance.provider_order or [])  # a list, edited as text
        # The model asked for, if the form was sent: the one it was drawn with may be another.
        entry = self._entry(self.data.get("model") or self.instance.model if self.is_bound else self.instance.model)
        if entry is not None and entry.source == "catalogue" and not entry.supports_reasoning:
            # Offered only where the model can reason (or when we cannot tell).
            del self.fields["reasoning_effort"]

    def _entry(self, ref: str):
        name, _sep, provider = ref.rpartition("@")
        return self.table.find(provider, name) if name else None

    def clean_provider_order(self) -> list[str]:
        names = [name.strip() for name in self.cleaned_data["provider_order"].split(",")]
        return [name for name in names if name][:20]


class ConversationSettingsForm(ChatSettingsForm):
    save_as = forms.CharField(
        label=_("Also save as a preset named"),
        required=False,
        max_length=100,
        help_text=_("A preset of the same name is replaced. Presets start new chats: see Settings, Presets."),
    )

    class Meta(ChatSettingsForm.Meta):
        model = Conversation

    def save(self, commit: bool = True) -> Conversation:
        conversation = super().save(commit)
        if commit and (name := self.cleaned_data.get("save_as")):
            preset, _created = Preset.objects.get_or_create(owner=conversation.owner, name=name)
            preset.copy_settings_from(conversation)
            preset.save()
        return conversation


class PresetForm(ChatSettingsForm):
    class Meta(ChatSettingsForm.Meta):
        model = Preset
        fields = ("name", *ChatSettings.SETTINGS, "for_new_chats")
        labels = {**ChatSettingsForm.Meta.labels, "for_new_chats": _("New chats start from this preset")}

    def clean_name(self) -> str:
        return _one_of_a_kind(self, "name", _("You already have a preset named “%(name)s”."))

    @transaction.atomic
    def save(self, commit: bool = True) -> Preset:
        if commit and self.instance.for_new_chats:  # the one new chats start from: no longer the one before
            Preset.objects.for_new_chats(self.instance.owner).exclude(pk=self.instance.pk).update(for_new_chats=False)
        return super().save(commit)


class PresetChoiceForm(forms.Form):
    """One of the user's presets, to apply to a chat."""

    preset = forms.ModelChoiceField(label=_("Preset"), queryset=Preset.objects.none(), empty_label=None)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["preset"].queryset = Preset.objects.filter(owner=user)


class PromptForm(forms.ModelForm):
    # Kept as typed, a last line break too (the text goes on from there); browsers send lines as CRLF.
    text = forms.CharField(
        label=_("Text"),
        widget=forms.Textarea(attrs={"rows": 6}),
        strip=False,
        help_text=_(
            "{{CURRENT_DATE}}, {{CURRENT_TIME}}, {{CURRENT_WEEKDAY}}, {{USER_NAME}}, {{USER_LANGUAGE}} and "
            "{{CLIPBOARD}} are filled in as the prompt is put in the message box."
        ),
    )

    class Meta:
        model = Prompt
        fields = ("command", "text")

    def clean_command(self) -> str:
        return _one_of_a_kind(self, "command", _("You already have a prompt /%(command)s."))

    def clean_text(self) -> str:
        text = self.cleaned_data["text"].replace("\r\n", "\n")
        if not text.strip():
            raise forms.ValidationError(self.fields["text"].error_messages["required"], code="required")
        return text


def _one_of_a_kind(form: forms.ModelForm, field: str, taken) -> str:
    """The form's cleaned `field`, unless another row of the instance's owner has it (the database's constraint
    names the owner, which is not a field of the form, so Django does not check it)."""
    value = form.cleaned_data[field]
    rows = form._meta.model.objects.filter(owner=form.instance.owner, **{field: value}).exclude(pk=form.instance.pk)
    if rows.exists():
        raise forms.ValidationError(taken, params={field: value})
    return value
